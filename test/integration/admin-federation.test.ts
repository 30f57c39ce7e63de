import { credentials, status } from '@grpc/grpc-js';
import { HealthClient } from '../../lib/health-client.js';
import { testWith } from '../fixtures/privileges.js';
import { seedScenario, startAdminFixture } from '../fixtures/admin.js';
import { eventually } from '../fixtures/broker.js';
import type { AdminCallError } from '../../broker/admin/calls.js';
import { listServices } from '../fixtures/grpc-reflection.js';
import { PeeringState, TunnelState } from '../../proto/gen/l2fed/admin/v1/federation.js';

const test = testWith({ tools: ['nats-server'] });
const page = { pageSize: 0, pageToken: '' };

test('admin federation - clusters: list, read mask, pagination, get, and their failures', async (t) => {
  const fx = await startAdminFixture(t);
  await seedScenario(fx);
  const f = fx.api.federation;

  const all = await f.listClusters({ ...page, readMask: [] });
  t.deepEqual(
    all.clusters.map((c) => c.id),
    ['athens', 'bristol', 'madrid'],
  );
  t.is(all.totalSize, 3);
  const madrid = all.clusters[2]!;
  t.deepEqual(
    madrid.exports.map((n) => n.name),
    ['cdn', 'iot'],
  );
  t.deepEqual(madrid.declaredPeers, ['athens', 'bristol']);
  t.deepEqual(madrid.activePeers, ['athens', 'bristol']);
  t.regex(madrid.transitAddress, /^100\.64\./);

  const masked = await f.listClusters({ ...page, readMask: ['endpoints'] });
  t.is(masked.clusters[0]!.publicKey, '', 'masked out');
  t.true(masked.clusters[0]!.endpoints.length > 0);

  const p1 = await f.listClusters({ pageSize: 2, pageToken: '', readMask: ['id'] });
  t.deepEqual(
    p1.clusters.map((c) => c.id),
    ['athens', 'bristol'],
  );
  t.truthy(p1.nextPageToken);
  const p2 = await f.listClusters({ pageSize: 2, pageToken: p1.nextPageToken, readMask: ['id'] });
  t.deepEqual(
    p2.clusters.map((c) => c.id),
    ['madrid'],
  );
  t.is(p2.nextPageToken, '');

  const badMask = await t.throwsAsync<AdminCallError>(
    f.listClusters({ ...page, readMask: ['colour'] }),
  );
  t.is(badMask?.code, status.INVALID_ARGUMENT);
  t.regex(badMask.details, /unknown Cluster field "colour"; use one of/);
  t.deepEqual(
    badMask.fieldViolations.map((v) => v.field),
    ['read_mask.paths[0]'],
  );
  const badToken = await t.throwsAsync<AdminCallError>(
    f.listNetworks({ pageSize: 1, pageToken: p1.nextPageToken, cluster: '' }),
  );
  t.is(badToken?.code, status.INVALID_ARGUMENT);
  t.regex(badToken.details, /page_token: .*repeat the call without page_token/);
  const badSize = await t.throwsAsync<AdminCallError>(
    f.listClusters({ pageSize: -1, pageToken: '', readMask: [] }),
  );
  t.is(badSize?.code, status.INVALID_ARGUMENT);
  t.deepEqual(
    badSize.fieldViolations.map((v) => v.field),
    ['page_size'],
  );

  const got = await f.getCluster({ id: 'bristol', readMask: [] });
  t.is(got.cluster!.id, 'bristol');
  t.false(got.cluster!.health!.reported);
  const missing = await t.throwsAsync<AdminCallError>(f.getCluster({ id: 'oslo', readMask: [] }));
  t.is(missing?.code, status.NOT_FOUND);
  t.regex(
    missing.details,
    /cluster "oslo" is not registered; list registered clusters with "l2fed get clusters"/,
  );
  const badName = await t.throwsAsync<AdminCallError>(f.getCluster({ id: 'Oslo!', readMask: [] }));
  t.is(badName?.code, status.INVALID_ARGUMENT);
  t.deepEqual(
    badName.fieldViolations.map((v) => v.field),
    ['id'],
  );
});

test('admin federation - networks: list with members and filter, get, not found', async (t) => {
  const fx = await startAdminFixture(t);
  await seedScenario(fx);
  const f = fx.api.federation;
  const nets = await f.listNetworks({ ...page, cluster: '' });
  t.deepEqual(
    nets.networks.map((n) => n.name),
    ['cdn', 'iot', 'web'],
  );
  const cdn = nets.networks[0]!;
  t.deepEqual(
    cdn.members.map((m) => m.cluster),
    ['bristol', 'madrid'],
  );
  t.true(cdn.vni >= 4096);
  const ofBristol = await f.listNetworks({ ...page, cluster: 'bristol' });
  t.deepEqual(
    ofBristol.networks.map((n) => n.name),
    ['cdn'],
  );
  t.is((await f.getNetwork({ name: 'iot' })).network!.vni, nets.networks[1]!.vni);
  const missing = await t.throwsAsync<AdminCallError>(f.getNetwork({ name: 'video' }));
  t.is(missing?.code, status.NOT_FOUND);
  t.regex(missing.details, /network "video" has no VNI: no cluster exports it/);
  const bad = await t.throwsAsync<AdminCallError>(f.listNetworks({ ...page, cluster: 'NOPE' }));
  t.is(bad?.code, status.INVALID_ARGUMENT);
});

test('admin federation - peerings: states and reasons, get in either order, not found', async (t) => {
  const fx = await startAdminFixture(t);
  await seedScenario(fx);
  const f = fx.api.federation;
  const list = await f.listPeerings({ ...page, cluster: '' });
  const byName = Object.fromEntries(list.peerings.map((p) => [p.name, p]));
  t.deepEqual(Object.keys(byName), ['athens:bristol', 'athens:madrid', 'bristol:madrid']);
  t.is(byName['athens:bristol']!.state, PeeringState.PEERING_STATE_WAITING_FOR_CONSENT);
  t.is(byName['athens:bristol']!.reason, 'waiting for bristol to declare athens');
  t.false(byName['athens:bristol']!.active);
  t.true(byName['athens:bristol']!.declaredByA!.declared);
  t.false(byName['athens:bristol']!.declaredByB!.declared);
  t.is(byName['athens:madrid']!.state, PeeringState.PEERING_STATE_NO_COMMON_NETWORK);
  t.regex(
    byName['athens:madrid']!.reason,
    /^no common exported network: athens offers web, madrid offers cdn, iot$/,
  );
  t.true(byName['athens:madrid']!.active, 'consent is mutual: the tunnel is wanted');
  const bm = byName['bristol:madrid']!;
  t.is(bm.state, PeeringState.PEERING_STATE_ACTIVE);
  t.deepEqual(
    bm.networks.map((n) => n.name),
    ['cdn'],
  );
  t.true(bm.active);

  const filtered = await f.listPeerings({ ...page, cluster: 'bristol' });
  t.deepEqual(
    filtered.peerings.map((p) => p.name),
    ['athens:bristol', 'bristol:madrid'],
  );
  const got = await f.getPeering({ clusterA: 'madrid', clusterB: 'bristol' });
  t.is(got.peering!.name, 'bristol:madrid');
  const none = await t.throwsAsync<AdminCallError>(
    f.getPeering({ clusterA: 'bristol', clusterB: 'oslo' }),
  );
  t.is(none?.code, status.NOT_FOUND);
  t.regex(none.details, /declare a ClusterPeering on both sides/);
  const same = await t.throwsAsync<AdminCallError>(
    f.getPeering({ clusterA: 'madrid', clusterB: 'madrid' }),
  );
  t.is(same?.code, status.INVALID_ARGUMENT);
  t.deepEqual(same.fieldViolations, [
    { field: 'cluster_b', description: 'must differ from cluster_a' },
  ]);
});

test('admin federation - tunnel health from l2fed_health, stale reports, missing reports', async (t) => {
  const fx = await startAdminFixture(t, { staleAfterMs: 30_000 });
  const f = fx.api.federation;
  // No report anywhere yet: tolerated.
  await seedScenario(fx);
  const empty = await f.listTunnelHealth({ ...page, cluster: '' });
  t.is(empty.staleAfterSeconds, 30);
  t.deepEqual(
    empty.tunnels.map((x) => `${x.clusterA}:${x.clusterB}`),
    ['athens:madrid', 'bristol:madrid'],
  );
  t.is(empty.tunnels[1]!.state, TunnelState.TUNNEL_STATE_UNKNOWN);
  t.regex(empty.tunnels[1]!.reason, /bristol has sent no health report/);

  const now = new Date().toISOString();
  await fx.writeHealth('madrid', {
    reportedAt: now,
    peers: [
      { cluster: 'bristol', state: 'up', rttMs: 1.5, lossPct: 0, lastHandshakeAgeSec: 12 },
      { cluster: 'athens', state: 'up', rttMs: 3 },
    ],
    networks: [{ name: 'cdn', vni: 4100, state: 'up' }],
  });
  await fx.writeHealth('bristol', {
    reportedAt: now,
    peers: [{ cluster: 'madrid', state: 'degraded', lossPct: 7, reason: 'probe loss 7%' }],
    networks: [],
  });
  await fx.writeHealth('athens', {
    reportedAt: new Date(Date.now() - 120_000).toISOString(),
    peers: [{ cluster: 'madrid', state: 'up' }],
    networks: [],
  });
  const bm = (await f.getTunnelHealth({ clusterA: 'madrid', clusterB: 'bristol' })).tunnel!;
  t.is(bm.state, TunnelState.TUNNEL_STATE_DEGRADED);
  t.true(bm.expected);
  t.is(bm.viewB!.cluster, 'madrid');
  t.is(bm.viewB!.rttMs, 1.5);
  t.is(bm.viewA!.lossPct, 7);
  t.regex(bm.reason, /bristol sees the tunnel to madrid degraded: probe loss 7%/);
  const am = (await f.getTunnelHealth({ clusterA: 'athens', clusterB: 'madrid' })).tunnel!;
  t.true(am.viewA!.stale);
  t.is(am.state, TunnelState.TUNNEL_STATE_UNKNOWN);
  t.regex(am.reason, /athens's health report is stale \(12\d s old, limit 30 s\)/);
  const c = (await f.getCluster({ id: 'athens', readMask: ['health'] })).cluster!;
  t.true(c.health!.stale);
  const madridOnly = await f.listTunnelHealth({ ...page, cluster: 'madrid' });
  t.is(madridOnly.totalSize, 2);
  const nobody = await t.throwsAsync<AdminCallError>(
    f.getTunnelHealth({ clusterA: 'oslo', clusterB: 'rome' }),
  );
  t.is(nobody?.code, status.NOT_FOUND);
  const bad = await t.throwsAsync<AdminCallError>(
    f.listTunnelHealth({ pageSize: -5, pageToken: '', cluster: '' }),
  );
  t.is(bad?.code, status.INVALID_ARGUMENT);
});

test('admin federation - reflection lists every service; health serves; NATS down gives UNAVAILABLE', async (t) => {
  const fx = await startAdminFixture(t);
  t.deepEqual(await listServices(fx.address), [
    'grpc.health.v1.Health',
    'l2fed.admin.v1.ActionService',
    'l2fed.admin.v1.EventService',
    'l2fed.admin.v1.FederationService',
    'l2fed.admin.v1.InfoService',
  ]);
  t.is((await fx.api.info.getVersion({})).component, 'broker');
  const health = new HealthClient(fx.address, credentials.createInsecure());
  t.teardown(() => health.close());
  t.is(await health.check('l2fed.admin.v1.FederationService'), 'SERVING');
  await fx.nats.server.stop();
  const down = await t.throwsAsync<AdminCallError>(
    fx.api.federation.listClusters({ ...page, readMask: [] }),
  );
  t.is(down?.code, status.UNAVAILABLE);
  t.regex(down.details, /cannot reach NATS JetStream; check that nats-server is up and retry/);
  // NATS back: the API answers again (and the broker can drain on teardown).
  await fx.nats.server.restart();
  const back = await eventually(
    async () =>
      (await fx.api.federation.listClusters({ ...page, readMask: [] }).catch(() => undefined))
        ?.totalSize === 3,
    15_000,
    200,
  );
  t.true(back);
});
