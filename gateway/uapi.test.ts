import test from 'ava';
import { parseUapiHandshakes, readUapiHandshakes } from './uapi.js';
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
