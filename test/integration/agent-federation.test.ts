/**
 * Two clusters end to end: real nats-server (with generated credentials), the real Broker
 * in-process, two real gateways (gRPC service over wireguard-go + Linux bridges in lab
 * namespaces) and two agents reading manifest folders. Walks through: peering → pods
 * ping; a peer stops answering → Degraded with a reason; folder edit removing the peering
 * → traffic stops; NATS down → traffic keeps flowing, an agent (and gateway) restarted
 * from cache still applies; a change made during the outage is picked up when NATS returns.
 */
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'nats';
import { connectOptionsFor } from '../../broker/auth-config.js';
import type { HealthRecord } from '../../broker/records.js';
import {
  AgentFederation,
  networkManifest as network,
  peeringManifest as peering,
  until,
} from '../fixtures/agent-federation.js';
import type { LabNetwork } from '../fixtures/gateway-testbed.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping', 'nats-server'],
});

const CDN: LabNetwork = { name: 'cdn', vni: 0, subnet: 10 };
const TEL: LabNetwork = { name: 'tel', vni: 0, subnet: 20 };
const CLUSTERS = ['madrid', 'bristol'] as const;
const PROBE_MS = 1000;

test('agent federation - peering, degraded peer, folder edit, NATS outage with restart from cache, catch-up', async (t) => {
  const started = Date.now();
  const fed = await AgentFederation.start(t, {
    clusters: CLUSTERS,
    networks: [CDN, TEL],
    exported: ['cdn'],
    probeMs: PROBE_MS,
  });
  const { lab, nats, auth, agents, gateways, dirs } = fed;
  const startAgent = (id: string) => fed.startAgent(id);
  const startGateway = (_site: unknown, id: string) => fed.startGateway(id);
  const ping = (net: string, count = 1) => fed.ping(net, count);
  const peeringStatus = (id: string, remote: string) => fed.status(id, 'ClusterPeering', remote);

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
  const net = await fed.status('madrid', 'FederatedNetwork', 'cdn');
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
  const againMs = await until(
    'Established again',
    async () => (await peeringStatus('madrid', 'bristol'))?.status.reason === 'Established',
  );
  t.log(`Established again ${againMs} ms after the link came back`);

  // 3. Folder edit removing the peering stops traffic; restoring it brings it back.
  await rm(join(dirs.get('madrid')!.manifests, 'peering.yaml'));
  await until('traffic stops', async () => !(await ping('cdn')).ok, 15_000);
  t.false((await ping('cdn', 3)).ok, 'no pings pass without the peering');
  await writeFile(join(dirs.get('madrid')!.manifests, 'peering.yaml'), peering('bristol'));
  const backMs = await until('traffic back', async () => (await ping('cdn')).ok);
  t.log(`traffic back ${backMs} ms after the peering was restored`);

  // 4. NATS down: pings keep flowing; madrid's agent and gateway restart from cache.
  await nats.server.kill();
  const during = await ping('cdn', 15);
  t.true(during.ok, during.out);
  t.regex(during.out, / 0% packet loss/);
  await agents.get('madrid')!.stop();
  await gateways.get('madrid')!.close();
  const gw2 = await startGateway(lab.sites[0]!, 'madrid');
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
