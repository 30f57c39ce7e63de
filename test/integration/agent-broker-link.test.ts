/**
 * The agent's broker link against a real nats-server with generated (restricted)
 * credentials: starts while NATS is down, fails fast meanwhile, connects when NATS comes
 * up, follows the own peer map through the KV watch, and sends the health verb.
 */
import { connect } from 'nats';
import { pino } from 'pino';
import { connectOptionsFor, generateFederationAuth } from '../../broker/auth-config.js';
import { BrokerClient } from '../../broker/client.js';
import { BUCKETS, type HealthRecord, type PeerMap } from '../../broker/records.js';
import { NatsBrokerLink, type BrokerEvent } from '../../cluster-agent/broker-link.js';
import { BrokerUnavailableError } from '../../cluster-agent/errors.js';
import { fakePublicKey, startBrokers } from '../fixtures/broker.js';
import { startNats } from '../fixtures/nats.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({ tools: ['nats-server'] });

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 15_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('broker link - starts with NATS down, fails fast, joins when NATS is up, follows its map', async (t) => {
  const auth = generateFederationAuth({ clusters: ['madrid', 'bristol'] });
  const nats = await startNats({ extraConfig: auth.serverConfig });
  t.teardown(() => nats.dispose());
  await nats.server.stop();

  const link = new NatsBrokerLink({
    clusterId: 'madrid',
    servers: [nats.url],
    credential: auth.clusters.madrid!,
    // 2 s, as the agent fixture: the flake once blamed on JetStream recovering after the
    // restart (its store is empty here) was the broker answering before the server had its
    // subscription ("no responders"); Broker.start now flushes it (d5441a4).
    requestTimeoutMs: 2000,
    pollMs: 500,
    log: pino({ level: 'silent' }),
  });
  const events: BrokerEvent[] = [];
  link.subscribe((e) => events.push(e));
  link.start();
  t.teardown(() => link.stop());
  const started = Date.now();
  await t.throwsAsync(link.setExports(['cdn']), { instanceOf: BrokerUnavailableError });
  t.true(Date.now() - started < 500, 'fails fast while disconnected');
  t.false(link.connected);

  await nats.server.restart();
  const brokers = await startBrokers(
    nats.url,
    1,
    { transitPool: '198.19.254.0/24' },
    connectOptionsFor(auth.broker),
  );
  t.teardown(() => brokers.dispose());
  await until('connected', () => link.connected);
  t.true(events.some((e) => e.type === 'connection' && e.connected));

  // Broker.start resolves once the server has its subscription, so the first register
  // is answered; a failure here is logged with its cause before the test fails.
  const reg = await link
    .register({ publicKey: fakePublicKey(), endpoints: ['198.18.0.1:51820'] })
    .catch((err: unknown) => {
      t.log(`register failed: ${String(err)}; cause: ${String((err as Error).cause)}`);
      throw err;
    });
  t.regex(reg.cluster.transitAddress, /^198\.19\.254\./);
  await link.setExports(['cdn']);
  await link.setPeerings([{ remoteCluster: 'bristol' }]);

  // bristol agrees (through its own restricted credentials) → madrid's map lists it.
  const nc = await connect({
    servers: nats.url,
    ...connectOptionsFor(auth.clusters.bristol!, 'bristol'),
  });
  t.teardown(() => nc.close());
  const bristol = new BrokerClient(nc, 'bristol');
  await bristol.request('register', {
    publicKey: fakePublicKey(),
    endpoints: ['198.18.0.2:51820'],
  });
  await bristol.request('exports', { networks: ['cdn'] });
  await bristol.request('peerings', { peerings: [{ remoteCluster: 'madrid' }] });
  const lastMap = () =>
    events
      .filter((e): e is { type: 'peer-map'; peerMap: PeerMap | undefined } => e.type === 'peer-map')
      .at(-1)?.peerMap;
  await until('map with bristol', () => lastMap()?.peers[0]?.cluster === 'bristol');
  t.deepEqual(
    lastMap()?.peers[0]?.networks.map((n) => n.name),
    ['cdn'],
  );

  const reportedAt = new Date().toISOString();
  const vni = lastMap()!.networks[0]!.vni;
  await link.reportHealth({
    reportedAt,
    peers: [{ cluster: 'bristol', state: 'up', rttMs: 1 }],
    networks: [{ name: 'cdn', vni, state: 'up' }],
  });
  // The report is what the broker stored for madrid (read with the broker's credentials).
  const bnc = await connect({ servers: nats.url, ...connectOptionsFor(auth.broker) });
  t.teardown(() => bnc.close());
  const kv = await bnc.jetstream().views.kv(BUCKETS.health, { bindOnly: true });
  const entry = await kv.get('madrid');
  t.truthy(entry, 'a health record for madrid');
  const stored = entry!.json<HealthRecord>();
  t.is(stored.reportedAt, reportedAt);
  t.deepEqual(stored.peers, [{ cluster: 'bristol', state: 'up', rttMs: 1 }]);
  t.deepEqual(stored.networks, [{ name: 'cdn', vni, state: 'up' }]);
});
