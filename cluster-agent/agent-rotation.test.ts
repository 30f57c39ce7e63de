/**
 * Issue 12 on the agents (fakes: the real Federation over the in-memory store, fake
 * gateways): a rotating cluster switches its tunnel only once every peer's gateway holds
 * its next key (acknowledged through the broker), says whom it waits for meanwhile, and a
 * peer whose agent is stopped loses nothing: the rotation simply waits for it.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { makeRunDir } from '../test/fixtures/run-dir.js';
import { agentSettings, silent } from '../test/fixtures/agent-settings.js';
import { Agent } from './agent.js';
import { FakeBroker, fakeFederation } from './broker-link-fake.js';
import { FakeGateway, FAKE_NEXT_PUBLIC_KEY, FAKE_PUBLIC_KEY } from '../gateway/client-fake.js';
import { FakeSource } from './source-fake.js';
import type { Federation } from '../broker/federation.js';
import { makeState } from './desired-state.js';
import { PeerMapCache } from './peer-map-cache.js';
import { AGENT_STATUS_FILE, FileStatusSink, readStatusFile } from './status-sink.js';
import { rotationWait } from './gateway-key.js';

const BRISTOL_KEY = 'pD4zZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=';
const ATHENS_KEY = 'kP3oZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=';

const state = (peers: string[]) =>
  makeState(
    [
      {
        apiVersion: 'l2fed.io/v1alpha1',
        kind: 'FederatedNetwork',
        metadata: { name: 'cdn' },
        spec: { segment: { linuxBridge: 'br-cdn' }, mtu: 'auto' },
      },
    ],
    peers.map((p) => ({
      apiVersion: 'l2fed.io/v1alpha1',
      kind: 'ClusterPeering',
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

/** One cluster's agent with its own fake gateway (key `key`) over the shared federation. */
async function cluster(
  t: ExecutionContext,
  fed: Federation,
  id: string,
  key: string,
  peers: string[],
  n: number,
  extra: Partial<Parameters<typeof agentSettings>[0]> = {},
) {
  const dir = (await makeRunDir(`agent-${id}`)).path;
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const gateway = new FakeGateway();
  gateway.activeKey = key;
  if (id !== 'madrid') gateway.nextKeys.length = 0;
  const broker = new FakeBroker(fed, id);
  /** A new agent process over the same gateway, broker and cache. */
  const start = () => {
    const source = new FakeSource(state(peers));
    const a = new Agent({
      settings: agentSettings({
        clusterId: id,
        endpoints: [`198.18.0.${n}:51820`],
        wireguard: { ifname: `l2f${id.slice(0, 3)}`, listenPort: 51820, privateKeyFile: '/k' },
        ...extra,
      }),
      source,
      broker,
      gateway,
      status: new FileStatusSink(join(dir, 'status')),
      cache: new PeerMapCache(join(dir, 'cache'), id),
      log: silent,
    });
    t.teardown(() => a.stop());
    return a;
  };
  const agent = start();
  const summary = async () =>
    (await readStatusFile(join(dir, 'status', AGENT_STATUS_FILE))) as unknown as {
      gateway: { rotation?: string; outdated?: string };
    };
  /** The peer entry of `peer` in the last applied config. */
  const entry = (peer: string) => gateway.last?.peers?.find((p) => p.name === peer);
  return { id, gateway, broker, agent, start, summary, entry };
}

/** The peers' brokers push map changes only when called; this pushes them all. */
const pump = (...cs: { broker: FakeBroker }[]) => Promise.all(cs.map((c) => c.broker.pushMap()));

test('rotation wait - switch only when the map announces our pending key and every peer holds it', (t) => {
  const map = (nextKey?: { publicKey: string; heldBy: string[] }) => ({
    cluster: 'madrid',
    transitAddress: '198.19.0.1',
    networks: [],
    peers: ['athens', 'bristol'].map((cluster) => ({
      cluster,
      endpoints: [],
      publicKey: BRISTOL_KEY,
      transitAddress: '198.19.0.2',
      networks: [],
    })),
    ...(nextKey ? { nextKey } : {}),
  });
  const K = FAKE_NEXT_PUBLIC_KEY;
  t.deepEqual(rotationWait(undefined, K), { ready: false, announced: false, waitingFor: [] });
  t.deepEqual(rotationWait(map(), K), {
    ready: false,
    announced: false,
    waitingFor: ['athens', 'bristol'],
  });
  t.deepEqual(
    rotationWait(map({ publicKey: FAKE_PUBLIC_KEY, heldBy: ['athens', 'bristol'] }), K),
    {
      ready: false,
      announced: false,
      waitingFor: ['athens', 'bristol'],
    },
    'acks for another key do not count',
  );
  t.deepEqual(rotationWait(map({ publicKey: K, heldBy: ['bristol'] }), K), {
    ready: false,
    announced: true,
    waitingFor: ['athens'],
  });
  t.deepEqual(rotationWait(map({ publicKey: K, heldBy: ['athens', 'bristol'] }), K), {
    ready: true,
    announced: true,
    waitingFor: [],
  });
  const alone = { ...map({ publicKey: K, heldBy: [] }), peers: [] };
  t.true(rotationWait(alone, K).ready, 'no peers: nobody to wait for');
});

test('agent rotation - with a peer agent stopped the rotating side waits (tunnel on the old key, status names the peer); when it is back, it acks, the side switches and commits', async (t) => {
  const fed = fakeFederation();
  const madrid = await cluster(t, fed, 'madrid', FAKE_PUBLIC_KEY, ['bristol', 'athens'], 1);
  const bristol = await cluster(t, fed, 'bristol', BRISTOL_KEY, ['madrid'], 2);
  const athens = await cluster(t, fed, 'athens', ATHENS_KEY, ['madrid'], 3);
  for (const c of [madrid, bristol, athens]) await c.agent.start();
  await waitFor('all peered', async () => {
    await pump(madrid, bristol, athens);
    return (
      madrid.entry('bristol') !== undefined &&
      madrid.entry('athens') !== undefined &&
      bristol.entry('madrid') !== undefined &&
      athens.entry('madrid') !== undefined
    );
  });

  // bristol's agent is stopped (SIGSTOP): it hears and does nothing.
  await bristol.agent.stop();
  const bristolApplies = bristol.gateway.applied.length;
  await madrid.gateway.rotateKey();
  await waitFor('athens holds the next key', async () => {
    await pump(madrid, athens);
    return athens.entry('madrid')?.nextPublicKey === FAKE_NEXT_PUBLIC_KEY;
  });
  t.is(athens.entry('madrid')?.publicKey, FAKE_PUBLIC_KEY, 'athens keeps the old key in force');
  await waitFor('athens acked', async () => {
    await pump(madrid);
    return ((await fed.get('madrid')).peerMap?.nextKey?.heldBy ?? []).includes('athens');
  });
  // Madrid learns athens' ack from its next map push (the fake pushes only when asked):
  // without one, its status could still name athens too, whatever the wait.
  await waitFor('status names bristol', async () => {
    await pump(madrid);
    return /rotation waiting for: bristol \(/.test((await madrid.summary()).gateway.rotation ?? '');
  });
  await new Promise((r) => setTimeout(r, 300));
  t.is(madrid.gateway.activeKey, FAKE_PUBLIC_KEY, 'no switch while bristol does not hold the key');
  t.is(madrid.gateway.pendingKey, FAKE_NEXT_PUBLIC_KEY);
  t.is(bristol.gateway.applied.length, bristolApplies, "bristol's gateway untouched");
  t.is((await fed.get('madrid')).cluster?.publicKey, FAKE_PUBLIC_KEY, 'nothing committed');

  // bristol's agent comes back (SIGCONT: same cache, same gateway).
  await bristol.start().start();

  await waitFor('madrid switched and committed', async () => {
    await pump(madrid, bristol, athens);
    return (
      madrid.gateway.activeKey === FAKE_NEXT_PUBLIC_KEY &&
      (await fed.get('madrid')).cluster?.publicKey === FAKE_NEXT_PUBLIC_KEY
    );
  });
  await waitFor('peers converge on the new key alone', async () => {
    await pump(madrid, bristol, athens);
    return [bristol, athens].every(
      (c) =>
        c.entry('madrid')?.publicKey === FAKE_NEXT_PUBLIC_KEY &&
        c.entry('madrid')?.nextPublicKey === undefined,
    );
  });
  await waitFor(
    'status clear',
    async () => (await madrid.summary()).gateway.rotation === undefined,
  );
  for (const c of [bristol, athens])
    t.like(c.entry('madrid'), { publicKey: FAKE_NEXT_PUBLIC_KEY, nextPublicKey: undefined });
});

test('agent rotation - a stale or refused ack is not retried forever; other peers are not held up', async (t) => {
  const fed = fakeFederation();
  const madrid = await cluster(t, fed, 'madrid', FAKE_PUBLIC_KEY, ['bristol'], 1);
  const bristol = await cluster(t, fed, 'bristol', BRISTOL_KEY, ['madrid'], 2);
  for (const c of [madrid, bristol]) await c.agent.start();
  await waitFor('peered', async () => {
    await pump(madrid, bristol);
    return bristol.entry('madrid') !== undefined && madrid.entry('bristol') !== undefined;
  });
  // madrid announces, then its broker record moves on (another next key) before bristol acks.
  await madrid.agent.stop();
  await fed.announceKey('madrid', { publicKey: FAKE_PUBLIC_KEY, nextKey: FAKE_NEXT_PUBLIC_KEY });
  const failing = bristol.broker.ackKey.bind(bristol.broker);
  let acks = 0;
  bristol.broker.ackKey = async (body) => {
    acks++;
    await fed.announceKey('madrid', {
      publicKey: FAKE_PUBLIC_KEY,
      nextKey: 'QNzpVs/RNSXR4ujgKXH3PFYc7hDEIBDSEJQaQUvd0Fs=',
    });
    return failing(body);
  };
  await bristol.broker.pushMap();
  await waitFor('ack tried', () => acks >= 1);
  await new Promise((r) => setTimeout(r, 300));
  t.true(acks <= 2, `ack of a stale key retried ${acks} times`);
});

test('agent rotation - while waiting, the rotating side still applies other changes (a peer key rotation of its own), keeping its tunnel key', async (t) => {
  const fed = fakeFederation();
  const madrid = await cluster(t, fed, 'madrid', FAKE_PUBLIC_KEY, ['bristol', 'athens'], 1);
  const bristol = await cluster(t, fed, 'bristol', BRISTOL_KEY, ['madrid'], 2);
  const athens = await cluster(t, fed, 'athens', ATHENS_KEY, ['madrid'], 3);
  for (const c of [madrid, bristol, athens]) await c.agent.start();
  await waitFor('all peered', async () => {
    await pump(madrid, bristol, athens);
    return madrid.entry('bristol') !== undefined && madrid.entry('athens') !== undefined;
  });
  await bristol.agent.stop(); // holds madrid's rotation
  await madrid.gateway.rotateKey();
  await waitFor('madrid waits', async () => {
    await pump(madrid, athens);
    return /waiting for: bristol/.test((await madrid.summary()).gateway.rotation ?? '');
  });
  // athens rotates too: madrid must install athens' next key although it waits itself.
  athens.gateway.nextKeys.push('QNzpVs/RNSXR4ujgKXH3PFYc7hDEIBDSEJQaQUvd0Fs=');
  await athens.gateway.rotateKey();
  await waitFor('madrid holds athens next key, athens switches', async () => {
    await pump(madrid, athens);
    return athens.gateway.activeKey === 'QNzpVs/RNSXR4ujgKXH3PFYc7hDEIBDSEJQaQUvd0Fs=';
  });
  t.is(madrid.gateway.activeKey, FAKE_PUBLIC_KEY, 'madrid still on its old key');
  t.is(madrid.gateway.pendingKey, FAKE_NEXT_PUBLIC_KEY);
  t.true(madrid.gateway.last?.wireguard.keepKey, 'applied with keepKey');
});

// A gateway older than standby keys (gateway.v1 API revision 0) drops `nextPublicKey` and
// `keepKey` unread over gRPC (proto3 skips unknown fields); the fake does the same.
test('agent rotation - a peer whose gateway is too old to hold a next key (API revision 0) does not acknowledge it; the rotating side waits naming it, the peer says to upgrade its gateway', async (t) => {
  const fed = fakeFederation();
  const madrid = await cluster(t, fed, 'madrid', FAKE_PUBLIC_KEY, ['bristol'], 1);
  const bristol = await cluster(t, fed, 'bristol', BRISTOL_KEY, ['madrid'], 2);
  bristol.gateway.apiRevision = 0;
  for (const c of [madrid, bristol]) await c.agent.start();
  await waitFor('peered', async () => {
    await pump(madrid, bristol);
    return bristol.entry('madrid') !== undefined && madrid.entry('bristol') !== undefined;
  });
  await madrid.gateway.rotateKey();
  await waitFor('announced', async () => {
    await pump(madrid);
    return (await fed.get('bristol')).peerMap?.peers[0]?.nextPublicKey === FAKE_NEXT_PUBLIC_KEY;
  });
  const before = bristol.gateway.applied.length;
  await waitFor('bristol applied the map with the next key', async () => {
    await pump(bristol);
    return bristol.gateway.applied.length > before;
  });
  await new Promise((r) => setTimeout(r, 300));
  await pump(madrid, bristol);
  const held = (await fed.get('madrid')).peerMap?.nextKey?.heldBy ?? [];
  t.deepEqual(held, [], 'no acknowledgement for a key the gateway dropped');
  t.is(madrid.gateway.activeKey, FAKE_PUBLIC_KEY, 'madrid did not switch');
  await waitFor('bristol names its gateway', async () =>
    /API revision 0/.test((await bristol.summary())?.gateway.outdated ?? ''),
  );
  t.regex((await bristol.summary())?.gateway.outdated ?? '', /upgrade the gateway/);
  await waitFor('madrid names bristol', async () => {
    await pump(madrid);
    return /rotation waiting for: bristol/.test((await madrid.summary()).gateway.rotation ?? '');
  });
});

test('agent rotation - a scheduled rotation does not start on a gateway too old to keep its key while peers catch up (API revision 0)', async (t) => {
  const fed = fakeFederation();
  const madrid = await cluster(t, fed, 'madrid', FAKE_PUBLIC_KEY, [], 1, { keyRotationMs: 50 });
  madrid.gateway.apiRevision = 0;
  await madrid.agent.start();
  await waitFor('applied', () => madrid.gateway.applied.length > 0);
  await new Promise((r) => setTimeout(r, 300));
  t.is(madrid.gateway.pendingKey, undefined, 'no RotateKey on the old gateway');
  t.is(madrid.gateway.activeKey, FAKE_PUBLIC_KEY);
  await waitFor('status says why', async () =>
    /key rotation/.test((await madrid.summary())?.gateway.outdated ?? ''),
  );
});
