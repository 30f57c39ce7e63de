/**
 * AgentMetrics on a real Agent over the fakes (the real Federation on the in-memory
 * store behind FakeBroker, FakeGateway, FakeSource), wired as cluster-agent/main.ts wires
 * it: the gateway client wrapped by metrics.gateway(), the metrics as the agent's
 * observer, and watch() for what is read at scrape time.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import type { Registry } from 'prom-client';
import { makeRunDir } from '../test/fixtures/run-dir.js';
import { agentSettings, KEY_B, silent } from '../test/fixtures/agent-settings.js';
import { Agent } from './agent.js';
import { FakeBroker, fakeFederation } from './broker-link-fake.js';
import { FakeGateway, FAKE_NEXT_PUBLIC_KEY } from '../gateway/client-fake.js';
import { FakeSource } from './source-fake.js';
import { makeState } from './desired-state.js';
import { PeerMapCache } from './peer-map-cache.js';
import { FileStatusSink } from './status-sink.js';
import { AgentMetrics } from './metrics.js';

const network = (name: string) => ({
  apiVersion: 'l2fed.io/v1alpha1' as const,
  kind: 'FederatedNetwork' as const,
  metadata: { name },
  spec: { segment: { linuxBridge: `br-${name}` }, mtu: 'auto' as const },
});
const state = (networks: string[], peers = ['bristol']) =>
  makeState(
    networks.map(network),
    peers.map((p) => ({
      apiVersion: 'l2fed.io/v1alpha1' as const,
      kind: 'ClusterPeering' as const,
      metadata: { name: p },
      spec: { remoteCluster: p },
    })),
  );

async function waitFor(what: string, fn: () => boolean | Promise<boolean>, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The value of one series (labels besides the default `cluster`); undefined when absent. */
async function value(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number | undefined> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  return values.find(
    (v) =>
      (v as { metricName?: string }).metricName === undefined &&
      Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want) &&
      Object.keys(v.labels).length === Object.keys(labels).length,
  )?.value;
}

/** A histogram's observation count for these labels. */
async function passes(registry: Registry, result: string): Promise<number> {
  const { values } = await registry
    .getSingleMetric('l2fed_agent_reconcile_duration_seconds')!
    .get();
  return (
    values.find(
      (v) =>
        (v as { metricName?: string }).metricName ===
          'l2fed_agent_reconcile_duration_seconds_count' && v.labels.result === result,
    )?.value ?? 0
  );
}

async function setup(t: ExecutionContext) {
  const dir = (await makeRunDir('agent-metrics')).path;
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const fed = fakeFederation();
  // bristol, with no agent of its own: it peers with madrid and never acknowledges keys.
  await fed.register('bristol', {
    publicKey: KEY_B,
    endpoints: ['198.18.0.2:51820'],
    capabilities: [],
  });
  await fed.setExports('bristol', ['cdn']);
  await fed.setPeerings('bristol', [{ remoteCluster: 'madrid' }]);
  const broker = new FakeBroker(fed, 'madrid');
  const gateway = new FakeGateway();
  const metrics = new AgentMetrics('madrid');
  const source = new FakeSource(state(['cdn']));
  const agent = new Agent({
    settings: agentSettings(),
    source,
    broker,
    gateway: metrics.gateway(gateway),
    status: new FileStatusSink(join(dir, 'status')),
    cache: new PeerMapCache(join(dir, 'cache'), 'madrid'),
    log: silent,
    metrics,
  });
  metrics.watch({ agent, broker });
  t.teardown(() => agent.stop());
  return { fed, broker, gateway, source, metrics, agent, r: metrics.registry };
}

test('agent metrics - applies by result, last apply time, reconcile passes, broker link, peer map', async (t) => {
  const { r, agent, broker, gateway, source } = await setup(t);
  t.is(await value(r, 'l2fed_agent_gateway_applies_total', { result: 'ok' }), 0);
  t.is(await passes(r, 'done'), 0);
  const before = Date.now() / 1000;
  await agent.start();
  await waitFor('bristol programmed', () =>
    (gateway.last?.peers ?? []).some((p) => p.name === 'bristol'),
  );
  await agent.idle();
  t.true((await value(r, 'l2fed_agent_gateway_applies_total', { result: 'ok' }))! >= 2);
  const at = (await value(r, 'l2fed_agent_gateway_last_apply_timestamp_seconds'))!;
  t.true(at >= before - 1 && at <= Date.now() / 1000 + 1, `last apply at ${at}`);
  t.true((await passes(r, 'done')) >= 1);
  t.is(await value(r, 'l2fed_agent_broker_connected'), 1);
  t.is(await value(r, 'l2fed_agent_peer_map_source', { source: 'broker' }), 1);
  t.is(await value(r, 'l2fed_agent_peer_map_source', { source: 'cache' }), 0);
  const age = await value(r, 'l2fed_agent_peer_map_age_seconds', { source: 'broker' });
  t.true(age !== undefined && age >= 0 && age < 5, `peer map age ${age}`);
  t.is(await value(r, 'l2fed_agent_key_rotation', { state: 'idle' }), 1);

  // A failed apply counts under its gRPC code; the pass asks to be retried.
  const requeues = await passes(r, 'requeue');
  gateway.failNextApply('UNAVAILABLE', 'gateway down');
  source.set(state(['cdn'], [])); // the peering withdrawn: the gateway drops bristol at once
  await waitFor(
    'failed apply counted',
    async () =>
      (await value(r, 'l2fed_agent_gateway_applies_total', { result: 'UNAVAILABLE' })) === 1,
  );
  await waitFor('requeued pass counted', async () => (await passes(r, 'requeue')) > requeues);
  broker.setConnected(false);
  t.is(await value(r, 'l2fed_agent_broker_connected'), 0);
});

test('agent metrics - a rotation waiting for a peer shows as waiting, not idle', async (t) => {
  const { r, agent, gateway } = await setup(t);
  await agent.start();
  await waitFor('bristol programmed', () =>
    (gateway.last?.peers ?? []).some((p) => p.name === 'bristol'),
  );
  await gateway.rotateKey(); // the pending key is picked up by the next health poll
  t.is(gateway.pendingKey, FAKE_NEXT_PUBLIC_KEY);
  await waitFor(
    'rotation waiting',
    async () => (await value(r, 'l2fed_agent_key_rotation', { state: 'waiting' })) === 1,
  );
  t.is(await value(r, 'l2fed_agent_key_rotation', { state: 'idle' }), 0);
});

test('agent metrics - series carry the cluster id as the only default label; no peer or network labels', async (t) => {
  const { r, agent, gateway } = await setup(t);
  await agent.start();
  await waitFor('bristol programmed', () =>
    (gateway.last?.peers ?? []).some((p) => p.name === 'bristol'),
  );
  const json = await r.getMetricsAsJSON();
  const labels = new Set(json.flatMap((m) => m.values.flatMap((v) => Object.keys(v.labels))));
  t.deepEqual([...labels].sort(), ['cluster', 'le', 'result', 'source', 'state']);
  const clusters = new Set(json.flatMap((m) => m.values.map((v) => v.labels.cluster)));
  t.deepEqual([...clusters], ['madrid']);
});
