/**
 * Node replacement: a cluster whose gateway came back with a new key (key file and agent
 * cache lost) registers again with it. The broker accepts it once the old key's gateway
 * has been silent for rejoinAfterMs, and refuses it (naming the wait and the remedy)
 * before that.
 */
import test from 'ava';
import { FakeKvStore } from './kv-store-fake.js';
import { Federation } from './federation.js';
import { resolveConfig } from './config.js';
import { ClusterTakeoverError, KeyInUseError } from './errors.js';
import { KEYS, type ClusterRecord, type KeyClaim, type PeerMap } from './records.js';

const OLD = 'x4gOZYP7gYK/0dBhgSvq7+nIu9ygrsAx6gqwmjXzT0I=';
const NEW = 'kP3oZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=';
const PEER = 'pD4zZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=';
const REJOIN_AFTER_MS = 60_000;
const reg = (publicKey: string, endpoints = ['198.18.0.1:51820']) => ({
  publicKey,
  endpoints,
  capabilities: [],
});
const health = { reportedAt: '2026-01-01T00:00:00.000Z', peers: [], networks: [] };

/** Clusters a and b peered on cdn, at t = 0 of a fake clock. */
async function federation() {
  let now = Date.parse('2026-01-01T00:00:00.000Z');
  const store = new FakeKvStore();
  const fed = new Federation(
    store,
    resolveConfig({ transitPool: '100.64.0.0/28', rejoinAfterMs: REJOIN_AFTER_MS }),
    () => now,
  );
  await fed.register('a', reg(OLD));
  await fed.register('b', reg(PEER, ['198.18.0.2:51820']));
  for (const [me, peer] of [
    ['a', 'b'],
    ['b', 'a'],
  ] as const) {
    await fed.setExports(me, ['cdn']);
    await fed.setPeerings(me, [{ remoteCluster: peer }]);
  }
  const clock = { advance: (ms: number) => (now += ms) };
  const keyOfAInB = async () =>
    (await store.get<PeerMap>('peerMaps', 'b'))?.value.peers.find((p) => p.cluster === 'a')
      ?.publicKey;
  const recordOfA = async () => (await store.get<ClusterRecord>('clusters', 'a'))!;
  return { store, fed, clock, keyOfAInB, recordOfA };
}

test('rejoin - refused while the old gateway is heard from; the wait and the remedy are named', async (t) => {
  const { fed, clock, keyOfAInB, recordOfA } = await federation();
  clock.advance(20_000);
  await fed.setHealth('a', health); // the old gateway reports at t = 20 s
  clock.advance(10_000);
  const err = await t.throwsAsync(fed.register('a', reg(NEW)), {
    instanceOf: ClusterTakeoverError,
  });
  t.deepEqual(err?.rejoin, { silentMs: 10_000, waitMs: 50_000 });
  t.regex(err.message, /heard from 10 s ago/);
  t.regex(err.message, /about 50 s from now/);
  t.regex(err.message, /l2fed evict a --force/);
  t.is(await keyOfAInB(), OLD, "b's peer map still names the old key");
  const noted = await recordOfA();
  t.is(noted.value.publicKey, OLD);
  t.deepEqual(noted.value.rejoin, { publicKey: NEW, since: '2026-01-01T00:00:30.000Z' });

  // Retrying (as the agent does) writes nothing more.
  clock.advance(5_000);
  await t.throwsAsync(fed.register('a', reg(NEW)), { instanceOf: ClusterTakeoverError });
  t.is((await recordOfA()).revision, noted.revision);
});

test('rejoin - accepted once the old key has been silent for rejoinAfterMs; peers get the new key', async (t) => {
  const { store, fed, clock, keyOfAInB, recordOfA } = await federation();
  await fed.setHealth('a', health);
  const before = await recordOfA();
  clock.advance(REJOIN_AFTER_MS - 1);
  await t.throwsAsync(fed.register('a', reg(NEW)), { instanceOf: ClusterTakeoverError });
  clock.advance(1);
  const r = await fed.register('a', reg(NEW, ['198.18.0.7:51820']));
  t.false(r.created);
  t.is(r.cluster.publicKey, NEW);
  t.deepEqual(r.cluster.endpoints, ['198.18.0.7:51820']);
  t.is(r.cluster.transitAddress, before.value.transitAddress, 'keeps its transit address');
  t.is(r.cluster.keySince, '2026-01-01T00:01:00.000Z');
  t.is(r.cluster.rejoin, undefined, 'the pending note is cleared');
  t.is(await keyOfAInB(), NEW, "b's peer map names the new key");
  const mine = await store.get<PeerMap>('peerMaps', 'a');
  t.deepEqual(
    mine?.value.peers.map((p) => p.cluster),
    ['b'],
    'exports and peerings survive the rejoin',
  );
  t.is(await store.get('health', 'a'), undefined, "the old gateway's report is gone");
  t.is(await store.get<KeyClaim>('publicKeys', KEYS.publicKey(OLD)), undefined, 'old key freed');
  t.is((await store.get<KeyClaim>('publicKeys', KEYS.publicKey(NEW)))?.value.cluster, 'a');
  // Idempotent: the same registration again changes nothing.
  const rev = (await recordOfA()).revision;
  t.false((await fed.register('a', reg(NEW, ['198.18.0.7:51820']))).created);
  t.is((await recordOfA()).revision, rev);
});

test('rejoin - a never-reporting cluster counts from its registration or last key change', async (t) => {
  const { fed, clock } = await federation();
  clock.advance(30_000);
  await fed.rotateKey('a', { previousKey: OLD, publicKey: NEW });
  clock.advance(REJOIN_AFTER_MS - 1_000);
  await t.throwsAsync(fed.register('a', reg(OLD)), { instanceOf: ClusterTakeoverError });
  clock.advance(1_000);
  t.is((await fed.register('a', reg(OLD))).cluster.publicKey, OLD);
});

test("rejoin - with another cluster's key: KEY_IN_USE and nothing written", async (t) => {
  const { fed, clock, recordOfA, keyOfAInB } = await federation();
  clock.advance(REJOIN_AFTER_MS);
  const before = await recordOfA();
  await t.throwsAsync(fed.register('a', reg(PEER)), { instanceOf: KeyInUseError });
  t.is((await recordOfA()).revision, before.revision);
  t.is(await keyOfAInB(), OLD);
});
