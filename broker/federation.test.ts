import test from 'ava';
import { FakeKvStore } from './kv-store-fake.js';
import { Federation } from './federation.js';
import { resolveConfig } from './config.js';
import {
  ClusterTakeoverError,
  KeyInUseError,
  KeyMismatchError,
  NotRegisteredError,
  StoreUnavailableError,
} from './errors.js';
import { KEYS, type PeerMap, type VniClaim } from './records.js';

const KEY_A = 'x4gOZYP7gYK/0dBhgSvq7+nIu9ygrsAx6gqwmjXzT0I=';
const KEY_B = 'pD4zZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=';
const reg = (publicKey = KEY_A, endpoints = ['198.18.0.1:51820']) => ({
  publicKey,
  endpoints,
  capabilities: [],
});

function setup() {
  const store = new FakeKvStore();
  const fed = new Federation(store, resolveConfig({ transitPool: '100.64.0.0/28' }));
  return { store, fed };
}

test('federation - register is idempotent; another key is a takeover', async (t) => {
  const { fed } = setup();
  const a = await fed.register('a', reg());
  t.true(a.created);
  const again = await fed.register('a', reg());
  t.false(again.created);
  t.is(again.cluster.transitAddress, a.cluster.transitAddress);
  await t.throwsAsync(fed.register('a', reg(KEY_B)), { instanceOf: ClusterTakeoverError });
  const moved = await fed.register('a', reg(KEY_A, ['198.18.0.9:51820']));
  t.deepEqual(moved.cluster.endpoints, ['198.18.0.9:51820']);
  t.is(moved.cluster.transitAddress, a.cluster.transitAddress);
});

const KEY_C = 'kP3oZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=';

test('federation - VXLAN ports that differ keep a mutual pair out of both maps, withheld with why; equal ports pair it', async (t) => {
  const { fed, store } = setup();
  const map = async (id: string) => (await store.get<PeerMap>('peerMaps', id))!.value;
  await fed.register('a', { ...reg(KEY_A), vxlanPort: 4797 });
  await fed.register('b', { ...reg(KEY_B), vxlanPort: 4789 });
  for (const [id, peer] of [
    ['a', 'b'],
    ['b', 'a'],
  ] as const) {
    await fed.setExports(id, ['cdn']);
    await fed.setPeerings(id, [{ remoteCluster: peer }]);
  }
  for (const [id, peer, mine, theirs] of [
    ['a', 'b', 4797, 4789],
    ['b', 'a', 4789, 4797],
  ] as const) {
    const m = await map(id);
    t.deepEqual(m.peers, [], `${id} has no tunnel to ${peer}`);
    t.is(m.withheld?.length, 1);
    t.like(m.withheld![0], { cluster: peer, reason: 'VxlanPortMismatch' });
    t.regex(m.withheld![0]!.message, new RegExp(`${id} uses ${mine}, ${peer} uses ${theirs}`));
  }
  // b's agent moves to a's port: registration updates the record and both maps.
  const moved = await fed.register('b', { ...reg(KEY_B), vxlanPort: 4797 });
  t.is(moved.cluster.vxlanPort, 4797);
  for (const [id, peer] of [
    ['a', 'b'],
    ['b', 'a'],
  ] as const) {
    const m = await map(id);
    t.deepEqual(
      m.peers.map((p) => p.cluster),
      [peer],
    );
    t.false('withheld' in m);
  }
  // An agent that sends no port (older) drops it from the record: unknown matches any.
  await fed.register('b', { ...reg(KEY_B), vxlanPort: 4789 });
  t.deepEqual((await map('a')).peers, []);
  const older = await fed.register('b', reg(KEY_B));
  t.false('vxlanPort' in older.cluster);
  t.deepEqual(
    (await map('a')).peers.map((p) => p.cluster),
    ['b'],
  );
});

test("federation - rotate-key swaps the key in the peers' maps, keeps the address; idempotent", async (t) => {
  const { fed, store } = setup();
  const a = await fed.register('a', reg(KEY_A));
  await fed.register('b', reg(KEY_B));
  await fed.setExports('a', ['cdn']);
  await fed.setExports('b', ['cdn']);
  await fed.setPeerings('a', [{ remoteCluster: 'b' }]);
  await fed.setPeerings('b', [{ remoteCluster: 'a' }]);
  const peerKeyOfA = async () =>
    (await store.get<PeerMap>('peerMaps', 'b'))?.value.peers.find((p) => p.cluster === 'a')
      ?.publicKey;
  t.is(await peerKeyOfA(), KEY_A);

  const r = await fed.rotateKey('a', { previousKey: KEY_A, publicKey: KEY_C });
  t.true(r.rotated);
  t.is(r.cluster.publicKey, KEY_C);
  t.is(r.cluster.transitAddress, a.cluster.transitAddress);
  t.is(await peerKeyOfA(), KEY_C, "b's peer map names a's new key");
  const again = await fed.rotateKey('a', { previousKey: KEY_A, publicKey: KEY_C });
  t.false(again.rotated, 'a repeat (lost reply) changes nothing');
  t.false((await fed.register('a', reg(KEY_C))).created, 'register with the new key is idempotent');
  await t.throwsAsync(fed.register('a', reg(KEY_A)), { instanceOf: ClusterTakeoverError });
});

test('federation - rotate-key refuses a stale previous key, a key of another cluster, an unknown cluster', async (t) => {
  const { fed, store } = setup();
  await fed.register('a', reg(KEY_A));
  await fed.register('b', reg(KEY_B));
  await t.throwsAsync(
    fed.rotateKey('a', { previousKey: KEY_C, publicKey: KEY_C.replace('k', 'm') }),
    {
      instanceOf: KeyMismatchError,
    },
  );
  await t.throwsAsync(fed.rotateKey('a', { previousKey: KEY_A, publicKey: KEY_B }), {
    instanceOf: KeyInUseError,
  });
  await t.throwsAsync(fed.rotateKey('z', { previousKey: KEY_A, publicKey: KEY_C }), {
    instanceOf: NotRegisteredError,
  });
  t.is((await store.get<{ publicKey: string }>('clusters', 'a'))?.value.publicKey, KEY_A);
});

test('federation - racing registrations of one id with two keys: exactly one wins', async (t) => {
  const { fed, store } = setup();
  const res = await Promise.allSettled([
    fed.register('a', reg(KEY_A)),
    fed.register('a', reg(KEY_B)),
  ]);
  t.is(res.filter((r) => r.status === 'fulfilled').length, 1);
  const lost = res.find((r) => r.status === 'rejected');
  t.true(lost?.status === 'rejected' && lost.reason instanceof ClusterTakeoverError);
  t.is((await store.keys('transit', '>')).length, 1, 'the loser released its address');
});

test('federation - a lost reply on registration does not allocate a second address', async (t) => {
  const { fed, store } = setup();
  store.failNextWrite('a', true);
  await t.throwsAsync(fed.register('a', reg()), { instanceOf: StoreUnavailableError });
  const r = await fed.register('a', reg());
  t.false(r.created);
  t.is((await store.keys('transit', '>')).length, 1);
});

test('federation - exports and peerings need registration', async (t) => {
  const { fed } = setup();
  await t.throwsAsync(fed.setExports('a', ['x']), { instanceOf: NotRegisteredError });
  await t.throwsAsync(fed.setPeerings('a', []), { instanceOf: NotRegisteredError });
});

test('federation - deregistration releases address, VNIs and maps, and updates peers', async (t) => {
  const { fed, store } = setup();
  await fed.register('a', reg(KEY_A));
  const b = await fed.register('b', reg(KEY_B));
  const vni = (await fed.setExports('b', ['cdn', 'solo'])).networks[1]!.vni;
  await fed.setExports('a', ['cdn']);
  await fed.setPeerings('a', [{ remoteCluster: 'b' }]);
  await fed.setPeerings('b', [{ remoteCluster: 'a' }]);
  t.is((await store.get<PeerMap>('peerMaps', 'a'))?.value.peers.length, 1);

  t.deepEqual(await fed.deregister('b'), { deregistered: true });
  t.deepEqual(await fed.deregister('b'), { deregistered: false }, 'idempotent');
  t.is((await store.get<PeerMap>('peerMaps', 'a'))?.value.peers.length, 0);
  t.is(await store.get('peerMaps', 'b'), undefined);
  t.is(await store.get('transit', KEYS.transit(b.cluster.transitAddress)), undefined);
  t.is((await store.get<VniClaim>('networks', KEYS.vni(vni)))?.value.state, 'quarantined');
  t.truthy(await store.get('networks', KEYS.network('cdn')), 'a still exports cdn');
});

test('federation - health is stored per cluster with the stored time; needs registration; deregister drops it', async (t) => {
  const { store, fed } = setup();
  const report = {
    reportedAt: '2026-01-31T12:00:00Z',
    peers: [{ cluster: 'b', state: 'degraded' as const, rttMs: 1.5, reason: 'probe loss 33 %' }],
    networks: [{ name: 'cdn', vni: 4096, state: 'up' as const }],
  };
  await t.throwsAsync(fed.setHealth('a', report), { instanceOf: NotRegisteredError });
  await fed.register('a', reg());
  const { record } = await fed.setHealth('a', report);
  t.like(record, report);
  t.true(Date.parse(record.storedAt) > 0);
  t.deepEqual((await store.get('health', 'a'))?.value, record);
  await fed.deregister('a');
  t.is(await store.get('health', 'a'), undefined);
});
