import test from 'ava';
import {
  derivePublicKeyLocal,
  parseUapiDump,
  parseUapiHandshakes,
  readUapiHandshakes,
} from './uapi.js';
import { parseWgDump } from './wireguard.js';
import { WireguardGoTunnel } from './tunnel-wireguard-go.js';
import { SupervisedLauncher } from './daemons.js';
import { FakeRunner } from '../lib/runner-fake.js';
import { createServer } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// The shape wireguard-go answers to get=1 (keys in hex; one block per peer).
const ANSWER = [
  'private_key=' + '11'.repeat(32),
  'listen_port=51820',
  'public_key=' + 'ab'.repeat(32),
  'endpoint=198.18.0.2:51820',
  'last_handshake_time_sec=1764500000',
  'last_handshake_time_nsec=12',
  'allowed_ip=198.19.255.2/32',
  'public_key=' + 'cd'.repeat(32),
  'last_handshake_time_sec=0',
  'last_handshake_time_nsec=0',
  'errno=0',
  '',
  '',
].join('\n');

test('uapi - parses peers and their last handshakes; base64 keys as wg prints them', (t) => {
  t.deepEqual(parseUapiHandshakes(ANSWER), [
    {
      publicKey: Buffer.from('ab'.repeat(32), 'hex').toString('base64'),
      latestHandshake: 1764500000,
    },
    { publicKey: Buffer.from('cd'.repeat(32), 'hex').toString('base64'), latestHandshake: 0 },
  ]);
  t.is(parseUapiHandshakes('errno=1\n\n'), undefined, 'an error answer');
  t.is(parseUapiHandshakes('public_key=ab'), undefined, 'a cut answer');
});

test('uapi - reads a control socket; no socket or a silent one is undefined, not an error', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-uapi-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const path = join(dir, 'wg0.sock');
  const asked: string[] = [];
  const server = createServer((s) => {
    s.on('data', (d) => {
      asked.push(String(d));
      s.end(ANSWER);
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.teardown(() => server.close());
  const peers = await readUapiHandshakes(path);
  t.is(peers?.length, 2);
  t.deepEqual(asked, ['get=1\n\n']);
  t.is(await readUapiHandshakes(join(dir, 'missing.sock')), undefined);
  const silentPath = join(dir, 'silent.sock');
  const silent = createServer(() => undefined);
  await new Promise<void>((r) => silent.listen(silentPath, r));
  t.teardown(() => silent.close());
  t.is(await readUapiHandshakes(silentPath, 200), undefined);
});

// The same device as `wg show IF dump` prints it (base64 keys, comma-joined allowed IPs).
const PRIV_HEX = '11'.repeat(32);
const FULL = [
  'private_key=' + PRIV_HEX,
  'listen_port=51820',
  'fwmark=0',
  'public_key=' + 'ab'.repeat(32),
  'preshared_key=' + '00'.repeat(32),
  'protocol_version=1',
  'endpoint=[fd00::2]:51820',
  'last_handshake_time_sec=1764500000',
  'last_handshake_time_nsec=12',
  'tx_bytes=1200',
  'rx_bytes=3400',
  'persistent_keepalive_interval=25',
  'allowed_ip=198.19.255.2/32',
  'allowed_ip=fd00:1::/64',
  'public_key=' + 'cd'.repeat(32),
  'last_handshake_time_sec=0',
  'last_handshake_time_nsec=0',
  'tx_bytes=0',
  'rx_bytes=0',
  'persistent_keepalive_interval=0',
  'errno=0',
  '',
  '',
].join('\n');

test('uapi - a full get=1 answer reads as `wg show dump` does (keys, port, peers, interface public key)', (t) => {
  const b64 = (hex: string) => Buffer.from(hex, 'hex').toString('base64');
  const priv = b64(PRIV_HEX);
  // wg pubkey of 0x11… (X25519 of the clamped key), as `wg show dump` prints it.
  const pub = derivePublicKeyLocal(priv);
  const dump = [
    [priv, pub, '51820', 'off'].join('\t'),
    [
      b64('ab'.repeat(32)),
      b64('00'.repeat(32)),
      '[fd00::2]:51820',
      '198.19.255.2/32,fd00:1::/64',
      '1764500000',
      '3400',
      '1200',
      '25',
    ].join('\t'),
    [b64('cd'.repeat(32)), '(none)', '(none)', '(none)', '0', '0', '0', 'off'].join('\t'),
  ].join('\n');
  t.deepEqual(parseUapiDump(FULL), parseWgDump(dump));
  t.is(parseUapiDump('errno=19\n\n'), undefined);
  t.is(parseUapiDump('private_key=' + PRIV_HEX), undefined, 'a cut answer');
});

test('uapi - the interface public key is the X25519 public key of the private key', (t) => {
  // RFC 7748 section 6.1, Alice's key pair.
  const alicePriv = Buffer.from(
    '77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a',
    'hex',
  ).toString('base64');
  const alicePub = Buffer.from(
    '8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a',
    'hex',
  ).toString('base64');
  t.is(derivePublicKeyLocal(alicePriv), alicePub);
});

test('uapi - wireguard-go tunnel read: the control socket answers, no process starts; without it, wg show as before', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-uapi-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const server = createServer((s) => s.on('data', () => s.end(FULL)));
  await new Promise<void>((r) => server.listen(join(dir, 'l2fa.sock'), r));
  t.teardown(() => server.close());
  const runner = new FakeRunner().on((a) => a[0] === 'wg', { exitCode: 1 });
  const tunnel = new WireguardGoTunnel({ runner, netns: 'ns' }, new SupervisedLauncher(), dir);
  const dump = await tunnel.read('l2fa');
  t.is(dump?.listenPort, 51820);
  t.is(dump?.peers.length, 2);
  t.deepEqual(runner.calls, [], 'no process started');
  t.is(await tunnel.read('other'), undefined, 'no socket: wg show says there is no device');
  t.deepEqual(
    runner.calls.map((c) => c.argv.join(' ')),
    ['wg show other dump'],
  );
});
