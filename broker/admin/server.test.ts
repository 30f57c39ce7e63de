import test from 'ava';
import { credentials, status } from '@grpc/grpc-js';
import { HealthClient } from '../../lib/health-client.js';
import { startAdminServer } from './server.js';
import { getVersion } from './client.js';
import { readFileSync } from 'node:fs';
import { listServices } from '../../test/fixtures/grpc-reflection.js';

type GrpcErr = Error & { code: number; details: string };
/** The release version, read here rather than through lib/version (the code under test). */
const PKG_VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string;
  }
).version;
const TOKEN = 'a'.repeat(40);

test('admin server - GetVersion over a real socket', async (t) => {
  const server = await startAdminServer({ address: '127.0.0.1:0', auth: { type: 'insecure' } });
  t.teardown(() => server.stop());
  t.regex(server.address, /^127\.0\.0\.1:\d+$/);
  t.deepEqual(await getVersion(server.address), {
    component: 'broker',
    version: PKG_VERSION,
    api: 'l2fed.admin.v1',
    runtime: process.version,
  });
  t.regex(PKG_VERSION, /^\d+\.\d+\.\d+$/, 'a release version, not 0.0.0-unknown');
});

test('admin server - a stopped server is UNAVAILABLE to clients', async (t) => {
  const server = await startAdminServer({ address: '127.0.0.1:0', auth: { type: 'insecure' } });
  await server.stop();
  await server.stop(); // idempotent
  const err = await t.throwsAsync<GrpcErr>(getVersion(server.address, { deadlineMs: 1500 }));
  t.true(err !== undefined && [status.UNAVAILABLE, status.DEADLINE_EXCEEDED].includes(err.code));
});

test('admin server - token mode refuses a missing or wrong token, accepts the right one', async (t) => {
  const server = await startAdminServer({
    address: '127.0.0.1:0',
    auth: { type: 'token', tokens: [TOKEN] },
  });
  t.teardown(() => server.stop());
  const none = await t.throwsAsync<GrpcErr>(getVersion(server.address));
  t.is(none?.code, status.UNAUTHENTICATED);
  t.regex(none?.details ?? '', /bearer token/);
  const wrong = await t.throwsAsync<GrpcErr>(
    getVersion({ address: server.address, token: 'b'.repeat(40) }),
  );
  t.is(wrong?.code, status.UNAUTHENTICATED);
  const ok = await getVersion({ address: server.address, token: TOKEN });
  t.is(ok.component, 'broker');
});

test('admin server - token mode rejects short tokens before binding', async (t) => {
  await t.throwsAsync(
    startAdminServer({ address: '127.0.0.1:0', auth: { type: 'token', tokens: ['short'] } }),
    { message: /at least 32 characters/ },
  );
});

test('admin server - health answers without a token; reflection lists every service', async (t) => {
  const server = await startAdminServer({
    address: '127.0.0.1:0',
    auth: { type: 'token', tokens: [TOKEN] },
  });
  t.teardown(() => server.stop());
  const health = new HealthClient(server.address, credentials.createInsecure());
  t.teardown(() => health.close());
  t.is(await health.check(''), 'SERVING');
  t.is(await health.check('l2fed.admin.v1.InfoService'), 'SERVING');
  const unknown = await t.throwsAsync<GrpcErr>(health.check('no.such.Service'));
  t.is(unknown?.code, status.NOT_FOUND);

  // Reflection is behind the token, like every non-health service.
  await t.throwsAsync(listServices(server.address));
  const open = await startAdminServer({ address: '127.0.0.1:0', auth: { type: 'insecure' } });
  t.teardown(() => open.stop());
  t.deepEqual(await listServices(open.address), [
    'grpc.health.v1.Health',
    'l2fed.admin.v1.InfoService',
  ]);
});
