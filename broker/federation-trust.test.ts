/**
 * What one cluster cannot do to the others through the broker's own operations: take
 * another cluster's WireGuard public key on any path, or use more than its share of
 * the federation's resources. Fake KV; each refusal leaves the store byte-identical.
 */
import test from 'ava';
import { FakeKvStore } from './kv-store-fake.js';
import { Federation } from './federation.js';
import { resolveConfig, type BrokerConfigInput } from './config.js';
import { KeyInUseError, QuotaExceededError } from './errors.js';
import { BUCKETS, type BucketId, type PeerMap } from './records.js';

const KEY_A = 'x4gOZYP7gYK/0dBhgSvq7+nIu9ygrsAx6gqwmjXzT0I=';
const KEY_B = 'pD4zZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=';
const KEY_C = 'kP3oZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=';
const reg = (publicKey: string, endpoints = ['198.18.0.1:51820']) => ({
  publicKey,
  endpoints,
  capabilities: [],
});

function setup(config: BrokerConfigInput = {}, now?: () => number) {
  const store = new FakeKvStore();
  const fed = new Federation(
    store,
    resolveConfig({ transitPool: '100.64.0.0/24', ...config }),
    now,
  );
  return { store, fed };
}

/** Every live key and value of every bucket, sorted: equal dumps = nothing changed. */
async function dump(store: FakeKvStore): Promise<string> {
  const out: string[] = [];
  for (const bucket of Object.keys(BUCKETS) as BucketId[]) {
    for (const key of (await store.keys(bucket, '>')).sort()) {
      const v = await store.get(bucket, key);
      out.push(`${bucket}/${key}@${v?.revision} ${JSON.stringify(v?.value)}`);
    }
  }
  return out.join('\n');
}

const inUse = { instanceOf: KeyInUseError, message: /already registered by another cluster/ };

test("keys - register with another cluster's public key is refused; nothing changes", async (t) => {
  const { fed, store } = setup();
  await fed.register('a', reg(KEY_A));
  await fed.register('b', reg(KEY_B));
  const before = await dump(store);
  const err = await t.throwsAsync(fed.register('c', reg(KEY_B)), inUse);
  t.is(err?.code, 'KEY_IN_USE');
  t.is(err?.field, 'publicKey');
  t.notRegex(err.message, /"b"/, 'the holder is not named to the requester');
  t.is(await dump(store), before);
});

test("keys - re-register after deregister with a peer's key (read from its own peer map) is refused", async (t) => {
  const { fed, store } = setup();
  await fed.register('a', reg(KEY_A));
  await fed.register('b', reg(KEY_B));
  await fed.register('c', reg(KEY_C));
  for (const id of ['a', 'b', 'c']) await fed.setExports(id, ['cdn']);
  await fed.setPeerings('a', [{ remoteCluster: 'b' }]);
  await fed.setPeerings('b', [{ remoteCluster: 'a' }, { remoteCluster: 'c' }]);
  await fed.setPeerings('c', [{ remoteCluster: 'b' }]);
  const stolen = (await store.get<PeerMap>('peerMaps', 'a'))!.value.peers[0]!.publicKey;
  t.is(stolen, KEY_B);
  await fed.deregister('a');
  const before = await dump(store);
  await t.throwsAsync(fed.register('a', reg(stolen)), inUse);
  t.is(await dump(store), before, 'nothing written, no address claimed');
  // a may come back with its own key, and c's map still names b by b's key only.
  await fed.register('a', reg(KEY_A));
  const cMap = (await store.get<PeerMap>('peerMaps', 'c'))!.value;
  t.deepEqual(
    cMap.peers.map((p) => p.publicKey),
    [KEY_B],
  );
});

test("keys - rotate-key to another cluster's key is refused; the old key is released on rotation", async (t) => {
  const { fed, store } = setup();
  await fed.register('a', reg(KEY_A));
  await fed.register('b', reg(KEY_B));
  const before = await dump(store);
  await t.throwsAsync(fed.rotateKey('a', { previousKey: KEY_A, publicKey: KEY_B }), inUse);
  t.is(await dump(store), before);
  await fed.rotateKey('a', { previousKey: KEY_A, publicKey: KEY_C });
  // KEY_A is free again: another cluster may take it; KEY_C is a's now.
  await fed.register('d', reg(KEY_A));
  await t.throwsAsync(fed.register('e', reg(KEY_C)), inUse);
});

test('keys - deregister releases the key for any cluster', async (t) => {
  const { fed } = setup();
  await fed.register('a', reg(KEY_A));
  await fed.deregister('a');
  t.true((await fed.register('b', reg(KEY_A))).created);
});

test('keys - racing registrations of one key by different clusters: exactly one wins', async (t) => {
  for (let round = 0; round < 20; round++) {
    const { fed, store } = setup();
    const ids = ['a', 'b', 'c', 'd'];
    const res = await Promise.allSettled(ids.map((id) => fed.register(id, reg(KEY_A))));
    const won = res.filter((r) => r.status === 'fulfilled');
    t.is(won.length, 1, `round ${round}: one winner`);
    for (const r of res)
      if (r.status === 'rejected') t.true(r.reason instanceof KeyInUseError, String(r.reason));
    t.is((await store.keys('clusters', '>')).length, 1);
    t.is((await store.keys('transit', '>')).length, 1, 'losers released their addresses');
    t.is((await store.keys('publicKeys', '>')).length, 1, 'one key claim');
  }
});

test('keys - a key claim left by a crashed registration is reaped after the grace period', async (t) => {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const { fed, store } = setup({ claimGraceMs: 1000 }, () => now);
  await fed.register('a', reg(KEY_A));
  // a's record vanishes without its claim (a replica died mid-deregistration).
  await store.delete('clusters', 'a');
  await t.throwsAsync(fed.register('b', reg(KEY_A)), inUse);
  now += 1001;
  t.true((await fed.register('b', reg(KEY_A))).created);
});

test('keys - reconcile backfills claims of clusters registered before the index existed', async (t) => {
  const { fed, store } = setup();
  await fed.register('a', reg(KEY_A));
  for (const k of await store.keys('publicKeys', '>')) await store.delete('publicKeys', k);
  await fed.reconcile();
  await t.throwsAsync(fed.register('b', reg(KEY_A)), inUse);
});

const quota = (limit: string) => ({
  instanceOf: QuotaExceededError,
  message: new RegExp(`broker setting ${limit} = \\d+`),
});

test('quotas - more exported networks than maxExportsPerCluster is refused; nothing changes', async (t) => {
  const { fed, store } = setup({ maxExportsPerCluster: 3 });
  await fed.register('a', reg(KEY_A));
  await fed.setExports('a', ['n0', 'n1', 'n2']);
  const before = await dump(store);
  const err = await t.throwsAsync(
    fed.setExports('a', ['n0', 'n1', 'n2', 'n3']),
    quota('maxExportsPerCluster'),
  );
  t.is(err?.code, 'QUOTA_EXCEEDED');
  t.is(err?.field, 'networks');
  t.regex(err.message, /at most 3 networks/);
  t.is(await dump(store), before);
});

test('quotas - churning exports cannot exhaust the VNI pool for the others', async (t) => {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const quarantine = 10 * 60_000;
  const { fed, store } = setup(
    {
      vniRange: { first: 100, last: 111 }, // 12 VNIs
      vniQuarantineMs: quarantine,
      maxVniAllocationsPerCluster: 4,
    },
    () => now,
  );
  await fed.register('a', reg(KEY_A));
  await fed.register('b', reg(KEY_B));
  await fed.setExports('a', ['n0', 'n1', 'n2', 'n3']);
  // Dropping them quarantines 4 VNIs; new names would allocate 4 more: refused at once.
  const before = await dump(store);
  const err = await t.throwsAsync(
    fed.setExports('a', ['m0', 'm1', 'm2', 'm3']),
    quota('maxVniAllocationsPerCluster'),
  );
  t.regex(err.message, /4 new VNIs/);
  t.is(await dump(store), before, 'nothing joined, nothing released');
  // Joining a network that already exists allocates nothing and is always fine.
  await fed.setExports('b', ['shared']);
  await fed.setExports('a', ['n0', 'n1', 'n2', 'n3', 'shared']);
  await fed.setExports('a', ['shared']); // churn: n0..n3 quarantined
  // b still gets VNIs (12 - 4 quarantined - 1 shared leave 7), within its own quota.
  const b = await fed.setExports('b', ['shared', 'b0', 'b1', 'b2']);
  t.is(new Set(b.networks.map((n) => n.vni)).size, 4);
  // After the quarantine window a may allocate again.
  now += quarantine + 1;
  t.is((await fed.setExports('a', ['shared', 'm0'])).networks.length, 2);
});

test('quotas - more peerings than maxPeeringsPerCluster is refused; nothing changes', async (t) => {
  const { fed, store } = setup({ maxPeeringsPerCluster: 2 });
  await fed.register('a', reg(KEY_A));
  await fed.setPeerings('a', [{ remoteCluster: 'b' }]);
  const before = await dump(store);
  const err = await t.throwsAsync(
    fed.setPeerings(
      'a',
      ['b', 'c', 'd'].map((remoteCluster) => ({ remoteCluster })),
    ),
    quota('maxPeeringsPerCluster'),
  );
  t.is(err?.field, 'peerings');
  t.regex(err.message, /at most 2 peerings/);
  t.is(await dump(store), before);
});
