import { join } from 'node:path';
import { readFile, stat } from 'node:fs/promises';
import { status } from '@grpc/grpc-js';
import { ExecaRunner } from '../../lib/runner.js';
import { ensureCa, issueCert, PkiFileError, readPair } from '../../lib/pki.js';
import { startAdminServer } from '../../broker/admin/server.js';
import { getVersion } from '../../broker/admin/client.js';
import { testWith } from '../fixtures/privileges.js';
import { makeRunDir } from '../fixtures/run-dir.js';

const test = testWith({ tools: ['openssl', 'nats-server'] });
type GrpcErr = Error & { code: number };

test('admin mTLS - only clients with a certificate from the federation CA get through', async (t) => {
  const dir = await makeRunDir('pki');
  t.teardown(() => dir.remove());
  const runner = new ExecaRunner();
  const ca = await ensureCa(runner, join(dir.path, 'ca'));
  const server = await issueCert(runner, ca, join(dir.path, 'ca'), 'broker', 'server', [
    'localhost',
    '127.0.0.1',
  ]);
  const client = await issueCert(runner, ca, join(dir.path, 'ca'), 'admin', 'client');
  // A second, unrelated CA: its client certs must be refused.
  const rogueCa = await ensureCa(runner, join(dir.path, 'rogue'), 'rogue');
  const rogue = await issueCert(runner, rogueCa, join(dir.path, 'rogue'), 'admin', 'client');

  t.is((await stat(client.key)).mode & 0o777, 0o600);
  t.is((await stat(ca.caKey)).mode & 0o777, 0o600);

  const caCert = await readFile(ca.caCert);
  const srv = await startAdminServer({
    address: '127.0.0.1:0',
    auth: { type: 'mtls', caCert, ...(await readPair(server)) },
  });
  t.teardown(() => srv.stop());

  const good = await getVersion({
    address: srv.address,
    serverName: 'localhost',
    caCert,
    ...(await readPair(client)),
  });
  t.is(good.component, 'broker');

  const noCert = await t.throwsAsync<GrpcErr>(
    getVersion({ address: srv.address, serverName: 'localhost', caCert }, { deadlineMs: 3000 }),
  );
  t.is(noCert?.code, status.UNAVAILABLE);

  const wrongCa = await t.throwsAsync<GrpcErr>(
    getVersion(
      { address: srv.address, serverName: 'localhost', caCert, ...(await readPair(rogue)) },
      { deadlineMs: 3000 },
    ),
  );
  t.is(wrongCa?.code, status.UNAVAILABLE);

  const plaintext = await t.throwsAsync<GrpcErr>(
    getVersion({ address: srv.address, serverName: 'localhost' }, { deadlineMs: 3000 }),
  );
  t.true(
    plaintext !== undefined &&
      [status.UNAVAILABLE, status.DEADLINE_EXCEEDED].includes(plaintext.code),
  );
});

test('admin mTLS - ensureCa keeps an existing CA', async (t) => {
  const dir = await makeRunDir('pki');
  t.teardown(() => dir.remove());
  const runner = new ExecaRunner();
  const first = await ensureCa(runner, dir.path);
  const pem = await readFile(first.caCert, 'utf8');
  await ensureCa(runner, dir.path);
  t.is(await readFile(first.caCert, 'utf8'), pem);
  await t.throwsAsync(issueCert(runner, first, dir.path, 'Bad Name!', 'client'), {
    message: /lowercase letters/,
  });
});

test('pki - issueCert never writes over the CA files, nor an existing leaf unless forced', async (t) => {
  const dir = await makeRunDir('pki');
  t.teardown(() => dir.remove());
  const runner = new ExecaRunner();
  const ca = await ensureCa(runner, dir.path);
  const caKey = await readFile(ca.caKey);
  const caCert = await readFile(ca.caCert);
  await t.throwsAsync(issueCert(runner, ca, dir.path, 'ca', 'client'), {
    instanceOf: PkiFileError,
    message: /certificate name "ca" collides with the CA's files .*ca\.key.*choose another name/,
  });
  t.deepEqual(await readFile(ca.caKey), caKey);
  t.deepEqual(await readFile(ca.caCert), caCert);
  const alice = await issueCert(runner, ca, dir.path, 'alice', 'client');
  const key = await readFile(alice.key);
  await t.throwsAsync(issueCert(runner, ca, dir.path, 'alice', 'client'), {
    instanceOf: PkiFileError,
    message: /alice\.key and .*alice\.crt already exist; pass --force/,
  });
  t.deepEqual(await readFile(alice.key), key);
  await issueCert(runner, ca, dir.path, 'alice', 'client', [], { force: true });
  t.notDeepEqual(await readFile(alice.key), key);
});

test('admin mTLS - federation services: no cert refused, a CA-signed cert acts and is audited by CN', async (t) => {
  const { startAdminFixture } = await import('../fixtures/admin.js');
  const { adminApi } = await import('../../broker/admin/calls.js');
  const dir = await makeRunDir('pki');
  t.teardown(() => dir.remove());
  const runner = new ExecaRunner();
  const ca = await ensureCa(runner, dir.path);
  const server = await issueCert(runner, ca, dir.path, 'broker', 'server', ['localhost']);
  const admin = await issueCert(runner, ca, dir.path, 'admin', 'client');
  const viewer = await issueCert(runner, ca, dir.path, 'viewer', 'client');
  const caCert = await readFile(ca.caCert);
  const base = { serverName: 'localhost', caCert };
  const fx = await startAdminFixture(t, {
    auth: { type: 'mtls', caCert, ...(await readPair(server)) },
    writers: ['cn:admin'],
    conn: { ...base, ...(await readPair(admin)) },
  });
  const page = { pageSize: 0, pageToken: '' };

  const anon = adminApi({ address: fx.address, ...base }, 3000);
  t.teardown(() => anon.close());
  const refused = await t.throwsAsync<GrpcErr>(
    anon.federation.listClusters({ ...page, readMask: [] }),
  );
  t.is(refused?.code, status.UNAVAILABLE);

  t.is((await fx.api.federation.listClusters({ ...page, readMask: [] })).totalSize, 3);
  const res = await fx.api.actions.cordonCluster({ cluster: 'madrid', reason: 'mtls test' });
  t.is(res.audit!.actor, 'cn:admin');

  const view = adminApi({ address: fx.address, ...base, ...(await readPair(viewer)) }, 3000);
  t.teardown(() => view.close());
  t.is(
    (await view.federation.getCluster({ id: 'madrid', readMask: ['cordon'] })).cluster!.cordon!.by,
    'cn:admin',
  );
  const denied = await t.throwsAsync<GrpcErr>(
    view.actions.uncordonCluster({ cluster: 'madrid', reason: 'x' }),
  );
  t.is(denied?.code, status.PERMISSION_DENIED);
});

test('admin token - a wrong token is UNAUTHENTICATED, the right one acts as token:<id>', async (t) => {
  const { startAdminFixture } = await import('../fixtures/admin.js');
  const { adminApi } = await import('../../broker/admin/calls.js');
  const token = 'a'.repeat(40);
  const fx = await startAdminFixture(t, {
    auth: { type: 'token', tokens: [token] },
    conn: { token },
  });
  const wrong = adminApi({ address: fx.address, token: 'b'.repeat(40) }, 3000);
  t.teardown(() => wrong.close());
  const e = await t.throwsAsync<GrpcErr>(
    wrong.federation.listPeerings({ pageSize: 0, pageToken: '', cluster: '' }),
  );
  t.is(e?.code, status.UNAUTHENTICATED);
  const res = await fx.api.actions.cordonCluster({ cluster: 'athens', reason: 'token test' });
  // echo -n aaaa…(40) | sha256sum → e33cdf9c7f71…: computed outside the code under test.
  t.is(res.audit!.actor, 'token:e33cdf9c7f71');
});
