/**
 * The agent against a peer map it must not trust (issue 11 items 2 and 6): a malformed
 * map is refused with a clear status while publishing, health and status go on and the
 * last good data plane and cache stay; a peer the gateway config cannot carry is dropped
 * alone, with a problem naming it.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { makeRunDir } from '../test/fixtures/run-dir.js';
import { agentSettings, KEY_B, silent } from '../test/fixtures/agent-settings.js';
import { Agent } from './agent.js';
import { FakeBroker, fakeFederation } from './broker-link-fake.js';
import { FakeGateway } from '../gateway/client-fake.js';
import { CDN_WITH_BRISTOL, FakeSource } from './source-fake.js';
import type { Federation } from '../broker/federation.js';
import type { PeerMap } from '../broker/records.js';
import { makeState } from './desired-state.js';
import { CACHE_FILE, PeerMapCache } from './peer-map-cache.js';
import {
  AGENT_STATUS_FILE,
  FileStatusSink,
  readStatusFile,
  statusFileName,
} from './status-sink.js';

const KEY_C = 'mB1ZsTJ5fY0yq7VbC3d8k2Lr9hWx4nQe6uPo1aZcXw0=';

const SETTINGS = agentSettings();

async function waitFor(what: string, fn: () => boolean | Promise<boolean>, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function bristol(fed: Federation) {
  await fed.register('bristol', {
    publicKey: KEY_B,
    endpoints: ['198.18.0.2:51820'],
    capabilities: [],
  });
  await fed.setExports('bristol', ['cdn', 'tel']);
  await fed.setPeerings('bristol', [{ remoteCluster: 'madrid' }]);
}

/** An agent over fakes with madrid exporting cdn and peering bristol, running. */
async function running(t: ExecutionContext) {
  const dir = (await makeRunDir('agent-pm')).path;
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const fed = fakeFederation();
  await bristol(fed);
  const broker = new FakeBroker(fed, 'madrid');
  const gateway = new FakeGateway();
  const source = new FakeSource(CDN_WITH_BRISTOL);
  const agent = new Agent({
    settings: SETTINGS,
    source,
    broker,
    gateway,
    status: new FileStatusSink(join(dir, 'status')),
    cache: new PeerMapCache(join(dir, 'cache'), 'madrid'),
    log: silent,
  });
  t.teardown(() => agent.stop());
  await agent.start();
  await waitFor('bristol peer', () =>
    (gateway.last?.peers ?? []).some((p) => p.name === 'bristol'),
  );
  await agent.idle();
  const agentStatus = async () =>
    (await readStatusFile(join(dir, 'status', AGENT_STATUS_FILE))) as unknown as Record<
      string,
      unknown
    >;
  const status = (kind: 'FederatedNetwork' | 'ClusterPeering', name: string) =>
    readStatusFile(join(dir, 'status', statusFileName(kind, name)));
  const cacheBytes = () => readFile(join(dir, 'cache', CACHE_FILE), 'utf8');
  return { dir, fed, broker, gateway, source, agent, agentStatus, status, cacheBytes };
}

const HEALTH = {
  at: '2026-01-31T12:00:00.000Z',
  tunnelKind: 'wireguard-go',
  tunnelIfname: 'l2fmad',
  tunnelUp: true,
  peers: [],
  networks: [],
};

/** Malformed maps and the field the refusal must name. */
const MALFORMED: [string, unknown, RegExp][] = [
  [
    'peers not a list',
    { cluster: 'madrid', transitAddress: '198.19.0.1', networks: null, peers: 'x' },
    /networks|peers/,
  ],
  ['a number where a key belongs', 'PEER_KEY_NUMBER', /peers\[0\]\.publicKey/],
  ["another cluster's map", 'OTHER_CLUSTER', /cluster/],
  ['a VNI out of range', 'BAD_VNI', /networks\[0\]\.vni/],
  ['not an object', 42, /peer map/],
];

function malformed(kind: unknown, good: PeerMap): unknown {
  if (kind === 'PEER_KEY_NUMBER') {
    return { ...good, peers: good.peers.map((p) => ({ ...p, publicKey: 42 })) };
  }
  if (kind === 'OTHER_CLUSTER') return { ...good, cluster: 'bristol' };
  if (kind === 'BAD_VNI') return { ...good, networks: [{ name: 'cdn', vni: -1 }] };
  return kind;
}

for (const [name, kind, field] of MALFORMED) {
  test(`agent peer map - malformed (${name}): refused with a clear status; data plane, cache, publishing, health and status go on`, async (t) => {
    const s = await running(t);
    const good = (await s.fed.get('madrid')).peerMap!;
    const applied = s.gateway.applied.length;
    const lastConfig = JSON.stringify(s.gateway.last);
    const cache = await s.cacheBytes();

    s.broker.emitPeerMap(malformed(kind, good));
    await s.agent.idle();
    const a = await s.agentStatus();
    t.regex(String(a.peerMapError), /peer map .*refused/);
    t.regex(String(a.peerMapError), field);
    t.is(s.agent.view.failures, 0, 'no pass threw or asked for a retry');
    t.is(s.gateway.applied.length, applied, 'no apply');
    t.is(JSON.stringify(s.gateway.last), lastConfig);
    t.is(await s.cacheBytes(), cache, 'cache byte-identical');
    const peering = await s.status('ClusterPeering', 'bristol');
    t.like(
      peering?.status.conditions?.find((c) => c.type === 'PeerMapValid'),
      { status: 'False', reason: 'PeerMapRefused' },
    );

    // Health still goes to the broker.
    s.gateway.health = HEALTH;
    await waitFor('health reported', () => s.broker.health.length > 0);
    // Publishing and status still follow the desired state.
    s.source.set(
      makeState(
        [
          ...CDN_WITH_BRISTOL.networks,
          {
            ...CDN_WITH_BRISTOL.networks[0]!,
            metadata: { name: 'tel' },
            spec: { segment: { linuxBridge: 'br-tel' }, mtu: 'auto' },
          },
        ],
        [...CDN_WITH_BRISTOL.peerings],
      ),
    );
    await waitFor('exports published', () =>
      s.broker.calls.some(
        (c) =>
          c.verb === 'exports' &&
          JSON.stringify((c.body as { networks: unknown }).networks) === '["cdn","tel"]',
      ),
    );
    await waitFor(
      'tel status written',
      async () => (await s.status('FederatedNetwork', 'tel')) !== undefined,
    );
    // The federation's next (valid) map is taken and the refusal clears.
    await waitFor('tel carried', () =>
      (s.gateway.last?.networks ?? []).some(
        (n) => n.name === 'tel' && n.peers?.includes('bristol'),
      ),
    );
    await s.agent.idle();
    t.is((await s.agentStatus()).peerMapError, undefined);
  });
}

test('agent peer map - two peers with one public key: both dropped with a problem naming them, the other peers keep working', async (t) => {
  const s = await running(t);
  const good = (await s.fed.get('madrid')).peerMap!;
  const b = good.peers[0]!;
  const peer = (cluster: string, publicKey: string, n: number) => ({
    ...b,
    cluster,
    publicKey,
    endpoints: [`198.18.0.${n}:51820`],
    transitAddress: `198.19.0.${n}`,
  });
  s.source.set(
    makeState(
      [...CDN_WITH_BRISTOL.networks],
      ['athens', 'bristol', 'oslo'].map((remote) => ({
        apiVersion: 'l2fed.io/v1alpha1' as const,
        kind: 'ClusterPeering' as const,
        metadata: { name: remote },
        spec: { remoteCluster: remote },
      })),
    ),
  );
  await s.agent.idle();
  // oslo registered with bristol's key (the broker should refuse; the agent must cope).
  s.broker.emitPeerMap({
    ...good,
    peers: [peer('athens', KEY_C, 30), b, peer('oslo', b.publicKey, 40)],
  });
  await waitFor('athens carried', () =>
    (s.gateway.last?.peers ?? []).some((p) => p.name === 'athens'),
  );
  await s.agent.idle();
  t.deepEqual(
    (s.gateway.last?.peers ?? []).map((p) => p.name),
    ['athens'],
  );
  const a = await s.agentStatus();
  t.is(a.peerMapError, undefined);
  const dropped = a.peerProblems as { peer: string; reason: string; message: string }[];
  t.deepEqual(
    dropped.map((d) => [d.peer, d.reason]),
    [
      ['bristol', 'DuplicatePublicKey'],
      ['oslo', 'DuplicatePublicKey'],
    ],
  );
  for (const d of dropped) t.regex(d.message, /bristol.*oslo|oslo.*bristol/);
  const p = await s.status('ClusterPeering', 'oslo');
  t.false(p?.status.active);
  t.is(p?.status.reason, 'DuplicatePublicKey');
  t.regex(
    p?.status.conditions?.find((c) => c.type === 'Ready')?.message ?? '',
    /public key .* also .*bristol/,
  );
  t.true((await s.status('ClusterPeering', 'athens'))?.status.active);
});
