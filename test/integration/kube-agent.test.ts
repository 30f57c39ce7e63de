/**
 * The whole agent on a real kube-apiserver, with the ServiceAccount and role from
 * deploy/rbac (a real token, not the admin): CRDs in, status subresources out, and
 * `kubectl get fednet` shows VNI, MTU and members. The broker is the fake federation (a real
 * Federation on an in-memory KV) and the gateway is FakeGateway: a real data plane (lab or
 * testbed) on this path is still open in issue 13.
 */
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent } from '../../cluster-agent/agent.js';
import { FakeBroker, fakeFederation } from '../../cluster-agent/broker-link-fake.js';
import { PeerMapCache } from '../../cluster-agent/peer-map-cache.js';
import { KubernetesSource } from '../../cluster-agent/source-kubernetes.js';
import { KubeStatusSink } from '../../cluster-agent/status-sink.js';
import { FakeGateway } from '../../gateway/client-fake.js';
import { agentControlPlaneTest } from '../fixtures/kube-agent-control-plane.js';
import { makeRunDir } from '../fixtures/run-dir.js';
import { agentSettings } from '../fixtures/agent-settings.js';

const test = agentControlPlaneTest();

const KEY_B = 'pD4zZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=';
const WAIT_MS = 20_000;

async function waitFor(ok: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what}: not within ${WAIT_MS} ms`);
}

test('kube agent e2e - the agent with its ServiceAccount: CRDs in, status out, kubectl shows it', async (t) => {
  t.timeout(90_000);
  const { kube, token } = t.context;
  const run = await makeRunDir('kubeagent');
  t.teardown(() => run.remove());
  const fed = fakeFederation();
  await fed.register('bristol', {
    publicKey: KEY_B,
    endpoints: ['198.18.0.2:51820'],
    capabilities: [],
  });
  await fed.setExports('bristol', ['cdn']);
  await fed.setPeerings('bristol', [{ remoteCluster: 'madrid' }]);
  await kube.kubectl(['apply', '-f', '-'], {
    input: [
      'apiVersion: l2fed.io/v1alpha1',
      'kind: FederatedNetwork',
      'metadata: {name: cdn}',
      'spec: {segment: {ovsBridge: br-cdn, vlan: 20}}',
      '---',
      'apiVersion: l2fed.io/v1alpha1',
      'kind: ClusterPeering',
      'metadata: {name: bristol}',
      'spec: {remoteCluster: bristol}',
    ].join('\n'),
  });

  const broker = new FakeBroker(fed, 'madrid');
  const gateway = new FakeGateway();
  const kubeConfig = kube.kubeConfig(token);
  const agent = new Agent({
    settings: agentSettings({ healthPollMs: 50, backoff: { initialMs: 20, maxMs: 200 } }),
    source: new KubernetesSource({
      kubeConfig,
      debounceMs: 20,
      resyncMs: 0,
      backoff: { initialMs: 20, maxMs: 200 },
    }),
    broker,
    gateway,
    status: new KubeStatusSink(kubeConfig),
    cache: new PeerMapCache(join(run.path, 'cache'), 'madrid'),
    log: pino({ level: 'silent' }),
  });
  t.teardown(() => agent.stop());
  await agent.start();

  const get = async (what: string) =>
    JSON.parse((await kube.kubectl(['get', what, '-o', 'json'])).stdout) as {
      status?: {
        vni?: number;
        effectiveMTU?: number;
        members?: string[];
        active?: boolean;
        conditions?: { type: string; status: string }[];
      };
    };
  await waitFor(
    async () =>
      (await get('fednet/cdn')).status?.conditions?.some(
        (c) => c.type === 'Ready' && c.status === 'True',
      ) === true,
    'cdn Ready',
  );
  const net = (await get('fednet/cdn')).status!;
  t.is(net.effectiveMTU, 1370);
  t.deepEqual(net.members, ['bristol', 'madrid']);
  t.is(typeof net.vni, 'number');
  t.like(gateway.last?.networks?.[0], {
    name: 'cdn',
    segment: { type: 'ovs', bridge: 'br-cdn', vlan: 20 },
    peers: ['bristol'],
  });
  const table = (await kube.kubectl(['get', 'fednet'])).stdout;
  t.log(table);
  t.deepEqual(table.split('\n')[1]?.split(/\s+/).slice(0, 5), [
    'cdn',
    String(net.vni),
    '1370',
    '["bristol","madrid"]',
    'True',
  ]);
  await waitFor(async () => (await get('cpeer/bristol')).status?.active === true, 'peering');

  // Deleting the peering object withdraws it from the broker and the gateway.
  await kube.kubectl(['delete', 'cpeer', 'bristol']);
  await waitFor(() => Promise.resolve((gateway.last?.peers ?? []).length === 0), 'peer removed');
  t.deepEqual(broker.calls.filter((c) => c.verb === 'peerings').at(-1)?.body, { peerings: [] });
});
