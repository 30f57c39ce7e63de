/**
 * KvStore's decode of values read: a read at a revision this store already decoded
 * returns that value without decoding it again (issue 15: JSON decode was the largest
 * broker-owned item in a replica's CPU profile, and most reads repeat a revision).
 * Runs on a stand-in for nats.js's KV handle, counting how often a value is decoded.
 */
import test from 'ava';
import type { JetStreamClient, KV, KvEntry } from 'nats';
import { KvStore } from './kv-store.js';

interface Stored {
  bytes: Uint8Array;
  revision: number;
  created: Date;
  operation: 'PUT' | 'DEL';
}

/** One bucket's handle as KvStore uses it: get and put, with a count of value decodes. */
function fakeKv() {
  const data = new Map<string, Stored>();
  let seq = 0;
  let decodes = 0;
  const kv = {
    get: (key: string): Promise<KvEntry | null> => {
      const s = data.get(key);
      if (!s) return Promise.resolve(null);
      const entry = {
        bucket: 'b',
        key,
        revision: s.revision,
        created: s.created,
        operation: s.operation,
        delta: 0,
        length: s.bytes.length,
        // Reading the bytes is the start of a decode.
        get value() {
          decodes++;
          return s.bytes;
        },
      };
      return Promise.resolve(entry as unknown as KvEntry);
    },
    put: (key: string, value: string): Promise<number> => {
      data.set(key, {
        bytes: new TextEncoder().encode(value),
        revision: ++seq,
        created: new Date(),
        operation: 'PUT',
      });
      return Promise.resolve(seq);
    },
  };
  return {
    kv,
    data,
    decodes: () => decodes,
    /** As after the stream was recreated: sequences start again at 1. */
    restartSequence: () => (seq = 0),
  };
}

async function open() {
  const f = fakeKv();
  const js = { views: { kv: () => Promise.resolve(f.kv as unknown as KV) } };
  const store = await KvStore.open(js as unknown as JetStreamClient, {
    replicas: 1,
    storage: 'memory',
  });
  return { store, ...f };
}

test('kv-store - a read at a revision already decoded is not decoded again', async (t) => {
  const { store, decodes } = await open();
  await store.put('clusters', 'a', { id: 'a', endpoints: ['198.18.0.1:1'] });
  const first = await store.get('clusters', 'a');
  const second = await store.get('clusters', 'a');
  const third = await store.read('clusters', 'a');
  t.deepEqual(first?.value, { id: 'a', endpoints: ['198.18.0.1:1'] });
  t.is(decodes(), 1, 'one decode for three reads of one revision');
  t.is(second?.value, first?.value, 'the decoded value is shared (values read are never mutated)');
  t.is(third.value, first?.value);
});

test('kv-store - a new revision is decoded; keys and buckets never share a value', async (t) => {
  const { store, decodes } = await open();
  await store.put('clusters', 'a', { v: 1 });
  t.deepEqual((await store.get('clusters', 'a'))?.value, { v: 1 });
  await store.put('clusters', 'a', { v: 2 });
  t.deepEqual((await store.get('clusters', 'a'))?.value, { v: 2 });
  // Every bucket here is the same fake handle, so key 'a' of exports is the same entry:
  // still decoded on its own, as it is another record.
  t.deepEqual((await store.get('exports', 'a'))?.value, { v: 2 });
  await store.put('clusters', 'b', { v: 3 });
  t.deepEqual((await store.get('clusters', 'b'))?.value, { v: 3 });
  t.is(decodes(), 4);
});

test('kv-store - the same revision written at another time (stream recreated) is decoded again', async (t) => {
  const { store, restartSequence, data } = await open();
  await store.put('clusters', 'a', { v: 'old' });
  t.deepEqual((await store.get('clusters', 'a'))?.value, { v: 'old' });
  restartSequence();
  await new Promise((r) => setTimeout(r, 5));
  await store.put('clusters', 'a', { v: 'new' });
  t.is(data.get('a')?.revision, 1);
  t.deepEqual((await store.get('clusters', 'a'))?.value, { v: 'new' });
});

test('kv-store - decoded values are bounded: the least recently read go first', async (t) => {
  const { store, decodes } = await open();
  await store.put('clusters', 'hot', { v: 'hot' });
  await store.put('clusters', 'cold', { v: 'cold' });
  await store.get('clusters', 'cold');
  await store.get('clusters', 'hot');
  // More distinct keys than the store keeps decoded, the hot one read in between.
  for (let i = 0; i < KvStore.DECODED_MAX; i++) {
    await store.put('clusters', `k${i}`, { i });
    await store.get('clusters', `k${i}`);
    if (i % 1000 === 0) await store.get('clusters', 'hot');
  }
  const before = decodes();
  await store.get('clusters', 'hot');
  t.is(decodes(), before, 'recently read: still decoded');
  t.deepEqual((await store.get('clusters', 'cold'))?.value, { v: 'cold' });
  t.is(decodes(), before + 1, 'least recently read: dropped, decoded again');
});
