import test from 'ava';
import { FakeKvStore } from '../kv-store-fake.js';
import { VniAllocator } from '../vni-allocator.js';
import { Federation } from '../federation.js';
import { resolveConfig } from '../config.js';
import { PoolExhaustedError } from '../errors.js';
import { FailedPreconditionError } from './errors.js';
import { adminKvOver } from './kv-fake.js';
import { releaseTransit, releaseVni } from './release.js';
import type { BucketId, ClusterRecord, TransitClaim, VniClaim } from '../records.js';
import { KEYS } from '../records.js';

const GRACE = 30_000;
const T0 = Date.parse('2025-01-01T00:00:00Z');

function setup() {
  const store = new FakeKvStore({ jitter: false });
  const clock = { now: T0 };
  const ctx = { now: () => clock.now, claimGraceMs: GRACE };
  return { store, clock, ctx, kv: adminKvOver(store) };
}

const at = (ms: number) => new Date(ms).toISOString();
const active = (network: string, claimedAt: number): VniClaim => ({
  state: 'active',
  network,
  claimedAt: at(claimedAt),
  nonce: 'n1',
});

test('release vni - a fresh active claim nobody is bound to yet is refused and kept; released after the grace', async (t) => {
  const { store, clock, ctx, kv } = setup();
  await store.create('networks', KEYS.vni(5001), active('x', T0 - 3000));
  const err = await t.throwsAsync(releaseVni(ctx, kv, 5001), {
    instanceOf: FailedPreconditionError,
  });
  t.regex(
    err.message,
    /^VNI 5001's claim for network "x" is 3 s old: a bind may be in progress .*retry after 2025-01-01T00:00:27\.000Z \(in 27 s\), or check whether it got bound: l2fed describe network x$/,
  );
  t.is((await store.get<VniClaim>('networks', KEYS.vni(5001)))?.value.state, 'active');

  clock.now = T0 - 3000 + GRACE;
  t.is(await releaseVni(ctx, kv, 5001), 'released active claim of VNI 5001 (was x)');
  t.is(await store.get('networks', KEYS.vni(5001)), undefined);
});

test('release vni - a quarantined claim is released at once, an active one of the same age is not', async (t) => {
  const { store, ctx, kv } = setup();
  const quarantined: VniClaim = { state: 'quarantined', network: 'q', releasedAt: at(T0 - 1) };
  await store.create('networks', KEYS.vni(7), quarantined);
  await store.create('networks', KEYS.vni(8), active('a', T0 - 1));
  t.is(await releaseVni(ctx, kv, 7), 'released quarantined claim of VNI 7 (was q)');
  await t.throwsAsync(releaseVni(ctx, kv, 8), { instanceOf: FailedPreconditionError });
  t.truthy(await store.get('networks', KEYS.vni(8)));
});

/** A FakeKvStore that runs `hook` before each create (the allocators' binding writes). */
class HookedStore extends FakeKvStore {
  hook: (bucket: BucketId, key: string) => Promise<void> = () => Promise.resolve();
  override async create(bucket: BucketId, key: string, value: unknown) {
    await this.hook(bucket, key);
    return super.create(bucket, key, value);
  }
}

test('release vni - a release between claim and bind is refused: the VNI is never handed out twice', async (t) => {
  const store = new HookedStore({ jitter: false });
  const config = resolveConfig({ vniRange: { first: 5001, last: 5001 }, claimGraceMs: GRACE });
  const alloc = new VniAllocator(store, config, () => T0);
  const ctx = { now: () => T0, claimGraceMs: GRACE };
  let admin: Promise<string> | undefined;
  store.hook = async (bucket, key) => {
    if (bucket !== 'networks' || key !== KEYS.network('x') || admin) return;
    // The claim is written, the binding is not: what an admin release can see.
    admin = releaseVni(ctx, adminKvOver(store), 5001);
    await admin.catch(() => undefined);
  };
  t.is(await alloc.join('x', 'c1'), 5001);
  await t.throwsAsync(admin!, { instanceOf: FailedPreconditionError });
  const claim = await store.get<VniClaim>('networks', KEYS.vni(5001));
  t.is(claim?.value.network, 'x', 'the bound network still holds its claim');
  await t.throwsAsync(alloc.join('y', 'c2'), { instanceOf: PoolExhaustedError });
});

const KEYS_WG = [
  'x4gOZYP7gYK/0dBhgSvq7+nIu9ygrsAx6gqwmjXzT0I=',
  'pD4zZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=',
  'kP3oZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=',
];
const reg = (i: number) => ({
  publicKey: KEYS_WG[i]!,
  endpoints: [`198.18.0.${i + 1}:51820`],
  capabilities: [],
});

test('release transit - a fresh claim with no cluster record yet is refused and kept; released after the grace', async (t) => {
  const { store, clock, ctx, kv } = setup();
  const claim: TransitClaim = { cluster: 'a', claimedAt: at(T0 - 1000), nonce: 'n1' };
  await store.create('transit', KEYS.transit('100.64.0.1'), claim);
  const err = await t.throwsAsync(releaseTransit(ctx, kv, '100.64.0.1'), {
    instanceOf: FailedPreconditionError,
  });
  t.regex(
    err.message,
    /^transit address 100\.64\.0\.1's claim for cluster "a" is 1 s old: a bind may be in progress .*\(in 29 s\), or check whether it got bound: l2fed describe cluster a$/,
  );
  t.truthy(await store.get('transit', KEYS.transit('100.64.0.1')));
  clock.now = T0 - 1000 + GRACE;
  t.is(
    await releaseTransit(ctx, kv, '100.64.0.1'),
    'released transit address 100.64.0.1 (was claimed by a)',
  );
});

test("release transit - an old claim its cluster's registration holds by nonce is kept, as the allocator keeps it", async (t) => {
  const { store, ctx, kv } = setup();
  // Cluster a's record names .2 but carries the nonce of the claim on .1.
  const claim: TransitClaim = { cluster: 'a', claimedAt: at(T0 - 10 * GRACE), nonce: 'n1' };
  await store.create('transit', KEYS.transit('100.64.0.1'), claim);
  const rec: ClusterRecord = {
    id: 'a',
    publicKey: KEYS_WG[0]!,
    endpoints: [],
    capabilities: [],
    transitAddress: '100.64.0.2',
    registeredAt: at(T0 - 10 * GRACE),
    nonce: 'n1',
  };
  await store.create('clusters', 'a', rec);
  const err = await t.throwsAsync(releaseTransit(ctx, kv, '100.64.0.1'), {
    instanceOf: FailedPreconditionError,
  });
  t.regex(
    err.message,
    /held by the registration of cluster "a".*once a is deregistered \(l2fed evict a --reason …\) it can be released here/,
  );
  t.truthy(await store.get('transit', KEYS.transit('100.64.0.1')));
});

test('release transit - a release between claim and cluster record is refused: the address is never handed out twice', async (t) => {
  const store = new HookedStore({ jitter: false });
  const fed = new Federation(
    store,
    resolveConfig({ transitPool: '100.64.0.0/30', claimGraceMs: GRACE }),
    () => T0,
  );
  const ctx = { now: () => T0, claimGraceMs: GRACE };
  let admin: Promise<string> | undefined;
  store.hook = async (bucket, key) => {
    if (bucket !== 'clusters' || key !== 'a' || admin) return;
    // The transit claim is written, the cluster record is not.
    const [claimed] = await store.keys('transit', '>');
    admin = releaseTransit(ctx, adminKvOver(store), claimed!.replaceAll('-', '.'));
    await admin.catch(() => undefined);
  };
  const a = await fed.register('a', reg(0));
  await t.throwsAsync(admin!, { instanceOf: FailedPreconditionError });
  const b = await fed.register('b', reg(1));
  t.not(b.cluster.transitAddress, a.cluster.transitAddress);
  // The /30 pool has two addresses, both held now.
  await t.throwsAsync(fed.register('c', reg(2)), { instanceOf: PoolExhaustedError });
});
