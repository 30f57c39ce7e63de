/**
 * The control-plane fixture itself: while it runs, `l2fed cleanup` would find its two
 * processes and its dir (so a crashed run is cleaned up); after dispose() nothing of it is
 * left. Also measures the start (logged).
 */
import { access } from 'node:fs/promises';
import { findLeftovers } from '../../lib/cleanup.js';
import { ExecaRunner } from '../../lib/runner.js';
import { controlPlaneUnmet, startKubeControlPlane } from '../fixtures/kube-control-plane.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({ tools: ['openssl'], check: controlPlaneUnmet });

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

test('kube control plane - cleanup finds etcd, kube-apiserver and the dir; dispose leaves nothing', async (t) => {
  t.timeout(90_000);
  const runner = new ExecaRunner();
  const kube = await startKubeControlPlane();
  t.teardown(() => kube.dispose());
  t.log(`ready in ${kube.startMs} ms`);
  const ours = async () => {
    const found = await findLeftovers(runner);
    return {
      processes: found.processes
        .filter((p) => p.command.includes(kube.dir))
        .map((p) => p.command.split(' ')[0]!.split('/').at(-1)),
      dirs: found.runDirs.filter((d) => d === kube.dir),
    };
  };
  const running = await ours();
  t.deepEqual([...running.processes].sort(), ['etcd', 'kube-apiserver']);
  t.deepEqual(running.dirs, [kube.dir]);

  await kube.dispose();
  t.deepEqual(await ours(), { processes: [], dirs: [] });
  t.false(await exists(kube.dir));
  // The server is gone, not just forgotten.
  await t.throwsAsync(kube.api('GET', '/readyz'));
});
