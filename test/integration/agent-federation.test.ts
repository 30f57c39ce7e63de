/**
 * Two clusters end to end: real nats-server (with generated credentials), the real Broker
 * in-process, two real gateways (gRPC service over wireguard-go + Linux bridges in lab
 * namespaces) and two agents reading manifest folders. Walks through: peering → pods
 * ping; a peer stops answering → Degraded with a reason; folder edit removing the peering
 * → traffic stops; NATS down → traffic keeps flowing, an agent (and gateway) restarted
 * from cache still applies; a change made during the outage is picked up when NATS returns.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'nats';
import { pino } from 'pino';
import { connectOptionsFor, generateFederationAuth } from '../../broker/auth-config.js';
import type { HealthRecord } from '../../broker/records.js';
import type { Agent } from '../../cluster-agent/agent.js';
import { parseAgentConfig } from '../../cluster-agent/agent-config.js';
import { createAgent } from '../../cluster-agent/main.js';
import { readStatusFile, statusFileName } from '../../cluster-agent/status-sink.js';
import { startGatewayService, type RunningGateway } from '../../gateway/service.js';
import {
  GatewayLab,
  type LabNetwork,
  type LabPod,
  type LabSite,
} from '../fixtures/gateway-testbed.js';
import { startBrokers } from '../fixtures/broker.js';
import { startNats } from '../fixtures/nats.js';
import { testWith } from '../fixtures/privileges.js';
import { makeRunDir } from '../fixtures/run-dir.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping', 'nats-server'],
});

const CDN: LabNetwork = { name: 'cdn', vni: 0, subnet: 10 };
const TEL: LabNetwork = { name: 'tel', vni: 0, subnet: 20 };
const CLUSTERS = ['madrid', 'bristol'] as const;
const PROBE_MS = 1000;

const network = (name: string) => `apiVersion: l2fed.io/v1alpha1
kind: FederatedNetwork
metadata: {name: ${name}}
spec: {segment: {linuxBridge: br-${name}}}
`;
const peering = (remote: string) => `apiVersion: l2fed.io/v1alpha1
kind: ClusterPeering
metadata: {name: ${remote}}
spec: {remoteCluster: ${remote}}
`;

async function until(what: string, fn: () => Promise<boolean>, ms = 30_000): Promise<number> {
  const start = Date.now();
  while (Date.now() - start < ms) {
    if (await fn()) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

test('agent federation - peering, degraded peer, folder edit, NATS outage with restart from cache, catch-up', async (t) => {
  const started = Date.now();
  const run = await makeRunDir('agentfed');
  t.teardown(() => run.remove());
  const auth = generateFederationAuth({ clusters: [...CLUSTERS] });
  const nats = await startNats({ extraConfig: auth.serverConfig });
  t.teardown(() => nats.dispose());
  const brokers = await startBrokers(
    nats.url,
    1,
    { transitPool: '198.19.254.0/24', reconcileIntervalMs: 0 },
    connectOptionsFor(auth.broker),
  );
  t.teardown(() => brokers.dispose());
  const lab = await GatewayLab.create(2, 'linux-bridge');
  t.teardown(() => lab.dispose());

  const gateways = new Map<string, RunningGateway>();
  const startGateway = async (site: LabSite, id: string) => {
    const svc = await startGatewayService({
      identity: id,
      runner: lab.runner,
      launcher: lab.launcher, // wireguard-go outlives a gateway service restart
      tunnelKind: 'wireguard-go',
      healthIntervalMs: PROBE_MS,
    });
    gateways.set(id, svc);
    return svc;
  };
  t.teardown(async () => {
    for (const g of gateways.values()) await g.close();
  });

  const pods = new Map<string, LabPod>();
  const agents = new Map<string, Agent>();
  const dirs = new Map<string, { manifests: string; status: string; config: unknown }>();
  for (const [i, id] of CLUSTERS.entries()) {
    const site = lab.sites[i]!;
    for (const net of [CDN, TEL]) {
      await lab.addSegment(site, net);
      pods.set(`${id}/${net.name}`, await lab.addPod(site, net, 11 + i, 1370));
    }
    const svc = await startGateway(site, id);
    const base = join(run.path, id);
    const manifests = join(base, 'manifests');
    await mkdir(manifests, { recursive: true });
    await writeFile(join(manifests, 'cdn.yaml'), network('cdn'));
    await writeFile(join(manifests, 'peering.yaml'), peering(CLUSTERS[1 - i]!));
    const creds = join(base, 'creds.json');
    await writeFile(join(base, 'creds.json'), JSON.stringify(auth.clusters[id]), { mode: 0o600 });
    dirs.set(id, {
      manifests,
      status: join(base, 'status'),
      config: {
        clusterId: id,
        nats: { servers: [nats.url], credentials: creds, requestTimeoutMs: 2000 },
        gateway: { address: `127.0.0.1:${svc.grpcPort}`, netns: site.ns, healthPollMs: 300 },
        advertise: { endpoints: [`${site.underlayAddress}:51820`] },
        wireguard: { ifname: site.ifname, listenPort: 51820, privateKeyFile: site.keyFile },
        transitPrefixLength: 24,
        bootstrapTransitAddress: `198.18.255.${10 + i}/32`,
        cacheDir: join(base, 'cache'),
        statusDir: join(base, 'status'),
        source: { folder: manifests },
        resyncMs: 30_000,
        backoff: { initialMs: 100, maxMs: 1000 },
      },
    });
  }
  const log = pino({ level: process.env.L2FED_TEST_LOG ?? 'silent' });
  const startAgent = async (id: string) => {
    const d = dirs.get(id)!;
    const agent = await createAgent(parseAgentConfig(d.config), log.child({ cluster: id }));
    agents.set(id, agent);
    await agent.start();
    return agent;
  };
  t.teardown(async () => {
    for (const a of agents.values()) await a.stop();
  });
  const ping = async (net: string, count = 1) => {
    const a = pods.get(`madrid/${net}`)!;
    const b = pods.get(`bristol/${net}`)!;
    const r = await lab.runner.run(
      ['ping', '-n', '-c', String(count), '-i', '0.2', '-W', '1', b.ip],
      { netns: a.ns, allowFailure: true, timeoutMs: 30_000 },
    );
    return { ok: r.exitCode === 0, out: r.stdout };
  };
  const peeringStatus = async (id: string, remote: string) =>
    readStatusFile(join(dirs.get(id)!.status, statusFileName('ClusterPeering', remote)));

  // 1. Both declare the peering → pods ping across.
  for (const id of CLUSTERS) await startAgent(id);
  const upMs = await until('cdn ping across', async () => (await ping('cdn')).ok);
  t.log(`first ping across ${upMs} ms after the agents started`);
  await until(
    'peering Established',
    async () => (await peeringStatus('madrid', 'bristol'))?.status.reason === 'Established',
  );
  const established = await peeringStatus('madrid', 'bristol');
  t.regex(String(established?.status.rtt), /^\d+(\.\d+)?(us|ms)$/);
  t.deepEqual(established?.status.activeNetworks, ['cdn']);
  const net = await readStatusFile(
    join(dirs.get('madrid')!.status, statusFileName('FederatedNetwork', 'cdn')),
  );
  t.is(net?.status.effectiveMTU, 1370);
  t.deepEqual(net?.status.members, ['bristol', 'madrid']);
  // Health reached the broker's bucket, in the documented shape.
  const reader = await connect({ servers: nats.url, ...connectOptionsFor(auth.broker) });
  t.teardown(() => reader.close());
  const healthKv = await reader.jetstream().views.kv('l2fed_health', { bindOnly: true });
  await until('health stored', async () => {
    const e = await healthKv.get('madrid');
    if (!e || e.operation !== 'PUT') return false;
    const rec = e.json<HealthRecord>();
    return rec.peers.some((p) => p.cluster === 'bristol' && p.state === 'up') && !!rec.storedAt;
  });

  // 2. bristol stops answering (underlay link down) → Degraded with a reason, quickly.
  const bristolSite = lab.sites[1]!;
  await lab.runner.run(['ip', 'link', 'set', 'ul0', 'down'], {
    netns: bristolSite.ns,
    mutates: true,
  });
  const degradedMs = await until(
    'Degraded',
    async () => (await peeringStatus('madrid', 'bristol'))?.status.reason === 'Degraded',
    15_000,
  );
  t.log(
    `peer shown Degraded ${degradedMs} ms after it stopped answering (probe interval ${PROBE_MS} ms)`,
  );
  t.true(degradedMs < 6 * PROBE_MS, `within a few probe intervals (${degradedMs} ms)`);
  const degraded = await peeringStatus('madrid', 'bristol');
  const cond = degraded?.status.conditions?.find((c) => c.type === 'TunnelHealthy');
  t.is(cond?.status, 'False');
  t.regex(cond?.message ?? '', /no answer/);
  await lab.runner.run(['ip', 'link', 'set', 'ul0', 'up'], {
    netns: bristolSite.ns,
    mutates: true,
  });
  await until(
    'Established again',
    async () => (await peeringStatus('madrid', 'bristol'))?.status.reason === 'Established',
  );

  // 3. Folder edit removing the peering stops traffic; restoring it brings it back.
  await rm(join(dirs.get('madrid')!.manifests, 'peering.yaml'));
  await until('traffic stops', async () => !(await ping('cdn')).ok, 15_000);
  t.false((await ping('cdn', 3)).ok, 'no pings pass without the peering');
  await writeFile(join(dirs.get('madrid')!.manifests, 'peering.yaml'), peering('bristol'));
  await until('traffic back', async () => (await ping('cdn')).ok);

  // 4. NATS down: pings keep flowing; madrid's agent and gateway restart from cache.
  await nats.server.kill();
  const during = await ping('cdn', 15);
  t.true(during.ok, during.out);
  t.regex(during.out, / 0% packet loss/);
  await agents.get('madrid')!.stop();
  await gateways.get('madrid')!.close();
  const gw2 = await startGateway(lab.sites[0]!, 'madrid');
  (dirs.get('madrid')!.config as { gateway: { address: string } }).gateway.address =
    `127.0.0.1:${gw2.grpcPort}`;
  const restarted = await startAgent('madrid');
  await until(
    'restarted agent applied from cache',
    () => Promise.resolve(gw2.gateway.lastReport !== undefined),
    15_000,
  );
  t.is(restarted.view.peerMapFrom, 'cache');
  t.is(gw2.gateway.config?.peers[0]?.name, 'bristol');
  const afterRestart = await ping('cdn', 10);
  t.regex(afterRestart.out, / 0% packet loss/, 'restart from cache kept traffic');

  // A change made while NATS is down: both export tel. Needs a VNI, so it waits.
  for (const id of CLUSTERS) {
    await writeFile(join(dirs.get(id)!.manifests, 'tel.yaml'), network('tel'));
  }
  await new Promise((r) => setTimeout(r, 1500));
  t.false((await ping('tel')).ok, 'tel cannot work before the broker allocates its VNI');

  // 5. NATS back: the change is picked up.
  await nats.server.restart();
  const catchUpMs = await until(
    'tel ping across after NATS returns',
    async () => (await ping('tel')).ok,
    45_000,
  );
  t.log(`change made during the outage live ${catchUpMs} ms after NATS restarted`);
  t.true((await ping('cdn')).ok);
  t.log(`whole scenario ${Date.now() - started} ms`);
});
