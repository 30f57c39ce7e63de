import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { makeRunDir } from '../test/fixtures/run-dir.js';
import { agentSettings, bristolHealth, KEY_B, silent } from '../test/fixtures/agent-settings.js';
import { Agent, type AgentSettings } from './agent.js';
import { FakeBroker, fakeFederation } from './broker-link-fake.js';
import { FakeGateway, FAKE_NEXT_PUBLIC_KEY, FAKE_PUBLIC_KEY } from '../gateway/client-fake.js';
import { CDN_WITH_BRISTOL, FakeSource } from './source-fake.js';
import type { Federation } from '../broker/federation.js';
import { makeState } from './desired-state.js';
import { DEFAULT_VXLAN_PORT } from '../gateway/config.js';
import { BrokerReplyError } from '../broker/errors.js';
import { PeerMapCache } from './peer-map-cache.js';
import { FolderSource } from './source-folder.js';
import {
  AGENT_STATUS_FILE,
  FileStatusSink,
  readStatusFile,
  statusFileName,
} from './status-sink.js';

const SETTINGS = agentSettings();

const NETWORK = (name: string) => `apiVersion: l2fed.io/v1alpha1
kind: FederatedNetwork
metadata: {name: ${name}}
spec: {segment: {linuxBridge: br-${name}}}
`;
const PEERING = (remote: string) => `apiVersion: l2fed.io/v1alpha1
kind: ClusterPeering
metadata: {name: ${remote}}
spec: {remoteCluster: ${remote}}
`;

/** Registers bristol directly in the federation, exporting `networks` and peering madrid. */
async function bristol(fed: Federation, networks: string[] = ['cdn'], peers = ['madrid']) {
  await fed.register('bristol', {
    publicKey: KEY_B,
    endpoints: ['198.18.0.2:51820'],
    capabilities: [],
  });
  await fed.setExports('bristol', networks);
  await fed.setPeerings(
    'bristol',
    peers.map((remoteCluster) => ({ remoteCluster })),
  );
}

async function waitFor(
  what: string,
  fn: () => boolean | Promise<boolean>,
  ms = 5000,
): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function setup(
  t: ExecutionContext,
  opts: {
    fed?: Federation;
    dir?: string;
    gateway?: FakeGateway;
    folder?: boolean;
    connected?: boolean;
    settings?: Partial<AgentSettings>;
  } = {},
) {
  const dir = opts.dir ?? (await makeRunDir('agent')).path;
  if (!opts.dir) t.teardown(() => rm(dir, { recursive: true, force: true }));
  const fed = opts.fed ?? fakeFederation();
  const broker = new FakeBroker(fed, 'madrid');
  broker.connected = opts.connected ?? true;
  const gateway = opts.gateway ?? new FakeGateway();
  const manifests = join(dir, 'manifests');
  const source = opts.folder
    ? new FolderSource({ dir: manifests, clusterId: 'madrid', debounceMs: 20, resyncMs: 0 })
    : new FakeSource();
  const agent = new Agent({
    settings: { ...SETTINGS, ...opts.settings },
    source,
    broker,
    gateway,
    status: new FileStatusSink(join(dir, 'status')),
    cache: new PeerMapCache(join(dir, 'cache'), 'madrid'),
    log: silent,
  });
  t.teardown(() => agent.stop());
  const status = (kind: 'FederatedNetwork' | 'ClusterPeering', name: string) =>
    readStatusFile(join(dir, 'status', statusFileName(kind, name)));
  return { dir, fed, broker, gateway, source, agent, manifests, status };
}

const peersOf = (g: FakeGateway) => (g.last?.peers ?? []).map((p) => p.name);
const netsOf = (g: FakeGateway) =>
  (g.last?.networks ?? []).map((n) => `${n.name}:${n.vni}>${(n.peers ?? []).join('+')}`);

test('agent - add, edit and remove manifests lead to the right broker calls and gateway config', async (t) => {
  const s = await setup(t, { folder: true });
  const { mkdir } = await import('node:fs/promises');
  await mkdir(s.manifests);
  await writeFile(join(s.manifests, 'cdn.yaml'), NETWORK('cdn'));
  await bristol(s.fed, ['cdn', 'tel']);
  await s.agent.start();
  // Bootstrap apply → public key → register → exports/peerings → config.
  await waitFor(
    'cdn programmed',
    () => netsOf(s.gateway).includes('cdn:' + 4096 + '>') || netsOf(s.gateway).length === 1,
  );
  t.is(s.gateway.applied[0]?.transitAddress, '198.18.255.254/32', 'first apply is the bootstrap');
  const reg = s.broker.calls.find((c) => c.verb === 'register');
  t.like(reg?.body, {
    publicKey: FAKE_PUBLIC_KEY,
    endpoints: ['198.18.0.1:51820'],
    vxlanPort: DEFAULT_VXLAN_PORT, // unset in the config: the port the gateway defaults to
  });
  t.deepEqual(s.broker.calls.find((c) => c.verb === 'exports')?.body, {
    networks: ['cdn'],
    mtu: [{ network: 'cdn', capacity: 1370 }], // auto on underlay 1500: 1500 - 80 - 50
  });
  t.deepEqual(s.broker.calls.find((c) => c.verb === 'peerings')?.body, { peerings: [] });
  t.deepEqual(peersOf(s.gateway), []);

  // Add: a peering file → peering declared, bristol becomes a peer carrying cdn.
  await writeFile(join(s.manifests, 'bristol.yaml'), PEERING('bristol'));
  await waitFor('bristol peer', () => peersOf(s.gateway).includes('bristol'));
  const vni = s.gateway.last!.networks![0]!.vni;
  t.deepEqual(netsOf(s.gateway), [`cdn:${vni}>bristol`]);
  t.deepEqual(s.broker.calls.filter((c) => c.verb === 'peerings').at(-1)?.body, {
    peerings: [{ remoteCluster: 'bristol' }],
  });

  // Edit: export tel too → allocated, carried to bristol.
  await writeFile(join(s.manifests, 'cdn.yaml'), NETWORK('cdn') + '---\n' + NETWORK('tel'));
  await waitFor('tel carried', () =>
    netsOf(s.gateway).some((n) => n.startsWith('tel:') && n.endsWith('>bristol')),
  );
  t.deepEqual(s.broker.calls.filter((c) => c.verb === 'exports').at(-1)?.body, {
    networks: ['cdn', 'tel'],
    mtu: [
      { network: 'cdn', capacity: 1370 },
      { network: 'tel', capacity: 1370 },
    ],
  });

  // Remove the peering file → tunnel gone first (local consent), then withdrawn at the broker.
  await rm(join(s.manifests, 'bristol.yaml'));
  await waitFor('bristol gone', () => !peersOf(s.gateway).includes('bristol'));
  await s.agent.idle();
  t.deepEqual(s.broker.calls.filter((c) => c.verb === 'peerings').at(-1)?.body, { peerings: [] });
  const p = await s.status('FederatedNetwork', 'cdn');
  t.is(p?.status.vni, vni);
  t.is(p?.status.effectiveMTU, 1370);

  // Invalid manifest: clear error in agent.json, the last good config stays applied.
  const before = s.gateway.applied.length;
  await writeFile(join(s.manifests, 'bad.yaml'), NETWORK('BAD'));
  await waitFor('source error reported', async () => {
    const a = await readStatusFile(join(s.dir, 'status', AGENT_STATUS_FILE));
    return /bad.yaml/.test(String((a as unknown as { sourceError?: string })?.sourceError));
  });
  t.is(s.gateway.applied.length, before);
});

test('agent - a peer whose VXLAN port differs: no tunnel, and the ClusterPeering says why; an equal port pairs it', async (t) => {
  const fed = fakeFederation();
  await bristol(fed);
  await fed.register('bristol', {
    publicKey: KEY_B,
    endpoints: ['198.18.0.2:51820'],
    capabilities: [],
    vxlanPort: 4789,
  });
  const s = await setup(t, { fed, settings: { vxlanPort: 4800 } });
  (s.source as FakeSource).set(CDN_WITH_BRISTOL);
  await s.agent.start();
  await waitFor(
    'peering status',
    async () =>
      (await s.status('ClusterPeering', 'bristol'))?.status.reason === 'VxlanPortMismatch',
  );
  t.like(s.broker.calls.find((c) => c.verb === 'register')?.body, { vxlanPort: 4800 });
  t.deepEqual(peersOf(s.gateway), []);
  const mutual = (await s.status('ClusterPeering', 'bristol'))?.status.conditions?.find(
    (c) => c.type === 'Mutual',
  );
  t.is(mutual?.status, 'False');
  t.regex(mutual?.message ?? '', /madrid uses 4800, bristol uses 4789/);
  // bristol's agent moves to madrid's port: the tunnel comes.
  await fed.register('bristol', {
    publicKey: KEY_B,
    endpoints: ['198.18.0.2:51820'],
    capabilities: [],
    vxlanPort: 4800,
  });
  await s.broker.pushMap(); // as the KV watch delivers the new map
  await waitFor('bristol peer', () => peersOf(s.gateway).includes('bristol'));
  await waitFor(
    'peering status',
    async () =>
      (await s.status('ClusterPeering', 'bristol'))?.status.reason !== 'VxlanPortMismatch',
  );
});

test('agent - an older broker that refuses vxlanPort as unknown: registered without it, peers still paired', async (t) => {
  const fed = fakeFederation();
  await bristol(fed);
  const s = await setup(t, { fed });
  // What a broker from before the field answers (decodeRequest on its strict schema).
  const register = s.broker.register.bind(s.broker);
  s.broker.register = (body) =>
    'vxlanPort' in body
      ? Promise.reject(
          new BrokerReplyError('l2fed.v1.madrid.register', {
            code: 'INVALID_REQUEST',
            message: 'unknown field(s) "vxlanPort"',
            field: 'vxlanPort',
          }),
        )
      : register(body);
  (s.source as FakeSource).set(CDN_WITH_BRISTOL);
  await s.agent.start();
  await waitFor('bristol peer', () => peersOf(s.gateway).includes('bristol'));
  const regs = s.broker.calls.filter((c) => c.verb === 'register');
  t.false('vxlanPort' in (regs.at(-1)!.body as object), 'the last registration left it out');
  // The broker is upgraded (it restarts: the agent reconnects) and gets the port again.
  s.broker.register = register;
  s.broker.setConnected(false);
  s.broker.setConnected(true);
  await waitFor('registered with the port', () =>
    s.broker.calls.some((c) => c.verb === 'register' && 'vxlanPort' in (c.body as object)),
  );
});

test('agent - broker unreachable: gateway programmed from the cache, nothing lost; catches up when back', async (t) => {
  const fed = fakeFederation();
  await bristol(fed);
  const first = await setup(t, { fed });
  const state = CDN_WITH_BRISTOL;
  (first.source as FakeSource).set(state);
  await first.agent.start();
  await waitFor('bristol peer', () => peersOf(first.gateway).includes('bristol'));
  const good = first.gateway.last;
  await first.agent.stop();

  // Restart with the broker down and a gateway that lost its config (process restart).
  const gateway = new FakeGateway();
  const second = await setup(t, { fed, dir: first.dir, gateway, connected: false });
  (second.source as FakeSource).set(state);
  await second.agent.start();
  await waitFor('cached config applied', () => gateway.applied.length > 0);
  t.deepEqual(gateway.applied[0], good, 'the cached config, before any broker answer');
  t.deepEqual(second.broker.calls, []);
  t.is(second.agent.view.peerMapFrom, 'cache');
  // While the broker is down, the loop retries with growing backoff.
  await waitFor('backing off', () => second.agent.view.failures >= 3);

  // Meanwhile: bristol exports tel too, and we add tel and a peering change locally.
  await fed.setExports('bristol', ['cdn', 'tel']);
  const withTel = makeState(
    [
      ...state.networks,
      {
        ...state.networks[0]!,
        metadata: { name: 'tel' },
        spec: { segment: { linuxBridge: 'br-tel' }, mtu: 'auto' },
      },
    ],
    state.peerings,
  );
  (second.source as FakeSource).set(withTel);
  await waitFor('new state seen', () => second.agent.view.desiredVersion === withTel.version);
  const failures = second.agent.view.failures;
  await waitFor('a pass over it', () => second.agent.view.failures > failures);
  t.deepEqual(peersOf(gateway), ['bristol'], 'tunnel kept while the broker is away');
  t.false(
    netsOf(gateway).some((n) => n.startsWith('tel:')),
    'tel needs a VNI from the broker',
  );

  second.broker.setConnected(true);
  await waitFor('tel carried after reconnect', () =>
    netsOf(gateway).some((n) => n.startsWith('tel:') && n.endsWith('>bristol')),
  );
  t.deepEqual(second.broker.calls.map((c) => c.verb).slice(0, 3), [
    'register',
    'exports',
    'peerings',
  ]);
  await waitFor(
    'clean pass',
    async () => (await second.agent.idle(), second.agent.view.failures === 0),
  );
  t.is(second.agent.view.peerMapFrom, 'broker');
});

test('agent - a failing apply is retried with backoff; health goes to the broker and into status', async (t) => {
  const fed = fakeFederation();
  await bristol(fed);
  const s = await setup(t, { fed });
  s.gateway.failNextApply('FAILED_PRECONDITION', 'segment bridge br-cdn does not exist');
  (s.source as FakeSource).set(CDN_WITH_BRISTOL);
  await s.agent.start();
  await waitFor('applied after retry', () => peersOf(s.gateway).includes('bristol'));
  const health = (status: 'up' | 'down', at: string) =>
    bristolHealth({ status, at, rttMs: 0.9, handshakeAgeSeconds: 5, bytes: 1 });
  s.gateway.health = health('up', '2026-01-31T12:00:00.000Z');
  await waitFor(
    'established',
    async () => (await s.status('ClusterPeering', 'bristol'))?.status.reason === 'Established',
  );
  await waitFor('health reported', () => s.broker.health.length > 0);
  t.like(s.broker.health.at(-1)?.peers[0], {
    cluster: 'bristol',
    state: 'up',
    rttMs: 0.9,
    lossPct: 0,
  });

  s.gateway.health = health('down', '2026-01-31T12:00:10.000Z');
  await waitFor(
    'degraded',
    async () => (await s.status('ClusterPeering', 'bristol'))?.status.reason === 'Degraded',
  );
  const p = await s.status('ClusterPeering', 'bristol');
  const tunnel = p?.status.conditions?.find((c) => c.type === 'TunnelHealthy');
  t.is(tunnel?.status, 'False');
  t.is(tunnel?.reason, 'PeerNotAnswering');
  t.regex(tunnel?.message ?? '', /probe got no answer.*198\.18\.0\.2:51820/);
  await waitFor('down reported', () => s.broker.health.at(-1)?.peers[0]?.state === 'down');
});

/** Madrid's key as bristol's peer map names it. */
async function keyBristolSees(fed: Federation): Promise<string | undefined> {
  const map = (await fed.get('bristol')).peerMap;
  return map?.peers.find((p) => p.cluster === 'madrid')?.publicKey;
}

/**
 * bristol (no agent in these tests) acknowledges every next key madrid announces, as its
 * agent does once its gateway holds it; madrid's link then hears its map change.
 */
function bristolAcks(t: ExecutionContext, fed: Federation, broker: FakeBroker): void {
  const timer = setInterval(() => {
    void (async () => {
      const next = (await fed.get('madrid')).cluster?.nextKey;
      if (next && !next.heldBy.includes('bristol'))
        await fed.ackKey('bristol', { cluster: 'madrid', nextKey: next.publicKey });
      await broker.pushMap();
    })().catch(() => undefined);
  }, 10);
  t.teardown(() => clearInterval(timer));
}

test('agent - a key rotated on the gateway is announced, held by bristol, then the tunnel switches and the broker commits', async (t) => {
  const fed = fakeFederation();
  await bristol(fed);
  const s = await setup(t, { fed });
  bristolAcks(t, fed, s.broker);
  (s.source as FakeSource).set(CDN_WITH_BRISTOL);
  await s.agent.start();
  await waitFor('bristol peer', () => peersOf(s.gateway).includes('bristol'));
  t.is(await keyBristolSees(fed), FAKE_PUBLIC_KEY);

  let activeWhenAnnounced: string | undefined;
  const announce = s.broker.announceKey.bind(s.broker);
  s.broker.announceKey = (body) => ((activeWhenAnnounced = s.gateway.activeKey), announce(body));
  await s.gateway.rotateKey(); // an operator's RotateKey; the agent notices by polling
  await waitFor('tunnel switched', () => s.gateway.activeKey === FAKE_NEXT_PUBLIC_KEY);
  t.is(activeWhenAnnounced, FAKE_PUBLIC_KEY, 'announced while the tunnel still had the old key');
  await waitFor('committed', async () => (await keyBristolSees(fed)) === FAKE_NEXT_PUBLIC_KEY);
  t.deepEqual(s.broker.calls.find((c) => c.verb === 'rotate-key')?.body, {
    previousKey: FAKE_PUBLIC_KEY,
    publicKey: FAKE_NEXT_PUBLIC_KEY,
  });
  t.deepEqual(peersOf(s.gateway), ['bristol'], 'nothing else changed');
  await waitFor(
    'settled',
    async () => (await s.agent.idle(), s.agent.view.pendingKey === undefined),
  );
  t.is(s.agent.view.registeredKey, FAKE_NEXT_PUBLIC_KEY);
});

test('agent - a rotation with the broker away holds the tunnel on the old key; a restarted agent finishes it', async (t) => {
  const fed = fakeFederation();
  await bristol(fed);
  const first = await setup(t, { fed });
  bristolAcks(t, fed, first.broker);
  (first.source as FakeSource).set(CDN_WITH_BRISTOL);
  await first.agent.start();
  await waitFor('bristol peer', () => peersOf(first.gateway).includes('bristol'));
  first.broker.setConnected(false);
  await first.gateway.rotateKey();
  await waitFor('pending seen', () => first.agent.view.pendingKey === FAKE_NEXT_PUBLIC_KEY);
  // A local change applies but must not switch the key while peers cannot learn it.
  const applies = first.gateway.applied.length;
  (first.source as FakeSource).set(
    makeState(
      [
        {
          ...CDN_WITH_BRISTOL.networks[0]!,
          spec: { segment: { linuxBridge: 'br-cdn' }, mtu: 1300 },
        },
      ],
      CDN_WITH_BRISTOL.peerings,
    ),
  );
  await waitFor('backing off', () => first.agent.view.failures >= 2);
  t.is(first.gateway.activeKey, FAKE_PUBLIC_KEY);
  // An apply meanwhile keeps the tunnel's key (the gateway's keepKey).
  const since = first.gateway.applied.slice(applies);
  t.true(since.every((c) => c.wireguard.keepKey === true));
  await first.agent.stop();

  // A new agent process over the same cache and gateway; the broker is back.
  const second = await setup(t, { fed, dir: first.dir, gateway: first.gateway });
  bristolAcks(t, fed, second.broker);
  (second.source as FakeSource).set(CDN_WITH_BRISTOL);
  await second.agent.start();
  await waitFor('switched', () => first.gateway.activeKey === FAKE_NEXT_PUBLIC_KEY);
  await waitFor('committed', async () => (await keyBristolSees(fed)) === FAKE_NEXT_PUBLIC_KEY);
});

test('agent - keyRotationMs rotates on schedule, each time from the key the broker holds', async (t) => {
  const fed = fakeFederation();
  await bristol(fed);
  const s = await setup(t, { fed, settings: { keyRotationMs: 100 } });
  bristolAcks(t, fed, s.broker);
  (s.source as FakeSource).set(CDN_WITH_BRISTOL);
  await s.agent.start();
  await waitFor(
    'two rotations',
    () => s.broker.calls.filter((c) => c.verb === 'rotate-key').length >= 2,
  );
  const rotations = s.broker.calls
    .filter((c) => c.verb === 'rotate-key')
    .map((c) => c.body as { previousKey: string; publicKey: string });
  t.is(rotations[0]!.previousKey, FAKE_PUBLIC_KEY);
  t.is(rotations[1]!.previousKey, rotations[0]!.publicKey, 'a chain, not a fork');
  await waitFor('bristol follows', async () => (await keyBristolSees(fed)) === s.gateway.activeKey);
});
