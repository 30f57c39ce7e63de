/**
 * Issue 15 (broker scale): a change costs what it touches, never the federation's size.
 * A one-cluster change writes only the peer maps whose content it can change, reads each
 * input once, and the MTU agreement is kept without reading every member. Fake KV wrapped
 * to count calls; the racing tests check that two replicas on the fake still leave every
 * map equal both to computePeerMap over the stored inputs (incremental = from scratch) and
 * to the documented rules applied to what the test sent (test/fixtures/peer-map-oracle.ts).
 */
import test, { type ExecutionContext } from 'ava';
import { FakeKvStore } from './kv-store-fake.js';
import { Federation } from './federation.js';
import { resolveConfig } from './config.js';
import type { Store } from './kv-store.js';
import { computePeerMap, type ClusterInputs } from './peer-map.js';
import {
  agreeMtu,
  agreementAfterJoin,
  agreementAfterLeave,
  type MemberAsk,
} from './network-mtu.js';
import fc from 'fast-check';
import { checkProperty } from '../test/fixtures/property.js';
import {
  expectedAgreement,
  expectedPeerMap,
  type OracleCluster,
} from '../test/fixtures/peer-map-oracle.js';
import {
  KEYS,
  type ClusterRecord,
  type CordonRecord,
  type ExportsRecord,
  type MemberRecord,
  type MtuAsk,
  type NetworkRecord,
  type PeeringDecl,
  type PeeringsRecord,
  type PeerMap,
} from './records.js';

/** A store that records every call as "<method> <bucket> <key or filter>". */
function counted(fake = new FakeKvStore()): { store: Store; calls: string[] } {
  const calls: string[] = [];
  const store = new Proxy(fake, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      return (...args: unknown[]) => {
        calls.push(`${String(prop)} ${String(args[0])} ${String(args[1])}`);
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store, calls };
}

const keyOf = (i: number) => {
  const b = Buffer.alloc(32, 0);
  b.writeUInt32BE(i + 1);
  return b.toString('base64');
};
const reg = (i: number) => ({
  publicKey: keyOf(i),
  endpoints: [`198.18.0.${(i % 250) + 1}:51820`],
  capabilities: [],
});

const config = () => resolveConfig({ transitPool: '100.64.0.0/16' });
const ask = (network: string) => ({ network, capacity: 1370 });
const writesOf = (calls: readonly string[], bucket: string) =>
  calls
    .filter((c) => /^(cas|put|create|delete) /.test(c) && c.split(' ')[1] === bucket)
    .map((c) => c.split(' ')[2]!)
    .sort();

test('scale - a peerings change writes only the maps whose content it changes', async (t) => {
  const { store, calls } = counted();
  const fed = new Federation(store, config());
  const ids = ['c0', 'c1', 'c2', 'c3'];
  for (const [i, id] of ids.entries()) await fed.register(id, reg(i));
  for (const id of ids) await fed.setExports(id, ['cdn'], [ask('cdn')]);
  for (const id of ['c1', 'c2', 'c3']) await fed.setPeerings(id, [{ remoteCluster: 'c0' }]);
  await fed.setPeerings('c0', [{ remoteCluster: 'c1' }, { remoteCluster: 'c2' }]);
  calls.length = 0;
  // c0 keeps c1, drops c2, adds c3: c1's map does not change.
  await fed.setPeerings('c0', [{ remoteCluster: 'c1' }, { remoteCluster: 'c3' }]);
  t.deepEqual(writesOf(calls, 'peerMaps'), ['c0', 'c2', 'c3'], calls.join('\n'));
  const map = async (id: string) =>
    (await store.get<PeerMap>('peerMaps', id))?.value.peers.map((p) => p.cluster);
  t.deepEqual(await map('c0'), ['c1', 'c3']);
  t.deepEqual(await map('c2'), []);
  t.deepEqual(await map('c3'), ['c0']);
});

/** KV calls of one peerings request naming c0, where c0 itself has `degree` other peers. */
async function peeringCost(degree: number): Promise<{ calls: string[]; reads: number }> {
  const { store, calls } = counted();
  const fed = new Federation(store, config());
  const others = Array.from({ length: degree }, (_, i) => `p${i}`);
  const all = ['c0', 'x', ...others];
  for (const [i, id] of all.entries()) await fed.register(id, reg(i));
  for (const id of all) await fed.setExports(id, ['cdn', 'web'], [ask('cdn'), ask('web')]);
  for (const id of others) await fed.setPeerings(id, [{ remoteCluster: 'c0' }]);
  await fed.setPeerings('c0', [
    { remoteCluster: 'x' },
    ...others.map((remoteCluster) => ({ remoteCluster })),
  ]);
  calls.length = 0;
  // x consents: c0's map gains x; c0's other peers are not x's business.
  await fed.setPeerings('x', [{ remoteCluster: 'c0' }]);
  // Distinct reads: concurrent reads of one key merge depending on timing (coalesceReads).
  const reads = new Set(calls.filter((c) => /^(get|read|keys) /.test(c))).size;
  return { calls: [...calls], reads };
}

test("scale - a peerings request reads what it names, not the remote's other peers", async (t) => {
  const small = await peeringCost(2);
  const big = await peeringCost(40);
  t.is(
    big.reads,
    small.reads,
    `distinct KV reads when the remote has 2 and 40 other peers: ${small.reads}, ${big.reads}\n${big.calls.join('\n')}`,
  );
  t.true(
    small.reads <= 20,
    `reads of one mutual peering: ${small.reads}\n${small.calls.join('\n')}`,
  );
});

/** KV calls of one exports request joining a network that already has `members` members. */
async function joinCost(members: number): Promise<{ calls: string[]; reads: number }> {
  const { store, calls } = counted();
  const fed = new Federation(store, config());
  for (let i = 0; i < members + 1; i++) await fed.register(`c${i}`, reg(i));
  for (let i = 1; i <= members; i++) await fed.setExports(`c${i}`, ['cdn'], [ask('cdn')]);
  calls.length = 0;
  // c0 joins with the same ask: the agreement's value holds, its setBy moves to c0.
  await fed.setExports('c0', ['cdn'], [ask('cdn')]);
  return { calls: [...calls], reads: calls.filter((c) => /^(get|read) /.test(c)).length };
}

test('scale - joining a network reads no member records; the agreement moves incrementally', async (t) => {
  const small = await joinCost(3);
  const big = await joinCost(30);
  // Every member's map gets the new agreement (setBy c0): one map read, one network read
  // and one write each, and nothing else per member.
  const perMember = (big.reads - small.reads) / 27;
  t.true(
    perMember <= 2,
    `KV reads per extra member: ${perMember} (${small.reads} with 3, ${big.reads} with 30)\n${big.calls.join('\n')}`,
  );
  t.false(
    big.calls.some((c) => c.startsWith('get networks member.')),
    'no member record read',
  );
});

test('scale - a member leaving that did not set the agreement reads no member records', async (t) => {
  const { store, calls } = counted();
  const fed = new Federation(store, config());
  for (let i = 0; i < 6; i++) await fed.register(`c${i}`, reg(i));
  for (let i = 0; i < 6; i++)
    await fed.setExports(`c${i}`, ['cdn', 'web'], [ask('cdn'), ask('web')]);
  calls.length = 0;
  await fed.setExports('c5', ['web'], [ask('web')]);
  // Its own record is read (is its ask unchanged?); no other member's.
  t.false(
    calls.some((c) => c.startsWith('get networks member.') && !c.endsWith('.c5')),
    calls.filter((c) => c.includes('member.')).join('\n'),
  );
  // c0 set it (smallest id): its leaving recomputes from the members left.
  await fed.setExports('c0', ['web'], [ask('web')]);
  const net = await store.get<NetworkRecord>('networks', KEYS.network('cdn'));
  t.deepEqual(net?.value.mtu, { value: 1370, setBy: 'c1', limit: 'capacity' });
  const m = await store.get<PeerMap>('peerMaps', 'c3');
  t.deepEqual(m?.value.networks.find((n) => n.name === 'cdn')?.mtu, net?.value.mtu);
});

/** What the test sent for each cluster (its last request of each kind), and admin actions. */
class Sent {
  private readonly clusters = new Map<string, Omit<OracleCluster, 'transitAddress'>>();

  register(id: string, i: number): void {
    const { publicKey, endpoints } = reg(i);
    this.clusters.set(id, {
      id,
      publicKey,
      endpoints,
      cordoned: false,
      exports: [],
      asks: new Map(),
      peerings: [],
    });
  }
  exports(id: string, names: readonly string[], asks: readonly (MtuAsk & { network: string })[]) {
    const c = this.clusters.get(id)!;
    const byName = new Map(asks.map(({ network, ...a }) => [network, a]));
    this.clusters.set(id, { ...c, exports: [...names], asks: byName });
  }
  peerings(id: string, peerings: readonly PeeringDecl[]): void {
    this.clusters.set(id, { ...this.clusters.get(id)!, peerings: [...peerings] });
  }
  cordon(id: string): void {
    this.clusters.set(id, { ...this.clusters.get(id)!, cordoned: true });
  }
  /** Evict = deregister: exports, peerings and the registration go. */
  evict(id: string): void {
    this.clusters.delete(id);
  }
  get(id: string) {
    return this.clusters.get(id);
  }
  /** Registered clusters exporting `name`. */
  members(name: string): string[] {
    return [...this.clusters.values()].filter((c) => c.exports.includes(name)).map((c) => c.id);
  }
}

/** Cordons `id` as the admin API does (broker/admin/release.ts setCordon): CAS, then refresh. */
async function cordon(fake: FakeKvStore, fed: Federation, id: string): Promise<void> {
  const cur = (await fake.get<ClusterRecord>('clusters', id))!;
  const mark: CordonRecord = { by: 'cn:test', reason: 'scale test', at: '2026-01-01T00:00:00Z' };
  const r = await fake.cas('clusters', id, { ...cur.value, cordon: mark }, cur.revision);
  if (r.type !== 'ok') throw new Error(`cordon of ${id} lost its CAS`);
  const decl = (await fake.get<PeeringsRecord>('peerings', id))?.value.peerings ?? [];
  await fed.peerMaps.refreshAll([id, ...decl.map((p) => p.remoteCluster)]);
}

/**
 * Every map in `store` equals both computePeerMap of the stored inputs (the differential
 * check) and the documented rules over what the test sent (`sent`; transit addresses and
 * VNIs are the broker's to choose, so they are read from the cluster and network
 * records). Every agreement equals agreeMtu over the member records and the rules.
 */
async function expectConverged(t: ExecutionContext, fake: FakeKvStore, ids: string[], sent: Sent) {
  const inputs = new Map<string, ClusterInputs>();
  for (const id of ids) {
    inputs.set(id, {
      cluster: (await fake.get<ClusterRecord>('clusters', id))?.value,
      networks: (await fake.get<ExportsRecord>('exports', id))?.value.networks ?? [],
      peerings: (await fake.get<PeeringsRecord>('peerings', id))?.value.peerings ?? [],
    });
  }
  const names = (await fake.keys('networks', 'net.*')).map((k) => k.slice(4));
  const mtus = new Map<string, NetworkRecord['mtu']>();
  for (const name of names) {
    const net = (await fake.get<NetworkRecord>('networks', KEYS.network(name)))!.value;
    const members = await fake.keys('networks', KEYS.membersOf(name));
    const asks = await Promise.all(
      members.map(async (k) => ({
        cluster: k.split('.')[2]!,
        ask: (await fake.get<MemberRecord>('networks', k))?.value.mtu,
      })),
    );
    t.deepEqual(net.mtu, agreeMtu(asks), `agreement of ${name}`);
    mtus.set(name, net.mtu);
  }
  const vnis = new Map<string, number>();
  for (const name of names)
    vnis.set(name, (await fake.get<NetworkRecord>('networks', KEYS.network(name)))!.value.vni);
  const oracle = {
    cluster: (id: string): OracleCluster | undefined => {
      const c = sent.get(id);
      const rec = inputs.get(id)?.cluster;
      return c && rec && { ...c, transitAddress: rec.transitAddress };
    },
    vni: (name: string) => {
      const vni = vnis.get(name);
      if (vni === undefined) throw new Error(`network ${name} is exported but has no binding`);
      return vni;
    },
    members: (name: string) => sent.members(name),
  };
  for (const name of new Set([...names, ...ids.flatMap((id) => sent.get(id)?.exports ?? [])]))
    t.deepEqual(mtus.get(name), expectedAgreement(oracle, name), `documented agreement of ${name}`);
  for (const id of ids) {
    const self = inputs.get(id)!;
    const got = (await fake.get<PeerMap>('peerMaps', id))?.value;
    t.is(self.cluster !== undefined, sent.get(id) !== undefined, `${id} registered`);
    t.deepEqual(got, expectedPeerMap(oracle, id), `peer map of ${id} by the documented rules`);
    if (!self.cluster) {
      t.is(got, undefined, `no map for unregistered ${id}`);
      continue;
    }
    const want = computePeerMap(
      { ...self, cluster: self.cluster },
      inputs,
      new Map(self.networks.map((n) => [n.name, mtus.get(n.name)])),
    );
    t.deepEqual(got, want, `peer map of ${id}`);
  }
}

for (const seed0 of [7, 11, 23])
  test(`scale - two replicas racing on joins, leaves and peerings, then a cordon and an eviction, leave every map correct (seed ${seed0})`, async (t) => {
    const fake = new FakeKvStore();
    const sent = new Sent();
    const replicas = [new Federation(fake, config()), new Federation(fake, config())];
    const n = 24;
    const ids = Array.from({ length: n }, (_, i) => `c${i}`);
    let seed = seed0;
    // The LCG's high bits: its low ones repeat with a short period (bit 0 alternates), which
    // left every cluster exporting everything and declaring no peer at the end.
    const rnd = (k: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return (seed >>> 16) % k;
    };
    const names = ['a', 'b', 'c', 'd'];
    const pick = <T>(xs: readonly T[], k: number) => xs.filter(() => rnd(k) === 0);
    const on = () => replicas[rnd(2)]!;
    await Promise.all(ids.map((id, i) => on().register(id, reg(i))));
    ids.forEach((id, i) => sent.register(id, i));
    // Each cluster's requests one at a time (the protocol's rule); clusters in parallel.
    await Promise.all(
      ids.map(async (id) => {
        for (let step = 0; step < 6; step++) {
          const r = on();
          if (rnd(2) === 0) {
            const nets = pick(names, 2);
            const asks = nets
              .filter(() => rnd(3) > 0)
              .map((network) => ({ network, capacity: 1300 + rnd(4) * 10 }));
            await r.setExports(id, nets, asks);
            sent.exports(id, nets, asks);
          } else {
            // A third of the declarations offer only some networks.
            const peers = pick(
              ids.filter((o) => o !== id),
              3,
            ).map((remoteCluster) =>
              rnd(3) === 0 ? { remoteCluster, networks: pick(names, 2) } : { remoteCluster },
            );
            await r.setPeerings(id, peers);
            sent.peerings(id, peers);
          }
        }
      }),
    );
    await expectConverged(t, fake, ids, sent);
    // An operator cordons two clusters that have peers, then evicts one (deregister).
    const peered = ids.filter((x) =>
      sent
        .get(x)!
        .peerings.some((p) =>
          sent.get(p.remoteCluster)!.peerings.some((q) => q.remoteCluster === x),
        ),
    );
    t.true(peered.length >= 2, `the race ends with mutual peerings: ${peered.join(' ')}`);
    const a = peered[rnd(peered.length)]!;
    const b = peered.filter((x) => x !== a)[rnd(peered.length - 1)]!;
    for (const id of [a, b]) {
      await cordon(fake, on(), id);
      sent.cordon(id);
    }
    await on().deregister(a);
    sent.evict(a);
    await expectConverged(t, fake, ids, sent);
  });

test('scale - the agreement moved by one member equals agreeMtu over the new members', async (t) => {
  const mtuAsk = fc.option(
    fc.record(
      {
        requested: fc.integer({ min: 1280, max: 1300 }),
        capacity: fc.integer({ min: 1280, max: 1300 }),
      },
      { requiredKeys: ['capacity'] },
    ),
    { nil: undefined },
  );
  const cluster = fc.constantFrom('a', 'b', 'c', 'd', 'e');
  const members = fc.uniqueArray(fc.record({ cluster, ask: mtuAsk }), {
    selector: (m) => m.cluster,
    maxLength: 5,
  });
  await checkProperty(
    t,
    'incremental agreement',
    fc.property(members, cluster, mtuAsk, fc.boolean(), (list, who, ask, leaving) => {
      const cur = agreeMtu(list);
      const others = list.filter((m) => m.cluster !== who);
      const next: MemberAsk[] = leaving ? others : [...others, { cluster: who, ask }];
      const moved = leaving ? agreementAfterLeave(cur, who) : agreementAfterJoin(cur, who, ask);
      if (moved === 'recompute') return true;
      return JSON.stringify(moved) === JSON.stringify(agreeMtu(next));
    }),
  );
});

test('scale - requests in one replica merge their refreshes of a busy map instead of racing its CAS', async (t) => {
  const fake = new FakeKvStore();
  const fed = new Federation(fake, config());
  const others = Array.from({ length: 30 }, (_, i) => `p${i}`);
  for (const [i, id] of ['c0', ...others].entries()) await fed.register(id, reg(i));
  await fed.setPeerings(
    'c0',
    others.map((remoteCluster) => ({ remoteCluster })),
  );
  let conflicts = 0;
  let writes = 0;
  const cas = fake.cas.bind(fake);
  fake.cas = async (bucket, key, value, revision) => {
    const r = await cas(bucket, key, value, revision);
    if (bucket === 'peerMaps' && key === 'c0') {
      writes++;
      if (r.type === 'conflict') conflicts++;
    }
    return r;
  };
  // Thirty peers consent at once: each changes c0's map (its own entry there).
  await Promise.all(others.map((id) => fed.setPeerings(id, [{ remoteCluster: 'c0' }])));
  t.is(conflicts, 0, `lost CAS on c0's map: ${conflicts} of ${writes}`);
  t.true(writes < others.length, `c0's map written ${writes} times for ${others.length} changes`);
  const map = await fake.get<PeerMap>('peerMaps', 'c0');
  t.deepEqual(
    map?.value.peers.map((p) => p.cluster),
    [...others].sort(),
  );
});

test('scale - joins of one network in one replica take turns instead of racing its CAS', async (t) => {
  const fake = new FakeKvStore();
  const fed = new Federation(fake, config());
  const ids = Array.from({ length: 30 }, (_, i) => `c${i}`);
  for (const [i, id] of ids.entries()) await fed.register(id, reg(i));
  let conflicts = 0;
  let writes = 0;
  const cas = fake.cas.bind(fake);
  fake.cas = async (bucket, key, value, revision) => {
    const r = await cas(bucket, key, value, revision);
    if (bucket === 'networks' && key === KEYS.network('cdn')) {
      writes++;
      if (r.type === 'conflict') conflicts++;
    }
    return r;
  };
  await Promise.all(ids.map((id) => fed.setExports(id, ['cdn'], [ask('cdn')])));
  t.is(conflicts, 0, `lost CAS on net.cdn: ${conflicts} of ${writes}`);
  const sent = new Sent();
  ids.forEach((id, i) => (sent.register(id, i), sent.exports(id, ['cdn'], [ask('cdn')])));
  await expectConverged(t, fake, ids, sent);
});

test("scale - a peerings request reads the declaring cluster's inputs about once, not once per map it refreshes", async (t) => {
  const { store, calls } = counted();
  const fed = new Federation(store, config());
  const others = Array.from({ length: 6 }, (_, i) => `p${i}`);
  for (const [i, id] of ['c0', ...others].entries()) await fed.register(id, reg(i));
  for (const id of others) await fed.setPeerings(id, [{ remoteCluster: 'c0' }]);
  calls.length = 0;
  // c0's own map and the six maps that gain c0 all need c0's record, exports, peerings;
  // the reads run at once, so one read (or the one after it) serves them all.
  await fed.setPeerings(
    'c0',
    others.map((remoteCluster) => ({ remoteCluster })),
  );
  const reads = calls.filter((c) => c === 'get clusters c0').length;
  // requireRegistered's read, then at most three for the seven maps (before: one per map).
  t.true(reads <= 4, `reads of c0's record: ${reads}\n${calls.join('\n')}`);
  const map = await store.get<PeerMap>('peerMaps', 'p3');
  t.deepEqual(
    map?.value.peers.map((p) => p.cluster),
    ['c0'],
  );
});

test("scale - an exports request reads each network's binding once for its charge and join", async (t) => {
  const { store, calls } = counted();
  const fed = new Federation(store, config());
  for (let i = 0; i < 4; i++) await fed.register(`c${i}`, reg(i));
  for (const id of ['c1', 'c2', 'c3'])
    await fed.setExports(id, ['cdn', 'web'], [ask('cdn'), ask('web')]);
  calls.length = 0;
  // A jumbo underlay: the agreement (1370, set by c1) holds, so no other map is touched.
  await fed.setExports(
    'c0',
    ['cdn', 'web'],
    [
      { network: 'cdn', capacity: 8870 },
      { network: 'web', capacity: 8870 },
    ],
  );
  const reads = calls.filter((c) => /^(get|read) networks net\.cdn$/.test(c)).length;
  // One read before the join (its CAS checks the revision) and one by c0's own map.
  t.is(reads, 2, calls.join('\n'));
  const net = await store.get<NetworkRecord>('networks', KEYS.network('cdn'));
  t.deepEqual(net?.value.mtu, { value: 1370, setBy: 'c1', limit: 'capacity' });
  const m = await store.get<PeerMap>('peerMaps', 'c0');
  t.deepEqual(
    m?.value.networks.map((n) => [n.name, n.mtu?.setBy]),
    [
      ['cdn', 'c1'],
      ['web', 'c1'],
    ],
  );
});

test('scale - joins of one network queued in one replica start from the binding the previous one wrote', async (t) => {
  const { store, calls } = counted();
  const fed = new Federation(store, config());
  const ids = Array.from({ length: 20 }, (_, i) => `c${i}`);
  for (const [i, id] of ids.entries()) await fed.register(id, reg(i));
  await fed.setExports('c0', ['cdn'], [ask('cdn')]);
  calls.length = 0;
  await Promise.all(ids.slice(1).map((id) => fed.vnis.join('cdn', id)));
  const reads = calls.filter((c) => /^(get|read) networks net\.cdn$/.test(c)).length;
  // The first join reads the binding; each next one in turn CASes on what the last wrote.
  t.true(reads <= 2, `reads of net.cdn for 19 joins in turn: ${reads}\n${calls.join('\n')}`);
  t.is((await fed.vnis.join('cdn', 'c0')) > 0, true);
});

test("scale - a peerings request reads each new peer's inputs once for both maps that need them", async (t) => {
  // No jitter: calls complete in order, so the count is exact.
  const { store, calls } = counted(new FakeKvStore({ jitter: false }));
  const fed = new Federation(store, config());
  const others = Array.from({ length: 6 }, (_, i) => `p${i}`);
  for (const [i, id] of ['c0', ...others].entries()) await fed.register(id, reg(i));
  for (const id of others) await fed.setPeerings(id, [{ remoteCluster: 'c0' }]);
  calls.length = 0;
  await fed.setPeerings(
    'c0',
    others.map((remoteCluster) => ({ remoteCluster })),
  );
  // p<i>'s own map (its entry of c0) and c0's map (the entry of p<i>) both need p<i>'s
  // inputs, read after each map's revision: one read serves both (before: one each).
  for (const bucket of ['clusters', 'exports', 'peerings'])
    t.is(
      calls.filter((c) => new RegExp(`^(get|read) ${bucket} p\\d$`).test(c)).length,
      6,
      `${bucket}\n${calls.join('\n')}`,
    );
  for (const id of others) {
    const map = await store.get<PeerMap>('peerMaps', id);
    t.deepEqual(
      map?.value.peers.map((p) => p.cluster),
      ['c0'],
    );
  }
  const own = await store.get<PeerMap>('peerMaps', 'c0');
  t.deepEqual(
    own?.value.peers.map((p) => p.cluster),
    others,
  );
});

test('scale - an exports request lists no keys when no agreement moves (a listing scans the whole bucket)', async (t) => {
  const { store, calls } = counted();
  const fed = new Federation(store, config());
  for (let i = 0; i < 4; i++) await fed.register(`c${i}`, reg(i));
  for (const id of ['c1', 'c2', 'c3'])
    await fed.setExports(id, ['cdn', 'web'], [ask('cdn'), ask('web')]);
  const jumbo = (names: string[]) => names.map((network) => ({ network, capacity: 8870 }));
  calls.length = 0;
  await fed.setExports('c0', ['cdn', 'web'], jumbo(['cdn', 'web'])); // first export
  await fed.setExports('c0', ['cdn', 'web'], jumbo(['cdn', 'web'])); // the same again
  t.deepEqual(
    calls.filter((c) => c.startsWith('keys ')),
    [],
    calls.join('\n'),
  );
  calls.length = 0;
  // Dropping web: its leave lists web's members (is c0 the last?), nothing else.
  await fed.setExports('c0', ['cdn'], jumbo(['cdn']));
  t.deepEqual(
    calls.filter((c) => c.startsWith('keys ')),
    ['keys networks member.web.*'],
    calls.join('\n'),
  );
  t.deepEqual(await store.keys('networks', KEYS.membershipsOf('c0')), ['member.cdn.c0']);
  t.deepEqual(
    (await fed.get('c0')).networks.map((n) => n.name),
    ['cdn'],
  );
});

test('scale - a name joined by an exports request that failed midway is left by the next request without it', async (t) => {
  const fake = new FakeKvStore();
  const fed = new Federation(fake, config());
  for (let i = 0; i < 2; i++) await fed.register(`c${i}`, reg(i));
  await fed.setExports('c1', ['cdn', 'web'], [ask('cdn'), ask('web')]);
  // c0's join of web lands, then its reply is lost: the request fails before its exports
  // record names web.
  fake.failNextWrite(KEYS.network('web'), true);
  await t.throwsAsync(fed.setExports('c0', ['cdn', 'web'], [ask('cdn'), ask('web')]));
  t.deepEqual((await fake.keys('networks', KEYS.membershipsOf('c0'))).sort(), [
    'member.cdn.c0',
    'member.web.c0',
  ]);
  await fed.setExports('c0', ['cdn'], [ask('cdn')]);
  t.deepEqual(await fake.keys('networks', KEYS.membershipsOf('c0')), ['member.cdn.c0']);
  await fed.deregister('c1');
  t.is(await fake.get('networks', KEYS.network('web')), undefined, 'web released');
});

test('scale - an exports request that moves an agreement finds the members to tell in the binding, not by listing keys', async (t) => {
  const { store, calls } = counted();
  const fed = new Federation(store, config());
  for (let i = 0; i < 4; i++) await fed.register(`c${i}`, reg(i));
  for (const id of ['c1', 'c2', 'c3']) await fed.setExports(id, ['cdn'], [ask('cdn')]);
  calls.length = 0;
  // c0 asks less: the agreement moves to c0, every member's map is told.
  await fed.setExports('c0', ['cdn'], [{ network: 'cdn', capacity: 1300 }]);
  t.deepEqual(
    calls.filter((c) => c.startsWith('keys ')),
    [],
    calls.join('\n'),
  );
  for (const id of ['c0', 'c1', 'c2', 'c3']) {
    const m = await store.get<PeerMap>('peerMaps', id);
    t.deepEqual(m?.value.networks[0]?.mtu, { value: 1300, setBy: 'c0', limit: 'capacity' }, id);
  }
});

test('scale - an exports request writes its exports record once, naming what it exports (admin events show every write)', async (t) => {
  const fake = new FakeKvStore();
  const written: string[] = [];
  const put = fake.put.bind(fake);
  fake.put = async (bucket, key, value) => {
    if (bucket === 'exports')
      written.push((value as ExportsRecord).networks.map((n) => n.name).join(','));
    return put(bucket, key, value);
  };
  const fed = new Federation(fake, config());
  await fed.register('c0', reg(0));
  await fed.setExports('c0', ['cdn', 'web'], [ask('cdn'), ask('web')]);
  await fed.setExports('c0', ['cdn'], [ask('cdn')]);
  t.deepEqual(written, ['cdn,web', 'cdn']);
});

test('scale - a peerings request leaves alone the maps of clusters that have not declared it back', async (t) => {
  const { store, calls } = counted();
  const fed = new Federation(store, config());
  const others = Array.from({ length: 6 }, (_, i) => `p${i}`);
  for (const [i, id] of ['c0', ...others].entries()) await fed.register(id, reg(i));
  // p0 and p1 declare c0 first; p2..p5 have not declared it (yet).
  for (const id of ['p0', 'p1']) await fed.setPeerings(id, [{ remoteCluster: 'c0' }]);
  calls.length = 0;
  await fed.setPeerings(
    'c0',
    others.map((remoteCluster) => ({ remoteCluster })),
  );
  // A map lists c0 only if its cluster declares c0: p2..p5's maps cannot change, and are
  // not written (a write costs a CAS and wakes their agents for nothing).
  t.deepEqual(writesOf(calls, 'peerMaps'), ['c0', 'p0', 'p1'], calls.join('\n'));
  // When p3 declares c0 later, its own request puts c0 in its map.
  await fed.setPeerings('p3', [{ remoteCluster: 'c0' }]);
  const map = async (id: string) =>
    (await store.get<PeerMap>('peerMaps', id))?.value.peers.map((p) => p.cluster);
  t.deepEqual(await map('c0'), ['p0', 'p1', 'p3']);
  t.deepEqual(await map('p3'), ['c0']);
  t.deepEqual(await map('p2'), []);
});

test('scale - a peerings request redoes only the entries it changes in its own map (no network record read)', async (t) => {
  const { store, calls } = counted();
  const fed = new Federation(store, config());
  const ids = ['c0', 'c1', 'c2', 'c3'];
  for (const [i, id] of ids.entries()) await fed.register(id, reg(i));
  for (const id of ids) await fed.setExports(id, ['cdn', 'web'], [ask('cdn'), ask('web')]);
  for (const id of ['c1', 'c2', 'c3']) await fed.setPeerings(id, [{ remoteCluster: 'c0' }]);
  await fed.setPeerings('c0', [{ remoteCluster: 'c1' }, { remoteCluster: 'c2' }]);
  calls.length = 0;
  // c0 drops c2 and adds c3: c1's entry in c0's map and c0's networks stay as they are.
  await fed.setPeerings('c0', [{ remoteCluster: 'c1' }, { remoteCluster: 'c3' }]);
  t.deepEqual(
    calls.filter((c) => /^(get|read) networks /.test(c) || /^(get|read) \w+ c1$/.test(c)),
    [],
    calls.join('\n'),
  );
  const own = (await store.get<PeerMap>('peerMaps', 'c0'))?.value;
  t.deepEqual(
    own?.peers.map((p) => [p.cluster, p.networks.map((n) => n.name)]),
    [
      ['c1', ['cdn', 'web']],
      ['c3', ['cdn', 'web']],
    ],
  );
  t.deepEqual(
    own?.networks.map((n) => [n.name, n.mtu?.value]),
    [
      ['cdn', 1370],
      ['web', 1370],
    ],
  );
  // The same request again (a replica may have died before refreshing): the whole map.
  calls.length = 0;
  await fed.setPeerings('c0', [{ remoteCluster: 'c1' }, { remoteCluster: 'c3' }]);
  t.true(calls.includes('cas peerMaps c0'), calls.join('\n'));
});

test('scale - the first export of a network lists no keys and reads no member record', async (t) => {
  const { store, calls } = counted();
  const fed = new Federation(store, config());
  for (let i = 0; i < 2; i++) await fed.register(`c${i}`, reg(i));
  calls.length = 0;
  // c0 binds cdn: the agreement is c0's own ask (a member whose ask is written but whose
  // join has not gone through yet moves it in its own join's CAS).
  await fed.setExports('c0', ['cdn'], [{ network: 'cdn', capacity: 1400 }]);
  t.deepEqual(
    calls.filter((c) => c.startsWith('keys ') || c.includes(' networks member.')),
    ['create networks member.cdn.c0'],
    calls.join('\n'),
  );
  const net = await store.get<NetworkRecord>('networks', KEYS.network('cdn'));
  t.deepEqual(net?.value.mtu, { value: 1400, setBy: 'c0', limit: 'capacity' });
  t.deepEqual(net?.value.members, ['c0']);
  await fed.setExports('c1', ['cdn'], [{ network: 'cdn', capacity: 1370 }]);
  const after = await store.get<NetworkRecord>('networks', KEYS.network('cdn'));
  t.deepEqual(after?.value.mtu, { value: 1370, setBy: 'c1', limit: 'capacity' });
  t.deepEqual(after?.value.members, ['c0', 'c1']);
});

test('scale - joins of one network waiting in one replica are written in one CAS', async (t) => {
  // No jitter: the requests reach their joins together, as a burst does in a busy replica.
  const fake = new FakeKvStore({ jitter: false });
  const fed = new Federation(fake, config());
  const ids = Array.from({ length: 20 }, (_, i) => `c${i}`);
  const sent = new Sent();
  for (const [i, id] of ids.entries()) {
    await fed.register(id, reg(i));
    sent.register(id, i);
  }
  await fed.setExports('c0', ['cdn'], [ask('cdn')]);
  sent.exports('c0', ['cdn'], [ask('cdn')]);
  let writes = 0;
  const cas = fake.cas.bind(fake);
  fake.cas = (bucket, key, value, revision) => {
    if (bucket === 'networks' && key === KEYS.network('cdn')) writes++;
    return cas(bucket, key, value, revision);
  };
  // Nineteen members join at once, each asking less (the agreement moves by each in turn).
  const asks = ids.slice(1).map((id, i) => [id, [{ network: 'cdn', capacity: 1369 - i }]] as const);
  await Promise.all(asks.map(([id, a]) => fed.setExports(id, ['cdn'], a)));
  asks.forEach(([id, a]) => sent.exports(id, ['cdn'], a));
  // Before: one CAS per join (19), each waiting for the previous one.
  t.true(writes <= 2, `CAS writes of net.cdn for 19 joins: ${writes}`);
  const net = await fake.get<NetworkRecord>('networks', KEYS.network('cdn'));
  t.deepEqual(net?.value.members, [...ids].sort());
  t.deepEqual(net?.value.mtu, { value: 1351, setBy: 'c19', limit: 'capacity' });
  await expectConverged(t, fake, ids, sent);
});

test("scale - a first registration and an exports request read the cluster's declarations and quota once", async (t) => {
  const { store, calls } = counted();
  const fed = new Federation(store, config());
  await fed.register('c0', reg(0));
  // A new cluster declares nobody yet (deregistering deletes declarations first): its
  // own map is all there is to refresh, and that reads its declarations.
  t.is(calls.filter((c) => /^(get|read) peerings c0$/.test(c)).length, 1, calls.join('\n'));
  calls.length = 0;
  await fed.setExports('c0', ['cdn', 'web'], [ask('cdn'), ask('web')]);
  // Its pending names are read with the quota record the charge then CASes on.
  t.is(calls.filter((c) => /^(get|read) quotas c0$/.test(c)).length, 1, calls.join('\n'));
  t.deepEqual(
    (await fed.get('c0')).networks.map((n) => n.name),
    ['cdn', 'web'],
  );
});

test("scale - a map reads a declared peer's record and exports only when that peer declares it back", async (t) => {
  const { store, calls } = counted();
  const fed = new Federation(store, config());
  const others = Array.from({ length: 6 }, (_, i) => `p${i}`);
  for (const [i, id] of ['c0', ...others].entries()) await fed.register(id, reg(i));
  await fed.setPeerings('p0', [{ remoteCluster: 'c0' }]);
  calls.length = 0;
  await fed.setPeerings(
    'c0',
    others.map((remoteCluster) => ({ remoteCluster })),
  );
  // Without consent back there is no entry, whatever p1..p5's record and exports say.
  t.deepEqual(
    calls.filter((c) => /^(get|read) (clusters|exports) p[1-5]$/.test(c)),
    [],
    calls.join('\n'),
  );
  const own = await store.get<PeerMap>('peerMaps', 'c0');
  t.deepEqual(
    own?.value.peers.map((p) => p.cluster),
    ['p0'],
  );
});

test('scale - a join in a replica starts from the binding that replica last wrote, when newer than the one its request read', async (t) => {
  const fake = new FakeKvStore();
  const fed = new Federation(fake, config());
  for (let i = 0; i < 3; i++) await fed.register(`c${i}`, reg(i));
  await fed.setExports('c0', ['cdn'], [ask('cdn')]);
  // c2's request read the binding, then c1's join went through in this replica.
  const known = (await fake.get<NetworkRecord>('networks', KEYS.network('cdn')))!;
  await fed.setExports('c1', ['cdn'], [ask('cdn')]);
  let conflicts = 0;
  const cas = fake.cas.bind(fake);
  fake.cas = async (bucket, key, value, revision) => {
    const r = await cas(bucket, key, value, revision);
    if (key === KEYS.network('cdn') && r.type === 'conflict') conflicts++;
    return r;
  };
  await fed.vnis.joinWith('cdn', 'c2', { known });
  t.is(conflicts, 0, 'a CAS on the binding as the request read it loses to c1 join');
  const net = await fake.get<NetworkRecord>('networks', KEYS.network('cdn'));
  t.deepEqual(net?.value.members, ['c0', 'c1', 'c2']);
});
