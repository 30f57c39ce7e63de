/**
 * coalesceReads: concurrent reads of one key share a read, but never one issued before
 * the caller's own call (a write that finished before the call is always seen).
 */
import test from 'ava';
import { coalesceReads, type Store } from './kv-store.js';
import { FakeKvStore } from './kv-store-fake.js';
import type { BucketId } from './records.js';

/** A fake whose reads wait until released, to order them against writes by hand. */
function gated() {
  // No jitter: a read takes its value one turn after it is issued, in call order.
  const fake = new FakeKvStore({ jitter: false });
  const gates: (() => void)[] = [];
  let reads = 0;
  const store: Store = {
    ...(Object.fromEntries(
      (['get', 'cas', 'create', 'put', 'delete', 'keys'] as const).map((m) => [
        m,
        (...a: unknown[]) => (fake[m] as (...x: unknown[]) => unknown).apply(fake, a),
      ]),
    ) as Omit<Store, 'read'>),
    read: (async (bucket: BucketId, key: string) => {
      reads++;
      // The value is taken when the read is issued, as a server would serve it.
      const r = fake.read(bucket, key);
      await new Promise<void>((resolve) => gates.push(resolve));
      return r;
    }) as Store['read'],
  };
  const open = async () => {
    await new Promise((r) => setImmediate(r));
    gates.splice(0).forEach((g) => g());
    await new Promise((r) => setImmediate(r));
  };
  return { fake, store, open, reads: () => reads };
}

test('coalesce - a read started after a write sees it, though an older read is in flight', async (t) => {
  const g = gated();
  const s = coalesceReads(g.store);
  await g.fake.put('health', 'a', { n: 1 });
  const first = s.get<{ n: number }>('health', 'a');
  await new Promise((r) => setImmediate(r));
  await g.fake.put('health', 'a', { n: 2 });
  const second = s.get<{ n: number }>('health', 'a');
  const third = s.get<{ n: number }>('health', 'a');
  await g.open();
  await g.open();
  t.is((await first)?.value.n, 1);
  t.is((await second)?.value.n, 2, 'not the read issued before the write');
  t.is((await third)?.value.n, 2);
  t.is(g.reads(), 2, 'second and third share one read');
});

test('coalesce - a failed read fails every caller sharing it, and the next read is fresh', async (t) => {
  const fake = new FakeKvStore();
  let calls = 0;
  const store: Store = {
    get: (b, k) => fake.get(b, k),
    read: async (b, k) => {
      await new Promise((r) => setImmediate(r));
      if (++calls === 1) throw new Error('lost reply');
      return fake.read(b, k);
    },
    cas: (...a) => fake.cas(...a),
    create: (...a) => fake.create(...a),
    put: (...a) => fake.put(...a),
    delete: (...a) => fake.delete(...a),
    keys: (...a) => fake.keys(...a),
  };
  const s = coalesceReads(store);
  const both = [s.get('health', 'a'), s.get('health', 'a')];
  await t.throwsAsync(both[0]!, { message: 'lost reply' });
  t.is(await both[1], undefined, 'the second caller got the read issued after the first');
  await fake.put('health', 'a', { n: 3 });
  t.deepEqual((await s.get('health', 'a'))?.value, { n: 3 });
});
