/**
 * The Kubernetes source and status writer, with the real @kubernetes/client-node against an
 * in-process API server that speaks list/watch (test/fixtures/kube-apiserver.ts). The CRD
 * schemas guard the fixture's writes, as the real API server would.
 */
import test, { type ExecutionContext } from 'ava';
import { CEL_MIRRORS, crdSchema } from '../fixtures/crds.js';
import { KubeApiFixture } from '../fixtures/kube-apiserver.js';
import { checkOpenApi } from '../fixtures/openapi-check.js';
import type { DesiredState } from '../../cluster-agent/desired-state.js';
import { KubeWatchError, ManifestError } from '../../cluster-agent/errors.js';
import { nextEvent, type SourceEvent } from '../../cluster-agent/source.js';
import { KubernetesSource } from '../../cluster-agent/source-kubernetes.js';
import { KubeStatusWriter } from '../../cluster-agent/status-writer.js';

const WAIT = 5_000;

const SCHEMAS = {
  federatednetworks: crdSchema('FederatedNetwork'),
  clusterpeerings: crdSchema('ClusterPeering'),
};

const network = (
  name: string,
  spec: Record<string, unknown> = { segment: { ovsBridge: `br-${name}` }, mtu: 'auto' },
) => ({
  kind: 'FederatedNetwork',
  metadata: { name },
  spec,
});
const peering = (name: string, networks?: string[]) => ({
  kind: 'ClusterPeering',
  metadata: { name },
  spec: networks ? { remoteCluster: name, networks } : { remoteCluster: name },
});

async function setup(t: ExecutionContext, opts: { expiryMode?: 'event' | 'http' } = {}) {
  const fx = await KubeApiFixture.start({
    ...opts,
    validate: (plural, obj) => checkOpenApi(SCHEMAS[plural], obj, CEL_MIRRORS),
  });
  t.teardown(() => fx.dispose());
  const events: SourceEvent[] = [];
  const source = new KubernetesSource({
    kubeConfig: fx.kubeConfig(),
    debounceMs: 20,
    resyncMs: 0,
    backoff: { initialMs: 20, maxMs: 200 },
  });
  source.subscribe((e) => events.push(e));
  t.teardown(() => source.stop());
  return { fx, source, events };
}

const names = (s: DesiredState) => ({
  networks: s.networks.map((n) => n.metadata.name),
  peerings: s.peerings.map((p) => p.metadata.name),
});

/** Waits for a snapshot whose state satisfies `ok` (bounded). */
function snapshotWhere(source: KubernetesSource, ok: (s: DesiredState) => boolean) {
  if (source.current() && ok(source.current()!)) return Promise.resolve(source.current()!);
  return nextEvent(source, (e) => e.type === 'snapshot' && ok(e.state), WAIT).then(
    (e) => (e as Extract<SourceEvent, { type: 'snapshot' }>).state,
  );
}

test('kube source - initial list, then create, update and delete each yield the right snapshot', async (t) => {
  const { fx, source, events } = await setup(t);
  fx.apply(network('cdn'));
  fx.apply(peering('bristol', ['cdn']));
  await source.start();
  const first = await snapshotWhere(source, () => true);
  t.deepEqual(names(first), { networks: ['cdn'], peerings: ['bristol'] });
  t.is(events[0]?.type === 'snapshot' && events[0].cause, 'initial');
  t.is(first.pods, undefined);
  await fx.waitFor(() => fx.openWatches() === 2, WAIT, 'two watches');
  t.true(fx.requests.filter((r) => r.watch).every((r) => r.query.allowWatchBookmarks === 'true'));

  fx.apply(network('telemetry', { segment: { linuxBridge: 'br-tel' }, mtu: 1400 }));
  const created = await snapshotWhere(source, (s) => s.networks.length === 2);
  t.deepEqual(names(created).networks, ['cdn', 'telemetry']);
  t.is(created.networks[1]?.spec.mtu, 1400);

  fx.apply(network('cdn', { segment: { ovsBridge: 'br-cdn', vlan: 30 }, mtu: 1450 }));
  const updated = await snapshotWhere(source, (s) => s.networks[0]?.spec.mtu === 1450);
  t.is(updated.networks[0]?.spec.segment.vlan, 30);
  t.not(updated.version, created.version);

  fx.remove('FederatedNetwork', 'cdn');
  fx.remove('ClusterPeering', 'bristol');
  const deleted = await snapshotWhere(
    source,
    (s) => s.networks.length === 1 && s.peerings.length === 0,
  );
  t.deepEqual(names(deleted), { networks: ['telemetry'], peerings: [] });
  // Only lists at start: every change came through the watch.
  t.is(
    fx.count((r) => r.method === 'GET' && !r.watch && r.name === undefined),
    2,
  );
});

for (const mode of ['event', 'http'] as const) {
  test(`kube source - watch expiry (410 as ${mode === 'event' ? 'ERROR event' : 'HTTP status'}) re-lists; nothing lost or duplicated`, async (t) => {
    const { fx, source, events } = await setup(t, { expiryMode: mode });
    fx.apply(network('cdn'));
    fx.apply(network('old'));
    fx.apply(peering('bristol'));
    await source.start();
    await snapshotWhere(source, (s) => s.networks.length === 2);
    await fx.waitFor(() => fx.openWatches() === 2, WAIT, 'two watches');
    const lists = () =>
      fx.count((r) => r.method === 'GET' && !r.watch && r.name === undefined && r.status === 200);
    const listsBefore = lists();

    // Changes the client never sees on its stream, then history is compacted away.
    fx.holdEvents(true);
    fx.apply(network('new'));
    fx.remove('FederatedNetwork', 'old');
    fx.apply(network('cdn', { segment: { ovsBridge: 'br-cdn' }, mtu: 1500 }));
    fx.compact();
    fx.holdEvents(false);
    const snapshotsBefore = events.filter((e) => e.type === 'snapshot').length;
    if (mode === 'event') fx.expireWatches();
    else fx.closeWatches(); // the client re-watches from its old resourceVersion and gets HTTP 410

    const after = await snapshotWhere(source, (s) =>
      s.networks.some((n) => n.metadata.name === 'new'),
    );
    t.deepEqual(names(after), { networks: ['cdn', 'new'], peerings: ['bristol'] });
    t.is(after.networks[0]?.spec.mtu, 1500);
    await fx.waitFor(() => fx.openWatches() === 2, WAIT, 'watches re-established');
    t.true(lists() > listsBefore, 're-listed');
    if (mode === 'http') t.true(fx.count((r) => r.watch && r.status === 410) >= 1);
    // One snapshot for the whole re-list (debounced), and no two consecutive snapshots alike.
    const snaps = events
      .filter((e) => e.type === 'snapshot')
      .map((e) => (e.type === 'snapshot' ? e.state.version : ''));
    t.is(snaps.length, snapshotsBefore + 1);
    t.true(snaps.every((v, i) => i === 0 || v !== snaps[i - 1]));
    t.false(
      events.some((e) => e.type === 'error'),
      'a 410 is routine, not an error',
    );
  });
}

test('kube source - a bookmark keeps the resourceVersion fresh: reconnect after compaction needs no re-list', async (t) => {
  const { fx, source } = await setup(t, { expiryMode: 'http' });
  fx.apply(network('cdn'));
  await source.start();
  await snapshotWhere(source, () => true);
  await fx.waitFor(() => fx.openWatches() === 2, WAIT, 'two watches');
  // Peering writes advance the global resourceVersion; the network watch sees none of them.
  fx.apply(peering('bristol'));
  fx.apply(peering('athens'));
  await snapshotWhere(source, (s) => s.peerings.length === 2);
  const rv = String(fx.resourceVersion);
  fx.bookmark();
  fx.compact();
  const watchesBefore = fx.count((r) => r.watch && r.plural === 'federatednetworks');
  const listsBefore = fx.count((r) => !r.watch && r.name === undefined);
  fx.closeWatches();
  await fx.waitFor(
    () =>
      fx.count((r) => r.watch && r.plural === 'federatednetworks') > watchesBefore &&
      fx.openWatches() === 2,
    WAIT,
    'network watch resumed',
  );
  const resumed = fx.requests.filter((r) => r.watch && r.plural === 'federatednetworks').at(-1);
  t.is(resumed?.query.resourceVersion, rv);
  t.is(resumed?.status, 200);
  t.is(
    fx.count((r) => !r.watch && r.name === undefined),
    listsBefore,
    'no re-list',
  );
});

test('kube source - API errors are reported with the status, retried with backoff, last good state kept', async (t) => {
  const { fx, source } = await setup(t);
  fx.apply(network('cdn'));
  fx.failNext((r) => r.plural === 'federatednetworks' && !r.watch, 403);
  const error = nextEvent(source, (e) => e.type === 'error', WAIT);
  await source.start();
  const e = await error;
  t.true(e.type === 'error' && e.error instanceof KubeWatchError);
  t.regex(e.type === 'error' ? e.error.message : '', /HTTP 403.*rbac/);
  t.is(source.current(), undefined, 'no snapshot before both kinds are listed');
  const state = await snapshotWhere(source, (s) => s.networks.length === 1);
  t.deepEqual(names(state).networks, ['cdn']);
});

test('kube source - an object the CRD would reject is reported and its last valid version kept', async (t) => {
  const { fx, source } = await setup(t);
  fx.apply(network('cdn'));
  await source.start();
  await snapshotWhere(source, () => true);
  const problem = nextEvent(source, (e) => e.type === 'error', WAIT);
  // An outdated CRD could let this through; the agent must not act on it.
  fx.applyUnchecked(
    network('cdn', { segment: { ovsBridge: 'br-cdn', linuxBridge: 'br-x' }, mtu: 'auto' }),
  );
  const e = await problem;
  t.true(e.type === 'error' && e.error instanceof ManifestError);
  const p = e.type === 'error' ? e.problems[0] : undefined;
  t.like(p, { file: 'kubernetes', object: 'FederatedNetwork/cdn', path: 'spec.segment' });
  t.deepEqual(source.current()?.networks[0]?.spec.segment, { ovsBridge: 'br-cdn' });
});

test('kube status writer - merge-patches the status subresource with conditions; idempotent', async (t) => {
  const { fx } = await setup(t);
  fx.apply(network('cdn'));
  fx.apply(peering('athens', ['cdn']));
  let now = new Date('2026-01-31T12:00:00Z');
  const writer = new KubeStatusWriter(fx.kubeConfig(), () => now);
  const ready = {
    type: 'Ready',
    status: 'True',
    reason: 'Programmed',
    message: 'gateway carries cdn to 1 peer',
  } as const;

  t.like(
    await writer.writeNetworkStatus('cdn', {
      vni: 4097,
      effectiveMTU: 1370,
      members: ['madrid', 'bristol'],
      conditions: [ready],
    }),
    { type: 'written' },
  );
  const patch = fx.requests.find((r) => r.method === 'PATCH');
  t.is(patch?.subresource, 'status');
  t.is(patch?.contentType, 'application/merge-patch+json');
  t.truthy(
    (patch?.body as { metadata?: { resourceVersion?: string } }).metadata?.resourceVersion,
    'optimistic concurrency',
  );
  let cdn = fx.get('FederatedNetwork', 'cdn')!;
  t.like(cdn.status, {
    vni: 4097,
    effectiveMTU: 1370,
    members: ['madrid', 'bristol'],
    observedGeneration: 1,
  });
  t.deepEqual(cdn.status?.conditions, [
    { ...ready, lastTransitionTime: '2026-01-31T12:00:00Z', observedGeneration: 1 },
  ]);
  t.is(cdn.metadata.generation, 1, 'a status write does not bump generation');

  // Same status again: nothing is sent.
  const patches = () => fx.count((r) => r.method === 'PATCH');
  now = new Date('2026-01-31T12:05:00Z');
  t.deepEqual(
    await writer.writeNetworkStatus('cdn', {
      vni: 4097,
      effectiveMTU: 1370,
      members: ['madrid', 'bristol'],
      conditions: [ready],
    }),
    { type: 'unchanged' },
  );
  t.is(patches(), 1);

  // A message change keeps lastTransitionTime; a status flip moves it; dropped fields go.
  await writer.writeNetworkStatus('cdn', {
    vni: 4097,
    conditions: [{ ...ready, message: 'gateway carries cdn to 2 peers' }],
  });
  cdn = fx.get('FederatedNetwork', 'cdn')!;
  t.is(
    (cdn.status?.conditions as { lastTransitionTime: string }[])[0]?.lastTransitionTime,
    '2026-01-31T12:00:00Z',
  );
  t.false('effectiveMTU' in (cdn.status ?? {}), 'null in the merge patch removed it');
  now = new Date('2026-01-31T12:10:00Z');
  await writer.writeNetworkStatus('cdn', {
    vni: 4097,
    conditions: [
      {
        type: 'Ready',
        status: 'False',
        reason: 'GatewayUnreachable',
        message: 'gateway did not answer Apply; check the gateway pod',
      },
    ],
  });
  cdn = fx.get('FederatedNetwork', 'cdn')!;
  t.like((cdn.status?.conditions as object[])[0], {
    status: 'False',
    lastTransitionTime: '2026-01-31T12:10:00Z',
  });

  // Peering status, with a conflicting concurrent write on the first try.
  fx.failNext((r) => r.method === 'PATCH' && r.name === 'athens', 409);
  const res = await writer.writePeeringStatus('athens', {
    active: false,
    reason: 'RemoteNotDeclared',
    activeNetworks: [],
    conditions: [
      {
        type: 'Mutual',
        status: 'False',
        reason: 'RemoteNotDeclared',
        message: 'athens has no ClusterPeering for this cluster; ask its operators to add one',
      },
    ],
  });
  t.is(res.type, 'written');
  t.like(fx.get('ClusterPeering', 'athens')?.status, {
    active: false,
    reason: 'RemoteNotDeclared',
  });
  t.deepEqual(await writer.writePeeringStatus('gone', { conditions: [] }), { type: 'gone' });
});

test('kube source - status writes do not produce new snapshots (version covers spec only)', async (t) => {
  const { fx, source } = await setup(t);
  fx.apply(network('cdn'));
  await source.start();
  const before = await snapshotWhere(source, () => true);
  const writer = new KubeStatusWriter(fx.kubeConfig());
  await writer.writeNetworkStatus('cdn', { vni: 7, conditions: [] });
  // Then a spec change: the next snapshot must be that one, not one caused by the status.
  fx.apply(network('edge'));
  const next = await nextEvent(source, (e) => e.type === 'snapshot', WAIT);
  t.true(next.type === 'snapshot' && next.state.networks.length === 2);
  t.is(next.type === 'snapshot' && next.state.networks[0]?.status?.vni, 7);
  t.not(before.version, next.type === 'snapshot' ? next.state.version : '');
});

test('kube source - a status this agent does not understand is dropped, not held against the spec', async (t) => {
  const { fx, source } = await setup(t);
  fx.apply(network('cdn'));
  await source.start();
  await snapshotWhere(source, () => true);
  fx.setStatusUnchecked('FederatedNetwork', 'cdn', { vni: 9, fromNewerAgent: true });
  fx.apply(network('edge'));
  const state = await snapshotWhere(source, (s) => s.networks.length === 2);
  t.deepEqual(names(state).networks, ['cdn', 'edge']);
  t.is(state.networks[0]?.status, undefined);
});

test('kube source - stop closes both watches and emits nothing more', async (t) => {
  const { fx, source, events } = await setup(t);
  fx.apply(network('cdn'));
  await source.start();
  await fx.waitFor(() => fx.openWatches() === 2, WAIT, 'two watches');
  await source.stop();
  await fx.waitFor(() => fx.openWatches() === 0, WAIT, 'watches closed');
  const seen = events.length;
  fx.apply(network('late'));
  await source.stop(); // idempotent
  t.is(events.length, seen);
  t.false(
    events.some((e) => e.type === 'error'),
    'stopping is not an error',
  );
});

test('kube source - stop during a slow initial list leaves no watch behind', async (t) => {
  const { fx, source } = await setup(t);
  fx.apply(network('cdn'));
  const gate = fx.gate((r) => r.plural === 'federatednetworks' && !r.watch);
  const started = source.start();
  await gate.arrived;
  const stopping = source.stop();
  gate.release();
  await Promise.all([started, stopping]);
  await fx.waitFor(() => fx.openWatches() === 0, WAIT, 'no open watch');
  t.is(fx.openWatches(), 0);
});
