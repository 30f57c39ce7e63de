/**
 * `lab apply` checks a change against the whole federation, with the build rules of the
 * lab's segment kind: a MAC another cluster uses on the same network is refused and
 * nothing is written. No lab processes: the state file and folders are all it reads.
 */
import { cp, mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { makeRunDir } from '../test/fixtures/run-dir.js';

test('lab apply - a pod with a MAC another cluster uses on the network is refused', async (t) => {
  const dir = await makeRunDir('apply');
  t.teardown(() => dir.remove());
  process.env.L2FED_LAB_DIR = join(dir.path, 'l2fed-lab');
  const { labPaths } = await import('./paths.js');
  const { writeState } = await import('./state.js');
  const { labApply } = await import('./apply.js');
  const paths = labPaths();
  for (const c of ['athens', 'bristol', 'madrid']) {
    await cp(join('deploy/examples', c), paths.cluster(c), { recursive: true });
  }
  await writeState(paths.state, {
    phase: 'ready',
    runnerPid: process.pid,
    planId: 'ab12',
    segmentKind: 'ovs',
    clusters: ['athens', 'bristol', 'madrid'].map((id) => ({
      id,
      ns: `l2fed-lab-${id}`,
      underlayAddress: '198.18.0.1',
      pods: [],
    })),
    processes: [],
    progress: [],
  });
  // bristol's cache uses 02:10:00:00:00:21 on cdn (deploy/examples/bristol/pods.yaml).
  const file = join(dir.path, 'extra.yaml');
  await mkdir(dir.path, { recursive: true });
  await writeFile(
    file,
    [
      'apiVersion: v1',
      'kind: Pod',
      'metadata:',
      '  name: extra',
      '  annotations:',
      `    k8s.v1.cni.cncf.io/networks: '[{"name":"cdn","ips":["10.10.0.19/24"],"mac":"02:10:00:00:00:21"}]'`,
      '',
    ].join('\n'),
  );
  const errors: string[] = [];
  const orig = console.error;
  console.error = (...a: unknown[]) => void errors.push(a.join(' '));
  t.teardown(() => (console.error = orig));
  const before = await readdir(paths.cluster('madrid'));
  t.is(await labApply('madrid', file), 1);
  console.error = orig;
  const text = errors.join('\n');
  t.regex(text, /refused, nothing changed/);
  t.regex(
    text,
    /madrid\/extra\.yaml:1 .*Pod\/extra\): .*\[0\]\.mac: MAC 02:10:00:00:00:21 on network cdn is also used by bristol\/cache/,
  );
  t.deepEqual(await readdir(paths.cluster('madrid')), before, 'nothing written');
});
