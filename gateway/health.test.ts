import test from 'ava';
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
];
test('health - network: idle says so in the reason, traffic clears it', (t) => {
  const idle = judgeNetwork({ deviceUp: true, peers: ['up'], now: c(1, 1), before: c(1, 1) });
  t.regex(idle.reason, /^idle/);
  const busy = judgeNetwork({ deviceUp: true, peers: ['up'], now: c(5, 5), before: c(1, 1) });
  t.is(busy.reason, '');
});

for (const [name, input, want] of netCases) {
  test(`health - network: ${name} → ${want}`, (t) => {
    t.is(judgeNetwork(input).status, want);
  });
}

test('health monitor - one check over fakes fills the report and the metrics', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const plane = new FakeDataPlane({ linuxBridge: ['br-cdn'] });
  const runner = new FakeRunner()
    .on('wg genkey', { stdout: 'cLQ4P5JQ6UT3MtnA1w6/ZbP1/bWV3pN0ul5IwRUl3Eg=' })
    .on('wg pubkey', { stdout: 'U9uE2cVR2J5ZkTJxpE0r0Y4jPSVbH8Q5YkNnx2XqkCc=' })
    .on((a) => a[0] === 'ping', {
      stdout:
        '3 packets transmitted, 3 received, 0% packet loss\nrtt min/avg/max/mdev = 1/2.0/3/0.5 ms',
    })
    .on('ip -s -j link show', {
      stdout: JSON.stringify([
        { ifname: 'l2fv100', flags: ['UP'], stats64: { rx: { packets: 5 }, tx: { packets: 7 } } },
      ]),
    });
  const metrics = new GatewayMetrics('madrid');
  const gateway = new Gateway({ runner, backends: () => plane.backends(), metrics });
  await gateway.apply({
    identity: 'madrid',
    wireguard: { ifname: 'l2fa', listenPort: 51820, privateKeyFile: join(dir, 'k') },
    transitAddress: '198.19.255.1/24',
    peers: [
      {
        name: 'bristol',
        publicKey: 'd8qybrWZ7bF7LGkGFhINlkloK0uydL5I6KvaA22Rjw8=',
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
