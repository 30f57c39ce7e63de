import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { makeRunDir } from '../test/fixtures/run-dir.js';
import { ManifestError, ManifestFolderError } from './errors.js';
import type { DesiredState } from './desired-state.js';
import { FolderSource } from './source-folder.js';
import { nextEvent, type SourceEvent } from './source.js';

const WAIT = 5_000;

const network = (name: string, extra = '') => `apiVersion: l2fed.io/v1alpha1
kind: FederatedNetwork
metadata:
  name: ${name}
spec:
  segment:
    ovsBridge: br-${name}
${extra}`;

const peering = (remote: string) => `apiVersion: l2fed.io/v1alpha1
kind: ClusterPeering
metadata:
  name: ${remote}
spec:
  remoteCluster: ${remote}
`;

async function setup(t: ExecutionContext, opts: { resyncMs?: number } = {}) {
  const dir = await makeRunDir('folder');
  t.teardown(() => dir.remove());
  const source = new FolderSource({
    dir: dir.path,
    clusterId: 'madrid',
    debounceMs: 30,
    resyncMs: opts.resyncMs ?? 0,
  });
  const events: SourceEvent[] = [];
  source.subscribe((e) => events.push(e));
  t.teardown(() => source.stop());
  return { dir: dir.path, source, events };
}

const snapshot = (source: FolderSource, ok: (s: DesiredState) => boolean = () => true) =>
  nextEvent(source, (e) => e.type === 'snapshot' && ok(e.state), WAIT).then(
    (e) => e as Extract<SourceEvent, { type: 'snapshot' }>,
  );
const error = (source: FolderSource) =>
  nextEvent(source, (e) => e.type === 'error', WAIT).then(
    (e) => e as Extract<SourceEvent, { type: 'error' }>,
  );
const netNames = (s: DesiredState) => s.networks.map((n) => n.metadata.name);

test('folder source - add, edit and remove a manifest each yield the right snapshot', async (t) => {
  const { dir, source, events } = await setup(t);
  await writeFile(join(dir, 'cdn.yaml'), network('cdn'));
  await source.start();
  const first = events[0];
  t.true(first?.type === 'snapshot' && first.cause === 'initial');
  t.deepEqual(first?.type === 'snapshot' && netNames(first.state), ['cdn']);

  const added = snapshot(source, (s) => s.networks.length === 2);
  await writeFile(join(dir, 'more.yml'), `${network('telemetry')}---\n${peering('bristol')}`);
  const a = await added;
  t.is(a.cause, 'change');
  t.deepEqual(netNames(a.state), ['cdn', 'telemetry']);
  t.deepEqual(
    a.state.peerings.map((p) => p.spec.remoteCluster),
    ['bristol'],
  );

  const edited = snapshot(source, (s) => s.networks[0]?.spec.mtu === 1400);
  // Editors save by writing a temp file and renaming it over the original.
  await writeFile(join(dir, '.cdn.yaml.swp'), network('cdn', '  mtu: 1400\n'));
  await rename(join(dir, '.cdn.yaml.swp'), join(dir, 'cdn.yaml'));
  t.is((await edited).state.networks[0]?.spec.mtu, 1400);

  const removed = snapshot(source, (s) => s.networks.length === 1);
  await rm(join(dir, 'cdn.yaml'));
  const r = await removed;
  t.deepEqual(netNames(r.state), ['telemetry']);
  t.deepEqual(r.state.pods, []);
  t.false(events.some((e) => e.type === 'error'));
});

test('folder source - an invalid manifest names file, field and reason; the last good state stays', async (t) => {
  const { dir, source } = await setup(t);
  await writeFile(join(dir, 'cdn.yaml'), network('cdn'));
  await source.start();
  const good = source.current();
  t.truthy(good);

  const failed = error(source);
  await writeFile(join(dir, 'cdn.yaml'), network('cdn', '  mtu: 99999\n'));
  const e = await failed;
  t.true(e.error instanceof ManifestError);
  t.is(e.lastGood, good);
  t.is(source.current(), good, 'the broken folder did not replace the state');
  const p = e.problems[0];
  t.like(p, {
    severity: 'error',
    file: join(dir, 'cdn.yaml'),
    document: 1,
    line: 8,
    path: 'spec.mtu',
    object: 'FederatedNetwork/cdn',
  });
  t.regex(p?.reason ?? '', /'auto' or an integer from 1280 to 9000, got 99999/);
  t.regex(
    e.error.message,
    /cdn\.yaml:8 \(document 1, FederatedNetwork\/cdn\): spec\.mtu: .* Fix: /,
  );

  // Fixing it brings a snapshot back, even though it equals the last good one.
  const fixed = snapshot(source);
  await writeFile(join(dir, 'cdn.yaml'), network('cdn'));
  t.is((await fixed).state.version, good!.version);
});

test('folder source - cross-object problems: duplicates, self-peering, pods on unknown networks', async (t) => {
  const { dir, source } = await setup(t);
  await writeFile(join(dir, 'a.yaml'), network('cdn'));
  await writeFile(
    join(dir, 'b.yaml'),
    `${network('cdn')}---\n${peering('madrid')}---
apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations:
    k8s.v1.cni.cncf.io/networks: '[{"name":"nope","ips":["10.10.0.1/24"]}]'
`,
  );
  const failed = error(source);
  await source.start();
  const e = await failed;
  const reasons = e.problems.map((p) => `${p.path}: ${p.reason}`).join('\n');
  t.regex(
    reasons,
    /metadata\.name: duplicate FederatedNetwork name "cdn", also declared in .*a\.yaml \(document 1\)/,
  );
  t.regex(reasons, /spec\.remoteCluster: peering with this cluster itself \(madrid\)/);
  t.regex(reasons, /pod joins network "nope", which no FederatedNetwork in this folder exports/);
  t.is(source.current(), undefined);
});

test('folder source - a missing folder is an error until it appears; resync picks it up', async (t) => {
  const base = await makeRunDir('folder-missing');
  t.teardown(() => base.remove());
  const dir = join(base.path, 'madrid');
  const source = new FolderSource({ dir, debounceMs: 20, resyncMs: 100 });
  t.teardown(() => source.stop());
  const failed = error(source);
  await source.start();
  const { error: err } = await failed;
  t.true(err instanceof ManifestFolderError);
  t.regex(err.message, /: it does not exist; check source\.folder in the agent config$/);
  const appeared = snapshot(source, (s) => s.networks.length === 1);
  await mkdir(dir);
  await writeFile(join(dir, 'cdn.yaml'), network('cdn'));
  t.deepEqual(netNames((await appeared).state), ['cdn']);
});

test('folder source - resync re-emits the same state as a resync; hidden and kustomization files are ignored', async (t) => {
  const { dir, source } = await setup(t, { resyncMs: 50 });
  await writeFile(join(dir, 'cdn.yaml'), network('cdn'));
  await writeFile(join(dir, 'kustomization.yaml'), 'resources: [cdn.yaml]\n');
  await writeFile(join(dir, '.hidden.yaml'), 'not: [valid');
  await writeFile(join(dir, 'notes.txt'), 'ignored');
  await source.start();
  const first = source.current();
  const again = await nextEvent(source, (e) => e.type === 'snapshot' && e.cause === 'resync', WAIT);
  t.is(again.type === 'snapshot' && again.state.version, first!.version);
});
