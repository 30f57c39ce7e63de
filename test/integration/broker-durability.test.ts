import { testWith } from '../fixtures/privileges.js';
import { eventually, registerBody, startAuthedNats, startBrokers } from '../fixtures/broker.js';
import { KvStore } from '../../broker/kv-store.js';
import { BrokerClient } from '../../broker/client.js';
import { BUCKETS, type BucketId } from '../../broker/records.js';

const test = testWith({ tools: ['nats-server'] });

/** Every live key with its value and revision, per bucket. */
async function dump(store: KvStore): Promise<Record<string, Record<string, string>>> {
  const out: Record<string, Record<string, string>> = {};
  for (const id of Object.keys(BUCKETS) as BucketId[]) {
    out[id] = {};
    for (const k of (await store.keys(id, '>')).sort()) {
      const v = await store.get(id, k);
      out[id][k] = `${v?.revision}:${JSON.stringify(v?.value)}`;
    }
  }
  return out;
}

test('durability - kill -9 and restart of nats-server loses or changes no allocation; broker resumes', async (t) => {
  const ids = Array.from({ length: 8 }, (_, i) => `d${i}`);
  const fx = await startAuthedNats(ids);
  t.teardown(() => fx.dispose());
  const brokers = await startBrokers(fx.url, 2, {}, fx.brokerConnect);
  t.teardown(() => brokers.dispose());
  const conn = await fx.connectClients(ids);
  t.teardown(() => conn.close());
  const c = conn.clients;

  await Promise.all(c.map((cl, i) => cl.request('register', registerBody(i))));
  await Promise.all(c.map((cl, i) => cl.request('exports', { networks: [`n${i % 3}`, 'shared'] })));
  // A ring of mutual peerings.
  await Promise.all(
    c.map((cl, i) =>
      cl.request('peerings', {
        peerings: [
          { remoteCluster: ids[(i + 1) % ids.length]! },
          { remoteCluster: ids[(i + ids.length - 1) % ids.length]! },
        ],
      }),
    ),
  );
  let store = await KvStore.open(conn.nc.jetstream(), { replicas: 1, storage: 'file' });
  const before = await dump(store);
  t.is(Object.keys(before.networks!).filter((k) => k.startsWith('net.')).length, 4);
  t.is(Object.keys(before.peerMaps!).length, 8);

  await fx.nats.restart({ crash: true });
  const t0 = Date.now();
  const probe = new BrokerClient(c[0]!.nc, 'd0', { timeoutMs: 1000 });

  // The brokers reconnect by themselves; the first request may meet a recovering JetStream.
  t.true(
    await eventually(
      async () => {
        try {
          // Short timeout: a request sent while the connections re-establish is lost.
          return (await probe.call('get')).ok;
        } catch {
          return false;
        }
      },
      20_000,
      200,
    ),
    'broker answers again after the restart',
  );
  t.log(`broker answered ${Date.now() - t0} ms after nats-server was back`);
  store = await KvStore.open(conn.nc.jetstream(), { replicas: 1, storage: 'file' });
  t.deepEqual(await dump(store), before, 'every key, value and revision survived');

  // And it keeps working: a new network gets a fresh VNI, maps follow.
  const fresh = await c[0]!.request('exports', { networks: ['n0', 'shared', 'brand-new'] });
  const old = new Set(
    Object.values(before.networks!)
      .filter((v) => v.includes('"vni"'))
      .map((v) => (JSON.parse(v.slice(v.indexOf(':') + 1)) as { vni: number }).vni),
  );
  const nv = fresh.networks.find((n) => n.name === 'brand-new')!.vni;
  t.false(old.has(nv), 'new VNI is not one of the old ones');
  await c[1]!.request('exports', { networks: ['n1', 'shared', 'brand-new'] });
  const map = await c[0]!.peerMap();
  t.deepEqual(
    map?.peers.find((p) => p.cluster === 'd1')?.networks.map((n) => n.name),
    ['brand-new', 'shared'],
  );
  t.is(brokers.replicas.filter((b) => b.state === 'running').length, 2);
});
