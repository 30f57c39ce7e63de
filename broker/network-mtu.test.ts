/**
 * The agreed MTU of a network (issue 12): one value across all members, the smallest any
 * member asks for or can carry. Pure function first, then the broker over the fake KV.
 */
import test from 'ava';
import fc from 'fast-check';
import { checkProperty } from '../test/fixtures/property.js';
import { FakeKvStore } from './kv-store-fake.js';
import { Federation } from './federation.js';
import { resolveConfig } from './config.js';
import { InvalidRequestError } from './errors.js';
import { agreeMtu } from './network-mtu.js';
import { handleRequest } from './request-handler.js';
import { KEYS, type NetworkRecord, type PeerMap } from './records.js';

const KEY = (i: number) => Buffer.alloc(32, i + 1).toString('base64');
const reg = (i: number) => ({
  publicKey: KEY(i),
  endpoints: [`198.18.0.${i + 1}:51820`],
  capabilities: [],
});

async function setup(ids: readonly string[]) {
  const store = new FakeKvStore();
  const fed = new Federation(store, resolveConfig({ transitPool: '100.64.0.0/24' }));
  for (const [i, id] of ids.entries()) await fed.register(id, reg(i));
  // Everybody peers with everybody (mutual consent), so maps list each other.
  for (const id of ids)
    await fed.setPeerings(
      id,
      ids.filter((o) => o !== id).map((remoteCluster) => ({ remoteCluster })),
    );
  return { store, fed };
}

const mapMtu = async (store: FakeKvStore, id: string, net: string) =>
  (await store.get<PeerMap>('peerMaps', id))?.value.networks.find((n) => n.name === net)?.mtu;

test('agreeMtu - the smallest request or capacity, and who set it', (t) => {
  t.deepEqual(
    agreeMtu([
      { cluster: 'bristol', ask: { capacity: 1370 } },
      { cluster: 'madrid', ask: { requested: 1280, capacity: 1370 } },
    ]),
    { value: 1280, setBy: 'madrid', limit: 'requested' },
  );
  t.deepEqual(
    agreeMtu([
      { cluster: 'athens', ask: { capacity: 1300 } },
      { cluster: 'madrid', ask: { requested: 1350, capacity: 8870 } },
    ]),
    { value: 1300, setBy: 'athens', limit: 'capacity' },
  );
  t.deepEqual(
    agreeMtu([
      { cluster: 'old', ask: undefined },
      { cluster: 'new', ask: { capacity: 1370 } },
    ]),
    { value: 1370, setBy: 'new', limit: 'capacity', silent: ['old'] },
    'a member without an ask is named, not guessed',
  );
  t.is(agreeMtu([{ cluster: 'old', ask: undefined }]), undefined, 'nobody asked: no agreement');
});

test('agreeMtu - property: at most every ask, equal to one of them', async (t) => {
  const mtu = fc.integer({ min: 1280, max: 9000 });
  const members = fc.uniqueArray(
    fc.record({
      cluster: fc.stringMatching(/^[a-z][a-z0-9]{0,5}$/),
      ask: fc.option(fc.record({ requested: fc.option(mtu, { nil: undefined }), capacity: mtu }), {
        nil: undefined,
      }),
    }),
    { selector: (m) => m.cluster, minLength: 1, maxLength: 8 },
  );
  await checkProperty(
    t,
    'agreeMtu',
    fc.property(members, (list) => {
      const got = agreeMtu(list);
      const asks = list.filter((m) => m.ask !== undefined);
      if (asks.length === 0) return got === undefined;
      if (got === undefined) return false;
      // Independent: every number any member named, and each member's own limit.
      const named = asks.flatMap((m) => [
        m.ask!.capacity,
        ...(m.ask!.requested ? [m.ask!.requested] : []),
      ]);
      const setter = asks.find((m) => m.cluster === got.setBy)?.ask;
      return (
        asks.every(
          (m) => got.value <= m.ask!.capacity && got.value <= (m.ask!.requested ?? Infinity),
        ) &&
        named.includes(got.value) &&
        setter !== undefined &&
        got.value === (got.limit === 'requested' ? setter.requested : setter.capacity)
      );
    }),
  );
});

test('exports - one MTU for the network: 1280 in one member, auto (1370) in the other', async (t) => {
  const { store, fed } = await setup(['bristol', 'madrid']);
  const b = await fed.setExports('bristol', ['cdn'], [{ network: 'cdn', capacity: 1370 }]);
  t.deepEqual(b.networks[0]?.mtu, { value: 1370, setBy: 'bristol', limit: 'capacity' });
  const m = await fed.setExports(
    'madrid',
    ['cdn'],
    [{ network: 'cdn', requested: 1280, capacity: 1370 }],
  );
  const agreed = { value: 1280, setBy: 'madrid', limit: 'requested' };
  t.deepEqual(m.networks[0]?.mtu, agreed, 'the reply carries the agreed MTU');
  t.deepEqual(await mapMtu(store, 'madrid', 'cdn'), agreed);
  t.deepEqual(await mapMtu(store, 'bristol', 'cdn'), agreed, "the larger side's map is lowered");
  t.deepEqual(
    (await store.get<NetworkRecord>('networks', KEYS.network('cdn')))?.value.mtu,
    agreed,
    'recorded on the network',
  );
});

test('exports - a member joining later with a smaller MTU lowers it for every member, even unpeered ones', async (t) => {
  const { store, fed } = await setup(['a', 'b']);
  await fed.register('c', reg(2));
  await fed.setPeerings('c', [{ remoteCluster: 'a' }]); // c peers with nobody back
  await fed.setExports('a', ['cdn'], [{ network: 'cdn', capacity: 1370 }]);
  await fed.setExports('b', ['cdn'], [{ network: 'cdn', capacity: 1370 }]);
  t.is((await mapMtu(store, 'b', 'cdn'))?.value, 1370);
  await fed.setExports('c', ['cdn'], [{ network: 'cdn', capacity: 1300 }]);
  for (const id of ['a', 'b', 'c'])
    t.deepEqual(await mapMtu(store, id, 'cdn'), { value: 1300, setBy: 'c', limit: 'capacity' }, id);
});

test('exports - a member leaving raises the MTU again to what the rest carry', async (t) => {
  const { store, fed } = await setup(['a', 'b']);
  await fed.setExports(
    'a',
    ['cdn', 'web'],
    [
      { network: 'cdn', capacity: 1370 },
      { network: 'web', capacity: 1370 },
    ],
  );
  await fed.setExports('b', ['cdn'], [{ network: 'cdn', requested: 1280, capacity: 1370 }]);
  t.is((await mapMtu(store, 'a', 'cdn'))?.value, 1280);
  await fed.setExports('b', [], []);
  t.deepEqual(await mapMtu(store, 'a', 'cdn'), { value: 1370, setBy: 'a', limit: 'capacity' });
  await fed.setExports('b', ['cdn'], [{ network: 'cdn', requested: 1280, capacity: 1370 }]);
  t.is((await mapMtu(store, 'a', 'cdn'))?.value, 1280);
  await fed.deregister('b');
  t.is((await mapMtu(store, 'a', 'cdn'))?.value, 1370, 'deregistering leaves too');
  t.is((await mapMtu(store, 'a', 'web'))?.value, 1370, 'other networks untouched');
});

test('exports - an agent that sends no MTU (older) keeps working; the others agree without it, naming it', async (t) => {
  const { store, fed } = await setup(['new', 'old']);
  const old = await fed.setExports('old', ['cdn']);
  t.is(old.networks[0]?.mtu, undefined, 'no ask from anybody: no agreement, as before');
  t.is(await mapMtu(store, 'old', 'cdn'), undefined);
  await fed.setExports('new', ['cdn'], [{ network: 'cdn', capacity: 1370 }]);
  t.deepEqual(await mapMtu(store, 'old', 'cdn'), {
    value: 1370,
    setBy: 'new',
    limit: 'capacity',
    silent: ['old'],
  });
});

const refusals: [string, unknown, string, RegExp][] = [
  [
    'requested below 1280',
    [{ network: 'cdn', requested: 1200, capacity: 1370 }],
    'mtu.0.requested',
    /cluster "madrid".*cdn.*1200.*at least 1280/,
  ],
  [
    'capacity below 1280',
    [{ network: 'cdn', capacity: 1000 }],
    'mtu.0.capacity',
    /cluster "madrid".*cdn.*1000.*at least 1280.*underlay/,
  ],
  [
    'an ask for a network not exported',
    [{ network: 'iot', capacity: 1370 }],
    'mtu.0.network',
    /cluster "madrid".*"iot".*not in networks/,
  ],
  [
    'two asks for one network',
    [
      { network: 'cdn', capacity: 1370 },
      { network: 'cdn', capacity: 1400 },
    ],
    'mtu.1.network',
    /cluster "madrid".*"cdn" twice/,
  ],
];
for (const [title, asks, field, message] of refusals) {
  test(`exports - refused, nothing stored: ${title}`, async (t) => {
    const { store, fed } = await setup(['bristol', 'madrid']);
    await fed.setExports('madrid', ['cdn'], [{ network: 'cdn', capacity: 1370 }]);
    const before = await store.get<PeerMap>('peerMaps', 'madrid');
    const writes = store.writes;
    const err = await t.throwsAsync(
      fed.setExports('madrid', ['cdn'], asks as { network: string; capacity: number }[]),
      { instanceOf: InvalidRequestError },
    );
    t.is(err?.field, field);
    t.regex(err?.message ?? '', message);
    t.is(store.writes, writes, 'nothing written');
    t.deepEqual(await store.get<PeerMap>('peerMaps', 'madrid'), before);
  });
}

const hostile: [string, unknown, string][] = [
  ['a string', [{ network: 'cdn', capacity: '1370' }], 'mtu.0.capacity'],
  ['a fraction', [{ network: 'cdn', requested: 1300.5, capacity: 1370 }], 'mtu.0.requested'],
  ['negative', [{ network: 'cdn', capacity: -1 }], 'mtu.0.capacity'],
  ['above any interface', [{ network: 'cdn', capacity: 1e9 }], 'mtu.0.capacity'],
  ['an unknown field', [{ network: 'cdn', capacity: 1370, jumbo: true }], 'mtu.0.jumbo'],
  ['no capacity', [{ network: 'cdn', requested: 1300 }], 'mtu.0.capacity'],
  ['not a list', { cdn: 1370 }, 'mtu'],
];
for (const [title, mtu, field] of hostile) {
  test(`exports request - hostile mtu refused by the schema, nothing stored: ${title}`, async (t) => {
    const { store, fed } = await setup(['madrid']);
    await fed.setExports('madrid', ['cdn'], [{ network: 'cdn', capacity: 1370 }]);
    const writes = store.writes;
    const body = new TextEncoder().encode(JSON.stringify({ networks: ['cdn'], mtu }));
    const reply = await handleRequest(fed, 'l2fed.v1.madrid.exports', body, 1 << 20);
    t.false(reply.ok);
    if (reply.ok) return;
    t.is(reply.error.code, 'INVALID_REQUEST');
    t.is(reply.error.field, field, reply.error.message);
    t.is(store.writes, writes, 'nothing written');
  });
}

test('exports request - the wire form: asks in, agreed MTU out', async (t) => {
  const { fed } = await setup(['madrid']);
  const body = { networks: ['cdn'], mtu: [{ network: 'cdn', requested: 1280, capacity: 1370 }] };
  const reply = await handleRequest(
    fed,
    'l2fed.v1.madrid.exports',
    new TextEncoder().encode(JSON.stringify(body)),
    1 << 20,
  );
  t.true(reply.ok);
  if (!reply.ok) return;
  t.deepEqual((reply.result as { networks: unknown[] }).networks, [
    {
      name: 'cdn',
      vni: (reply.result as { networks: { vni: number }[] }).networks[0]!.vni,
      mtu: { value: 1280, setBy: 'madrid', limit: 'requested' },
    },
  ]);
});

test('exports - property over the broker: after any sequence of asks, joins and leaves, every member map carries the minimum of the current asks', async (t) => {
  const ids = ['a', 'b', 'c'] as const;
  const mtu = fc.integer({ min: 1280, max: 1500 });
  const step = fc.record({
    id: fc.constantFrom(...ids),
    // undefined: the cluster stops exporting cdn; null: an older agent (no ask).
    ask: fc.option(
      fc.option(fc.record({ requested: fc.option(mtu, { nil: undefined }), capacity: mtu }), {
        nil: null,
      }),
      { nil: undefined },
    ),
  });
  await checkProperty(
    t,
    'broker agreement',
    fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 8 }), async (steps) => {
      const { store, fed } = await setup(ids);
      const current = new Map<string, { requested?: number; capacity: number } | null>();
      for (const s of steps) {
        if (s.ask === undefined) {
          await fed.setExports(s.id, []);
          current.delete(s.id);
        } else {
          const ask = s.ask === null ? undefined : [{ network: 'cdn', ...s.ask }];
          await fed.setExports(s.id, ['cdn'], ask);
          current.set(s.id, s.ask);
        }
      }
      // Independent: the smallest number any current member asked.
      const asks = [...current.values()].filter((a) => a !== null);
      const want = asks.length
        ? Math.min(...asks.flatMap((a) => [a.capacity, a.requested ?? Infinity]))
        : undefined;
      for (const id of current.keys()) {
        const got = (await mapMtu(store, id, 'cdn'))?.value;
        if (got !== want) return false;
      }
      return true;
    }),
    { defaultRuns: 100 },
  );
});

test('reconcile - recomputes an agreement a replica left stale (died between the ask and the recompute)', async (t) => {
  const { store, fed } = await setup(['a', 'b']);
  await fed.setExports('a', ['cdn'], [{ network: 'cdn', capacity: 1370 }]);
  await fed.setExports('b', ['cdn'], [{ network: 'cdn', capacity: 1370 }]);
  // What a replica that died right after writing b's new ask leaves behind.
  await fed.mtus.recordAsk('cdn', 'b', { requested: 1280, capacity: 1370 });
  t.is((await mapMtu(store, 'a', 'cdn'))?.value, 1370);
  await fed.reconcile();
  t.deepEqual(await mapMtu(store, 'a', 'cdn'), { value: 1280, setBy: 'b', limit: 'requested' });
});
