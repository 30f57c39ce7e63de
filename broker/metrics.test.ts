/**
 * BrokerMetrics over the fakes: the real Federation and request handler on the in-memory
 * store, driven the way broker.ts drives them (metrics.request around handleRequest, the
 * metered store under the Federation, metrics.reconcile around Federation.reconcile).
 * Each test reads the series from the registry before and after.
 */
import test from 'ava';
import type { Registry } from 'prom-client';
import { BrokerMetrics } from './metrics.js';
import { FakeKvStore } from './kv-store-fake.js';
import { Federation } from './federation.js';
import { resolveConfig } from './config.js';
import { handleRequest } from './request-handler.js';
import { StoreUnavailableError } from './errors.js';
import type { ClusterRecord } from './records.js';

const CONFIG = resolveConfig({ transitPool: '100.64.0.0/24' });

/** A valid WireGuard key per cluster index (32 bytes, base64). */
const key = (i: number) => Buffer.alloc(32, i + 1).toString('base64');

/** The value of one series (0 when absent, like a rate of a series not yet seen). */
async function value(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const hit = values.find(
    (v) =>
      Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want) &&
      Object.keys(v.labels).length === Object.keys(labels).length,
  );
  return hit?.value ?? 0;
}

/** The _count of a histogram's series with these labels (0 when absent). */
async function observations(
  registry: Registry,
  name: string,
  labels: Record<string, string>,
): Promise<number> {
  const { values } = await registry.getSingleMetric(name)!.get();
  const hit = values.find(
    (v) =>
      (v as { metricName?: string }).metricName === `${name}_count` &&
      Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want),
  );
  return hit?.value ?? 0;
}

function setup(o: { now?: () => number } = {}) {
  const metrics = new BrokerMetrics(o);
  const raw = new FakeKvStore();
  const fed = new Federation(metrics.meterStore(raw), CONFIG);
  /** One request as broker.ts handles it. */
  const send = (id: string, verb: string, body: unknown) => {
    const subject = `l2fed.v1.${id}.${verb}`;
    const data = new TextEncoder().encode(typeof body === 'string' ? body : JSON.stringify(body));
    return metrics.request(subject, () =>
      handleRequest(fed, subject, data, CONFIG.maxPayloadBytes),
    );
  };
  const register = (id: string, i: number) =>
    send(id, 'register', {
      publicKey: key(i),
      endpoints: [`198.18.0.${i + 1}:51820`],
      capabilities: [],
    });
  return { metrics, raw, fed, send, register, r: metrics.registry };
}

test('broker metrics - a handled request counts by verb and code, and is timed by verb', async (t) => {
  const { r, register, send } = setup();
  const ok = { verb: 'register', code: 'OK' };
  t.is(await value(r, 'l2fed_broker_requests_total', ok), 0);
  t.true((await register('madrid', 1)).ok);
  t.is(await value(r, 'l2fed_broker_requests_total', ok), 1);
  t.is(await observations(r, 'l2fed_broker_request_duration_seconds', { verb: 'register' }), 1);

  // Refused requests count under their code; an unknown verb under "unknown".
  t.false((await send('madrid', 'exports', '{not json')).ok);
  t.is(await value(r, 'l2fed_broker_requests_total', { verb: 'exports', code: 'BAD_JSON' }), 1);
  t.false((await send('madrid', 'frobnicate', {})).ok);
  t.is(
    await value(r, 'l2fed_broker_requests_total', { verb: 'unknown', code: 'UNKNOWN_SUBJECT' }),
    1,
  );
  t.false((await send('athens', 'exports', { networks: ['cdn'] })).ok);
  t.is(
    await value(r, 'l2fed_broker_requests_total', { verb: 'exports', code: 'NOT_REGISTERED' }),
    1,
  );
});

test('broker metrics - no per-request series carries a cluster id, however many clusters ask', async (t) => {
  const { r, register, send } = setup();
  const ids = Array.from({ length: 40 }, (_, i) => `c${i}`);
  for (const [i, id] of ids.entries()) {
    await register(id, i);
    await send(id, 'exports', { networks: ['cdn'] });
    await send(id, 'peerings', { peerings: [{ remoteCluster: ids[(i + 1) % ids.length] }] });
  }
  const json = await r.getMetricsAsJSON();
  const leaked = json.flatMap((m) =>
    m.values.flatMap((v) =>
      Object.values(v.labels).some((l) => ids.includes(String(l))) ? [m.name] : [],
    ),
  );
  t.deepEqual(leaked, []);
  // Every verb × code pair that can exist is few: the series count does not grow with clusters.
  const requests = json.find((m) => m.name === 'l2fed_broker_requests_total')!;
  t.true(requests.values.length <= 9 * 14, `${requests.values.length} request series`);
  t.is(await value(r, 'l2fed_broker_requests_total', { verb: 'peerings', code: 'OK' }), 40);
});

test('broker metrics - KV operations count by bucket, operation and result (conflict, error)', async (t) => {
  const { r, metrics, raw } = setup();
  const store = metrics.meterStore(raw);
  t.is((await store.create('clusters', 'x', { a: 1 })).type, 'ok');
  t.is((await store.cas('clusters', 'x', { a: 2 }, 999)).type, 'conflict');
  t.false(await store.delete('clusters', 'x', 999));
  const kv = (op: string, result: string) =>
    value(r, 'l2fed_broker_kv_operations_total', { bucket: 'clusters', op, result });
  t.is(await kv('create', 'ok'), 1);
  t.is(await kv('cas', 'conflict'), 1);
  t.is(await kv('delete', 'conflict'), 1);
  // A write that fails (no reply from the store) counts as an error.
  raw.failNextWrite('x', false);
  await t.throwsAsync(
    store.cas('clusters', 'x', { a: 4 }, (await raw.read('clusters', 'x')).revision),
    {
      instanceOf: StoreUnavailableError,
    },
  );
  t.is(await kv('cas', 'error'), 1);
});

test('broker metrics - peer-map writes are counted; a full recompute is timed', async (t) => {
  const { r, metrics, fed, register, send } = setup();
  t.is(await value(r, 'l2fed_broker_peer_map_writes_total', { result: 'written' }), 0);
  await register('madrid', 1);
  await register('bristol', 2);
  await send('madrid', 'exports', { networks: ['cdn'] });
  await send('bristol', 'exports', { networks: ['cdn'] });
  await send('madrid', 'peerings', { peerings: [{ remoteCluster: 'bristol' }] });
  await send('bristol', 'peerings', { peerings: [{ remoteCluster: 'madrid' }] });
  t.true((await value(r, 'l2fed_broker_peer_map_writes_total', { result: 'written' })) >= 2);

  const count = (result: string) =>
    observations(r, 'l2fed_broker_peer_map_reconcile_duration_seconds', { result });
  t.is(await count('ok'), 0);
  t.deepEqual(await metrics.reconcile(() => fed.reconcile()), { refreshed: 2 });
  t.is(await count('ok'), 1);
  await t.throwsAsync(
    metrics.reconcile(() => Promise.reject(new Error('kv down'))),
    {
      message: 'kv down',
    },
  );
  t.is(await count('error'), 1);
});

test('broker metrics - federation gauges: clusters, cordoned, networks, mutual and one-sided peerings', async (t) => {
  let now = 1_000_000;
  const { r, metrics, raw, register, send } = setup({ now: () => now });
  metrics.watchFederation(raw);
  t.is(await value(r, 'l2fed_broker_registered_clusters'), 0);
  for (const [i, id] of ['madrid', 'bristol', 'athens', 'oslo'].entries()) await register(id, i);
  await send('madrid', 'exports', { networks: ['cdn', 'tel'] });
  await send('bristol', 'exports', { networks: ['cdn'] });
  await send('athens', 'exports', { networks: ['iot'] });
  await send('madrid', 'peerings', {
    peerings: [{ remoteCluster: 'bristol' }, { remoteCluster: 'athens' }],
  });
  await send('bristol', 'peerings', { peerings: [{ remoteCluster: 'madrid' }] });
  // oslo declares a cluster that never registered: still a one-sided declaration.
  await send('oslo', 'peerings', { peerings: [{ remoteCluster: 'lisbon' }] });
  const athens = (await raw.get<ClusterRecord>('clusters', 'athens'))!;
  await raw.cas(
    'clusters',
    'athens',
    { ...athens.value, cordon: { by: 'cn:alice', reason: 'test', at: new Date().toISOString() } },
    athens.revision,
  );

  // The first scrape read the empty federation; the next one within the interval reuses it.
  t.is(await value(r, 'l2fed_broker_registered_clusters'), 0);
  now += 60_000;
  t.is(await value(r, 'l2fed_broker_registered_clusters'), 4);
  t.is(await value(r, 'l2fed_broker_cordoned_clusters'), 1);
  t.is(await value(r, 'l2fed_broker_networks'), 3);
  t.is(await value(r, 'l2fed_broker_peerings', { consent: 'mutual' }), 1);
  t.is(await value(r, 'l2fed_broker_peerings', { consent: 'one_sided' }), 2);

  const readAt = await value(r, 'l2fed_broker_federation_read_timestamp_seconds');
  t.true(Math.abs(readAt - Date.now() / 1000) < 60, `read at ${readAt}`);

  // A store that fails: the error is counted; the gauges keep their values, the
  // timestamp does not move (the dashboard shows their age).
  raw.keys = () => Promise.reject(new StoreUnavailableError('list', new Error('down')));
  now += 60_000;
  t.is(await value(r, 'l2fed_broker_federation_read_errors_total'), 1);
  t.is(await value(r, 'l2fed_broker_registered_clusters'), 4);
  t.is(await value(r, 'l2fed_broker_federation_read_timestamp_seconds'), readAt);
});

test('broker metrics - refused replies and admin calls are counted', async (t) => {
  const { r, metrics } = setup();
  metrics.replyRefused();
  t.is(await value(r, 'l2fed_broker_replies_refused_total'), 1);
  metrics.adminCall('l2fed.admin.v1.FederationService/ListClusters', 'OK');
  metrics.adminCall('l2fed.admin.v1.FederationService/ListClusters', 'OK');
  metrics.adminCall('l2fed.admin.v1.ActionService/CordonCluster', 'UNAUTHENTICATED');
  t.is(
    await value(r, 'l2fed_broker_admin_calls_total', {
      method: 'l2fed.admin.v1.FederationService/ListClusters',
      code: 'OK',
    }),
    2,
  );
  t.is(
    await value(r, 'l2fed_broker_admin_calls_total', {
      method: 'l2fed.admin.v1.ActionService/CordonCluster',
      code: 'UNAUTHENTICATED',
    }),
    1,
  );
});
