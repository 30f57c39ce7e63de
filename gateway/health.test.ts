import test from 'ava';
import type { ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeRunner } from '../lib/runner-fake.js';
import { FakeDataPlane } from './dataplane-fake.js';
import { Gateway } from './gateway.js';
import {
  judgeNetwork,
  judgePeer,
  parsePing,
  type NetworkStatus,
  type PeerStatus,
  type ProbeResult,
} from './health.js';
import { HealthMonitor } from './health-monitor.js';
import { parseProbeOutput, PythonL2Prober } from './l2-probe.js';
import { FakeL2Prober } from './l2-probe-fake.js';
import { GatewayMetrics } from './metrics.js';

const ok: ProbeResult = { sent: 3, received: 3, loss: 0, rttMs: 1.2 };
const lossy: ProbeResult = { sent: 3, received: 2, loss: 1 / 3, rttMs: 1.5 };
const dead: ProbeResult = { sent: 3, received: 0, loss: 1, rttMs: undefined };

test('ping - summary parses; no summary means total loss', (t) => {
  t.deepEqual(
    parsePing(
      '3 packets transmitted, 2 received, 33.3333% packet loss, time 402ms\nrtt min/avg/max/mdev = 0.9/1.25/1.6/0.3 ms',
    ),
    { sent: 3, received: 2, loss: 1 / 3, rttMs: 1.25 },
  );
  t.is(parsePing('').loss, 1);
});

const peerCases: [string, number | undefined, ProbeResult, PeerStatus][] = [
  ['fresh handshake, clean probe', 5, ok, 'up'],
  ['never shook hands', undefined, ok, 'down'],
  ['probe dead', 5, dead, 'down'],
  ['stale handshake', 400, ok, 'degraded'],
  ['some loss', 5, lossy, 'degraded'],
];
for (const [name, age, probe, want] of peerCases) {
  test(`health - peer: ${name} → ${want}`, (t) => {
    t.is(judgePeer(age, probe).status, want);
  });
}

const c = (rx: number, tx: number) => ({ rxPackets: rx, txPackets: tx });
const quiet = {
  deviceUp: true,
  peers: ['up'] as PeerStatus[],
  now: c(1, 2),
  before: c(1, 1),
  probeTx: 1, // the tx +1 is our own probe
};
const netCases: [string, Parameters<typeof judgeNetwork>[0], NetworkStatus][] = [
  ['device down', { deviceUp: false, peers: ['up'], now: c(0, 0), before: undefined }, 'down'],
  [
    'all peers up, traffic both ways',
    { deviceUp: true, peers: ['up'], now: c(9, 9), before: c(1, 1) },
    'ok',
  ],
  ['idle is fine', { deviceUp: true, peers: ['up'], now: c(1, 1), before: c(1, 1) }, 'ok'],
  [
    'sends but receives nothing',
    { deviceUp: true, peers: ['up'], now: c(1, 9), before: c(1, 1) },
    'not-receiving',
  ],
  [
    'one of two peers down',
    { deviceUp: true, peers: ['up', 'down'], now: c(1, 1), before: undefined },
    'degraded',
  ],
  ['every peer down', { deviceUp: true, peers: ['down'], now: c(1, 1), before: undefined }, 'down'],
  [
    'only our probes went out (one per peer), nothing came back yet',
    { deviceUp: true, peers: ['up', 'up'], now: c(1, 3), before: c(1, 1), probeTx: 2 },
    'ok',
  ],
  [
    'tenant frames beyond the probes went out, nothing came back',
    { deviceUp: true, peers: ['up'], now: c(1, 4), before: c(1, 1), probeTx: 1 },
    'not-receiving',
  ],
  [
    'silent for the limit while a peer is up',
    { ...quiet, silentSeconds: 30, silenceLimitSeconds: 30 },
    'not-receiving',
  ],
  ['silent, under the limit', { ...quiet, silentSeconds: 29, silenceLimitSeconds: 30 }, 'ok'],
  ['silent, no limit (probing off)', { ...quiet, silentSeconds: 999 }, 'ok'],
  [
    'silent while every peer is down: down, not not-receiving',
    { ...quiet, peers: ['down'], silentSeconds: 99, silenceLimitSeconds: 30 },
    'down',
  ],
  [
    'frames dropped by the kernel before the tunnel, peers up, traffic both ways',
    { deviceUp: true, peers: ['up'], now: c(9, 9), before: c(1, 1), txDropped: 3 },
    'degraded',
  ],
];
test('health - network: frames the kernel dropped on the VXLAN device are named with the likely cause', (t) => {
  const r = judgeNetwork({
    deviceUp: true,
    peers: ['up', 'up'],
    now: c(9, 9),
    before: c(1, 1),
    txDropped: 13_924,
  });
  t.is(r.status, 'degraded');
  t.regex(
    r.reason,
    /dropped 13924 frames on their way to peers.*neighbor table overflow.*gc_thresh3/,
  );
});
test('health - network: idle says so in the reason, traffic clears it', (t) => {
  const idle = judgeNetwork({ deviceUp: true, peers: ['up'], now: c(1, 1), before: c(1, 1) });
  t.regex(idle.reason, /^idle/);
  const busy = judgeNetwork({ deviceUp: true, peers: ['up'], now: c(5, 5), before: c(1, 1) });
  t.is(busy.reason, '');
  const silent = judgeNetwork({ ...quiet, silentSeconds: 31, silenceLimitSeconds: 30 });
  t.regex(silent.reason, /no frame \(not even a probe\) from any peer for 31 s/);
  const tenant = judgeNetwork({ ...quiet, now: c(1, 9), probeTx: 1 });
  t.is(tenant.reason, 'sent 7 frames since the last check, received none');
});

for (const [name, input, want] of netCases) {
  test(`health - network: ${name} → ${want}`, (t) => {
    t.is(judgeNetwork(input).status, want);
  });
}

test('health monitor - one check over fakes fills the report and the metrics', async (t) => {
  const { runner, gateway, metrics } = await gatewayOverFakes(t);
  // The fake tunnel never shakes hands: the peer is down although the probe answers.
  const monitor = new HealthMonitor({ gateway, runner, metrics, now: () => 1_000 });
  const seen: string[] = [];
  monitor.subscribe((h) => seen.push(h.at));
  const h = await monitor.check();
  t.is(h?.peers[0]?.status, 'down');
  t.is(h?.peers[0]?.probe.rttMs, 2);
  t.is(h?.networks[0]?.status, 'down');
  t.is(h?.networks[0]?.mtu, 1370);
  t.is(seen.length, 1);
  const text = await metrics.registry.metrics();
  t.regex(text, /l2fed_gateway_tunnel_up\{peer="bristol",gateway="madrid"\} 0/);
  t.regex(text, /l2fed_gateway_peer_rtt_seconds\{peer="bristol",gateway="madrid"\} 0.002/);
  t.regex(text, /l2fed_gateway_reconcile_duration_seconds_count\{gateway="madrid"\} 1/);
  // The probe is a read: health checks never change the data plane.
  t.deepEqual(runner.mutatingCommands(), []);
});

/**
 * A gateway over fakes, applied: one peer (bristol) and one network (cdn, device
 * l2fv100 whose counters are `stats`). The fake tunnel has not shaken hands.
 */
async function gatewayOverFakes(t: ExecutionContext) {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const plane = new FakeDataPlane({ linuxBridge: ['br-cdn'] });
  const stats = { rx: 5, tx: 7 };
  const runner = new FakeRunner()
    .on('wg genkey', { stdout: 'cLQ4P5JQ6UT3MtnA1w6/ZbP1/bWV3pN0ul5IwRUl3Eg=' })
    .on('wg pubkey', { stdout: 'U9uE2cVR2J5ZkTJxpE0r0Y4jPSVbH8Q5YkNnx2XqkCc=' })
    .on((a) => a[0] === 'ping', {
      stdout:
        '3 packets transmitted, 3 received, 0% packet loss\nrtt min/avg/max/mdev = 1/2.0/3/0.5 ms',
    })
    .on('ip -s -j link show', () => ({
      stdout: JSON.stringify([
        {
          ifname: 'l2fv100',
          flags: ['UP'],
          stats64: { rx: { packets: stats.rx }, tx: { packets: stats.tx } },
        },
      ]),
    }));
  const metrics = new GatewayMetrics('madrid');
  const gateway = new Gateway({ runner, backends: () => plane.backends(), metrics });
  const peerKey = 'd8qybrWZ7bF7LGkGFhINlkloK0uydL5I6KvaA22Rjw8=';
  await gateway.apply({
    identity: 'madrid',
    wireguard: { ifname: 'l2fa', listenPort: 51820, privateKeyFile: join(dir, 'k') },
    transitAddress: '198.19.255.1/24',
    peers: [
      {
        name: 'bristol',
        publicKey: peerKey,
        endpoints: ['198.18.0.2:51820'],
        transitAddress: '198.19.255.2',
      },
    ],
    networks: [
      {
        name: 'cdn',
        vni: 100,
        segment: { type: 'linux-bridge', bridge: 'br-cdn' },
        peers: ['bristol'],
      },
    ],
  });
  return { runner, plane, gateway, metrics, stats, peerKey };
}

/** gatewayOverFakes with a handshake, a monitor on a pinned clock, and a check stepper. */
async function probeRig(t: ExecutionContext, prober: FakeL2Prober | false) {
  const { runner, plane, gateway, metrics, stats, peerKey } = await gatewayOverFakes(t);
  const clock = { now: 1000 };
  const peers = plane.tunnel.devices.get('l2fa')!.peers;
  peers.set(peerKey, { ...peers.get(peerKey)!, latestHandshake: 995 });
  const monitor = new HealthMonitor({
    gateway,
    runner,
    now: () => clock.now,
    intervalMs: 10_000,
    prober,
    failover: false,
    metrics,
  });
  /** One check `dt` seconds later, after the counters moved by drx/dtx. */
  const step = async (dt: number, drx: number, dtx: number) => {
    clock.now += dt;
    stats.rx += drx;
    stats.tx += dtx;
    peers.set(peerKey, { ...peers.get(peerKey)!, latestHandshake: clock.now - 5 });
    const h = await monitor.check();
    return h!.networks[0]!;
  };
  return { step, runner, metrics };
}

test('health monitor - probes every check; silence while the peer is up is not-receiving', async (t) => {
  const prober = new FakeL2Prober();
  const { step, runner, metrics } = await probeRig(t, prober);
  t.is((await step(0, 0, 0)).status, 'ok');
  t.deepEqual(prober.sends.at(-1), { identity: 'madrid', devices: ['l2fv100'], netns: undefined });
  // Only our own probe went out (tx +1, one peer): idle, not "sends but receives nothing".
  const idle = await step(10, 0, 1);
  t.is(idle.status, 'ok');
  t.is(idle.silentSeconds, 10);
  t.is((await step(10, 0, 1)).status, 'ok');
  // 30 s (the default limit: max(3 × 10 s, 30 s)) without a frame from bristol's probes.
  const broken = await step(10, 0, 1);
  t.is(broken.status, 'not-receiving');
  t.regex(
    await metrics.registry.metrics(),
    /l2fed_gateway_network_rx_silence_seconds\{network="cdn",gateway="madrid"\} 30/,
  );
  t.regex(broken.reason, /for 30 s/);
  // bristol's probe arrives: fine again at once.
  const back = await step(10, 1, 1);
  t.deepEqual([back.status, back.silentSeconds], ['ok', 0]);
  // Tenant frames beyond our probe, nothing back: the fast check still fires.
  t.is((await step(10, 0, 4)).status, 'not-receiving');
  t.is(prober.sends.length, 6);
  t.false(
    runner.calls.some((c) => c.argv[0] === 'python3'),
    'the prober, not the runner',
  );
});

test('health monitor - a failed probe is reported and not counted as probe traffic', async (t) => {
  const prober = new FakeL2Prober();
  const { step } = await probeRig(t, prober);
  await step(0, 0, 0);
  prober.failing.add('l2fv100');
  t.is((await step(10, 1, 1)).probeError, 'fake failure');
  // No probe left last check, so tx +1 is a tenant frame with no answer.
  t.is((await step(10, 0, 1)).status, 'not-receiving');
  prober.unavailable = 'python3 is not installed';
  t.is((await step(10, 1, 0)).probeError, 'python3 is not installed');
});

test('health monitor - probing off: no sends, no silence check', async (t) => {
  const { step } = await probeRig(t, false);
  await step(0, 0, 0);
  const n = await step(600, 0, 0);
  t.deepEqual([n.status, n.silentSeconds], ['ok', 600]);
});

test('l2 probe - python3 in the data-plane namespace, one run for all devices', async (t) => {
  const runner = new FakeRunner().on((a) => a[0] === 'python3', {
    stdout: 'sent l2fv100\nfailed l2fv200 [Errno 19] No such device\n',
  });
  const r = await new PythonL2Prober(runner).send('madrid', ['l2fv100', 'l2fv200'], 'ns1');
  t.deepEqual([...r.sent], ['l2fv100']);
  t.is(r.failed.get('l2fv200'), '[Errno 19] No such device');
  t.is(runner.calls.length, 1);
  t.deepEqual(runner.calls[0]!.argv.slice(3), ['madrid', 'l2fv100', 'l2fv200']);
  t.is(runner.calls[0]!.netns, 'ns1');
  t.false(runner.calls[0]!.mutates, 'a probe reads nothing and changes nothing');
  t.deepEqual(parseProbeOutput('sent a\n', ['a', 'b']).failed.get('b'), 'no result');
  const none = await new PythonL2Prober(new FakeRunner()).send('madrid', [], undefined);
  t.is(none.sent.size, 0);
});

test('l2 probe - python3 missing names the package', async (t) => {
  const viaNetns = new FakeRunner().on((a) => a[0] === 'python3', {
    exitCode: 255,
    stderr: 'exec of "python3" failed: No such file or directory',
  });
  const a = await new PythonL2Prober(viaNetns).send('m', ['l2fv1'], 'ns1');
  t.regex(a.unavailable ?? '', /apt-get install --no-install-recommends python3/);
  const b = await new PythonL2Prober(new FakeRunner()).send('m', ['l2fv1'], undefined);
  t.truthy(b.unavailable);
});
