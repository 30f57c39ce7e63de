/**
 * The agent with the Kubernetes source and the CRD status sink: real client-node against
 * the in-process API server (test/fixtures/kube-apiserver.ts, CRD schemas enforced on
 * writes), a fake broker (real Federation on an in-memory KV) and a fake gateway.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { pino } from 'pino';
import { Agent } from '../../cluster-agent/agent.js';
import { FakeBroker, fakeFederation } from '../../cluster-agent/broker-link-fake.js';
import { FakeGateway } from '../../gateway/client-fake.js';
import { PeerMapCache } from '../../cluster-agent/peer-map-cache.js';
import { KubernetesSource } from '../../cluster-agent/source-kubernetes.js';
import { KubeStatusSink } from '../../cluster-agent/status-sink.js';
import { CEL_MIRRORS, crdSchema } from '../fixtures/crds.js';
import { KubeApiFixture } from '../fixtures/kube-apiserver.js';
import { checkOpenApi } from '../fixtures/openapi-check.js';
import { makeRunDir } from '../fixtures/run-dir.js';
import { agentSettings } from '../fixtures/agent-settings.js';

const KEY_B = 'pD4zZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=';
const SCHEMAS = {
  federatednetworks: crdSchema('FederatedNetwork'),
  clusterpeerings: crdSchema('ClusterPeering'),
};

interface Cond {
  type: string;
  status: string;
  reason: string;
}

test('agent on Kubernetes - CRDs in, status subresources out, delete withdraws', async (t) => {
  const fx = await KubeApiFixture.start({
    validate: (plural, obj) => checkOpenApi(SCHEMAS[plural], obj, CEL_MIRRORS),
  });
  t.teardown(() => fx.dispose());
  const dir = await makeRunDir('agentkube');
  t.teardown(() => rm(dir.path, { recursive: true, force: true }));
  const fed = fakeFederation();
  await fed.register('bristol', {
    publicKey: KEY_B,
    endpoints: ['198.18.0.2:51820'],
    capabilities: [],
  });
  await fed.setExports('bristol', ['cdn']);
  await fed.setPeerings('bristol', [{ remoteCluster: 'madrid' }]);
  fx.apply({
    kind: 'FederatedNetwork',
    metadata: { name: 'cdn' },
    spec: { segment: { ovsBridge: 'br-cdn', vlan: 20 }, mtu: 'auto' },
  });
  fx.apply({
    kind: 'ClusterPeering',
    metadata: { name: 'bristol' },
    spec: { remoteCluster: 'bristol' },
  });

  const broker = new FakeBroker(fed, 'madrid');
  const gateway = new FakeGateway();
  const agent = new Agent({
    settings: agentSettings({ healthPollMs: 50, backoff: { initialMs: 20, maxMs: 200 } }),
    source: new KubernetesSource({
      kubeConfig: fx.kubeConfig(),
      debounceMs: 20,
      resyncMs: 0,
      backoff: { initialMs: 20, maxMs: 200 },
    }),
    broker,
    gateway,
    status: new KubeStatusSink(fx.kubeConfig()),
    cache: new PeerMapCache(join(dir.path, 'cache'), 'madrid'),
    log: pino({ level: 'silent' }),
  });
  t.teardown(() => agent.stop());
  await agent.start();

  const conds = (kind: string, name: string) =>
    (fx.get(kind, name)?.status?.conditions ?? []) as Cond[];
  await fx.waitFor(
    () => conds('FederatedNetwork', 'cdn').some((c) => c.type === 'Ready' && c.status === 'True'),
    10_000,
    'cdn Ready',
  );
  const net = fx.get('FederatedNetwork', 'cdn')!.status!;
  t.is(net.effectiveMTU, 1370);
  t.deepEqual(net.members, ['bristol', 'madrid']);
  t.is(typeof net.vni, 'number');
  t.is(net.observedGeneration, 1);
  t.like(gateway.last?.networks?.[0], {
    name: 'cdn',
    segment: { type: 'ovs', bridge: 'br-cdn', vlan: 20 },
    peers: ['bristol'],
  });
  await fx.waitFor(
    () => fx.get('ClusterPeering', 'bristol')?.status?.active === true,
    10_000,
    'peering active',
  );
  t.like(fx.get('ClusterPeering', 'bristol')!.status, {
    reason: 'Connecting',
    activeNetworks: ['cdn'],
  });
  t.like(
    conds('ClusterPeering', 'bristol').find((c) => c.type === 'Mutual'),
    { status: 'True', reason: 'BothDeclared' },
  );

  // Deleting the peering object withdraws it from the broker and the gateway.
  fx.remove('ClusterPeering', 'bristol');
  await fx.waitFor(() => (gateway.last?.peers ?? []).length === 0, 10_000, 'peer removed');
  t.deepEqual(broker.calls.filter((c) => c.verb === 'peerings').at(-1)?.body, { peerings: [] });
  t.deepEqual(gateway.last?.networks?.[0]?.peers, []);
});
