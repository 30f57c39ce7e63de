/**
 * The four gateway metric series no other test saw move (issue 17): a peer's probe loss
 * ratio (with its state), its received and sent bytes (from the health monitor), and the
 * frames dropped on blocked paths (from the loop monitor). Each is driven through its
 * monitor over fakes and read back from the registry as Prometheus text, as a scrape would.
 */
import test, { type ExecutionContext } from 'ava';
import { FakeRunner } from '../lib/runner-fake.js';
import { parseGatewayConfig, type GatewayConfigInput } from './config.js';
import { HealthMonitor } from './health-monitor.js';
import type { LoopBeaconSender } from './loop-beacon.js';
import { FakeL2GuardNft } from './loop-guard-fake.js';
import { LoopMonitor } from './loop-monitor.js';
import { GatewayMetrics } from './metrics.js';
import { gatewayOverFakes, KEY_B, madridConfig } from '../test/fixtures/gateway-over-fakes.js';

/** The value of one sample in Prometheus text; undefined when the series is absent. */
function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

const CDN_B: GatewayConfigInput['networks'] = [
  { name: 'cdn', vni: 100, segment: { type: 'linux-bridge', bridge: 'br-cdn' }, peers: ['b'] },
];

/** madrid over fakes with peer b (and c) applied; ping answers as `answered` says. */
async function healthRig(t: ExecutionContext) {
  const metrics = new GatewayMetrics('madrid');
  const { dir, plane, runner, gw } = await gatewayOverFakes(t, { linuxBridge: ['br-cdn'] });
  await gw.apply(madridConfig(`${dir}/k`, CDN_B));
  const ping = { answered: 3 };
  runner
    .on(
      (a) => a[0] === 'ping',
      () => ({
        exitCode: ping.answered > 0 ? 0 : 1,
        stdout:
          `3 packets transmitted, ${ping.answered} received, ` +
          `${Math.round((100 * (3 - ping.answered)) / 3)}% packet loss\n` +
          (ping.answered > 0 ? 'rtt min/avg/max/mdev = 1/2.0/3/0.5 ms\n' : ''),
      }),
    )
    .on('ip -s -j link show', {
      stdout: JSON.stringify([
        { ifname: 'l2fv100', flags: ['UP'], stats64: { rx: { packets: 1 }, tx: { packets: 1 } } },
      ]),
    });
  const peers = plane.tunnel.devices.get('l2fa')!.peers;
  /** What WireGuard reports for peer b: handshake age 5 s, these byte counters. */
  const wg = (rxBytes: number, txBytes: number) =>
    peers.set(KEY_B, { ...peers.get(KEY_B)!, latestHandshake: 995, rxBytes, txBytes });
  const monitor = new HealthMonitor({
    gateway: gw,
    runner,
    metrics,
    now: () => 1000,
    helper: false,
    prober: false,
    failover: false,
  });
  const scrape = async (name: string) =>
    sample(await metrics.registry.metrics(), name, 'peer="b",gateway="madrid"');
  return { ping, wg, monitor, scrape, metrics };
}

test('metrics - a peer whose echoes stop answering: probe loss ratio 0 → 1 → 0, state up → down → degraded → up', async (t) => {
  const { ping, wg, monitor, scrape, metrics } = await healthRig(t);
  /** The peer_state series of b that is 1 (the user's `l2fed_gateway_peer_state == 1`). */
  const state = async () => {
    const text = await metrics.registry.metrics();
    return ['up', 'degraded', 'down'].filter(
      (s) =>
        sample(text, 'l2fed_gateway_peer_state', `peer="b",state="${s}",gateway="madrid"`) === 1,
    );
  };
  wg(100, 100);
  await monitor.check();
  t.is(await scrape('l2fed_gateway_peer_probe_loss_ratio'), 0);
  t.deepEqual(await state(), ['up']);
  ping.answered = 0;
  await monitor.check();
  t.is(await scrape('l2fed_gateway_peer_probe_loss_ratio'), 1);
  t.deepEqual(await state(), ['down']);
  ping.answered = 2;
  await monitor.check();
  t.is((await scrape('l2fed_gateway_peer_probe_loss_ratio'))?.toFixed(3), '0.333');
  t.deepEqual(await state(), ['degraded']);
  t.is(await scrape('l2fed_gateway_tunnel_up'), 1);
  ping.answered = 3;
  await monitor.check();
  t.is(await scrape('l2fed_gateway_peer_probe_loss_ratio'), 0);
  t.deepEqual(await state(), ['up']);
});

test('metrics - received and sent bytes count what the tunnel counters of each peer add, across a rebuilt tunnel', async (t) => {
  const { wg, monitor, scrape, metrics } = await healthRig(t);
  const rx = 'l2fed_gateway_peer_received_bytes_total';
  const tx = 'l2fed_gateway_peer_sent_bytes_total';
  wg(0, 0);
  await monitor.check();
  t.is(await scrape(rx), 0);
  t.is(await scrape(tx), 0);
  wg(1480, 92);
  await monitor.check();
  t.is(await scrape(rx), 1480);
  t.is(await scrape(tx), 92);
  wg(1_000_000, 250_000);
  await monitor.check();
  t.is(await scrape(rx), 1_000_000);
  t.is(await scrape(tx), 250_000);
  // The tunnel is recreated: WireGuard counts from 0 again; the Prometheus counters go on.
  wg(500, 100);
  await monitor.check();
  t.is(await scrape(rx), 1_000_500);
  t.is(await scrape(tx), 250_100);
  // Peer c carries no network and answers the same pings: its own series, its own bytes.
  t.is(sample(await metrics.registry.metrics(), rx, 'peer="c",gateway="madrid"'), 0);
});

const quietBeacon: LoopBeaconSender = {
  send: (_identity, devices) => Promise.resolve({ sent: new Set(devices), failed: new Map() }),
};

test('metrics - frames dropped on blocked paths count up per network and direction, across a new bound and a path removed and made again', async (t) => {
  const runner = new FakeRunner();
  const nft = new FakeL2GuardNft(runner);
  const metrics = new GatewayMetrics('madrid');
  const gateway = { config: parseGatewayConfig(madridConfig('/k', CDN_B)) };
  const monitor = new LoopMonitor({
    gateway,
    runner,
    metrics,
    beacon: quietBeacon,
    nft: nft.nft,
    settleMs: 0,
  });
  const path = '198.19.255.2 100'; // b on cdn
  const dropped = async (direction: 'in' | 'out') =>
    sample(
      await metrics.registry.metrics(),
      'l2fed_gateway_loop_blocked_frames_total',
      `network="cdn",direction="${direction}",gateway="madrid"`,
    );
  await monitor.check();
  t.is(await dropped('in'), 0);
  t.is(await dropped('out'), 0);
  nft.count('blocked-in', path, 7);
  nft.count('blocked-out', path, 3);
  await monitor.check();
  t.is(await dropped('in'), 7);
  t.is(await dropped('out'), 3);
  nft.count('blocked-in', path, 3);
  await monitor.check();
  t.is(await dropped('in'), 10);
  t.is(await dropped('out'), 3);
  // A new bound keeps the path's counters (they live in the counter sets) ...
  gateway.config = parseGatewayConfig({
    ...madridConfig('/k', CDN_B),
    bumLimit: { packetsPerSecond: 7, burst: 7 },
  });
  await monitor.check();
  t.is(nft.counted('blocked-in', path), 10);
  t.is(await dropped('in'), 10);
  // ... a path removed and made again (b leaves cdn, comes back) starts from 0 in nft:
  // the series keeps counting.
  gateway.config = parseGatewayConfig(madridConfig('/k', [{ ...CDN_B[0]!, peers: [] }]));
  await monitor.check();
  gateway.config = parseGatewayConfig(madridConfig('/k', CDN_B));
  await monitor.check();
  t.is(nft.counted('blocked-in', path), 0, 'nft restarted the counter');
  nft.count('blocked-in', path, 2);
  nft.count('blocked-out', path, 1);
  await monitor.check();
  t.is(await dropped('in'), 12);
  t.is(await dropped('out'), 4);
});
