/**
 * The control-plane fixture itself: while it runs, `l2fed cleanup` would find its two
 * processes and its dir (so a crashed run is cleaned up); after dispose() nothing of it is
 * left. Also measures the start (logged).
 */
import { access, mkdtemp, rm } from 'node:fs/promises';
import plainTest from 'ava';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

// Needs neither Go nor a build: it checks what happens without them.
plainTest(
  'kube control plane - without Go and without a build, the script says so with exit 3 (a skip reason)',
  async (t) => {
    const runner = new ExecaRunner();
    const cache = await mkdtemp(join(tmpdir(), 'l2fed-kube-cache-'));
    t.teardown(() => rm(cache, { recursive: true, force: true }));
    const script = new URL('../../scripts/kube-control-plane', import.meta.url).pathname;
    const env = { L2FED_KUBE_CACHE: cache, PATH: '/usr/bin:/bin', L2FED_GO_BIN: '/nonexistent' };
    const noGo = await runner.run(['bash', script], { env, allowFailure: true });
    t.is(noGo.exitCode, 3);
    t.regex(noGo.stderr, /no Go toolchain/);
    const check = await runner.run(['bash', script, '--check'], { env, allowFailure: true });
    t.is(check.exitCode, 3);
    // With Go on PATH but nothing built yet, --check builds nothing and exits 4.
    const goPath = { ...env, PATH: process.env.PATH ?? '' };
    const notBuilt = await runner.run(['bash', script, '--check'], {
      env: goPath,
      allowFailure: true,
    });
    t.is(notBuilt.exitCode, 4, notBuilt.stderr);
    t.regex(notBuilt.stderr, /not built yet/);
  },
);
