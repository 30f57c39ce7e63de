import { join } from 'node:path';
import { readFile, stat } from 'node:fs/promises';
import { status } from '@grpc/grpc-js';
import { ExecaRunner } from '../../lib/runner.js';
import { ensureCa, issueCert, readPair } from '../../lib/pki.js';
import { startAdminServer } from '../../broker/admin-server.js';
import { getVersion } from '../../broker/admin-client.js';
import { testWith } from '../fixtures/privileges.js';
import { makeRunDir } from '../fixtures/run-dir.js';

const test = testWith({ tools: ['openssl'] });
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
