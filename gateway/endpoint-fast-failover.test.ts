/**
 * Issue 15: a dead path is detected from the fast in-tunnel liveness echo (every 250 ms)
 * plus the handshake age, and the peer moves to its next listed endpoint within ~2 s of
 * the break (before: 15 s dwell + a handshake retry, ~22 s). Fake clock throughout.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeDataPlane } from './dataplane-fake.js';
import {
  DEFAULT_FAILOVER_POLICY,
  decideFailover,
  deadPathFor,
  type EchoRun,
  type FailoverState,
} from './endpoint-failover.js';
import { Gateway } from './gateway.js';
import { HealthMonitor } from './health-monitor.js';
import { GatewayMetrics } from './metrics.js';
import { SpawningFakeRunner } from './prober-fake.js';
import { PRIV, PUB } from '../test/fixtures/gateway-over-fakes.js';

const A = '198.18.0.2:51820';
const B = '198.18.0.12:51820';
const X = '203.0.113.7:40000'; // unlisted: roamed (NAT)
const TICK = 0.25; // the liveness echo interval, s

/**
 * Echo results per tick from `start` on, `true` = answered, as the monitor would count
 * them (the run of unanswered echoes since the last answer); returns the decision at
 * every tick until `until`, for a peer whose last handshake was at `handshake`.
 */
function run(o: {
  endpoints: string[];
  current: string;
  handshake: number;
  answered: (at: number) => boolean;
  start: number;
  until: number;
  state?: FailoverState;
}) {
  let state = o.state;
  let current = o.current;
  let echoes: EchoRun = { answered: false, lost: 0, lostSince: o.start };
  const switches: { at: number; to: string; renew: boolean }[] = [];
  for (let at = o.start; at <= o.until + 1e-9; at = Math.round((at + TICK) * 1000) / 1000) {
    echoes = o.answered(at)
      ? { answered: true, lost: 0, lostSince: at }
      : { answered: false, lost: echoes.lost + 1, lostSince: echoes.lost ? echoes.lostSince : at };
    const d = decideFailover(state, {
      now: at,
      endpoints: o.endpoints,
      current,
      latestHandshake: o.handshake,
      echoes,
    });
    state = d.state;
    if (d.switchTo !== undefined) {
      switches.push({ at, to: d.switchTo, renew: d.renew });
      current = d.switchTo;
      // The monitor starts counting afresh on the new endpoint.
      echoes = { answered: false, lost: 0, lostSince: at };
    }
  }
  return { switches, state };
}

test('fast fail-over - a live session whose path breaks moves to the next endpoint within 2 s, keys kept', (t) => {
  const broke = 1000;
  const { switches } = run({
    endpoints: [A, B],
    current: A,
    handshake: 950, // a session 50 s old: WireGuard itself would not notice for 15 s more
    answered: (at) => at < broke,
    start: 990,
    until: 1010,
  });
  t.true(switches.length >= 1, 'no fail-over within 10 s of the break');
  const first = switches[0]!;
  t.is(first.to, B);
  t.false(first.renew, 'a live session moves with its keys: no new handshake needed');
  t.true(first.at - broke <= 2, `detected ${first.at - broke} s after the break (bound 2 s)`);
  t.true(first.at - broke >= DEFAULT_FAILOVER_POLICY.deadPathSeconds, 'not before the dead time');
});

test('fast fail-over - one lost echo, or scattered losses, never move the peer', (t) => {
  const lost = new Set([1000, 1003, 1003.25, 1003.5, 1007]);
  const { switches } = run({
    endpoints: [A, B],
    current: A,
    handshake: 950,
    answered: (at) => !lost.has(at) && !(at >= 1010 && at % 1 === 0.5), // every 4th from 1010
    start: 990,
    until: 1060,
  });
  t.deepEqual(switches, []);
});

test('fast fail-over - a handshake after the losses began restarts the count', (t) => {
  // Echoes lost from 1000, but WireGuard completed a handshake at 1001: something
  // reaches the peer. The clock restarts after that second.
  let d = decideFailover(undefined, {
    now: 1001.75,
    endpoints: [A, B],
    current: A,
    latestHandshake: 1001,
    echoes: { answered: false, lost: 8, lostSince: 1000 },
  });
  t.is(d.switchTo, undefined);
  d = decideFailover(d.state, {
    now: 1003.5,
    endpoints: [A, B],
    current: A,
    latestHandshake: 1001,
    echoes: { answered: false, lost: 15, lostSince: 1000 },
  });
  t.is(d.switchTo, B, '1.5 s after the second that held the handshake');
});

test('fast fail-over - no session (never shook hands): the next endpoint within 2 s, renewed so it handshakes at once', (t) => {
  const { switches } = run({
    endpoints: [A, B],
    current: A,
    handshake: 0,
    answered: () => false,
    start: 1000,
    until: 1002,
  });
  t.is(switches[0]?.to, B);
  t.true(switches[0]!.at - 1000 <= 2);
  t.true(switches[0]!.renew, 'no session to keep: a fresh entry initiates without the 5 s wait');
});

test('fast fail-over - a peer down everywhere: switches back off (1.5, 1.5, 3, 3, 6 … s, capped), never faster', (t) => {
  const { switches, state } = run({
    endpoints: [A, B],
    current: A,
    handshake: 950,
    answered: () => false,
    start: 1000,
    until: 1130, // the session (950) is stale from 1130 on: the slow rule's business
  });
  const gaps = switches.slice(1).map((s, i) => s.at - switches[i]!.at);
  t.log(gaps.join(' '));
  t.true(switches.length >= 6 && switches.length <= 12, `${switches.length} switches in 130 s`);
  gaps.forEach((g, i) => {
    t.true(g >= deadPathFor(i + 1, 2, DEFAULT_FAILOVER_POLICY), `gap ${i}: ${g} s`);
  });
  t.true(gaps.at(-1)! >= 24, 'backed off');
  // An answer resets the back-off: the next break is detected fast again.
  const { switches: after } = run({
    endpoints: [A, B],
    current: switches.at(-1)!.to,
    handshake: 1125,
    answered: (at) => at < 1140,
    start: 1131,
    until: 1150,
    state,
  });
  t.true(after[0]!.at - 1140 <= 2, `after recovery: ${after[0]!.at - 1140} s`);
});

test('fast fail-over - a roamed (NAT) endpoint proven by a recent handshake is kept; one endpoint never moves fast', (t) => {
  const roamed = run({
    endpoints: [A, B],
    current: X,
    handshake: 990,
    answered: (at) => at < 1000,
    start: 995,
    until: 1009, // the slow rule: probe failed + handshake older than 20 s + dwell
  });
  t.deepEqual(roamed.switches, []);
  const one = run({
    endpoints: [A],
    current: A,
    handshake: 990,
    answered: (at) => at < 1000,
    start: 995,
    until: 1100,
  });
  t.deepEqual(one.switches, []);
});

test('fast fail-over - dead-path time: 1.5 s per endpoint, doubling per full round, capped', (t) => {
  const p = DEFAULT_FAILOVER_POLICY;
  t.deepEqual(
    [0, 1, 2, 3, 4, 6, 20].map((a) => deadPathFor(a, 2, p)),
    [1.5, 1.5, 3, 3, 6, 12, p.maxDwellSeconds],
  );
});

// ── The monitor over fakes: the liveness round drives the decision ─────────────────

const KEY_B = 'd8qybrWZ7bF7LGkGFhINlkloK0uydL5I6KvaA22Rjw8=';

async function rig(t: ExecutionContext, endpoints: string[]) {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const plane = new FakeDataPlane({ linuxBridge: [] });
  const runner = new SpawningFakeRunner()
    .on('wg genkey', { stdout: PRIV })
    .on('wg pubkey', { stdout: PUB })
    .on('ip -s -j link show', { stdout: '[]' });
  const metrics = new GatewayMetrics('madrid');
  const gateway = new Gateway({ runner, backends: () => plane.backends(), metrics });
  await gateway.apply({
    identity: 'madrid',
    wireguard: { ifname: 'l2fa', listenPort: 51820, privateKeyFile: join(dir, 'k') },
    transitAddress: '198.19.255.1/24',
    peers: [{ name: 'bristol', publicKey: KEY_B, endpoints, transitAddress: '198.19.255.2' }],
    networks: [],
  });
  let clock = 1000;
  const monitor = new HealthMonitor({ gateway, runner, metrics, now: () => clock, prober: false });
  t.teardown(() => monitor.stop());
  const tunnelPeer = () => plane.tunnel.devices.get('l2fa')!.peers.get(KEY_B)!;
  /** Liveness rounds every 250 ms of fake time up to `until`; returns when it switched. */
  const tick = async (until: number) => {
    const from = tunnelPeer().endpoint;
    while (clock < until - 1e-9) {
      clock = Math.round((clock + TICK) * 1000) / 1000;
      await monitor.probeLiveness();
      if (tunnelPeer().endpoint !== from) return clock;
    }
    return undefined;
  };
  return { plane, runner, monitor, tick, tunnelPeer, setClock: (c: number) => (clock = c) };
}

test('fast fail-over - monitor: the liveness echo moves a broken live session to the next endpoint within 2 s, once, and stays', async (t) => {
  const { plane, runner, monitor, tick, tunnelPeer } = await rig(t, [A, B]);
  plane.tunnel.handshake('l2fa', KEY_B, 990);
  let reachable = new Set([A]);
  runner.helper.answer = () => reachable.has(tunnelPeer().endpoint!);
  t.is(await tick(1005), undefined, 'a working path stays');
  plane.log.clear();
  const broke = 1005;
  reachable = new Set([B]);
  const at = await tick(1015);
  t.truthy(at, 'no fail-over within 10 s');
  t.true(at! - broke <= 2, `moved ${at! - broke} s after the break`);
  t.is(tunnelPeer().endpoint, B);
  t.is(tunnelPeer().latestHandshake, 990, 'the session is kept: no renewal');
  t.deepEqual(plane.log.mutations, [`tunnel set-endpoint l2fa ${KEY_B} ${B}`]);
  // B answers: nothing moves again.
  t.is(await tick(1060), undefined);
  t.deepEqual(plane.log.mutations, [`tunnel set-endpoint l2fa ${KEY_B} ${B}`]);
  const h = await monitor.check();
  t.is(h?.peers[0]?.endpointFailovers, 1);
});

test('fast fail-over - monitor: each new endpoint gets its own full dead time; a peer down everywhere backs off, its live session never renewed', async (t) => {
  const { plane, runner, tick, tunnelPeer } = await rig(t, [A, B]);
  plane.tunnel.handshake('l2fa', KEY_B, 995);
  runner.helper.answer = () => false;
  plane.log.clear();
  const moves: number[] = [];
  let last = 1000;
  for (;;) {
    const at = await tick(1100);
    if (at === undefined) break;
    moves.push(at - last);
    last = at;
  }
  t.log(moves.join(' '));
  t.true(moves[0]! <= 2);
  t.true(moves.length <= 10, `${moves.length} switches in 100 s`);
  t.true(moves.at(-1)! >= 12, 'backed off');
  t.is(tunnelPeer().latestHandshake, 995, 'live session: never renewed');
});

test('fast fail-over - monitor: only peers with several endpoints get liveness echoes', async (t) => {
  const { runner, monitor } = await rig(t, [A]);
  const before = runner.helper.echoes.length;
  await monitor.probeLiveness();
  t.is(runner.helper.echoes.length, before);
});

test('fast fail-over - monitor: no session on a dead first endpoint: renewed on the next within 2 s (WireGuard initiates at once)', async (t) => {
  const { plane, runner, tick, tunnelPeer } = await rig(t, [A, B]);
  runner.helper.answer = () => false; // never shook hands: nothing answers on A
  plane.log.clear();
  const at = await tick(1010);
  t.truthy(at);
  t.true(at! - 1000 <= 2, `moved after ${at! - 1000} s`);
  t.is(tunnelPeer().endpoint, B);
  t.deepEqual(tunnelPeer().allowedIps, ['198.19.255.2/32'], 'renewed with its allowed IPs');
  t.deepEqual(plane.log.mutations, ['tunnel renew-peer l2fa bristol']);
});

test('fast fail-over - monitor: an answer resets the back-off at once (no health check needed): every new break is left within 2 s', async (t) => {
  const { plane, runner, tick, tunnelPeer, setClock } = await rig(t, [A, B]);
  plane.tunnel.handshake('l2fa', KEY_B, 995);
  let reachable = A;
  runner.helper.answer = () => tunnelPeer().endpoint === reachable;
  let clock = 1000;
  for (const next of [B, A, B, A]) {
    t.is(await tick(clock + 5), undefined, 'the working endpoint stays');
    clock += 5;
    reachable = next; // the endpoint in use dies; the other works
    const at = await tick(clock + 10);
    t.truthy(at, `no move to ${next}`);
    t.true(at! - clock <= 2, `moved to ${next} ${at! - clock} s after the break`);
    clock = at!;
    setClock(clock);
  }
});
