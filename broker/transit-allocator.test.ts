import test from 'ava';
import { FakeKvStore } from './kv-store-fake.js';
import { TransitAllocator } from './transit-allocator.js';
import { Federation } from './federation.js';
import { resolveConfig } from './config.js';
import { PoolExhaustedError } from './errors.js';
import { KEYS, type BucketId, type ClusterRecord, type TransitClaim } from './records.js';

const GRACE = 1000;
const T0 = Date.parse('2025-01-01T00:00:00Z');
const at = (ms: number) => new Date(ms).toISOString();
const KEY_A = 'x4gOZYP7gYK/0dBhgSvq7+nIu9ygrsAx6gqwmjXzT0I=';

const record = (id: string, transitAddress: string, nonce: string): ClusterRecord => ({
  id,
  publicKey: KEY_A,
  endpoints: [],
  capabilities: [],
  transitAddress,
  registeredAt: at(T0),
  nonce,
});

test('transit - an old claim on an address its cluster record names is never reclaimed, whatever its nonce', async (t) => {
  const store = new FakeKvStore();
  const config = resolveConfig({ transitPool: '100.64.0.0/30', claimGraceMs: GRACE });
  const alloc = new TransitAllocator(store, config, () => T0 + 10 * GRACE);
  // .1: a's record names it, with another nonce than the claim's; .2: held by b as usual.
  const claim = (cluster: string, nonce: string): TransitClaim => ({
    cluster,
    claimedAt: at(T0),
    nonce,
  });
  await store.create('transit', KEYS.transit('100.64.0.1'), claim('a', 'old'));
  await store.create('clusters', 'a', record('a', '100.64.0.1', 'new'));
  await store.create('transit', KEYS.transit('100.64.0.2'), claim('b', 'nb'));
  await store.create('clusters', 'b', record('b', '100.64.0.2', 'nb'));
  await t.throwsAsync(alloc.claim('c', 'nc'), { instanceOf: PoolExhaustedError });
});

/** A FakeKvStore that runs `after` once a delete of `key` in `bucket` has landed. */
class AfterDelete extends FakeKvStore {
  after: (bucket: BucketId, key: string) => Promise<void> = () => Promise.resolve();
  override async delete(bucket: BucketId, key: string, revision?: number) {
    const r = await super.delete(bucket, key, revision);
    await this.after(bucket, key);
    return r;
  }
}

test('transit - deregister keeps the claim of a re-registration that ran after the record was deleted', async (t) => {
  const store = new AfterDelete();
  const clock = { now: T0 };
  const config = resolveConfig({ transitPool: '100.64.0.0/30', claimGraceMs: GRACE });
  const fed = new Federation(store, config, () => clock.now);
  const reg = { publicKey: KEY_A, endpoints: ['198.18.0.1:51820'], capabilities: [] };
  const first = await fed.register('a', reg);
  clock.now += 2 * GRACE; // the claim is old: once the record is gone it is abandoned
  let again: Promise<unknown> | undefined;
  store.after = async (bucket, key) => {
    if (bucket !== 'clusters' || key !== 'a' || again) return;
    // The agent syncs again between the record's delete and the release of its address.
    again = fed.register('a', reg);
    await again;
  };
  await fed.deregister('a');
  await again;
  const rec = await store.get<ClusterRecord>('clusters', 'a');
  t.is(rec?.value.transitAddress, first.cluster.transitAddress);
  const claim = await store.get<TransitClaim>('transit', KEYS.transit(rec!.value.transitAddress));
  t.is(claim?.value.nonce, rec!.value.nonce, 'the re-registered record still holds its claim');
});
