import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DetachedLauncher, SupervisedLauncher } from './daemons.js';

test('daemons - a detached daemon is found again by a new launcher and stopped by pid', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-unit-'));
  const spec = { key: 'sleep:x', argv: ['sleep', '30'], netns: undefined };
  t.teardown(async () => {
    await new DetachedLauncher(dir).get(spec.key)?.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const first = await new DetachedLauncher(dir).start(spec);
  t.true(first.running);
  // As after a gateway restart: a fresh launcher over the same dir.
  const again = new DetachedLauncher(dir);
  t.is(again.get(spec.key)?.pid, first.pid);
  t.is((await again.start(spec)).pid, first.pid, 'start adopts instead of starting twice');
  await again.get(spec.key)?.stop();
  t.is(again.get(spec.key), undefined);
});

test('daemons - the supervised launcher starts once per key and stops all', async (t) => {
  const l = new SupervisedLauncher();
  t.teardown(() => l.stopAll());
  const spec = { key: 'sleep:y', argv: ['sleep', '30'], netns: undefined };
  const a = await l.start(spec);
  const b = await l.start(spec);
  t.is(a.pid, b.pid);
  await l.stopAll();
  t.false(a.running);
  t.is(l.get(spec.key), undefined);
});
