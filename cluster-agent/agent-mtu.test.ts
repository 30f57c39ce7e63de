/**
 * One MTU per federated network, agent side (issue 12): the agent sends its MTU ask with
 * its exports, applies the broker's agreed MTU to its gateway network (so to the VXLAN
 * device and segment) and reports it in status, naming the member that set it; a map
 * whose agreed MTU this cluster cannot carry leaves the network out, saying so.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { makeRunDir } from '../test/fixtures/run-dir.js';
import { agentSettings, KEY_B, silent } from '../test/fixtures/agent-settings.js';
import { Agent, type AgentSettings } from './agent.js';
import { FakeBroker, fakeFederation } from './broker-link-fake.js';
import { FakeGateway } from '../gateway/client-fake.js';
import { CDN_WITH_BRISTOL, FakeSource } from './source-fake.js';
import type { Federation } from '../broker/federation.js';
import { FileStatusSink, readStatusFile, statusFileName } from './status-sink.js';
import { PeerMapCache } from './peer-map-cache.js';
import { checkPeerMap } from './peer-map-schema.js';

async function waitFor(what: string, fn: () => boolean | Promise<boolean>, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** bristol exports cdn with `ask` (undefined: an older agent) and peers madrid. */
async function bristol(fed: Federation, ask?: { requested?: number; capacity: number }) {
  await fed.register('bristol', {
    publicKey: KEY_B,
    endpoints: ['198.18.0.2:51820'],
    capabilities: [],
  });
  await fed.setExports('bristol', ['cdn'], ask ? [{ network: 'cdn', ...ask }] : undefined);
  await fed.setPeerings('bristol', [{ remoteCluster: 'madrid' }]);
}

/** madrid's agent (cdn with mtu auto, underlay 1500) over fakes, running. */
async function madrid(t: ExecutionContext, fed: Federation, over: Partial<AgentSettings> = {}) {
  const dir = (await makeRunDir('agent-mtu')).path;
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const broker = new FakeBroker(fed, 'madrid');
  const gateway = new FakeGateway();
  const agent = new Agent({
    settings: agentSettings(over),
    source: new FakeSource(CDN_WITH_BRISTOL),
    broker,
    gateway,
    status: new FileStatusSink(join(dir, 'status')),
    cache: new PeerMapCache(join(dir, 'cache'), 'madrid'),
    log: silent,
  });
  t.teardown(() => agent.stop());
  await agent.start();
  const status = async () =>
    (await readStatusFile(join(dir, 'status', statusFileName('FederatedNetwork', 'cdn'))))?.status;
  const cdnMtu = () => gateway.last?.networks?.find((n) => n.name === 'cdn')?.mtu;
  return { broker, gateway, agent, status, cdnMtu };
}

test('agent mtu - sends its ask (auto: capacity only) with its exports', async (t) => {
  const fed = fakeFederation();
  await bristol(fed, { capacity: 1370 });
  const m = await madrid(t, fed);
  await waitFor('exports', () => m.broker.calls.some((c) => c.verb === 'exports'));
  t.deepEqual(m.broker.calls.find((c) => c.verb === 'exports')?.body, {
    networks: ['cdn'],
    mtu: [{ network: 'cdn', capacity: 1370 }],
  });
});

test('agent mtu - auto (1370) here, 1280 in bristol: the gateway gets 1280 and status names bristol', async (t) => {
  const fed = fakeFederation();
  await bristol(fed, { requested: 1280, capacity: 1370 });
  const m = await madrid(t, fed);
  await waitFor('cdn at 1280', () => m.cdnMtu() === 1280);
  await m.agent.idle();
  const st = (await m.status()) as {
    effectiveMTU?: number;
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
  t.is(st.effectiveMTU, 1280);
  t.is((st as { mtuSetBy?: string }).mtuSetBy, 'bristol', 'status names the member that set it');
  const c = st.conditions?.find((x) => x.type === 'MtuAgreed');
  t.is(c?.status, 'True');
  t.is(c?.reason, 'LoweredByMember');
  t.regex(c?.message ?? '', /1280.*bristol.*requests 1280.*this cluster.*1370/);
});

test('agent mtu - a member joining later with a smaller MTU lowers it here too', async (t) => {
  const fed = fakeFederation();
  await bristol(fed, { capacity: 1370 });
  const m = await madrid(t, fed);
  await waitFor('cdn carried to bristol at 1370', () => m.cdnMtu() === 1370);
  await fed.register('athens', {
    publicKey: 'kP3oZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=',
    endpoints: ['198.18.0.3:51820'],
    capabilities: [],
  });
  // athens peers with nobody: one network, one MTU, whoever tunnels to whom.
  await fed.setExports('athens', ['cdn'], [{ network: 'cdn', capacity: 1300 }]);
  await m.broker.pushMap();
  await waitFor('cdn lowered to 1300', () => m.cdnMtu() === 1300);
  await m.agent.idle();
  const st = (await m.status()) as { conditions?: { type: string; message: string }[] };
  t.regex(
    st.conditions?.find((x) => x.type === 'MtuAgreed')?.message ?? '',
    /1300.*athens.*underlay carries 1300/,
  );
});

test('agent mtu - an agreed MTU this cluster cannot carry leaves the network out, naming this cluster', async (t) => {
  const fed = fakeFederation();
  await bristol(fed, { capacity: 1370 });
  // An underlay of 1440 carries 1310 (minus WireGuard 80 and VXLAN 50). The broker's map
  // says 1370 (as from an old broker or before this cluster's ask arrived).
  const m = await madrid(t, fed, { underlayMtu: 1440 });
  await waitFor('exports', () => m.broker.calls.some((c) => c.verb === 'exports'));
  await m.agent.idle();
  const good = (await fed.get('madrid')).peerMap!;
  m.broker.emitPeerMap({
    ...good,
    networks: good.networks.map((n) => ({
      ...n,
      mtu: { value: 1370, setBy: 'bristol', limit: 'capacity' },
    })),
  });
  await m.agent.idle();
  t.is(m.cdnMtu(), undefined, 'cdn not in the gateway config');
  const st = (await m.status()) as {
    conditions?: { type: string; status: string; reason: string; message: string }[];
  };
  const c = st.conditions?.find((x) => x.type === 'MtuAgreed');
  t.is(c?.status, 'False');
  t.is(c?.reason, 'MtuTooLarge');
  t.regex(c?.message ?? '', /madrid.*cannot carry.*1370.*1310/);
});

test('agent mtu - an older broker (no agreement in the map): the local MTU, as before', async (t) => {
  const fed = fakeFederation();
  await bristol(fed);
  const m = await madrid(t, fed);
  await waitFor('exports', () => m.broker.calls.some((c) => c.verb === 'exports'));
  await m.agent.idle();
  const good = (await fed.get('madrid')).peerMap!;
  m.broker.emitPeerMap({
    ...good,
    networks: good.networks.map((n) => ({ name: n.name, vni: n.vni })),
  });
  await m.agent.idle();
  t.is(m.cdnMtu(), 'auto');
});

const BAD_AGREED: [string, unknown, RegExp][] = [
  ['below 1280', { value: 1000, setBy: 'bristol', limit: 'capacity' }, /networks\[0\]\.mtu\.value/],
  ['a string', { value: '1370', setBy: 'bristol', limit: 'capacity' }, /networks\[0\]\.mtu\.value/],
  ['an unknown limit', { value: 1370, setBy: 'bristol', limit: 'x' }, /networks\[0\]\.mtu\.limit/],
];
for (const [title, mtu, field] of BAD_AGREED) {
  test(`agent mtu - a hostile agreed MTU refuses the map (${title})`, (t) => {
    const r = checkPeerMap(
      {
        cluster: 'madrid',
        transitAddress: '198.19.0.1',
        networks: [{ name: 'cdn', vni: 7, mtu }],
        peers: [],
      },
      'madrid',
    );
    t.false(r.ok);
    if (!r.ok) t.regex(r.message, field);
  });
}
