import test from 'ava';
import { ServerCredentials, status } from '@grpc/grpc-js';
import { startAdminServer } from './admin-server.js';
import { getVersion } from './admin-client.js';
import { VERSION } from '../lib/version.js';

test('admin server - GetVersion over a real socket', async (t) => {
  const server = await startAdminServer({
    address: '127.0.0.1:0',
    credentials: ServerCredentials.createInsecure(),
  });
  t.teardown(() => server.stop());
  t.regex(server.address, /^127\.0\.0\.1:\d+$/);
  const v = await getVersion(server.address);
  t.deepEqual(v, {
    component: 'broker',
    version: VERSION,
    api: 'l2fed.admin.v1',
    runtime: process.version,
  });
  t.regex(VERSION, /^\d+\.\d+\.\d+/);
});

test('admin server - a stopped server is UNAVAILABLE to clients', async (t) => {
  const server = await startAdminServer({
    address: '127.0.0.1:0',
    credentials: ServerCredentials.createInsecure(),
  });
  await server.stop();
  await server.stop(); // idempotent
  const err = await t.throwsAsync<Error & { code: number }>(
    getVersion(server.address, { deadlineMs: 1500 }),
  );
  t.true(err !== undefined && [status.UNAVAILABLE, status.DEADLINE_EXCEEDED].includes(err.code));
});
