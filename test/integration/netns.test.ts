import { ExecaRunner, RecordingRunner } from '../../lib/runner.js';
import { listNamespaces } from '../../lib/netns.js';
import { CommandError } from '../../lib/errors.js';
import { testWith } from '../fixtures/privileges.js';
import { createNetns } from '../fixtures/netns.js';

const test = testWith({ netAdmin: true, tools: ['ip', 'ping'] });

test('netns fixture - two namespaces ping across a veth, then vanish on dispose', async (t) => {
  const runner = new RecordingRunner(new ExecaRunner());
  const set = createNetns(runner);
  t.teardown(() => set.dispose());

  const a = await set.add('a');
  const b = await set.add('b');
  await set.veth({ ns: a, ifname: 'veth-a' }, { ns: b, ifname: 'veth-b' });
  // Test-net-2 addresses, reachable only inside these two namespaces.
  await set.addr(a, 'veth-a', '198.18.7.1/30');
  await set.addr(b, 'veth-b', '198.18.7.2/30');

  const r = await set.exec(a, ['ping', '-c', '3', '-i', '0.2', '-W', '2', '198.18.7.2']);
  t.regex(r.stdout, /3 packets transmitted, 3 received/);

  // The far side is only reachable through the veth: from b, a's address answers too.
  const back = await set.exec(b, ['ping', '-c', '1', '-W', '2', '198.18.7.1']);
  t.is(back.exitCode, 0);

  t.deepEqual((await listNamespaces(runner, set.prefix)).sort(), [a, b].sort());
  await set.dispose();
  t.deepEqual(await listNamespaces(runner, set.prefix), []);
});

test('netns fixture - a failing command keeps argv, exit code and stderr', async (t) => {
  const set = createNetns();
  t.teardown(() => set.dispose());
  const a = await set.add('x');
  const err = await t.throwsAsync(set.exec(a, ['ip', 'link', 'show', 'does-not-exist']), {
    instanceOf: CommandError,
  });
  t.deepEqual(err?.argv, ['ip', 'link', 'show', 'does-not-exist']);
  t.is(err?.netns, a);
  t.not(err?.exitCode, 0);
  t.regex(err?.stderr ?? '', /does not exist/);
});

test('netns fixture - dispose kills processes left inside a namespace', async (t) => {
  const set = createNetns();
  t.teardown(() => set.dispose());
  const a = await set.add('p');
  const { spawn } = await import('node:child_process');
  const child = spawn('ip', ['netns', 'exec', a, 'sleep', '30'], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  // wait until the sleep is inside the namespace
  for (let i = 0; i < 50; i++) {
    const pids = await new ExecaRunner().run(['ip', 'netns', 'pids', a]);
    if (pids.stdout.trim()) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  await set.dispose();
  t.is(await exited, null); // killed by signal
});
