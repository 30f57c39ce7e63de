import { status } from '@grpc/grpc-js';
import { testWith } from '../fixtures/privileges.js';
import { eventually } from '../fixtures/broker.js';
import { seedScenario, startAdminFixture } from '../fixtures/admin.js';
import type { AdminCallError } from '../../broker/admin/calls.js';
import { AUDIT_BUCKET, type AuditEntry } from '../../broker/admin/audit.js';
import { PeeringState } from '../../proto/gen/l2fed/admin/v1/federation.js';

const test = testWith({ tools: ['nats-server'] });
const page = { pageSize: 0, pageToken: '' };

test('admin actions - cordon removes a cluster from peer maps, uncordon restores, both audited', async (t) => {
  const fx = await startAdminFixture(t);
  await seedScenario(fx);
  const { actions, federation: f } = fx.api;

  const noReason = await t.throwsAsync<AdminCallError>(
    actions.cordonCluster({ cluster: 'bristol', reason: ' ' }),
  );
  t.is(noReason?.code, status.INVALID_ARGUMENT);
  t.deepEqual(
    noReason.fieldViolations.map((v) => v.field),
    ['reason'],
  );
  const unknown = await t.throwsAsync<AdminCallError>(
    actions.cordonCluster({ cluster: 'oslo', reason: 'x' }),
  );
  t.is(unknown?.code, status.NOT_FOUND);

  const res = await actions.cordonCluster({ cluster: 'bristol', reason: 'gateway maintenance' });
  t.is(res.audit!.actor, 'insecure');
  t.is(res.audit!.target, 'cluster/bristol');
  t.deepEqual(
    (await fx.clusters.madrid!.peerMap())!.peers.map((p) => p.cluster),
    ['athens'],
  );
  t.deepEqual((await fx.clusters.bristol!.peerMap())!.peers, []);
  const p = (await f.getPeering({ clusterA: 'bristol', clusterB: 'madrid' })).peering!;
  t.is(p.state, PeeringState.PEERING_STATE_CORDONED);
  t.is(p.reason, 'bristol is cordoned by insecure: gateway maintenance');
  t.is(
    (await f.getCluster({ id: 'bristol', readMask: ['cordon'] })).cluster!.cordon!.reason,
    'gateway maintenance',
  );

  // Re-registration (agent resync) keeps the cordon.
  const again = await fx.clusters.bristol!.request('get');
  t.truthy(again.cluster);

  const twice = await t.throwsAsync<AdminCallError>(
    actions.cordonCluster({ cluster: 'bristol', reason: 'again' }),
  );
  t.is(twice?.code, status.ALREADY_EXISTS);
  t.regex(twice.details, /already cordoned by insecure .*uncordon it first/);

  await actions.uncordonCluster({ cluster: 'bristol', reason: 'done' });
  t.deepEqual(
    (await fx.clusters.madrid!.peerMap())!.peers.map((x) => x.cluster),
    ['athens', 'bristol'],
  );
  const notCordoned = await t.throwsAsync<AdminCallError>(
    actions.uncordonCluster({ cluster: 'bristol', reason: 'x' }),
  );
  t.is(notCordoned?.code, status.FAILED_PRECONDITION);

  const audit = await actions.listAuditRecords(page);
  t.deepEqual(
    audit.records.map((r) => r.action),
    ['CordonCluster', 'UncordonCluster'],
  );
  t.is(audit.records[0]!.reason, 'gateway maintenance');
  t.true(audit.records[0]!.time!.getTime() <= Date.now());
  const badPage = await t.throwsAsync<AdminCallError>(
    actions.listAuditRecords({ pageSize: 1, pageToken: '!!' }),
  );
  t.is(badPage?.code, status.INVALID_ARGUMENT);
});

test('admin actions - evict needs a cordon or force, then releases allocations', async (t) => {
  const fx = await startAdminFixture(t);
  await seedScenario(fx);
  const { actions, federation: f } = fx.api;
  const refused = await t.throwsAsync<AdminCallError>(
    actions.evictCluster({ cluster: 'madrid', reason: 'gone', force: false }),
  );
  t.is(refused?.code, status.FAILED_PRECONDITION);
  t.regex(refused.details, /is not cordoned; cordon it first \(l2fed cordon madrid --reason …\)/);
  const iotVni = (await f.getNetwork({ name: 'iot' })).network!.vni;
  await actions.cordonCluster({ cluster: 'madrid', reason: 'decommission' });
  const ev = await actions.evictCluster({
    cluster: 'madrid',
    reason: 'decommission',
    force: false,
  });
  t.deepEqual(ev.releasedNetworks, ['iot']);
  t.regex(ev.audit!.outcome, /deregistered madrid; released transit 100\.64\./);
  const gone = await t.throwsAsync<AdminCallError>(f.getCluster({ id: 'madrid', readMask: [] }));
  t.is(gone?.code, status.NOT_FOUND);
  t.deepEqual(
    (await f.getNetwork({ name: 'cdn' })).network!.members.map((m) => m.cluster),
    ['bristol'],
  );
  t.is((await fx.clusters.bristol!.peerMap())!.peers.length, 0);
  // iot's VNI is quarantined now, so releasing that allocation is allowed.
  const rel = await actions.releaseAllocation({
    vni: iotVni,
    transitAddress: undefined,
    reason: 'reuse now',
  });
  t.regex(
    rel.audit!.outcome,
    new RegExp(`released quarantined claim of VNI ${iotVni} \\(was iot\\)`),
  );
  const forced = await actions.evictCluster({ cluster: 'athens', reason: 'test', force: true });
  t.true(forced.audit!.forced);
  const missing = await t.throwsAsync<AdminCallError>(
    actions.evictCluster({ cluster: 'athens', reason: 'x', force: true }),
  );
  t.is(missing?.code, status.NOT_FOUND);
});

test('admin actions - release network is guarded by membership; release allocation by ownership', async (t) => {
  const fx = await startAdminFixture(t);
  await seedScenario(fx);
  const { actions, federation: f } = fx.api;
  const cdn = (await f.getNetwork({ name: 'cdn' })).network!;
  const held = await t.throwsAsync<AdminCallError>(
    actions.releaseNetwork({ name: 'cdn', reason: 'x', force: false }),
  );
  t.is(held?.code, status.FAILED_PRECONDITION);
  t.regex(
    held.details,
    /still exported by bristol, madrid; remove it from their FederatedNetwork manifests first, or pass force/,
  );
  const bound = await t.throwsAsync<AdminCallError>(
    actions.releaseAllocation({ vni: cdn.vni, transitAddress: undefined, reason: 'x' }),
  );
  t.is(bound?.code, status.FAILED_PRECONDITION);
  t.regex(bound.details, /bound to network "cdn"; release the network instead/);

  const r = await actions.releaseNetwork({ name: 'cdn', reason: 'stale', force: true });
  t.is(r.vni, cdn.vni);
  t.deepEqual(r.removedMembers, ['bristol', 'madrid']);
  const gone = await t.throwsAsync<AdminCallError>(f.getNetwork({ name: 'cdn' }));
  t.is(gone?.code, status.NOT_FOUND);
  t.deepEqual(
    (await fx.clusters.madrid!.peerMap())!.peers.find((p) => p.cluster === 'bristol')!.networks,
    [],
  );
  const again = await t.throwsAsync<AdminCallError>(
    actions.releaseNetwork({ name: 'cdn', reason: 'x', force: true }),
  );
  t.is(again?.code, status.NOT_FOUND);

  const madridTransit = (await f.getCluster({ id: 'madrid', readMask: ['transit_address'] }))
    .cluster!.transitAddress;
  const owned = await t.throwsAsync<AdminCallError>(
    actions.releaseAllocation({ vni: undefined, transitAddress: madridTransit, reason: 'x' }),
  );
  t.is(owned?.code, status.FAILED_PRECONDITION);
  t.regex(owned.details, /belongs to registered cluster "madrid"; evict the cluster instead/);
  const neither = await t.throwsAsync<AdminCallError>(
    actions.releaseAllocation({ vni: undefined, transitAddress: undefined, reason: 'x' }),
  );
  t.is(neither?.code, status.INVALID_ARGUMENT);
  t.deepEqual(
    neither.fieldViolations.map((v) => v.field),
    ['allocation'],
  );
  const free = await t.throwsAsync<AdminCallError>(
    actions.releaseAllocation({ vni: undefined, transitAddress: '100.64.250.250', reason: 'x' }),
  );
  t.is(free?.code, status.NOT_FOUND);
});

test('admin actions - writers list: others may read but get PERMISSION_DENIED on actions', async (t) => {
  const fx = await startAdminFixture(t, { writers: ['cn:alice'] });
  const denied = await t.throwsAsync<AdminCallError>(
    fx.api.actions.cordonCluster({ cluster: 'madrid', reason: 'x' }),
  );
  t.is(denied?.code, status.PERMISSION_DENIED);
  t.regex(
    denied.details,
    /"insecure" may read but not run admin actions; ask an operator to add it to the broker's --admin-writers list/,
  );
  t.is((await fx.api.federation.listClusters({ ...page, readMask: [] })).totalSize, 3);
  t.true(
    await eventually(
      async () => (await fx.api.actions.listAuditRecords(page)).totalSize === 0,
      1000,
    ),
  );
});

test('admin actions - with the generated NATS credentials cordon returns OK and is audited in KV', async (t) => {
  // The fixture's nats-server admits only the users `broker gen-auth` makes.
  const fx = await startAdminFixture(t);
  await seedScenario(fx);
  const res = await fx.api.actions.cordonCluster({ cluster: 'madrid', reason: 'audit check' });
  t.is(res.audit!.action, 'CordonCluster');
  const kv = await fx.nc.jetstream().views.kv(AUDIT_BUCKET, { bindOnly: true, allow_direct: true });
  const keys: string[] = [];
  for await (const k of await kv.keys()) keys.push(k);
  t.is(keys.length, 1, 'one audit record stored');
  const stored = JSON.parse((await kv.get(keys[0]!))!.string()) as AuditEntry;
  t.like(stored, { action: 'CordonCluster', target: 'cluster/madrid', reason: 'audit check' });
  t.deepEqual(fx.fed.brokerViolations(), [], 'the broker needed no NATS right it lacks');
});
