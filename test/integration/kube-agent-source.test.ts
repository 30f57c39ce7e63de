/**
 * The agent's Kubernetes side (KubernetesSource, KubeStatusWriter) against a real
 * kube-apiserver, authenticated with a real ServiceAccount token bound by deploy/rbac (not
 * the admin): it lists and watches both CRDs, sees every change, and writes status through
 * the status subresource, which `kubectl get fednet` then shows. Fault injection (forced
 * 410s, held events, failing requests) stays on the in-process fake:
 * test/integration/agent-kube-source.test.ts.
 */
import type { ExecutionContext } from 'ava';
import { nextEvent, type SourceEvent } from '../../cluster-agent/source.js';
import type { DesiredState } from '../../cluster-agent/desired-state.js';
import { KubernetesSource } from '../../cluster-agent/source-kubernetes.js';
import { KubeStatusWriter } from '../../cluster-agent/status-writer.js';
import {
  agentControlPlaneTest,
  type AgentControlPlaneContext,
} from '../fixtures/kube-agent-control-plane.js';

const test = agentControlPlaneTest();

const WAIT = 15_000;

const yamlOf = (kind: string, name: string, spec: string) =>
  `apiVersion: l2fed.io/v1alpha1\nkind: ${kind}\nmetadata: {name: ${name}}\nspec: ${spec}\n`;

/** Applies each manifest in turn, then has teardown delete every fednet and cpeer. */
async function applyThenClean(
  t: ExecutionContext<AgentControlPlaneContext>,
  ...manifests: string[]
): Promise<void> {
  const { kube } = t.context;
  for (const input of manifests) await kube.kubectl(['apply', '-f', '-'], { input });
  t.teardown(() => kube.kubectl(['delete', 'fednet,cpeer', '--all'], { allowFailure: true }));
}

const names = (s: DesiredState) => ({
  networks: s.networks.map((n) => n.metadata.name),
  peerings: s.peerings.map((p) => p.metadata.name),
});

function snapshotWhere(source: KubernetesSource, ok: (s: DesiredState) => boolean) {
  const now = source.current();
  if (now && ok(now)) return Promise.resolve(now);
  return nextEvent(source, (e) => e.type === 'snapshot' && ok(e.state), WAIT).then(
    (e) => (e as Extract<SourceEvent, { type: 'snapshot' }>).state,
  );
}

test.serial(
  'kube agent - with the agent token, lists and watches both CRDs and sees every change',
  async (t) => {
    t.timeout(90_000);
    const { kube, token } = t.context;
    const admin = (args: string[], input?: string) => kube.kubectl(args, { input });
    await admin(
      ['apply', '-f', '-'],
      yamlOf('FederatedNetwork', 'cdn', '{segment: {ovsBridge: br-cdn}}'),
    );
    await admin(
      ['apply', '-f', '-'],
      yamlOf('ClusterPeering', 'bristol', '{remoteCluster: bristol, networks: [cdn]}'),
    );
    t.teardown(() => kube.kubectl(['delete', 'fednet,cpeer', '--all'], { allowFailure: true }));

    const source = new KubernetesSource({
      kubeConfig: kube.kubeConfig(token),
      debounceMs: 20,
      resyncMs: 0,
      backoff: { initialMs: 50, maxMs: 500 },
    });
    const events: SourceEvent[] = [];
    source.subscribe((e) => events.push(e));
    t.teardown(() => source.stop());
    await source.start();

    const first = await snapshotWhere(source, () => true);
    t.deepEqual(names(first), { networks: ['cdn'], peerings: ['bristol'] });
    // The server applied the CRD default.
    t.is(first.networks[0]?.spec.mtu, 'auto');

    await admin(
      ['apply', '-f', '-'],
      yamlOf('FederatedNetwork', 'telemetry', '{segment: {linuxBridge: br-tel}, mtu: 1400}'),
    );
    const created = await snapshotWhere(source, (s) => s.networks.length === 2);
    t.deepEqual(names(created).networks, ['cdn', 'telemetry']);
    t.is(created.networks[1]?.spec.mtu, 1400);

    await admin(
      ['apply', '-f', '-'],
      yamlOf('FederatedNetwork', 'cdn', '{segment: {ovsBridge: br-cdn, vlan: 30}, mtu: 1450}'),
    );
    const updated = await snapshotWhere(source, (s) => s.networks[0]?.spec.mtu === 1450);
    t.is(updated.networks[0]?.spec.segment.vlan, 30);

    await admin(['delete', 'cpeer', 'bristol']);
    await admin(['delete', 'fednet', 'telemetry']);
    const deleted = await snapshotWhere(
      source,
      (s) => s.networks.length === 1 && s.peerings.length === 0,
    );
    t.deepEqual(names(deleted), { networks: ['cdn'], peerings: [] });
    t.false(
      events.some((e) => e.type === 'error'),
      `no errors: ${JSON.stringify(events.filter((e) => e.type === 'error'))}`,
    );
  },
);

test.serial(
  'kube agent - status goes through the status subresource with the agent token; kubectl shows it',
  async (t) => {
    t.timeout(60_000);
    const { kube, token } = t.context;
    await applyThenClean(
      t,
      yamlOf('FederatedNetwork', 'cdn', '{segment: {ovsBridge: br-cdn}}'),
      yamlOf('ClusterPeering', 'athens', '{remoteCluster: athens}'),
    );

    const writer = new KubeStatusWriter(kube.kubeConfig(token));
    const ready = { type: 'Ready', status: 'True', reason: 'Programmed', message: 'ok' } as const;
    const status = {
      vni: 4097,
      effectiveMTU: 1370,
      members: ['athens', 'madrid'],
      conditions: [ready],
    };
    t.like(await writer.writeNetworkStatus('cdn', status), { type: 'written' });
    t.like(await writer.writeNetworkStatus('cdn', status), { type: 'unchanged' });
    t.like(
      await writer.writePeeringStatus('athens', {
        active: true,
        reason: 'Active',
        rtt: '2ms',
        conditions: [ready],
      }),
      { type: 'written' },
    );
    t.deepEqual(await writer.writePeeringStatus('gone', { conditions: [] }), { type: 'gone' });

    const out = (await kube.kubectl(['get', 'fednet', 'cdn'])).stdout;
    t.log(out);
    const row = out.split('\n')[1]?.split(/\s+/);
    t.deepEqual(row?.slice(0, 5), ['cdn', '4097', '1370', '["athens","madrid"]', 'True']);
    const obj = JSON.parse((await kube.kubectl(['get', 'fednet', 'cdn', '-o', 'json'])).stdout) as {
      metadata: { generation: number };
      spec: unknown;
      status: { observedGeneration: number };
    };
    // A status write is not a spec change: generation stays, observedGeneration follows it.
    t.is(obj.metadata.generation, 1);
    t.is(obj.status.observedGeneration, 1);
    t.deepEqual(obj.spec, { segment: { ovsBridge: 'br-cdn' }, mtu: 'auto' });
  },
);

test.serial(
  'kube agent - watches survive an API server restart and an etcd compaction; changes made meanwhile arrive',
  async (t) => {
    t.timeout(120_000);
    const { kube, token } = t.context;
    await applyThenClean(
      t,
      yamlOf('FederatedNetwork', 'cdn', '{segment: {ovsBridge: br-cdn}}'),
      yamlOf('FederatedNetwork', 'old', '{segment: {ovsBridge: br-old}}'),
    );

    const source = new KubernetesSource({
      kubeConfig: kube.kubeConfig(token),
      debounceMs: 20,
      resyncMs: 0,
      backoff: { initialMs: 50, maxMs: 500 },
    });
    t.teardown(() => source.stop());
    await source.start();
    await snapshotWhere(source, (s) => s.networks.length === 2);

    // The agent's server goes away; another API server on the same etcd takes the changes.
    await kube.stopApiServer();
    const other = await kube.extraApiServer();
    t.teardown(() => other.stop());
    await other.kubectl(['apply', '-f', '-'], {
      input: yamlOf('FederatedNetwork', 'cdn', '{segment: {ovsBridge: br-cdn}, mtu: 1500}'),
    });
    await other.kubectl(['apply', '-f', '-'], {
      input: yamlOf('ClusterPeering', 'bristol', '{remoteCluster: bristol}'),
    });
    await other.kubectl(['delete', 'fednet', 'old']);
    await other.stop();
    // History the agent last saw is compacted away: resuming from its resourceVersion is
    // impossible (410 Gone), only a re-list can bring it up to date.
    const revision = await kube.compactEtcd();
    const old = await kube.etcdRangeAt(revision - 1);
    t.regex(old.body, /compacted/, `etcd still serves revision ${revision - 1}: ${old.body}`);
    t.is(source.current()?.networks.find((n) => n.metadata.name === 'cdn')?.spec.mtu, 'auto');

    await kube.startApiServer();
    const after = await snapshotWhere(
      source,
      (s) => s.peerings.length === 1 && s.networks.length === 1 && s.networks[0]?.spec.mtu === 1500,
    );
    t.deepEqual(names(after), { networks: ['cdn'], peerings: ['bristol'] });

    // And the watch is live again: a change after the restart arrives too.
    await kube.kubectl(['apply', '-f', '-'], {
      input: yamlOf('FederatedNetwork', 'late', '{segment: {linuxBridge: br-late}}'),
    });
    const late = await snapshotWhere(source, (s) => s.networks.length === 2);
    t.deepEqual(names(late).networks, ['cdn', 'late']);
  },
);
