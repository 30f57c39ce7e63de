/**
 * AdminKvOps over a broker Store (FakeKvStore in unit tests), so an admin action and
 * the allocators can run against one in-memory KV and interleave as they would on
 * JetStream. Same semantics as AdminKv: keys listed sorted, CAS and delete by revision.
 */
import { BUCKETS, type BucketId } from '../records.js';
import type { Store } from '../kv-store.js';
import type { AdminKvOps, KvItem } from './kv.js';

const BUCKET_IDS = new Map<string, BucketId>(
  Object.entries(BUCKETS).map(([id, name]) => [name, id as BucketId]),
);

function bucketId(bucket: string): BucketId {
  const id = BUCKET_IDS.get(bucket);
  if (!id) throw new Error(`fake admin KV: no broker bucket named "${bucket}"`);
  return id;
}

/** The admin API's view of `store`. */
export function adminKvOver(store: Store): AdminKvOps {
  const get = async <T>(bucket: string, key: string): Promise<KvItem<T> | undefined> => {
    const v = await store.get<T>(bucketId(bucket), key);
    return v && { key, value: v.value, revision: v.revision };
  };
  return {
    get,
    async list<T>(bucket: string, filter = '>') {
      const keys = (await store.keys(bucketId(bucket), filter)).sort();
      const items = await Promise.all(keys.map((k) => get<T>(bucket, k)));
      return items.filter((i): i is KvItem<T> => i !== undefined);
    },
    async cas(bucket, key, value, revision) {
      return (await store.cas(bucketId(bucket), key, value, revision)).type === 'ok';
    },
    delete: (bucket, key, revision) => store.delete(bucketId(bucket), key, revision),
  };
}
