import { join } from 'node:path';
import { access, mkdir, writeFile } from 'node:fs/promises';
import { spawn } from 'node:child_process';
import { ExecaRunner } from '../../lib/runner.js';
import { cleanup, findLeftovers, isClean } from '../../lib/cleanup.js';
import { NetnsSet, listNamespaces } from '../../lib/netns.js';
import { NatsServer } from '../../lib/nats-process.js';
import { testWith } from '../fixtures/privileges.js';
import { makeRunDir, runId } from '../fixtures/run-dir.js';

const test = testWith({ netAdmin: true, tools: ['ip', 'nats-server'] });

test('cleanup - removes what a crashed run left: namespaces, daemons, run dirs', async (t) => {
  const prefix = `l2fed-tcl${runId()}`;
  const runner = new ExecaRunner();
  // Whatever happens below, nothing with this prefix survives the test.
  t.teardown(() => cleanup(runner, prefix).then(() => undefined));

  // A "crashed run": a namespace with a process in it, an orphaned nats-server
  // and its directory, none of which is stopped by its owner.
  const set = new NetnsSet(runner, prefix);
  const ns = await set.add('gw');
  const sleeper = spawn('ip', ['netns', 'exec', ns, 'sleep', '60'], { stdio: 'ignore' });
  const sleeperGone = new Promise((r) => sleeper.once('exit', r));
  const dir = await makeRunDir(prefix.slice('l2fed-'.length));
  const nats = await NatsServer.start({ dir: join(dir.path, 'nats') });
  // A hosts file a test gave the namespace (what `ip netns exec` mounts as /etc/hosts).
  const etc = join('/etc/netns', ns);
  await mkdir(etc, { recursive: true });
  await writeFile(join(etc, 'hosts'), '127.0.0.1 localhost\n');

  const before = await findLeftovers(runner, prefix);
  t.deepEqual(before.namespaces, [ns]);
  t.true(before.processes.some((p) => p.pid === nats.pid));
  t.deepEqual(before.runDirs, [dir.path]);
  t.deepEqual(before.netnsEtc, [etc]);
  t.false(isClean(before));

  const removed = await cleanup(runner, prefix);
  t.deepEqual(removed.namespaces, [ns]);
  await sleeperGone;
  await nats.stop(); // already killed: resolves at once
  t.false(nats.running);
  t.deepEqual(await listNamespaces(runner, prefix), []);
  await t.throwsAsync(access(dir.path));
  await t.throwsAsync(access(etc));
  t.true(isClean(await findLeftovers(runner, prefix)));
});

test('cleanup - leaves alone what does not carry the prefix', async (t) => {
  const runner = new ExecaRunner();
  const mine = new NetnsSet(runner, `l2fed-tkeep${runId()}`);
  t.teardown(() => mine.dispose());
  const ns = await mine.add('x');
  await cleanup(runner, `l2fed-tother${runId()}`);
  t.deepEqual(await listNamespaces(runner, mine.prefix), [ns]);
});
