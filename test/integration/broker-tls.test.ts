import { execFileSync } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'nats';
import { testWith } from '../fixtures/privileges.js';
import { startNats } from '../fixtures/nats.js';
import { makeRunDir } from '../fixtures/run-dir.js';
import { registerBody, startBrokers } from '../fixtures/broker.js';
import { connectOptionsFor, generateFederationAuth } from '../../broker/auth-config.js';
import { BrokerClient } from '../../broker/client.js';

const test = testWith({ tools: ['nats-server', 'openssl'] });

/** A throwaway CA and a server certificate for 127.0.0.1. */
function makeCerts(dir: string): { ca: string; cert: string; key: string } {
  const f = (n: string) => join(dir, n);
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  run([
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    f('ca.key'),
    '-out',
    f('ca.pem'),
    '-days',
    '1',
    '-subj',
    '/CN=l2fed-test-ca',
  ]);
  run([
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    f('server.key'),
    '-out',
    f('server.csr'),
    '-subj',
    '/CN=127.0.0.1',
  ]);
  run([
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('server.pem'),
    '-days',
    '1',
    '-extfile',
    f('san.cnf'),
  ]);
  return { ca: f('ca.pem'), cert: f('server.pem'), key: f('server.key') };
}

test('tls - generated config with TLS: clusters connect with the CA, plaintext is refused', async (t) => {
  const dir = await makeRunDir('tls');
  t.teardown(() => dir.remove());
  await writeFile(join(dir.path, 'san.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  const certs = makeCerts(dir.path);
  const auth = generateFederationAuth({
    clusters: ['x'],
    tls: { certFile: certs.cert, keyFile: certs.key },
  });
  const fx = await startNats({ extraConfig: auth.serverConfig });
  t.teardown(() => fx.dispose());
  const tls = { caFile: certs.ca };
  const brokers = await startBrokers(fx.url, 1, {}, { ...connectOptionsFor(auth.broker), tls });
  t.teardown(() => brokers.dispose());

  const nc = await connect({
    servers: fx.url,
    maxReconnectAttempts: 0,
    ...connectOptionsFor(auth.clusters.x!, 'x'),
    tls,
  });
  t.teardown(() => nc.close());
  const r = await new BrokerClient(nc, 'x').request('register', registerBody(1));
  t.true(r.created);

  // Right credentials but no TLS: refused.
  await t.throwsAsync(
    connect({
      servers: fx.url,
      maxReconnectAttempts: 0,
      ...connectOptionsFor(auth.clusters.x!, 'x'),
    }),
  );
});
