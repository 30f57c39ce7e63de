import { cp, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { stringify } from 'yaml';
import { controlPlaneUnmet, packageRoot } from '../lib/kube-control-plane.js';
import { ExecaRunner } from '../lib/runner.js';
import { makeRunDir, runId } from '../test/fixtures/run-dir.js';
import { l2fedArgv } from './components.js';
import { kubeObjects } from './kube.js';

test('kubeObjects: the FederatedNetworks and ClusterPeerings of a multi-document file, not its Pods', (t) => {
  const text = `apiVersion: l2fed.io/v1alpha1
kind: FederatedNetwork
metadata: { name: cdn }
spec: { segment: { bridge: br0 } }
---
apiVersion: v1
kind: Pod
metadata: { name: web }
---
# a comment-only document
---
apiVersion: l2fed.io/v1alpha1
kind: ClusterPeering
metadata: { name: athens }
spec: { remoteCluster: athens }
`;
  t.deepEqual(
    kubeObjects(text).map((o) => `${o.kind}/${o.metadata.name}`),
    ['FederatedNetwork/cdn', 'ClusterPeering/athens'],
  );
});

test('kubeObjects: an object without a name is not sent (validation reports it)', (t) => {
  t.deepEqual(kubeObjects('kind: FederatedNetwork\nmetadata: {}\n'), []);
});

test('lab apply --kubernetes: an API server that refuses leaves the folder as it was', async (t) => {
  const unmet = controlPlaneUnmet();
  if (unmet) return t.pass(`skipped: ${unmet}`);
  const dir = await makeRunDir('kapply');
  t.teardown(() => dir.remove());
  process.env.L2FED_LAB_DIR = join(dir.path, 'l2fed-lab');
  const { labPaths } = await import('./paths.js');
  const { writeState } = await import('./state.js');
  const { labApply } = await import('./apply.js');
  const paths = labPaths();
  for (const c of ['athens', 'bristol', 'madrid']) {
    await cp(join('deploy/examples', c), paths.cluster(c), { recursive: true });
  }
  // Nothing listens on port 1: kubectl fails to connect.
  const kubeconfig = join(dir.path, 'dead.kubeconfig');
  await writeFile(
    kubeconfig,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'dead', cluster: { server: 'https://127.0.0.1:1' } }],
      users: [{ name: 'u', user: { token: 'x' } }],
      contexts: [{ name: 'dead', context: { cluster: 'dead', user: 'u' } }],
      'current-context': 'dead',
    }),
  );
  await writeState(paths.state, {
    phase: 'ready',
    runnerPid: process.pid,
    planId: 'p',
    segmentKind: 'ovs',
    kubernetes: true,
    clusters: ['athens', 'bristol', 'madrid'].map((id) => ({
      id,
      ns: `l2fed-x-${id}`,
      underlayAddress: '10.0.0.1',
      kubeconfig,
      pods: [],
    })),
    processes: [],
    progress: [],
  });
  const file = join(dir.path, 'peering-athens.yaml');
  await writeFile(
    file,
    'apiVersion: l2fed.io/v1alpha1\nkind: ClusterPeering\nmetadata:\n  name: athens\nspec:\n  remoteCluster: athens\n',
  );
  const before = await readdir(paths.cluster('bristol'));
  t.is(await labApply('bristol', file), 1);
  t.deepEqual(await readdir(paths.cluster('bristol')), before);
});

test('lab up --kubernetes without the control-plane binaries: refused up front, naming the setup command, nothing built', async (t) => {
  const dir = await makeRunDir('knobin');
  t.teardown(() => dir.remove());
  const labDir = join(dir.path, 'l2fed-lab');
  const r = await new ExecaRunner().run(
    l2fedArgv('lab', 'up', '--kubernetes', '--segment', 'bridge'),
    {
      allowFailure: true,
      timeoutMs: 60_000,
      env: {
        // An empty cache: scripts/kube-control-plane --check says "not built".
        L2FED_KUBE_CACHE: join(dir.path, 'kube-cache'),
        L2FED_LAB_DIR: labDir,
        L2FED_LAB_PREFIX: `l2fed-kn${runId(4)}`,
      },
    },
  );
  t.is(r.exitCode, 1, r.stdout + r.stderr);
  t.regex(
    r.stdout,
    /--kubernetes needs kube-apiserver, etcd and kubectl: .*bash scripts\/setup --kube/,
  );
  await t.throwsAsync(readdir(labDir), { code: 'ENOENT' });
});

test('the package root (scripts/, deploy/) is found from source and from dist/', (t) => {
  const root = packageRoot();
  t.is(packageRoot(join(root, 'dist', 'lib')), root);
  t.is(packageRoot(join(root, 'lab')), root);
});
