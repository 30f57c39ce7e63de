import test from 'ava';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { AGENT_STATUS_FILE, type AgentSummary } from './status-sink.js';
import { KubeStatusSink } from './status-sink-kube.js';

const summary = (rotation?: string, at = '2026-11-30T10:00:00.000Z'): AgentSummary => ({
  clusterId: 'madrid',
  broker: { connected: true, registered: true },
  gateway: {
    publicKey: 'K1',
    ...(rotation ? { pendingPublicKey: 'K2', rotation } : {}),
    lastApply: { at, steps: 0 },
  },
  peerMapFrom: 'broker',
});

/** A kubeconfig naming a server nothing here calls: writeAgent never reaches the API. */
function unusedKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:1', skipTLSVerify: true }],
    users: [{ name: 'u', token: 't' }],
    contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
    currentContext: 'x',
  });
  return kc;
}

function recordingLog() {
  const lines: { obj: object; msg: string }[] = [];
  return { lines, info: (obj: object, msg: string) => void lines.push({ obj, msg }) };
}

test('kube status sink - the agent summary is logged when what an operator acts on changes, not on every apply', async (t) => {
  const log = recordingLog();
  const sink = new KubeStatusSink(unusedKubeConfig(), { log });
  await sink.writeAgent(summary());
  await sink.writeAgent(summary(undefined, '2026-11-30T10:00:10.000Z'));
  t.is(log.lines.length, 1, 'a new lastApply time alone is not news');
  await sink.writeAgent(summary('rotation waiting for: bristol (no ack)'));
  t.is(log.lines.length, 2);
  t.is(log.lines[1]!.msg, 'agent status');
  t.regex(JSON.stringify(log.lines[1]!.obj), /rotation waiting for: bristol/);
});

test('kube status sink - with a statusDir the summary is written to agent.json there, as in folder mode', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'kube-status-sink-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const sink = new KubeStatusSink(unusedKubeConfig(), { summaryDir: dir });
  await sink.writeAgent(summary('rotation waiting for: bristol (no ack)'));
  const written = JSON.parse(await readFile(join(dir, AGENT_STATUS_FILE), 'utf8')) as AgentSummary;
  t.is(written.gateway.rotation, 'rotation waiting for: bristol (no ack)');
  t.is(written.clusterId, 'madrid');
});
