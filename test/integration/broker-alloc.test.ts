import { testWith } from '../fixtures/privileges.js';
import { registerBody, startAuthedNats, startBrokers } from '../fixtures/broker.js';
import { KvStore } from '../../broker/kv-store.js';
import { KEYS, type NetworkRecord, type VniClaim } from '../../broker/records.js';

const test = testWith({ tools: ['nats-server'] });

const NAMES = Array.from({ length: 10 }, (_, i) => `net-${i}`);
const CLUSTERS = Array.from({ length: 50 }, (_, i) => `c${i}`);

test('allocation - 50 concurrent exports of 10 names through 3 replicas give 10 distinct VNIs', async (t) => {
  const fx = await startAuthedNats(CLUSTERS);
  t.teardown(() => fx.dispose());
  const brokers = await startBrokers(fx.url, 3, {}, fx.brokerConnect);
  t.teardown(() => brokers.dispose());
  const conn = await fx.connectClients(CLUSTERS);
  t.teardown(() => conn.close());

  await Promise.all(conn.clients.map((c, i) => c.request('register', registerBody(i))));
  // Every cluster exports one name (5 clusters per name), all at once.
  const replies = await Promise.all(
    conn.clients.map((c, i) => c.request('exports', { networks: [NAMES[i % NAMES.length]!] })),
  );
  const byName = new Map<string, Set<number>>();
  for (const r of replies) {
    for (const n of r.networks) byName.set(n.name, (byName.get(n.name) ?? new Set()).add(n.vni));
  }
  t.is(byName.size, 10);
  for (const [name, vnis] of byName) t.is(vnis.size, 1, `all exporters of ${name} got one VNI`);
  const vnis = [...byName.values()].map((s) => [...s][0]!);
  t.is(new Set(vnis).size, 10, 'names never share a VNI');

  // KV agrees with the replies, and spare claims from lost races were cleaned up.
  const store = await KvStore.open(conn.nc.jetstream(), { replicas: 1, storage: 'file' });
  for (const [name, set] of byName) {
    const net = await store.get<NetworkRecord>('networks', KEYS.network(name));
    t.is(net?.value.vni, [...set][0]);
  }
  // Every cluster's own view (its peer map) names the same VNI.
  const maps = await Promise.all(conn.clients.map((c) => c.peerMap()));
  maps.forEach((m, i) => {
    const name = NAMES[i % NAMES.length]!;
    t.is(m?.networks.find((n) => n.name === name)?.vni, [...byName.get(name)!][0]);
  });
  const claims = await store.keys('networks', 'vni.*');
  t.is(claims.length, 10, 'no leaked VNI claims');
  // Work was spread over the replicas.
  t.true(brokers.replicas.filter((b) => b.stats.handled > 0).length >= 2);
});

test('allocation - VNI released when the last exporter leaves, reused only after quarantine', async (t) => {
  const fx = await startAuthedNats(['a', 'b']);
  t.teardown(() => fx.dispose());
  const quarantineMs = 1500;
  const brokers = await startBrokers(
    fx.url,
    2,
    { vniRange: { first: 100, last: 101 }, vniQuarantineMs: quarantineMs },
    fx.brokerConnect,
  );
  t.teardown(() => brokers.dispose());
  const conn = await fx.connectClients(['a', 'b']);
  t.teardown(() => conn.close());
  const [a, b] = conn.clients as [(typeof conn.clients)[0], (typeof conn.clients)[0]];
  await a.request('register', registerBody(1));
  await b.request('register', registerBody(2));

  const first = (await a.request('exports', { networks: ['red'] })).networks[0]!.vni;
  t.is((await b.request('exports', { networks: ['red'] })).networks[0]!.vni, first);
  await a.request('exports', { networks: [] });
  // b still exports red: same VNI.
  t.is((await b.request('exports', { networks: ['red'] })).networks[0]!.vni, first);
  await b.request('exports', { networks: [] });

  const store = await KvStore.open(conn.nc.jetstream(), { replicas: 1, storage: 'file' });
  t.is(await store.get('networks', KEYS.network('red')), undefined, 'name unbound');
  const claim = await store.get<VniClaim>('networks', KEYS.vni(first));
  t.is(claim?.value.state, 'quarantined');

  // Range of two: the other VNI is still free, the released one is quarantined.
  const green = (await a.request('exports', { networks: ['green'] })).networks[0]!.vni;
  t.not(green, first);
  const full = await b.call('exports', { networks: ['blue'] });
  t.false(full.ok);
  if (!full.ok) t.is(full.error.code, 'POOL_EXHAUSTED');
  await new Promise((r) => setTimeout(r, quarantineMs + 100));
  const blue = (await b.request('exports', { networks: ['blue'] })).networks[0]!.vni;
  t.is(blue, first, 'released VNI reused after the quarantine');
});

test('allocation - transit addresses are unique and released on deregistration', async (t) => {
  const ids = ['t1', 't2', 't3', 't4', 't5', 't6', 't7'];
  const fx = await startAuthedNats(ids);
  t.teardown(() => fx.dispose());
  const brokers = await startBrokers(fx.url, 2, { transitPool: '100.64.0.0/29' }, fx.brokerConnect);
  t.teardown(() => brokers.dispose());
  const conn = await fx.connectClients(ids);
  t.teardown(() => conn.close());

  const regs = await Promise.all(
    conn.clients.slice(0, 6).map((c, i) => c.call('register', registerBody(i))),
  );
  const addrs = regs.map((r) => (r.ok ? r.result.cluster.transitAddress : r.error.code));
  t.is(new Set(addrs).size, 6, `six distinct addresses: ${addrs.join(' ')}`);
  for (const a of addrs) t.regex(a, /^100\.64\.0\.[1-6]$/);
  const seventh = await conn.clients[6]!.call('register', registerBody(7));
  t.false(seventh.ok, 'a /29 has six usable addresses');

  const freed = addrs[2]!;
  t.deepEqual(await conn.clients[2]!.request('deregister'), { deregistered: true });
  const again = await conn.clients[6]!.request('register', registerBody(7));
  t.is(again.cluster.transitAddress, freed);

  // Re-registering with the same key is idempotent and keeps the address.
  const body = registerBody(9);
  const r1 = await conn.clients[0]!.call('deregister');
  t.true(r1.ok);
  const x1 = await conn.clients[0]!.request('register', body);
  const x2 = await conn.clients[0]!.request('register', body);
  t.true(x1.created);
  t.false(x2.created);
  t.is(x1.cluster.transitAddress, x2.cluster.transitAddress);
});
