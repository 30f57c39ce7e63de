/**
 * The agent over the real broker link, a real broker and nats-server with the generated
 * credentials (issue 11 items 2 and 6): a peer map the broker's KV holds is not trusted.
 * Junk bytes, a malformed map and a map with two peers sharing one key are written to
 * madrid's peer-map key with the broker's rights (what a compromised broker could do);
 * the agent refuses the first two with a status naming the problem and keeps its
 * gateway config, and from the third drops only the two clashing peers.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pino } from 'pino';
import { BUCKETS, type PeerMap } from '../../broker/records.js';
import { Agent, type AgentSettings } from '../../cluster-agent/agent.js';
import { NatsBrokerLink } from '../../cluster-agent/broker-link.js';
import { makeState } from '../../cluster-agent/desired-state.js';
import { PeerMapCache } from '../../cluster-agent/peer-map-cache.js';
import { FakeSource } from '../../cluster-agent/source-fake.js';
import { AGENT_STATUS_FILE, FileStatusSink } from '../../cluster-agent/status-sink.js';
import { FakeGateway } from '../../gateway/client-fake.js';
import { fakePublicKey, startAuthedNats, startBrokers } from '../fixtures/broker.js';
import { testWith } from '../fixtures/privileges.js';
import { makeRunDir } from '../fixtures/run-dir.js';

const test = testWith({ tools: ['nats-server'] });

async function until(what: string, fn: () => boolean | Promise<boolean>, ms = 20_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const SETTINGS: AgentSettings = {
  clusterId: 'madrid',
  wireguard: { ifname: 'l2fmad', listenPort: 51820, privateKeyFile: '/var/lib/l2fed/wg.key' },
  transitPrefixLength: 24,
  underlayMtu: 1500,
  l2sm: {},
  endpoints: ['198.18.0.1:51820'],
  bootstrapTransitAddress: '198.18.255.254/32',
  healthPollMs: 200,
  resyncMs: 600_000,
  backoff: { initialMs: 50, maxMs: 500 },
};

const peering = (remote: string) => ({
  apiVersion: 'l2fed.io/v1alpha1' as const,
  kind: 'ClusterPeering' as const,
  metadata: { name: remote },
  spec: { remoteCluster: remote },
});

test('agent over NATS - junk or malformed peer map refused with a status, gateway config kept; two peers sharing a key dropped alone', async (t) => {
  const nats = await startAuthedNats(['madrid', 'bristol']);
  t.teardown(() => nats.dispose());
  const brokers = await startBrokers(
    nats.url,
    1,
    { transitPool: '198.19.254.0/24' },
    nats.brokerConnect,
  );
  t.teardown(() => brokers.dispose());
  const dir = (await makeRunDir('agent-pm-nats')).path;
  t.teardown(() => rm(dir, { recursive: true, force: true }));

  // bristol registers and peers madrid through its own credentials.
  const [bristol] = await nats.clusterClients(['bristol']);
  await bristol!.request('register', {
    publicKey: fakePublicKey(),
    endpoints: ['198.18.0.2:51820'],
  });
  await bristol!.request('exports', { networks: ['cdn'] });
  await bristol!.request('peerings', { peerings: [{ remoteCluster: 'madrid' }] });

  const gateway = new FakeGateway();
  const link = new NatsBrokerLink({
    clusterId: 'madrid',
    servers: [nats.url],
    credential: nats.auth.clusters.madrid!,
    requestTimeoutMs: 2000,
    pollMs: 500,
    log: pino({ level: 'silent' }),
  });
  const agent = new Agent({
    settings: SETTINGS,
    source: new FakeSource(
      makeState(
        [
          {
            apiVersion: 'l2fed.io/v1alpha1',
            kind: 'FederatedNetwork',
            metadata: { name: 'cdn' },
            spec: { segment: { linuxBridge: 'br-cdn' }, mtu: 'auto' },
          },
        ],
        ['athens', 'bristol', 'oslo'].map(peering),
      ),
    ),
    broker: link,
    gateway,
    status: new FileStatusSink(join(dir, 'status')),
    cache: new PeerMapCache(join(dir, 'cache'), 'madrid'),
    log: pino({ level: 'silent' }),
  });
  t.teardown(() => agent.stop());
  await agent.start();
  await until('bristol carried', () =>
    (gateway.last?.networks ?? []).some((n) => n.peers?.includes('bristol')),
  );
  const agentStatus = async () =>
    JSON.parse(await readFile(join(dir, 'status', AGENT_STATUS_FILE), 'utf8')) as {
      peerMapError?: string;
      peerProblems?: { peer: string; reason: string; message: string }[];
    };

  // Write madrid's peer-map key as the broker would (its rights), with what it must not.
  const nc = await nats.connectBroker();
  const kv = await nc
    .jetstream()
    .views.kv(BUCKETS.peerMaps, { bindOnly: true, allow_direct: true });
  const good = JSON.parse((await kv.get('madrid'))!.string()) as PeerMap;
  const config = JSON.stringify(gateway.last);

  await kv.put('madrid', 'this is not json {');
  await until('junk refused', async () =>
    /not JSON/.test((await agentStatus()).peerMapError ?? ''),
  );
  await kv.put('madrid', JSON.stringify({ ...good, peers: [{ ...good.peers[0], endpoints: 7 }] }));
  await until('malformed refused', async () =>
    /peers\[0\]\.endpoints/.test((await agentStatus()).peerMapError ?? ''),
  );
  t.regex((await agentStatus()).peerMapError ?? '', /keeping the last good peer map/);
  t.is(JSON.stringify(gateway.last), config, 'gateway config unchanged');
  t.true(link.connected, 'the link keeps its connection and watch');

  // oslo registered with bristol's key: both left out, athens carried, refusal cleared.
  const b = good.peers[0]!;
  const peer = (cluster: string, publicKey: string, n: number) => ({
    ...b,
    cluster,
    publicKey,
    endpoints: [`198.18.0.${n}:51820`],
    transitAddress: b.transitAddress.replace(/\d+$/, String(200 + n)),
  });
  await kv.put(
    'madrid',
    JSON.stringify({
      ...good,
      peers: [peer('athens', fakePublicKey(), 3), b, peer('oslo', b.publicKey, 4)],
    }),
  );
  await until('athens carried', () => (gateway.last?.peers ?? []).some((p) => p.name === 'athens'));
  await until('status written', async () => (await agentStatus()).peerProblems !== undefined);
  t.deepEqual(
    (gateway.last?.peers ?? []).map((p) => p.name),
    ['athens'],
  );
  const s = await agentStatus();
  t.is(s.peerMapError, undefined);
  t.deepEqual(
    s.peerProblems?.map((p) => [p.peer, p.reason]),
    [
      ['bristol', 'DuplicatePublicKey'],
      ['oslo', 'DuplicatePublicKey'],
    ],
  );
});
