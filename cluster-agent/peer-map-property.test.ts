/**
 * Property tests at the agent's peer-map boundary (issue 11, "bad input, systematically"):
 * junk and near-valid maps (one field mutated) through checkPeerMap + buildGatewayConfig,
 * and through a running agent over fakes. Runs: test/fixtures/property.ts
 * (L2FED_FUZZ_RUNS=10000 for the long run).
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { pino } from 'pino';
import { checkProperty, isLongFuzzRun } from '../test/fixtures/property.js';
import { makeRunDir } from '../test/fixtures/run-dir.js';
import { agentSettings } from '../test/fixtures/agent-settings.js';
import type { PeerMap } from '../broker/records.js';
import { parseGatewayConfig } from '../gateway/config.js';
import { FakeGateway } from '../gateway/client-fake.js';
import { Agent } from './agent.js';
import { FakeBroker, fakeFederation } from './broker-link-fake.js';
import { makeState } from './desired-state.js';
import { buildGatewayConfig } from './gateway-config.js';
import { CACHE_FILE, PeerMapCache } from './peer-map-cache.js';
import { checkPeerMap } from './peer-map-schema.js';
import { computePeerMap } from '../broker/peer-map.js';
import { formatPath } from './problems.js';
import { FakeSource } from './source-fake.js';
import { AGENT_STATUS_FILE, FileStatusSink } from './status-sink.js';

const SETTINGS = agentSettings({ healthPollMs: 60_000 });

const NAMES = ['athens', 'bristol', 'oslo', 'paris', 'rome'] as const;
const OWN_NETWORKS = [
  { name: 'cdn', vni: 4096 },
  { name: 'tel', vni: 4097 },
];

const DESIRED = makeState(
  OWN_NETWORKS.map((n) => ({
    apiVersion: 'l2fed.io/v1alpha1' as const,
    kind: 'FederatedNetwork' as const,
    metadata: { name: n.name },
    spec: { segment: { linuxBridge: `br-${n.name}` }, mtu: 'auto' as const },
  })),
  NAMES.map((remote) => ({
    apiVersion: 'l2fed.io/v1alpha1' as const,
    kind: 'ClusterPeering' as const,
    metadata: { name: remote },
    spec: { remoteCluster: remote },
  })),
);

const key = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .map((b) => Buffer.from(b).toString('base64'));
const peer = (cluster: string) =>
  fc.record({
    cluster: fc.constant(cluster),
    endpoints: fc.array(
      fc.tuple(fc.ipV4(), fc.integer({ min: 1, max: 65_535 })).map(([h, p]) => `${h}:${p}`),
      { minLength: 1, maxLength: 3 },
    ),
    publicKey: key,
    transitAddress: fc
      .tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 2, max: 254 }))
      .map(([a, b]) => `100.64.${a}.${b}`),
    networks: fc.subarray(OWN_NETWORKS).map((ns) => ns.map((n) => ({ ...n }))),
  });
const validMap: fc.Arbitrary<PeerMap> = fc
  .subarray([...NAMES])
  .chain((names) => fc.tuple(...names.map(peer)))
  .map((peers) => ({
    cluster: 'madrid',
    transitAddress: '100.64.0.1',
    networks: OWN_NETWORKS.map((n) => ({ ...n })),
    peers,
  }));

/** What a hostile or broken sender might put in a field. */
const junk = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(undefined),
  fc.array(fc.string({ maxLength: 10 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
  fc.constantFrom(
    'x'.repeat(300),
    'not-a-key',
    '100.64.0.1',
    '100.65.0.9',
    '999.1.1.1',
    '198.18.0.1:0',
    'host:70000',
    -1,
    0,
    16_777_216,
  ),
);

type Mutation = { path: (string | number)[]; value: unknown };

/** A valid map with one field (top level, a peer's, or a peer network's) replaced. */
const nearValid: fc.Arbitrary<{ map: unknown; mutation: Mutation }> = validMap.chain((m) => {
  const paths: (string | number)[][] = [['cluster'], ['transitAddress'], ['networks'], ['peers']];
  m.networks.forEach((_, i) => paths.push(['networks', i, 'name'], ['networks', i, 'vni']));
  m.peers.forEach((p, i) => {
    for (const f of ['cluster', 'endpoints', 'publicKey', 'transitAddress', 'networks']) {
      paths.push(['peers', i, f]);
    }
    p.endpoints.forEach((_, j) => paths.push(['peers', i, 'endpoints', j]));
    p.networks.forEach((_, j) => paths.push(['peers', i, 'networks', j, 'vni']));
  });
  // Values copied from elsewhere in the map make the duplicates and clashes.
  const copies = m.peers.flatMap((p) => [p.publicKey, p.transitAddress, p.cluster, 'madrid']);
  return fc
    .record({
      path: fc.constantFrom(...paths),
      value: copies.length ? fc.oneof(junk, fc.constantFrom(...copies)) : junk,
    })
    .map((mutation) => ({ map: setPath(m, mutation.path, mutation.value), mutation }));
});

function setPath(root: unknown, path: (string | number)[], value: unknown): unknown {
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let at = copy;
  for (const p of path.slice(0, -1)) at = at[p] as Record<string | number, unknown>;
  at[path.at(-1)!] = value;
  return copy;
}

const anyMap = fc.oneof(
  { weight: 1, arbitrary: fc.anything() },
  { weight: 1, arbitrary: fc.jsonValue() },
  { weight: 4, arbitrary: nearValid.map((n) => n.map) },
);

/** The checks every input must pass at the pure boundary. */
function checkOne(input: unknown): void {
  const r = checkPeerMap(input, 'madrid');
  if (!r.ok) {
    if (r.issues.length === 0) throw new Error('refused without an issue');
    for (const i of r.issues) {
      if (!i.path || !i.message)
        throw new Error(`issue without field or message: ${JSON.stringify(i)}`);
    }
    if (!r.message.includes(r.issues[0]!.path)) throw new Error('message does not name the field');
    return;
  }
  const b = buildGatewayConfig(DESIRED, r.peerMap, SETTINGS);
  if (!b.ok) throw new Error(`an accepted map made a refused config: ${b.message}`);
  parseGatewayConfig(b.config); // the gateway takes it
  const carried = new Set((b.config.peers ?? []).map((p) => p.name));
  // Peers this cluster does not declare are ignored, rightly without a problem.
  for (const p of r.peerMap.peers.filter((x) => (NAMES as readonly string[]).includes(x.cluster))) {
    const problems = b.peerProblems.filter((x) => x.peer === p.cluster);
    if (!carried.has(p.cluster) && !problems.some((x) => x.network === undefined)) {
      throw new Error(`${p.cluster} dropped silently`);
    }
    for (const x of problems) {
      if (!x.message.includes(p.cluster)) throw new Error(`problem does not name ${p.cluster}`);
    }
  }
}

test('peer map property - junk and near-valid maps: checked or refused naming the field, never a throw; accepted maps give a config the gateway takes, every dropped peer named', async (t) => {
  t.timeout(isLongFuzzRun() ? 600_000 : 60_000);
  await checkProperty(
    t,
    'peer maps through checkPeerMap + buildGatewayConfig',
    fc.property(anyMap, checkOne),
  );
});

test('peer map property - whatever `withheld` holds, a map is never refused for it; well-formed entries are kept, long messages cut', async (t) => {
  const entry = fc.record({
    cluster: fc.oneof(fc.constantFrom(...NAMES), junk),
    reason: fc.oneof(fc.constant('VxlanPortMismatch'), junk),
    message: fc.oneof(fc.string({ maxLength: 2000 }), junk),
  });
  await checkProperty(
    t,
    'withheld through checkPeerMap',
    fc.property(
      validMap,
      fc.oneof(fc.anything(), fc.array(fc.oneof(entry, fc.anything()), { maxLength: 8 })),
      (m, withheld) => {
        const r = checkPeerMap({ ...m, withheld }, 'madrid');
        if (!r.ok) throw new Error(`refused for withheld: ${r.message}`);
        const kept = r.peerMap.withheld ?? [];
        const given = Array.isArray(withheld) ? (withheld as unknown[]) : [];
        const wellFormed = given.filter(
          (e) =>
            typeof e === 'object' &&
            e !== null &&
            typeof (e as { cluster?: unknown }).cluster === 'string' &&
            typeof (e as { reason?: unknown }).reason === 'string' &&
            typeof (e as { message?: unknown }).message === 'string' &&
            (e as { cluster: string }).cluster.length <= 256 &&
            (e as { reason: string }).reason.length <= 256,
        ) as { cluster: string; reason: string; message: string }[];
        if (kept.length !== wellFormed.length) throw new Error('kept the wrong entries');
        kept.forEach((k, i) => {
          const w = wellFormed[i]!;
          if (k.cluster !== w.cluster || k.reason !== w.reason) throw new Error('entry changed');
          if (k.message.length > 1024) throw new Error('message not cut');
          if (w.message.length <= 1024 && k.message !== w.message)
            throw new Error('message changed');
        });
      },
    ),
  );
});

test("peer map - the broker's own mismatch note for two 63-character cluster ids is accepted whole", (t) => {
  const long = (c: string) => c.repeat(63);
  const rec = (id: string, vxlanPort: number) => ({
    id,
    publicKey: Buffer.alloc(32, id.charCodeAt(0)).toString('base64'),
    endpoints: ['198.18.0.1:51820'],
    capabilities: [],
    vxlanPort,
    transitAddress: '100.64.0.1',
    registeredAt: '2026-01-01T00:00:00Z',
    nonce: 'n',
  });
  const [a, b] = [long('a'), long('b')];
  const map = computePeerMap(
    { cluster: rec(a, 4797), networks: [], peerings: [{ remoteCluster: b }] },
    new Map([[b, { cluster: rec(b, 4789), networks: [], peerings: [{ remoteCluster: a }] }]]),
  );
  t.true(map.withheld![0]!.message.length > 256, 'longer than the other strings a map may hold');
  const r = checkPeerMap(map, a);
  t.true(r.ok, r.ok ? '' : r.message);
  t.deepEqual(r.ok && r.peerMap.withheld, map.withheld);
});

test('peer map property - a near-valid map that is refused names the mutated field', async (t) => {
  t.timeout(isLongFuzzRun() ? 600_000 : 60_000);
  await checkProperty(
    t,
    'one field mutated',
    fc.property(nearValid, ({ map, mutation }) => {
      const r = checkPeerMap(map, 'madrid');
      if (r.ok) return; // the value was acceptable there (a peer's own problem, if any)
      const field = formatPath(mutation.path);
      // A duplicate among our own networks is reported at the later of the two.
      const named = r.issues.some(
        (i) =>
          i.path.startsWith(field) ||
          (mutation.path[0] === 'networks' && i.path.startsWith('networks')),
      );
      if (!named) {
        throw new Error(
          `${field} mutated, but the issues name ${r.issues.map((i) => i.path).join(', ')}`,
        );
      }
    }),
  );
});

test('peer map property - a running agent refusing a map keeps its applied config and cache byte-identical', async (t) => {
  t.timeout(isLongFuzzRun() ? 1_800_000 : 120_000);
  const dir = (await makeRunDir('agent-pm-prop')).path;
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const broker = new FakeBroker(fakeFederation(), 'madrid');
  const gateway = new FakeGateway();
  const agent = new Agent({
    // No resync during the run: its re-apply of the same config would count as an apply.
    settings: { ...SETTINGS, resyncMs: 2_000_000_000 },
    source: new FakeSource(DESIRED),
    broker,
    gateway,
    status: new FileStatusSink(join(dir, 'status')),
    cache: new PeerMapCache(join(dir, 'cache'), 'madrid'),
    log: pino({ level: 'silent' }),
  });
  t.teardown(() => agent.stop());
  await agent.start();
  // A first good map, so there is a last good state to keep.
  broker.emitPeerMap(fc.sample(validMap, { numRuns: 1, seed: 1 })[0]);
  await agent.idle();
  const cacheFile = join(dir, 'cache', CACHE_FILE);
  let refused = 0;
  await checkProperty(
    t,
    'peer maps through a running agent',
    fc.asyncProperty(anyMap, async (input) => {
      const before = {
        applied: gateway.applied.length,
        last: JSON.stringify(gateway.last),
        cache: await readFile(cacheFile, 'utf8'),
      };
      broker.emitPeerMap(input);
      await agent.idle();
      if (agent.view.failures !== 0) throw new Error('a pass failed');
      const status = JSON.parse(await readFile(join(dir, 'status', AGENT_STATUS_FILE), 'utf8')) as {
        peerMapError?: string;
      };
      if (input !== undefined && !checkPeerMap(input, 'madrid').ok) {
        refused++;
        if (!status.peerMapError?.includes('refused')) throw new Error('no peerMapError');
        if (gateway.applied.length !== before.applied) throw new Error('applied after a refusal');
        if (JSON.stringify(gateway.last) !== before.last) throw new Error('config changed');
        if ((await readFile(cacheFile, 'utf8')) !== before.cache) throw new Error('cache changed');
      } else if (input !== undefined && status.peerMapError !== undefined) {
        throw new Error(`a valid map left the error: ${status.peerMapError}`);
      }
    }),
    { defaultRuns: 200 },
  );
  t.log(`refused: ${refused}`);
  t.true(refused > 0);
});
