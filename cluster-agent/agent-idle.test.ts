/**
 * Idle cost of the agent (issue 18): what it does when nothing changes. Each resync
 * re-declares exports and peerings, and every declaration makes the broker recompute the
 * maps of the cluster and all its peers, so a fixed resync cost O(clusters²) broker work
 * per interval in a full mesh while nothing changed.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import test, { type ExecutionContext } from 'ava';
import { makeRunDir } from '../test/fixtures/run-dir.js';
import { agentSettings, silent } from '../test/fixtures/agent-settings.js';
import { Agent, nextResyncDelay, type AgentSettings } from './agent.js';
import { FakeBroker, fakeFederation } from './broker-link-fake.js';
import { FakeGateway } from '../gateway/client-fake.js';
import { CDN_WITH_BRISTOL, FakeSource } from './source-fake.js';
import { PeerMapCache } from './peer-map-cache.js';
import { FileStatusSink, type StatusSink } from './status-sink.js';
import type { Federation } from '../broker/federation.js';
import type { HealthReport } from '../gateway/client.js';
import { bristolHealth, KEY_B } from '../test/fixtures/agent-settings.js';

async function setup(
  t: ExecutionContext,
  settings: Partial<AgentSettings>,
  fed: Federation = fakeFederation(),
) {
  const dir = (await makeRunDir('agent-idle')).path;
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const broker = new FakeBroker(fed, 'madrid');
  const files = new FileStatusSink(join(dir, 'status'));
  const peeringWrites: string[] = [];
  const status: StatusSink = {
    writeNetwork: (n, st) => files.writeNetwork(n, st),
    writePeering: (n, st, tunnel) => {
      peeringWrites.push(`${n} ${st.reason}`);
      return files.writePeering(n, st, tunnel);
    },
    prune: (k, keep) => files.prune(k, keep),
    writeAgent: (a) => files.writeAgent(a),
  };
  const gateway = new FakeGateway();
  const source = new FakeSource(CDN_WITH_BRISTOL);
  const agent = new Agent({
    settings: agentSettings({ healthPollMs: 60_000, ...settings }),
    source,
    broker,
    gateway,
    status,
    cache: new PeerMapCache(join(dir, 'cache'), 'madrid'),
    log: silent,
  });
  t.teardown(() => agent.stop());
  return { agent, broker, gateway, source, peeringWrites };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('resync delay - doubles while resyncs find nothing, up to the most; back to the least after activity', (t) => {
  const o = { minMs: 1000, maxMs: 8000 };
  const seen: number[] = [];
  let d = o.minMs;
  for (let i = 0; i < 6; i++) seen.push((d = nextResyncDelay(d, false, o)));
  t.deepEqual(seen, [2000, 4000, 8000, 8000, 8000, 8000]);
  t.is(nextResyncDelay(8000, true, o), 1000);
  t.is(nextResyncDelay(1000, false, { minMs: 1000, maxMs: 1000 }), 1000, 'max = min: fixed');
});

test('agent idle - resyncs back off while nothing changes: declarations to the broker do not repeat every resyncMs', async (t) => {
  const s = await setup(t, { resyncMs: 40, resyncMaxMs: 320 });
  await s.agent.start();
  await sleep(300); // settled: registered, declared, applied
  await s.agent.idle();
  const before = s.broker.calls.filter((c) => c.verb === 'exports').length;
  await sleep(1300);
  const idle = s.broker.calls.filter((c) => c.verb === 'exports').length - before;
  // A fixed 40 ms resync re-declares ~32 times in 1.3 s; backing off 80, 160, 320, 320 …
  // it is at most ~7 (timer delays under load only lower it).
  t.true(idle <= 8, `exports re-sent ${idle} times in 1.3 s of idle`);
  t.true(idle >= 1, 'resync still runs');
});

test('agent idle - a resync that repairs drift brings the resync interval back to resyncMs', async (t) => {
  const s = await setup(t, { resyncMs: 40, resyncMaxMs: 640 });
  await s.agent.start();
  await sleep(1300); // backed off to 640 ms
  await s.agent.idle();
  // The data plane drifts: the next apply has steps to run (a repair).
  s.gateway.driftNextApply();
  const applies = () => s.gateway.applied.length;
  const a0 = applies();
  const start = Date.now();
  while (applies() === a0 && Date.now() - start < 2000) await sleep(5);
  t.true(applies() > a0, 'a resync re-applied');
  // After a repair the next resyncs come every ~40 ms again, not 640+.
  const a1 = applies();
  await sleep(400);
  t.true(applies() - a1 >= 2, `re-applies within 400 ms after the repair: ${applies() - a1}`);
});

/** A health check of madrid's gateway: bristol `status`, with this RTT. */
const check = (at: number, status: 'up' | 'down', rttMs: number): HealthReport =>
  bristolHealth({
    status,
    at: new Date(at).toISOString(),
    rttMs,
    handshakeAgeSeconds: 5,
    bytes: 1,
  });

test('agent idle - a new RTT alone does not rewrite the peering status every check; a state change is written at once', async (t) => {
  const fed = fakeFederation();
  await fed.register('bristol', {
    publicKey: KEY_B,
    endpoints: ['198.18.0.2:51820'],
    capabilities: [],
  });
  await fed.setExports('bristol', ['cdn']);
  await fed.setPeerings('bristol', [{ remoteCluster: 'madrid' }]);
  const s = await setup(t, { healthPollMs: 10, resyncMs: 60_000 }, fed);
  await s.agent.start();
  let at = Date.parse('2026-01-31T12:00:00Z');
  let rtt = 0.5;
  s.gateway.health = check(at, 'up', rtt);
  const until = async (what: string, fn: () => boolean) => {
    const end = Date.now() + 5000;
    while (!fn() && Date.now() < end) await sleep(5);
    t.true(fn(), what);
  };
  await until('established', () => s.peeringWrites.at(-1) === 'bristol Established');
  const written = s.peeringWrites.length;
  // A check every ~10 ms, each with another RTT (as real probes give): 1 s of them.
  const end = Date.now() + 1000;
  while (Date.now() < end) {
    s.gateway.health = check((at += 1000), 'up', (rtt += 0.01));
    await sleep(10);
  }
  const rewrites = s.peeringWrites.length - written;
  t.true(rewrites <= 1, `peering status rewritten ${rewrites} times for RTT changes alone`);
  // The tunnel goes down: written at once, not after the measurement refresh.
  s.gateway.health = check((at += 1000), 'down', 0);
  await until('degraded written at once', () => s.peeringWrites.at(-1) === 'bristol Degraded');
});
