import test from 'ava';
import { freePort } from '../../lib/ports.js';
import { isLoopbackAddress } from './auth.js';
import { startAdminServer } from './server.js';
import { getVersion } from './client.js';

const TOKEN = 'a'.repeat(40);

test('admin auth - loopback addresses: 127/8, ::1, localhost, unix sockets; never wildcards', (t) => {
  for (const a of [
    '127.0.0.1:0',
    '127.8.0.1:1',
    'localhost:7443',
    '[::1]:7443',
    '[::ffff:127.0.0.1]:1',
    'dns:///localhost:7443',
    'unix:/run/l2fed.sock',
  ])
    t.true(isLoopbackAddress(a), a);
  for (const a of [
    '0.0.0.0:7443',
    '[::]:7443',
    ':7443',
    '10.0.0.1:7443',
    '[::ffff:10.0.0.1]:1',
    '127.evil.example:1',
    'broker.l2fed.svc:7443',
  ])
    t.false(isLoopbackAddress(a), a);
});

test('admin server - refuses insecure mode and clear-text tokens on a non-loopback address, binding nothing', async (t) => {
  const port = await freePort();
  await t.throwsAsync(
    startAdminServer({ address: `0.0.0.0:${port}`, auth: { type: 'insecure' } }),
    { message: /--insecure-admin \(no authentication\) is allowed only on a loopback address/ },
  );
  await t.throwsAsync(
    startAdminServer({ address: `0.0.0.0:${port}`, auth: { type: 'token', tokens: [TOKEN] } }),
    { message: /would take bearer tokens in clear.*add --admin-cert and --admin-key/ },
  );
  // Nothing was bound: the same port is still free for a loopback server.
  const server = await startAdminServer({
    address: `127.0.0.1:${port}`,
    auth: { type: 'token', tokens: [TOKEN] },
  });
  t.teardown(() => server.stop());
  t.is((await getVersion({ address: server.address, token: TOKEN })).component, 'broker');
});
