/**
 * Path MTU per peer (issue 12): the pure judging (tables), the bounded search, and the
 * health monitor's probing over fakes (which pings it runs, and that a dead peer is
 * "down", never an MTU fault).
 */
import test, { type ExecutionContext } from 'ava';
import type { RunOptions } from '../lib/runner.js';
import {
  judgeNetwork,
  judgePathMtu,
  judgePeer,
  searchLargest,
  type NetworkStatus,
  type PathMtu,
  type PeerStatus,
  type ProbeResult,
} from './health.js';
import { HealthMonitor } from './health-monitor.js';
import { GatewayMetrics } from './metrics.js';
import {
  gatewayOverFakes,
  KEY_B,
  KEY_C,
  madridConfig,
} from '../test/fixtures/gateway-over-fakes.js';

const ok: ProbeResult = { sent: 3, received: 3, loss: 0, rttMs: 1.2 };
const dead: ProbeResult = { sent: 3, received: 0, loss: 1, rttMs: undefined };
const cdn = { name: 'cdn', mtu: 1370 };
const vod = { name: 'vod', mtu: 1280 };

const pathCases: [string, Parameters<typeof judgePathMtu>, PathMtu | undefined][] = [
  ['no network', [[], 1420], undefined],
  ['network MTU unknown yet', [[{ name: 'cdn', mtu: 0 }], 1420], undefined],
  ['carries', [[cdn], 1420], { needed: 1420, measured: 1420, cannotCarry: [] }],
  [
    'not measured (peer down)',
    [[cdn], undefined],
    { needed: 1420, measured: undefined, cannotCarry: [] },
  ],
  ['1400 underlay', [[cdn, vod], 1340], { needed: 1420, measured: 1340, cannotCarry: ['cdn'] }],
  [
    'too small for both',
    [[vod, cdn], 1300],
    { needed: 1420, measured: 1300, cannotCarry: ['cdn', 'vod'] },
  ],
  ['one byte short', [[cdn], 1419], { needed: 1420, measured: 1419, cannotCarry: ['cdn'] }],
];
for (const [name, args, want] of pathCases) {
  test(`path MTU - judge: ${name}`, (t) => {
    t.deepEqual(judgePathMtu(...args), want);
  });
}

const short: PathMtu = { needed: 1420, measured: 1340, cannotCarry: ['cdn'] };
const fits: PathMtu = { needed: 1420, measured: 1420, cannotCarry: [] };
const peerCases: [
  string,
  number | undefined,
  ProbeResult,
  PathMtu | undefined,
  PeerStatus,
  RegExp,
][] = [
  ['path carries the networks', 5, ok, fits, 'up', /^$/],
  [
    'path too small',
    5,
    ok,
    short,
    'degraded',
    /path MTU to b is 1340 B .* 1420 B needed .*cannot carry cdn/,
  ],
  [
    'down peer is down, not an MTU fault',
    5,
    dead,
    { ...short, measured: undefined },
    'down',
    /no answer/,
  ],
  ['never shook hands', undefined, ok, short, 'down', /no handshake/],
  [
    'stale handshake and too small',
    400,
    ok,
    short,
    'degraded',
    /last handshake 400 s ago; path MTU to b is 1340/,
  ],
  ['no networks: no MTU judgement', 5, ok, undefined, 'up', /^$/],
];
for (const [name, age, probe, mtu, status, reason] of peerCases) {
  test(`path MTU - peer: ${name} → ${status}`, (t) => {
    const j = judgePeer(age, probe, { peer: 'b', mtu });
    t.is(j.status, status);
    t.regex(j.reason, reason);
  });
}

const c = (rx: number, tx: number) => ({ rxPackets: rx, txPackets: tx });
const netCases: [string, Parameters<typeof judgeNetwork>[0], NetworkStatus, RegExp][] = [
  [
    'path to one peer too small',
    {
      deviceUp: true,
      peers: ['degraded', 'up'],
      now: c(5, 5),
      before: c(4, 4),
      shortPaths: [{ peer: 'b', measured: 1340, needed: 1420 }],
    },
    'degraded',
    /full-size frames \(1420 B in the tunnel\) do not fit the path MTU to b \(1340 B\)/,
  ],
  [
    'all peers down wins (not an MTU fault)',
    { deviceUp: true, peers: ['down'], now: c(5, 5), before: c(4, 4), shortPaths: [] },
    'down',
    /no peer reachable/,
  ],
];
for (const [name, input, status, reason] of netCases) {
  test(`path MTU - network: ${name} → ${status}`, (t) => {
    const j = judgeNetwork(input);
    t.is(j.status, status);
    t.regex(j.reason, reason);
  });
}

/** A monotone path: sizes up to `limit` pass. Records every size tried. */
function path(limit: number) {
  const tried: number[] = [];
  const passes = (s: number) => (tried.push(s), Promise.resolve(s <= limit));
  return { tried, passes };
}

const searchCases: [string, number, number, number, number | undefined, number, number][] = [
  // name, lo, hi, limit, hint, want, max probes
  ['1400 underlay, no hint', 84, 1420, 1340, undefined, 1340, 11],
  ['hint still right: two probes', 84, 1420, 1340, 1340, 1340, 2],
  ['path shrank below the hint', 84, 1420, 1300, 1340, 1300, 13],
  ['path grew above the hint', 84, 1420, 1380, 1340, 1380, 13],
  ['path carries everything after all', 84, 1420, 1420, undefined, 1420, 11],
  ['only the smallest passes', 84, 1420, 84, undefined, 84, 11],
];
for (const [name, lo, hi, limit, hint, want, max] of searchCases) {
  test(`path MTU - search: ${name}`, async (t) => {
    const p = path(limit);
    t.is(await searchLargest(lo, hi, p.passes, hint), want);
    t.true(p.tried.length <= max, `${p.tried.length} probes: ${p.tried.join(' ')}`);
  });
}

/**
 * madrid over fakes with peers b and c, both shaken hands, network cdn (MTU 1370) to
 * both. `answer(size)` says whether a ping of that IP packet size reaches the peer
 * (size 84 = the small probe). Returns the monitor and the ping calls made.
 */
async function monitorOverFakes(
  t: ExecutionContext,
  answer: (peer: string, size: number) => boolean,
) {
  const { dir, plane, runner, gw } = await gatewayOverFakes(t, { linuxBridge: ['br-cdn'] });
  const pings: string[] = [];
  runner
    .on(
      (a) => a[0] === 'ping',
      (a: readonly string[], _o: RunOptions) => {
        const s = a.indexOf('-s');
        const size = s < 0 ? 84 : Number(a[s + 1]) + 28;
        const count = Number(a[a.indexOf('-c') + 1]);
        const peer = a.at(-1)!;
        pings.push(`${peer} ${size}${a.includes('-M') ? ' DF' : ''}`);
        const n = answer(peer, size) ? count : 0;
        return {
          stdout: `${count} packets transmitted, ${n} received\n${n ? 'rtt min/avg/max/mdev = 1/2.0/3/0.5 ms' : ''}`,
          exitCode: n ? 0 : 1,
        };
      },
    )
    .on('ip -s -j link show', {
      stdout: JSON.stringify([
        { ifname: 'l2fv100', flags: ['UP'], stats64: { rx: { packets: 1 }, tx: { packets: 1 } } },
      ]),
    });
  await gw.apply(
    madridConfig(`${dir}/k`, [
      {
        name: 'cdn',
        vni: 100,
        segment: { type: 'linux-bridge', bridge: 'br-cdn' },
        peers: ['b', 'c'],
      },
    ]),
  );
  const now = 1_000_000;
  for (const k of [KEY_B, KEY_C]) plane.tunnel.handshake('l2fa', k, now - 5);
  const metrics = new GatewayMetrics('madrid');
  const monitor = new HealthMonitor({
    gateway: gw,
    runner,
    metrics,
    now: () => now,
    prober: false,
  });
  return { monitor, pings, metrics };
}

const B = '198.19.255.2';
const C = '198.19.255.3';

test('path MTU - steady state: one DF ping per peer at the needed size, nothing else', async (t) => {
  const { monitor, pings } = await monitorOverFakes(t, () => true);
  const h = await monitor.check();
  t.deepEqual(pings.sort(), [`${B} 1420 DF`, `${C} 1420 DF`]);
  t.deepEqual(
    h?.peers.map((p) => [p.name, p.status, p.pathMtu]),
    [
      ['b', 'up', { needed: 1420, measured: 1420, cannotCarry: [] }],
      ['c', 'up', { needed: 1420, measured: 1420, cannotCarry: [] }],
    ],
  );
});

test('path MTU - a short path to b: b degraded naming measured and needed, c unaffected, metric', async (t) => {
  const { monitor, pings, metrics } = await monitorOverFakes(
    t,
    (peer, size) => peer !== B || size <= 1340,
  );
  const h = await monitor.check();
  const b = h?.peers.find((p) => p.name === 'b');
  t.is(b?.status, 'degraded');
  t.regex(
    b?.reason ?? '',
    /path MTU to b is 1340 B inside the tunnel, 1420 B needed .*cannot carry cdn/,
  );
  t.deepEqual(b?.pathMtu, { needed: 1420, measured: 1340, cannotCarry: ['cdn'] });
  t.is(b?.probe.received, 3, 'the probe result shown is the small one that passed');
  t.is(h?.peers.find((p) => p.name === 'c')?.status, 'up');
  t.is(h?.networks[0]?.status, 'degraded');
  t.regex(h?.networks[0]?.reason ?? '', /do not fit the path MTU to b \(1340 B\)/);
  const text = await metrics.registry.metrics();
  t.regex(text, /l2fed_gateway_peer_path_mtu_bytes\{peer="b",gateway="madrid"\} 1340/);
  t.regex(text, /l2fed_gateway_peer_path_mtu_needed_bytes\{peer="b",gateway="madrid"\} 1420/);
  t.regex(text, /l2fed_gateway_peer_path_mtu_bytes\{peer="c",gateway="madrid"\} 1420/);

  // The next check starts from the last answer: needed size, small probe, 2 search probes.
  pings.length = 0;
  await monitor.check();
  t.deepEqual(
    pings.filter((p) => p.startsWith(B)),
    [`${B} 1420 DF`, `${B} 84`, `${B} 1340 DF`, `${B} 1341 DF`],
  );
});

test('path MTU - a dead peer is down, not an MTU fault, and costs no search', async (t) => {
  const { monitor, pings } = await monitorOverFakes(t, (peer) => peer !== B);
  const h = await monitor.check();
  const b = h?.peers.find((p) => p.name === 'b');
  t.is(b?.status, 'down');
  t.notRegex(b?.reason ?? '', /MTU/);
  t.deepEqual(b?.pathMtu, { needed: 1420, measured: undefined, cannotCarry: [] });
  t.deepEqual(
    pings.filter((p) => p.startsWith(B)),
    [`${B} 1420 DF`, `${B} 84`],
  );
  // While it stays down: one small ping per check, as before path MTU probing.
  pings.length = 0;
  await monitor.check();
  t.deepEqual(
    pings.filter((p) => p.startsWith(B)),
    [`${B} 84`],
  );
});

test('path MTU - a fault clears when the needed size passes again', async (t) => {
  let limit = 1340;
  const { monitor } = await monitorOverFakes(t, (peer, size) => peer !== B || size <= limit);
  t.is((await monitor.check())?.peers[0]?.status, 'degraded');
  limit = 1500;
  const h = await monitor.check();
  t.is(h?.peers[0]?.status, 'up');
  t.deepEqual(h?.peers[0]?.pathMtu?.cannotCarry, []);
  t.is(h?.networks[0]?.status, 'ok');
});
