/**
 * The announce / acknowledge / commit rotation on the broker (key-rotation.ts), over the
 * in-memory store: peers learn the next key before the rotating cluster switches, acks
 * are checked (only a peer that was told the key, only for the key announced now), and a
 * refused ack changes nothing.
 */
import test from 'ava';
import { FakeKvStore } from './kv-store-fake.js';
import { Federation } from './federation.js';
import { resolveConfig } from './config.js';
import { KeyInUseError, NotRegisteredError, toErrorBody } from './errors.js';
import { BUCKETS, KEYS, type BucketId, type ClusterRecord, type PeerMap } from './records.js';
import { handleRequest } from './request-handler.js';

const KEY_A = 'x4gOZYP7gYK/0dBhgSvq7+nIu9ygrsAx6gqwmjXzT0I=';
const KEY_B = 'pD4zZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=';
const KEY_C = 'kP3oZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=';
const KEY_N = 'mB1ZsTJ5fY0yq7VbC3d8k2Lr9hWx4nQe6uPo1aZcXw0=';
const KEY_M = 'd8qybrWZ7bF7LGkGFhINlkloK0uydL5I6KvaA22Rjw8=';

const reg = (publicKey: string, n: number) => ({
  publicKey,
  endpoints: [`198.18.0.${n}:51820`],
  capabilities: [],
});

/** a peers with b and c; d is registered but peers with nobody. */
async function setup(now: () => number = Date.now) {
  const store = new FakeKvStore();
  const fed = new Federation(store, resolveConfig({ transitPool: '100.64.0.0/28' }), now);
  await fed.register('a', reg(KEY_A, 1));
  await fed.register('b', reg(KEY_B, 2));
  await fed.register('c', reg(KEY_C, 3));
  await fed.register('d', reg(KEY_M, 4));
  for (const id of ['a', 'b', 'c', 'd']) await fed.setExports(id, ['cdn']);
  await fed.setPeerings('a', [{ remoteCluster: 'b' }, { remoteCluster: 'c' }]);
  await fed.setPeerings('b', [{ remoteCluster: 'a' }]);
  await fed.setPeerings('c', [{ remoteCluster: 'a' }]);
  const map = async (id: string) => (await store.get<PeerMap>('peerMaps', id))!.value;
  const record = async (id: string) => (await store.get<ClusterRecord>('clusters', id))!.value;
  return { store, fed, map, record };
}

/** Every key and value of every bucket, for "nothing changed" checks. */
async function dump(store: FakeKvStore): Promise<string> {
  const out: Record<string, unknown> = {};
  for (const bucket of Object.keys(BUCKETS) as BucketId[]) {
    for (const key of (await store.keys(bucket, '>')).sort())
      out[`${bucket}/${key}`] = (await store.get(bucket, key))?.value;
  }
  return JSON.stringify(out);
}

test('key rotation - an announced next key reaches every peer map; the old key stays in force', async (t) => {
  const { fed, map, record } = await setup();
  const r = await fed.announceKey('a', { publicKey: KEY_A, nextKey: KEY_N });
  t.true(r.announced);
  t.is((await record('a')).publicKey, KEY_A, 'the registered key is unchanged');
  for (const peer of ['b', 'c']) {
    const entry = (await map(peer)).peers.find((p) => p.cluster === 'a');
    t.is(entry?.publicKey, KEY_A, `${peer} keeps a's key in force`);
    t.is(entry?.nextPublicKey, KEY_N, `${peer} learns a's next key`);
  }
  t.deepEqual((await map('a')).nextKey, { publicKey: KEY_N, heldBy: [] });
  t.false((await fed.announceKey('a', { publicKey: KEY_A, nextKey: KEY_N })).announced, 'repeat');
});

test('key rotation - acks are collected in the rotating cluster map; the commit swaps the key and drops the next one', async (t) => {
  const { fed, map, record, store } = await setup();
  await fed.announceKey('a', { publicKey: KEY_A, nextKey: KEY_N });
  t.true((await fed.ackKey('b', { cluster: 'a', nextKey: KEY_N })).acknowledged);
  t.deepEqual((await map('a')).nextKey, { publicKey: KEY_N, heldBy: ['b'] });
  t.false((await fed.ackKey('b', { cluster: 'a', nextKey: KEY_N })).acknowledged, 'repeat');
  await fed.ackKey('c', { cluster: 'a', nextKey: KEY_N });
  t.deepEqual((await map('a')).nextKey, { publicKey: KEY_N, heldBy: ['b', 'c'] });

  const r = await fed.rotateKey('a', { previousKey: KEY_A, publicKey: KEY_N });
  t.true(r.rotated);
  t.is((await record('a')).publicKey, KEY_N);
  t.is((await record('a')).nextKey, undefined);
  t.is((await map('a')).nextKey, undefined);
  const entry = (await map('b')).peers.find((p) => p.cluster === 'a');
  t.is(entry?.publicKey, KEY_N);
  t.is(entry?.nextPublicKey, undefined, 'peer maps drop the old key and the next one');
  t.is(await store.get('publicKeys', KEYS.publicKey(KEY_A)), undefined, 'old key released');
  t.is(
    (await store.get<{ cluster: string }>('publicKeys', KEYS.publicKey(KEY_N)))?.value.cluster,
    'a',
  );
});

test('key rotation - a next key is reserved: nobody else can register or announce it, and a re-announce releases the first', async (t) => {
  const { fed, store } = await setup();
  await fed.announceKey('a', { publicKey: KEY_A, nextKey: KEY_N });
  await t.throwsAsync(fed.register('e', reg(KEY_N, 5)), { instanceOf: KeyInUseError });
  await t.throwsAsync(fed.announceKey('b', { publicKey: KEY_B, nextKey: KEY_N }), {
    instanceOf: KeyInUseError,
  });
  await t.throwsAsync(fed.announceKey('b', { publicKey: KEY_B, nextKey: KEY_A }), {
    instanceOf: KeyInUseError,
  });
  const other = 'QNzpVs/RNSXR4ujgKXH3PFYc7hDEIBDSEJQaQUvd0Fs=';
  await fed.announceKey('a', { publicKey: KEY_A, nextKey: other });
  t.is(await store.get('publicKeys', KEYS.publicKey(KEY_N)), undefined, 'first next key freed');
  await t.notThrowsAsync(fed.register('e', reg(KEY_N, 5)));
});

test('key rotation - reconcile keeps the claim of an announced next key (not stale)', async (t) => {
  let clock = Date.now();
  const { fed, store } = await setup(() => clock);
  await fed.announceKey('a', { publicKey: KEY_A, nextKey: KEY_N });
  clock += 24 * 3600_000;
  await fed.reconcile();
  t.is(
    (await store.get<{ cluster: string }>('publicKeys', KEYS.publicKey(KEY_N)))?.value.cluster,
    'a',
  );
  await t.throwsAsync(fed.register('e', reg(KEY_N, 5)), { instanceOf: KeyInUseError });
});

test('key rotation - bad announcements are refused with nothing written', async (t) => {
  const { fed, store } = await setup();
  const before = await dump(store);
  await t.throwsAsync(fed.announceKey('z', { publicKey: KEY_A, nextKey: KEY_N }), {
    instanceOf: NotRegisteredError,
  });
  const stale = await t.throwsAsync(fed.announceKey('a', { publicKey: KEY_B, nextKey: KEY_N }));
  t.is(toErrorBody(stale).code, 'KEY_MISMATCH');
  t.is(toErrorBody(stale).field, 'publicKey');
  t.is(await dump(store), before);
});

test('key rotation - bad acks (unknown peer, own key, stale key, unannounced key) get a clear error and change nothing', async (t) => {
  const { fed, store } = await setup();
  await fed.announceKey('a', { publicKey: KEY_A, nextKey: KEY_N });
  await fed.ackKey('b', { cluster: 'a', nextKey: KEY_N });
  const before = await dump(store);
  const cases: [string, Promise<unknown>, RegExp, string][] = [
    // d is registered but does not peer with a: its gateway was never told a's key.
    [
      'unknown peer',
      fed.ackKey('d', { cluster: 'a', nextKey: KEY_N }),
      /not a peer of "d"/,
      'cluster',
    ],
    [
      'nonexistent cluster',
      fed.ackKey('b', { cluster: 'zz', nextKey: KEY_N }),
      /not a peer of "b"/,
      'cluster',
    ],
    ['own key', fed.ackKey('a', { cluster: 'a', nextKey: KEY_N }), /its own/, 'cluster'],
    [
      'stale key',
      fed.ackKey('c', { cluster: 'a', nextKey: KEY_M }),
      /not the next key "a" announces/,
      'nextKey',
    ],
    [
      'key of a cluster not rotating',
      fed.ackKey('a', { cluster: 'b', nextKey: KEY_N }),
      /announces none/,
      'nextKey',
    ],
    [
      'unregistered acker',
      fed.ackKey('zz', { cluster: 'a', nextKey: KEY_N }),
      /not registered/,
      'clusterId',
    ],
  ];
  for (const [what, p, message, field] of cases) {
    const err = await t.throwsAsync(p, undefined, what);
    const body = toErrorBody(err);
    t.regex(body.message, message, what);
    if (field !== 'clusterId') t.is(body.field, field, what);
    t.not(body.code, 'INTERNAL', what);
  }
  t.is(await dump(store), before, 'state unchanged');
  // An ack for a key already committed is stale too.
  await fed.rotateKey('a', { previousKey: KEY_A, publicKey: KEY_N });
  const late = await t.throwsAsync(fed.ackKey('c', { cluster: 'a', nextKey: KEY_N }));
  t.regex(toErrorBody(late).message, /announces none/);
  t.is(toErrorBody(late).code, 'KEY_MISMATCH');
});

test('key rotation - over the wire: ack-key is a request of the acking cluster; a body naming anyone else is refused', async (t) => {
  const { fed, store } = await setup();
  await fed.announceKey('a', { publicKey: KEY_A, nextKey: KEY_N });
  const send = (subject: string, body: unknown) =>
    handleRequest(fed, subject, new TextEncoder().encode(JSON.stringify(body)), 1 << 20);
  const before = await dump(store);
  // The acker is the subject's cluster; there is no field to ack on someone else's behalf.
  const forged = await send('l2fed.v1.c.ack-key', { cluster: 'a', nextKey: KEY_N, by: 'b' });
  t.false(forged.ok);
  t.is(await dump(store), before);
  const ok = await send('l2fed.v1.b.ack-key', { cluster: 'a', nextKey: KEY_N });
  t.true(ok.ok);
  t.deepEqual((await store.get<PeerMap>('peerMaps', 'a'))!.value.nextKey?.heldBy, ['b']);
  const announce = await send('l2fed.v1.a.announce-key', { publicKey: KEY_A, nextKey: KEY_A });
  t.false(announce.ok, 'the next key must differ');
});

test("key rotation - a rejoin (replaced node) drops the old gateway's announced next key and frees it", async (t) => {
  let clock = Date.now();
  const { fed, store, map, record } = await setup(() => clock);
  await fed.announceKey('a', { publicKey: KEY_A, nextKey: KEY_N });
  clock += 10 * 60_000; // the old gateway has been silent long enough
  const fresh = 'QNzpVs/RNSXR4ujgKXH3PFYc7hDEIBDSEJQaQUvd0Fs=';
  await fed.register('a', reg(fresh, 1));
  t.is((await record('a')).publicKey, fresh);
  t.is((await record('a')).nextKey, undefined, 'nobody will switch to it');
  t.is((await map('b')).peers.find((p) => p.cluster === 'a')?.nextPublicKey, undefined);
  t.is(await store.get('publicKeys', KEYS.publicKey(KEY_N)), undefined, 'claim freed');
});
