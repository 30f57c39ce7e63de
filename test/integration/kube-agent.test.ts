/**
 * The whole agent on a real kube-apiserver, with the ServiceAccount and role from
 * deploy/rbac (a real token, not the admin), on real parts everywhere else: nats-server
 * with the generated credentials, the real Broker, two real gateways (wireguard-go, Linux
 * bridges, namespaces). madrid's agent reads its CRDs from the API server and writes their
 * status subresources; bristol's reads a folder. Pods ping across; `kubectl get fednet`
 * shows VNI, MTU and members; deleting the ClusterPeering stops the traffic.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentFederation, until } from '../fixtures/agent-federation.js';
import { agentControlPlaneTest } from '../fixtures/kube-agent-control-plane.js';

const test = agentControlPlaneTest({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping', 'nats-server'],
});

interface Status {
  vni?: number;
  effectiveMTU?: number;
  members?: string[];
  observedGeneration?: number;
  active?: boolean;
  reason?: string;
  activeNetworks?: string[];
  conditions?: { type: string; status: string; reason?: string }[];
}

test('kube agent e2e - ServiceAccount agent on real NATS, broker and gateways: CRDs in, traffic across, status out', async (t) => {
  t.timeout(150_000);
  const { kube, token } = t.context;
  const fed = await AgentFederation.start(t, {
    clusters: ['madrid', 'bristol'],
    networks: [{ name: 'cdn', vni: 0, subnet: 10 }],
    exported: ['cdn'],
    probeMs: 1000,
  });
  const madrid = fed.dirs.get('madrid')!;
  const kubeconfig = await kube.kubeconfigFor(token);
  madrid.config.source = { kubernetes: { kubeconfig } };
  await writeFile(join(madrid.manifests, 'README'), 'madrid reads its CRDs from the API server\n');
  await kube.kubectl(['apply', '-f', '-'], {
    input: [
      'apiVersion: l2fed.io/v1alpha1',
      'kind: FederatedNetwork',
      'metadata: {name: cdn}',
      'spec: {segment: {linuxBridge: br-cdn}}',
      '---',
      'apiVersion: l2fed.io/v1alpha1',
      'kind: ClusterPeering',
      'metadata: {name: bristol}',
      'spec: {remoteCluster: bristol}',
    ].join('\n'),
  });
  for (const id of ['madrid', 'bristol']) await fed.startAgent(id);

  const upMs = await until('cdn ping across', async () => (await fed.ping('cdn')).ok, 60_000);
  t.log(`first ping across ${upMs} ms after the agents started`);
  const get = async (what: string) =>
    (JSON.parse((await kube.kubectl(['get', what, '-o', 'json'])).stdout) as { status?: Status })
      .status ?? {};
  await until(
    'cdn Ready in its status subresource',
    async () =>
      (await get('fednet/cdn')).conditions?.some(
        (c) => c.type === 'Ready' && c.status === 'True',
      ) === true,
  );
  const net = await get('fednet/cdn');
  t.is(net.effectiveMTU, 1370);
  t.deepEqual(net.members, ['bristol', 'madrid']);
  t.is(net.observedGeneration, 1);
  // The VNI the broker allocated is the one madrid's gateway carries.
  const carried = fed.gateways
    .get('madrid')!
    .gateway.config?.networks.find((n) => n.name === 'cdn');
  t.is(net.vni, carried?.vni);
  const table = (await kube.kubectl(['get', 'fednet'])).stdout;
  t.log(table);
  t.deepEqual(table.split('\n')[1]?.split(/\s+/).slice(0, 5), [
    'cdn',
    String(net.vni),
    '1370',
    '["bristol","madrid"]',
    'True',
  ]);
  await until(
    'peering Established',
    async () => (await get('cpeer/bristol')).reason === 'Established',
  );
  const peering = await get('cpeer/bristol');
  t.true(peering.active);
  t.deepEqual(peering.activeNetworks, ['cdn']);
  t.like(
    peering.conditions?.find((c) => c.type === 'Mutual'),
    { status: 'True', reason: 'BothDeclared' },
  );

  // Deleting the peering object withdraws it: the broker drops it, the tunnel goes.
  await kube.kubectl(['delete', 'cpeer', 'bristol']);
  const goneMs = await until('traffic stops', async () => !(await fed.ping('cdn')).ok);
  t.log(`traffic stopped ${goneMs} ms after the ClusterPeering was deleted`);
  t.false((await fed.ping('cdn', 5)).ok, 'no ping passes without the peering');
  t.deepEqual(fed.gateways.get('madrid')!.gateway.config?.peers ?? [], []);
});
