import test from 'ava';
import { FakeKvStore } from './kv-store-fake.js';
import { VniAllocator } from './vni-allocator.js';
import { resolveConfig } from './config.js';
import { KEYS, type NetworkRecord, type VniClaim } from './records.js';
import { PoolExhaustedError, StoreUnavailableError } from './errors.js';

function setup(config: Parameters<typeof resolveConfig>[0] = {}) {
  const store = new FakeKvStore();
  const clock = { now: 1_000_000 };
  const alloc = new VniAllocator(store, resolveConfig(config), () => clock.now);
  return { store, clock, alloc };
}

test('vni - racing joins: one VNI per name, never shared, spare claims cleaned up', async (t) => {
  const { store, alloc } = setup({ vniRange: { first: 10, last: 40 } });
  const names = Array.from({ length: 10 }, (_, i) => `n${i}`);
  const got = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      alloc.join(names[i % 10]!, `c${i}`).then((v) => [names[i % 10]!, v] as const),
    ),
  );
  const by = new Map<string, Set<number>>();
  for (const [n, v] of got) by.set(n, (by.get(n) ?? new Set()).add(v));
  for (const s of by.values()) t.is(s.size, 1);
  t.is(new Set([...by.values()].map((s) => [...s][0])).size, 10);
  t.is((await store.keys('networks', 'vni.*')).length, 10);
});

test('vni - join and leave interleaved: an exported name always has a bound VNI', async (t) => {
  const { store, alloc } = setup({ vniRange: { first: 1, last: 1000 }, vniQuarantineMs: 0 });
  const members = ['a', 'b', 'c', 'd'];
  for (let round = 0; round < 60; round++) {
    const ops = members.map((m) =>
      Math.random() < 0.5
        ? alloc.join('red', m).then((vni) => ({ m, vni }))
        : alloc.leave('red', m).then(() => ({ m, vni: undefined })),
    );
    const res = await Promise.all(ops);
    const net = await store.get<NetworkRecord>('networks', KEYS.network('red'));
    const joined = res.filter((r) => r.vni !== undefined);
    const live = await store.keys('networks', KEYS.membersOf('red'));
    if (live.length > 0) t.truthy(net, `round ${round}: members exist, so the name is bound`);
    // Everybody who joined in this round got the binding that is in force now.
    for (const r of joined)
      t.is<number | undefined, number | undefined>(r.vni, net?.value.vni, `round ${round}`);
  }
});

test('vni - released VNI is quarantined and reused only after the quarantine', async (t) => {
  const { alloc, clock } = setup({ vniRange: { first: 7, last: 7 }, vniQuarantineMs: 60_000 });
  t.is(await alloc.join('red', 'x'), 7);
  await alloc.leave('red', 'x');
  await t.throwsAsync(alloc.join('blue', 'x'), { instanceOf: PoolExhaustedError });
  clock.now += 60_000;
  t.is(await alloc.join('blue', 'x'), 7);
});

test('vni - a lost reply on the binding write does not leak or change the VNI', async (t) => {
  const { store, alloc } = setup();
  store.failNextWrite(KEYS.network('red'), true);
  await t.throwsAsync(alloc.join('red', 'x'), { instanceOf: StoreUnavailableError });
  const bound = await store.get<NetworkRecord>('networks', KEYS.network('red'));
  t.is(await alloc.join('red', 'x'), bound!.value.vni, 'the retry returns the landed binding');
  t.is((await store.keys('networks', 'vni.*')).length, 1);
});

test('vni - an abandoned claim is quarantined after the grace period, then reused', async (t) => {
  const { store, alloc, clock } = setup({
    vniRange: { first: 5, last: 5 },
    claimGraceMs: 1000,
    vniQuarantineMs: 5000,
  });
  // A replica died between claim and bind.
  const orphan: VniClaim = {
    state: 'active',
    network: 'ghost',
    claimedAt: new Date(clock.now).toISOString(),
    nonce: 'dead',
  };
  await store.create('networks', KEYS.vni(5), orphan);
  await t.throwsAsync(alloc.join('red', 'x'), { instanceOf: PoolExhaustedError });
  clock.now += 1000;
  await t.throwsAsync(alloc.join('red', 'x'), { instanceOf: PoolExhaustedError });
  t.is((await store.get<VniClaim>('networks', KEYS.vni(5)))?.value.state, 'quarantined');
  clock.now += 5000;
  t.is(await alloc.join('red', 'x'), 5);
});
