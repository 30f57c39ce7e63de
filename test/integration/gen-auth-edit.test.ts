/**
 * Adding or evicting one cluster's NATS credentials without touching the others
 * (`broker gen-auth --add-clusters / --remove-clusters`), against a real nats-server that
 * includes the generated nats-auth.conf and reloads it (SIGHUP), with the real broker:
 * every other credential file stays byte-identical and keeps working, the added cluster
 * registers with its new file, the removed one is refused.
 */
import { appendFile, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { connect } from 'nats';
import { pino } from 'pino';
import { Broker } from '../../broker/broker.js';
import { BrokerClient } from '../../broker/client.js';
import { connectOptionsFor, credentialSchema } from '../../broker/auth-config.js';
import { main as brokerMain } from '../../broker/main.js';
import { fakePublicKey } from '../fixtures/broker.js';
import { startNats } from '../fixtures/nats.js';
import { testWith } from '../fixtures/privileges.js';
import { makeRunDir } from '../fixtures/run-dir.js';

const test = testWith({ tools: ['nats-server'] });

async function quietly(argv: string[]): Promise<void> {
  const log = console.log;
  console.log = () => undefined;
  try {
    await brokerMain(argv);
  } finally {
    console.log = log;
  }
}

test('gen-auth edit - add one cluster, evict another; nobody else changes; nats-server reloads', async (t) => {
  t.timeout(60_000);
  const dir = await makeRunDir('genauth');
  t.teardown(() => dir.remove());
  const out = join(dir.path, 'auth');
  await quietly(['gen-auth', '--clusters', 'madrid,bristol', '--out', out]);
  const file = (name: string) => join(out, name);
  const bytes = async (name: string) => readFile(file(name), 'utf8');
  const before = {
    broker: await bytes('broker.creds.json'),
    madrid: await bytes('clusters/madrid.creds.json'),
  };
  const credential = async (id: string) =>
    credentialSchema.parse(JSON.parse(await bytes(`clusters/${id}.creds.json`)));
  const bristol = await credential('bristol');

  const nats = await startNats({ extraConfig: '' });
  t.teardown(() => nats.dispose());
  // The fixture's server config includes the generated file, as an operator's would.
  const confDir = join(nats.dir, 'server');
  const conf = join(confDir, 'nats.conf');
  await appendFile(conf, `include "${relative(confDir, file('nats-auth.conf'))}"\n`);
  await nats.server.restart();
  const broker = await Broker.start({
    name: 'genauth-test',
    config: { reconcileIntervalMs: 0 },
    connect: {
      servers: nats.url,
      ...connectOptionsFor(credentialSchema.parse(JSON.parse(before.broker))),
    },
    logger: pino({ level: 'silent' }),
  });
  t.teardown(() => broker.stop());
  const keys = new Map<string, string>();
  const register = async (id: string) => {
    if (!keys.has(id)) keys.set(id, fakePublicKey());
    const nc = await connect({
      servers: nats.url,
      ...connectOptionsFor(await credential(id), id),
      maxReconnectAttempts: 0,
      // A dial during a reload can stall: fail it fast and let retry() try again.
      timeout: 2000,
    });
    try {
      return await new BrokerClient(nc, id).request('register', {
        publicKey: keys.get(id)!,
        endpoints: ['198.18.0.1:51820'],
        capabilities: [],
      });
    } finally {
      await nc.close();
    }
  };
  t.is((await register('madrid')).cluster.id, 'madrid');
  t.is((await register('bristol')).cluster.id, 'bristol');

  // Add oslo: only its file and nats-auth.conf change.
  const confBefore = await bytes('nats-auth.conf');
  await quietly(['gen-auth', '--add-clusters', 'oslo', '--out', out]);
  t.is(await bytes('broker.creds.json'), before.broker);
  t.is(await bytes('clusters/madrid.creds.json'), before.madrid);
  t.not(await bytes('nats-auth.conf'), confBefore);
  t.is((await stat(file('clusters/oslo.creds.json'))).mode & 0o777, 0o600);
  process.kill(nats.server.pid!, 'SIGHUP');
  const reg = await retry(() => register('oslo'));
  t.is(reg.cluster.id, 'oslo', 'oslo registers with its new file after the reload');
  t.is((await register('madrid')).cluster.id, 'madrid', 'madrid keeps working unchanged');

  // A second add of oslo is refused, naming it; nothing changes.
  const confWithOslo = await bytes('nats-auth.conf');
  await t.throwsAsync(quietly(['gen-auth', '--add-clusters', 'oslo', '--out', out]), {
    message: /cluster "oslo" already has credentials/,
  });
  t.is(await bytes('nats-auth.conf'), confWithOslo);

  // Evict bristol: its file goes, nats-server refuses it after the reload.
  await quietly(['gen-auth', '--remove-clusters', 'bristol', '--out', out]);
  await t.throwsAsync(stat(file('clusters/bristol.creds.json')));
  t.is(await bytes('clusters/madrid.creds.json'), before.madrid);
  process.kill(nats.server.pid!, 'SIGHUP');
  await retry(async () => {
    const refused = await connect({
      servers: nats.url,
      ...connectOptionsFor(bristol, 'bristol'),
      maxReconnectAttempts: 0,
      timeout: 2000,
    }).then(
      async (nc) => {
        await nc.close();
        return false;
      },
      () => true,
    );
    if (!refused) throw new Error('bristol still admitted');
  });
  t.is((await register('madrid')).cluster.id, 'madrid');
  t.is((await register('oslo')).cluster.id, 'oslo');
});

/** nats-server applies a reload asynchronously: retry (each try bounded) for up to 10 s. */
async function retry<T>(fn: () => Promise<T>): Promise<T> {
  const end = Date.now() + 10_000;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
