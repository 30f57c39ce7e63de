import { join } from 'node:path';
import test from 'ava';
import { parseGatewayConfig, type GatewayConfigInput } from './config.js';
import { promoteStandby, standbyKeys } from './standby-keys.js';
import {
  gatewayOverFakes,
  KEY_B,
  KEY_C,
  madridConfig,
} from '../test/fixtures/gateway-over-fakes.js';

const NEXT_B = 'mB1ZsTJ5fY0yq7VbC3d8k2Lr9hWx4nQe6uPo1aZcXw0=';

/** madrid's config where b announced NEXT_B. */
function withNext(file: string, next = NEXT_B): GatewayConfigInput {
  const c = madridConfig(file, [
    { name: 'vod', vni: 200, segment: { type: 'linux-bridge', bridge: 'br-vod' }, peers: ['b'] },
  ]);
  return {
    ...c,
    peers: (c.peers ?? []).map((p) => (p.name === 'b' ? { ...p, nextPublicKey: next } : p)),
  };
}

const observed = (...shook: [string, number][]) => ({
  peers: shook.map(([publicKey, latestHandshake]) => ({
    publicKey,
    endpoint: '198.18.0.2:51820',
    allowedIps: [],
    latestHandshake,
    rxBytes: 0,
    txBytes: 0,
    persistentKeepalive: 0,
  })),
});

test('standby keys - promoted only once the next key handshaked; otherwise the same config', (t) => {
  const c = parseGatewayConfig(withNext('/k'));
  t.deepEqual(standbyKeys(c), [NEXT_B]);
  t.is(promoteStandby(c, undefined), c);
  t.is(promoteStandby(c, observed([KEY_B, 100], [NEXT_B, 0])), c, 'no handshake: standby');
  const p = promoteStandby(c, observed([NEXT_B, 100]));
  t.is(p.peers[0]!.publicKey, NEXT_B);
  t.false('nextPublicKey' in p.peers[0]!);
  t.is(p.peers[1]!.publicKey, KEY_C, 'other peers untouched');
  t.deepEqual(standbyKeys(p), []);
});

test('standby keys - a next key that is any other entry key is refused, naming both', (t) => {
  t.throws(() => parseGatewayConfig(withNext('/k', KEY_C)), {
    message: /peers\[0\]\.nextPublicKey: next key .* of b is also a key of c/,
  });
  t.throws(() => parseGatewayConfig(withNext('/k', KEY_B)), { message: /also a key of b/ });
});

test('gateway - holds a next key as a standby entry (no allowed IPs, no keepalive, no handshake retry) and promotes it alone when it handshakes', async (t) => {
  const { dir, plane, gw } = await gatewayOverFakes(
    t,
    { linuxBridge: ['br-vod'] },
    { standbyWatchMs: 20, handshakeWatch: { intervalMs: 20, forMs: 2000 } },
  );
  t.teardown(() => gw.teardown());
  await gw.apply(
    madridConfig(join(dir, 'wg.key'), [
      { name: 'vod', vni: 200, segment: { type: 'linux-bridge', bridge: 'br-vod' }, peers: ['b'] },
    ]),
  );
  plane.tunnel.handshake('l2fa', KEY_B, 100);
  const r = await gw.apply(withNext(join(dir, 'wg.key')));
  t.deepEqual(
    r.steps.map((s) => s.kind),
    ['tunnel-set-peer'],
  );
  const peers = () => plane.tunnel.devices.get('l2fa')!.peers;
  t.deepEqual(peers().get(NEXT_B)?.allowedIps, []);
  t.is(peers().get(NEXT_B)?.persistentKeepalive, 0);
  t.deepEqual(peers().get(KEY_B)?.allowedIps, ['198.19.255.2/32']);
  await new Promise((res) => setTimeout(res, 100));
  t.false(
    plane.log.mutations.some((m) => m.startsWith('tunnel renew-peer')),
    'never initiates',
  );
  t.truthy(peers().get(KEY_B), 'still standby');

  plane.tunnel.handshake('l2fa', NEXT_B, 200); // b switched
  const end = Date.now() + 2000;
  while (peers().has(KEY_B) && Date.now() < end) await new Promise((res) => setTimeout(res, 10));
  t.false(peers().has(KEY_B), 'old entry gone');
  t.deepEqual(peers().get(NEXT_B)?.allowedIps, ['198.19.255.2/32']);
  t.is(peers().get(NEXT_B)?.persistentKeepalive, 25);
  t.is(gw.config?.peers[0]?.publicKey, NEXT_B);
  // The agent's apply of the old map (b's commit not seen yet) keeps the promotion.
  t.deepEqual((await gw.apply(withNext(join(dir, 'wg.key')))).steps, []);
});

const NEXT_PRIV = 'aMKMzV+dDlD2mRfyA1d1MZn8lkqGmYlGZ5NMkmJ4F0I=';
const NEXT_PUB = 'eQ0yYfXh3vXz0mB8m0mJ7kQyq3cM3n6JtWcX0b5c1Fs=';

test('gateway - keepKey: a rotated key waits while other changes apply; without it the tunnel switches', async (t) => {
  const { dir, plane, runner, gw } = await gatewayOverFakes(t, { linuxBridge: ['br-vod'] });
  t.teardown(() => gw.teardown());
  const file = join(dir, 'wg.key');
  const first = await gw.apply(
    madridConfig(file, [
      { name: 'vod', vni: 200, segment: { type: 'linux-bridge', bridge: 'br-vod' }, peers: ['b'] },
    ]),
  );
  const oldPub = first.report.publicKey;
  runner.once('wg genkey', { stdout: NEXT_PRIV }).once('wg pubkey', { stdout: NEXT_PUB });
  await gw.rotateKey();
  t.is(gw.pendingPublicKey, NEXT_PUB);
  // Each apply reads the key file again (the fake runner derives every other key as PUB).
  runner.once('wg pubkey', { stdout: NEXT_PUB }).once('wg pubkey', { stdout: NEXT_PUB });
  // A change while peers do not hold the new key yet: b's next key arrives (standby).
  const held = withNext(file);
  const r = await gw.apply({ ...held, wireguard: { ...held.wireguard, keepKey: true } });
  t.deepEqual(
    r.steps.map((s) => s.kind),
    ['tunnel-set-peer'],
    'no tunnel-set-key',
  );
  t.is(r.report.publicKey, oldPub, 'the tunnel keeps the old key');
  t.is(gw.pendingPublicKey, NEXT_PUB, 'still pending');
  t.not(plane.tunnel.devices.get('l2fa')?.privateKey, NEXT_PRIV);
  const sw = await gw.apply(held);
  t.true(
    sw.steps.some((s) => s.kind === 'tunnel-set-key'),
    'switched',
  );
  t.is(sw.report.publicKey, NEXT_PUB);
  t.is(gw.pendingPublicKey, undefined);
});
