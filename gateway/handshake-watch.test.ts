import test from 'ava';
import { join } from 'node:path';
import { FakeRunner } from '../lib/runner-fake.js';
import { handshakesDue, retriesHandshake } from './handshake-watch.js';
import { KernelTunnel } from './tunnel-kernel.js';
import type { DesiredPeer, ObservedTunnel } from './model.js';
import {
  gatewayOverFakes,
  KEY_B,
  KEY_C,
  madridConfig,
  PRIV,
  PUB,
} from '../test/fixtures/gateway-over-fakes.js';

const NEXT_PRIV = 'aMKMzV+dDlD2mRfyA1d1MZn8lkqGmYlGZ5NMkmJ4F0I=';
/** Sorts between KEY_B and KEY_C: after the rotation this side retries for c only. */
const NEXT_PUB = 'eQ0yYfXh3vXz0mB8m0mJ7kQyq3cM3n6JtWcX0b5c1Fs=';

const peer = (name: string, publicKey: string): DesiredPeer => ({
  name,
  publicKey,
  endpoint: '198.18.0.2:51820',
  endpoints: ['198.18.0.2:51820'],
  allowedIps: ['198.19.255.2/32'],
  persistentKeepalive: 25,
});
const tunnel = (peers: [string, number][]): ObservedTunnel => ({
  ifname: 'l2fa',
  up: true,
  mtu: 1420,
  addresses: [],
  privateKey: PRIV,
  publicKey: PUB,
  listenPort: 51820,
  peers: peers.map(([publicKey, latestHandshake]) => ({
    publicKey,
    endpoint: '198.18.0.2:51820',
    allowedIps: [],
    latestHandshake,
    rxBytes: 0,
    txBytes: 0,
    persistentKeepalive: 25,
  })),
});

test('handshake watch - exactly one side of a pair retries', (t) => {
  t.true(retriesHandshake(KEY_B, KEY_C));
  t.false(retriesHandshake(KEY_C, KEY_B));
});

test('handshake watch - a new key needs a handshake with every peer this side retries for', (t) => {
  const steps = [{ kind: 'tunnel-set-key', ifname: 'l2fa', privateKeyFile: '/k' } as const];
  const peers = [peer('b', KEY_B), peer('c', KEY_C)];
  const observed = tunnel([
    [KEY_B, 100],
    [KEY_C, 200],
  ]);
  t.deepEqual(handshakesDue(steps, observed, peers, NEXT_PUB), [{ publicKey: KEY_C, before: 200 }]);
  t.deepEqual(handshakesDue(steps, observed, peers, PUB), [
    { publicKey: KEY_B, before: 100 },
    { publicKey: KEY_C, before: 200 },
  ]);
  t.deepEqual(handshakesDue(steps, undefined, peers, PUB), [], 'a new tunnel raced nobody');
});

test('handshake watch - a new peer entry needs one; a re-set existing one does not', (t) => {
  const c = peer('c', KEY_C);
  const b = peer('b', KEY_B);
  const steps = [
    { kind: 'tunnel-set-peer', ifname: 'l2fa', peer: c } as const,
    { kind: 'tunnel-set-peer', ifname: 'l2fa', peer: b } as const,
  ];
  t.deepEqual(handshakesDue(steps, tunnel([[KEY_B, 100]]), [b, c], PUB), [
    { publicKey: KEY_C, before: 0 },
  ]);
});

test('gateway - after a rotation the retrying side renews the peer entry until a handshake completes', async (t) => {
  const { dir, plane, runner, gw } = await gatewayOverFakes(
    t,
    { linuxBridge: ['br-vod'] },
    { handshakeWatch: { intervalMs: 20, forMs: 2000 } },
  );
  t.teardown(() => gw.teardown());
  const config = madridConfig(join(dir, 'wg.key'), [
    { name: 'vod', vni: 200, segment: { type: 'linux-bridge', bridge: 'br-vod' }, peers: ['b'] },
  ]);
  await gw.apply(config);
  await new Promise((r) => setTimeout(r, 100));
  t.false(
    plane.log.mutations.some((m) => m.startsWith('tunnel renew-peer')),
    'a new tunnel is left to WireGuard',
  );
  plane.tunnel.handshake('l2fa', KEY_B, 100);
  plane.tunnel.handshake('l2fa', KEY_C, 100);

  runner.once('wg genkey', { stdout: NEXT_PRIV }).once('wg pubkey', { stdout: NEXT_PUB });
  await gw.rotateKey();
  plane.log.clear();
  runner.once('wg pubkey', { stdout: NEXT_PUB });
  await gw.apply(config);
  await new Promise((r) => setTimeout(r, 70));
  const renewed = plane.log.mutations.filter((m) => m.startsWith('tunnel renew-peer'));
  t.true(renewed.length >= 2, 'renewed on every check while no handshake completes');
  t.true(
    renewed.every((m) => m === 'tunnel renew-peer l2fa c'),
    `only c (b retries for us): ${renewed.join(', ')}`,
  );
  t.deepEqual(plane.tunnel.devices.get('l2fa')?.peers.get(KEY_C)?.endpoint, '198.18.0.3:51820');

  plane.tunnel.handshake('l2fa', KEY_C, 200);
  await new Promise((r) => setTimeout(r, 30));
  plane.log.clear();
  await new Promise((r) => setTimeout(r, 70));
  t.deepEqual(plane.log.mutations, [], 'a completed handshake ends the watch');
});

test('wg - renewPeer re-creates the entry and turns keepalive on (that sends at once), back off when configured off', async (t) => {
  const runner = new FakeRunner().on(() => true, { stdout: '' });
  const wg = new KernelTunnel({ runner, netns: 'l2fed-x' });
  await wg.renewPeer('l2fa', peer('b', KEY_B));
  await wg.renewPeer('l2fa', { ...peer('c', KEY_C), persistentKeepalive: 0 });
  t.deepEqual(runner.mutatingCommands(), [
    `wg set l2fa peer ${KEY_B} remove`,
    `wg set l2fa peer ${KEY_B} endpoint 198.18.0.2:51820 persistent-keepalive 25 allowed-ips 198.19.255.2/32`,
    `wg set l2fa peer ${KEY_C} remove`,
    `wg set l2fa peer ${KEY_C} endpoint 198.18.0.2:51820 persistent-keepalive 1 allowed-ips 198.19.255.2/32`,
    `wg set l2fa peer ${KEY_C} persistent-keepalive off`,
  ]);
});
