/**
 * L2 loops (issue 12): two sites export the same physical segment (their cdn bridges
 * joined by a veth pair), so a broadcast goes site 0 → tunnel → site 1 → veth → site 0
 * → tunnel … for ever. The loop guard (gateway/loop-guard.ts, loop-monitor.ts) must
 * see its beacons come back, cut the loop at exactly one side (the higher id, site1),
 * report it in health and metrics, and lift the block once the veth is gone.
 */
import type { ExecutionContext } from 'ava';
import { DEFAULT_NFT } from '../../gateway/firewall-nft.js';
import { HealthMonitor } from '../../gateway/health-monitor.js';
import { LoopMonitor, type LoopReport } from '../../gateway/loop-monitor.js';
import { GatewayMetrics } from '../../gateway/metrics.js';
import {
  GatewayLab,
  type LabNetwork,
  type LabSite,
  type SegmentKind,
} from '../fixtures/gateway-testbed.js';
import { burstSenderArgv, receivedCount, receiverArgv, senderArgv } from '../fixtures/frames.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping', 'python3', 'ethtool', DEFAULT_NFT],
});

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };
const INTERVAL_MS = 1000;

async function until(
  m: LoopMonitor,
  ok: (r: LoopReport) => boolean,
  ms: number,
): Promise<LoopReport | undefined> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (m.latest && ok(m.latest)) return m.latest;
    await new Promise((r) => setTimeout(r, 100));
  }
  return m.latest;
}

async function plug(lab: GatewayLab, site: LabSite, port: string): Promise<void> {
  if (site.ovs) {
    await lab.runner.run(
      ['ovs-vsctl', `--db=unix:${site.ovs.dbSocket}`, 'add-port', 'br-cdn', port],
      { netns: site.ns, mutates: true },
    );
  } else {
    await lab.netns.exec(site.ns, ['ip', 'link', 'set', port, 'master', 'br-cdn'], {
      mutates: true,
    });
  }
  await lab.netns.exec(site.ns, ['ip', 'link', 'set', port, 'up'], { mutates: true });
}

const loop = test.macro({
  async exec(t: ExecutionContext, segment: SegmentKind) {
    const lab = await GatewayLab.create(2, segment);
    t.teardown(() => lab.dispose());
    const [s0, s1] = lab.sites as [LabSite, LabSite];
    const pods = [];
    for (const site of lab.sites) {
      // No IPv6 chatter: the only frames in the loop are the test's and the beacons.
      await lab.runner.run(['sysctl', '-qw', 'net.ipv6.conf.default.disable_ipv6=1'], {
        netns: site.ns,
        mutates: true,
      });
      await lab.addSegment(site, CDN);
      await site.gateway.apply(lab.config(site, [CDN]));
      const pod = await lab.addPod(site, CDN, 11 + site.index, 1370);
      await lab.runner.run(['sysctl', '-qw', 'net.ipv6.conf.eth1.disable_ipv6=1'], {
        netns: pod.ns,
        mutates: true,
      });
      pods.push(pod);
    }
    const [a, b] = pods as [(typeof pods)[0], (typeof pods)[0]];
    t.true(await lab.reaches(a.ns, b.ip), 'the federation works before the loop');

    const metrics = lab.sites.map((s) => new GatewayMetrics(`site${s.index}`));
    const loops = lab.sites.map(
      (site, i) =>
        new LoopMonitor({
          gateway: site.gateway,
          runner: lab.runner,
          metrics: metrics[i],
          intervalMs: INTERVAL_MS,
        }),
    );
    t.teardown(() => Promise.all(loops.map((m) => m.stop())));
    const [m0, m1] = loops as [LoopMonitor, LoopMonitor];
    for (const m of loops) m.start();
    for (const m of loops) t.truthy(await until(m, () => true, 10_000), 'first loop check');
    t.deepEqual(
      loops.map((m) => m.network('cdn')?.blocked),
      [false, false],
    );

    // The same physical segment exported by both sites.
    await lab.netns.veth({ ns: s0.ns, ifname: 'loop0' }, { ns: s1.ns, ifname: 'loop1' });
    // First in line at teardown (teardowns run in reverse): a loop must not outlive the test.
    t.teardown(() =>
      lab.runner
        .run(['ip', 'link', 'del', 'loop0'], { netns: s0.ns, allowFailure: true })
        .then(() => undefined),
    );
    await plug(lab, s0, 'loop0');
    await plug(lab, s1, 'loop1');
    const joined = Date.now();

    const cut = await until(m1, (r) => r.networks[0]?.blocked === true, 15_000);
    const cutMs = Date.now() - joined;
    t.log(
      `${segment}: loop cut ${cutMs} ms after the segments were joined (checks every ${INTERVAL_MS} ms)`,
    );
    t.true(cut?.networks[0]?.blocked, `site1 blocks cdn: ${JSON.stringify(cut?.networks[0])}`);
    t.deepEqual(cut?.networks[0]?.loopPeers, ['site0']);
    t.regex(cut?.networks[0]?.reason ?? '', /loop through site0 on cdn/);
    t.true(cutMs < 4 * INTERVAL_MS + 3000, `cut within about two checks: ${cutMs} ms`);
    // Exactly one side blocks, and it stays that way (no flapping).
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, INTERVAL_MS));
      t.false(m0.network('cdn')?.blocked, 'site0 (lower id) never blocks');
      t.true(m1.network('cdn')?.blocked, 'site1 keeps blocking while the loop is there');
    }

    // A single broadcast now makes one copy at b (through the veth) and none back at a.
    const marker = `l2fed-loop-${Date.now()}`;
    const rxB = await lab.spawn('rx-b', b.ns, receiverArgv('eth1', marker, 2, 8), /ready/);
    const rxA = await lab.spawn('rx-a', a.ns, receiverArgv('eth1', marker, 2, 4), /ready/);
    await lab.runner.run(senderArgv('eth1', 'ff:ff:ff:ff:ff:ff', marker), { netns: a.ns });
    const copies = [await receivedCount(rxA), await receivedCount(rxB)];
    t.log(
      `${segment}: one broadcast with the loop cut: ${copies[0]} copies at a, ${copies[1]} at b`,
    );
    t.deepEqual(copies, [0, 1]);

    // Reported: health (degraded, naming the loop) and metrics.
    const health = new HealthMonitor({
      gateway: s1.gateway,
      runner: lab.runner,
      prober: false,
      loops: m1,
    });
    const h = await health.check();
    t.is(h?.networks[0]?.status, 'degraded');
    t.regex(h?.networks[0]?.reason ?? '', /loop through site0 on cdn/);
    const text = await metrics[1]!.registry.metrics();
    t.regex(text, /l2fed_gateway_loop_blocked\{network="cdn",gateway="site1"\} 1/);
    t.regex(text, /l2fed_gateway_loop_detected\{network="cdn",gateway="site1"\} 1/);
    // What the cut drops is counted against the network whose loop it cuts: site0's
    // frames (the broadcast above, beacons) arriving on cdn's blocked path.
    const droppedIn = async () => {
      const m =
        /l2fed_gateway_loop_blocked_frames_total\{network="cdn",direction="in",gateway="site1"\} (\d+)/.exec(
          await metrics[1]!.registry.metrics(),
        );
      return Number(m?.[1] ?? 0);
    };
    for (const end = Date.now() + 3 * INTERVAL_MS; Date.now() < end && (await droppedIn()) === 0;) {
      await new Promise((r) => setTimeout(r, 100));
    }
    t.true((await droppedIn()) > 0, 'blocked drops counted for cdn');
    t.regex(
      await metrics[0]!.registry.metrics(),
      /l2fed_gateway_loop_blocked\{network="cdn",gateway="site0"\} 0/,
    );

    // The loop goes away: the block lifts after a few quiet checks. On OVS the ports go
    // too: a port whose device vanished stays in the bridge and keeps the MACs it learned
    // (5 min), which would black-hole a and b's unicast, not a gateway matter.
    if (segment === 'ovs') {
      for (const [site, port] of [
        [s0, 'loop0'],
        [s1, 'loop1'],
      ] as const) {
        await lab.runner.run(['ovs-vsctl', `--db=unix:${site.ovs!.dbSocket}`, 'del-port', port], {
          netns: site.ns,
          mutates: true,
        });
      }
    }
    await lab.runner.run(['ip', 'link', 'del', 'loop0'], { netns: s0.ns, mutates: true });
    const removed = Date.now();
    const open = await until(m1, (r) => r.networks[0]?.blocked === false, 15_000);
    const openMs = Date.now() - removed;
    t.log(`${segment}: block lifted ${openMs} ms after the veth was removed`);
    t.false(open?.networks[0]?.blocked, JSON.stringify(open?.networks[0]));
    t.is(open?.networks[0]?.reason, '');
    t.true(await lab.reaches(a.ns, b.ip), 'the tunnel carries cdn again');
    const marker2 = `l2fed-open-${Date.now()}`;
    const rx2 = await lab.spawn('rx-b2', b.ns, receiverArgv('eth1', marker2, 2, 8), /ready/);
    await lab.runner.run(senderArgv('eth1', 'ff:ff:ff:ff:ff:ff', marker2), { netns: a.ns });
    t.is(await receivedCount(rx2), 1, 'a broadcast crosses the tunnel exactly once');
    t.false(m0.network('cdn')?.blocked);
    t.deepEqual(m1.network('cdn')?.loopPeers, []);
  },
  title: (_p, segment: SegmentKind) =>
    `gateway loop - ${segment}: a segment shared by two sites is detected, cut at one side, reported, and reopened`,
});

test.serial(loop, 'linux-bridge');
test.serial(loop, 'ovs');

test.serial(
  'gateway loop - linux-bridge, three sites: sites 0 and 1 share a segment, site 2 does not; site1 stands down and every pod gets each broadcast once',
  async (t) => {
    const lab = await GatewayLab.create(3, 'linux-bridge');
    t.teardown(() => lab.dispose());
    const [s0, s1] = lab.sites as [LabSite, LabSite, LabSite];
    const pods = [];
    for (const site of lab.sites) {
      await lab.runner.run(['sysctl', '-qw', 'net.ipv6.conf.default.disable_ipv6=1'], {
        netns: site.ns,
        mutates: true,
      });
      await lab.addSegment(site, CDN);
      await site.gateway.apply(lab.config(site, [CDN]));
      const pod = await lab.addPod(site, CDN, 11 + site.index, 1370);
      await lab.runner.run(['sysctl', '-qw', 'net.ipv6.conf.eth1.disable_ipv6=1'], {
        netns: pod.ns,
        mutates: true,
      });
      pods.push(pod);
    }
    t.true(await lab.reaches(pods[2]!.ns, pods[0]!.ip));
    t.true(await lab.reaches(pods[2]!.ns, pods[1]!.ip));
    const loops = lab.sites.map(
      (site) =>
        new LoopMonitor({ gateway: site.gateway, runner: lab.runner, intervalMs: INTERVAL_MS }),
    );
    t.teardown(() => Promise.all(loops.map((m) => m.stop())));
    for (const m of loops) m.start();
    for (const m of loops) t.truthy(await until(m, () => true, 10_000), 'first loop check');
    await lab.netns.veth({ ns: s0.ns, ifname: 'loop0' }, { ns: s1.ns, ifname: 'loop1' });
    t.teardown(() =>
      lab.runner
        .run(['ip', 'link', 'del', 'loop0'], { netns: s0.ns, allowFailure: true })
        .then(() => undefined),
    );
    await plug(lab, s0, 'loop0');
    await plug(lab, s1, 'loop1');
    const joined = Date.now();
    const cut = await until(loops[1]!, (r) => r.networks[0]?.blocked === true, 15_000);
    t.log(`three sites: loop cut ${Date.now() - joined} ms after the join`);
    t.true(cut?.networks[0]?.blocked, JSON.stringify(cut?.networks[0]));
    await new Promise((r) => setTimeout(r, 2 * INTERVAL_MS));
    t.deepEqual(
      loops.map((m) => m.network('cdn')?.blocked),
      [false, true, false],
      'only site1 blocks',
    );
    // Every pod's broadcast reaches each other pod exactly once and never comes back.
    for (const [from, sender] of pods.entries()) {
      const marker = `l2fed-3loop-${from}-${Date.now()}`;
      const rx = await Promise.all(
        pods.map((p, i) =>
          lab.spawn(`rx${from}${i}`, p.ns, receiverArgv('eth1', marker, 2, 6), /ready/),
        ),
      );
      await lab.runner.run(senderArgv('eth1', 'ff:ff:ff:ff:ff:ff', marker), { netns: sender.ns });
      const copies = await Promise.all(rx.map((r) => receivedCount(r)));
      t.log(`three sites: broadcast from pod ${from}: copies ${JSON.stringify(copies)}`);
      t.deepEqual(
        copies,
        pods.map((_, i) => (i === from ? 0 : 1)),
        `broadcast from pod ${from}`,
      );
    }
  },
);

test.serial(
  'gateway loop - linux-bridge: a loop that closes during a broadcast storm at 20x the bound is still cut in time',
  async (t) => {
    const lab = await GatewayLab.create(2, 'linux-bridge');
    t.teardown(() => lab.dispose());
    const [s0, s1] = lab.sites as [LabSite, LabSite];
    const pods = [];
    for (const site of lab.sites) {
      await lab.addSegment(site, CDN);
      await site.gateway.apply({
        ...lab.config(site, [CDN]),
        bumLimit: { packetsPerSecond: 200, burst: 50 },
      });
      pods.push(await lab.addPod(site, CDN, 11 + site.index, 1370));
    }
    t.true(await lab.reaches(pods[0]!.ns, pods[1]!.ip));
    const loops = lab.sites.map(
      (site) =>
        new LoopMonitor({ gateway: site.gateway, runner: lab.runner, intervalMs: INTERVAL_MS }),
    );
    t.teardown(() => Promise.all(loops.map((m) => m.stop())));
    for (const m of loops) m.start();
    for (const m of loops) t.truthy(await until(m, () => true, 10_000), 'first loop check');
    // 4000 broadcasts/s for 10 s from each pod: the bound (200/s) is saturated both ways.
    for (const [i, p] of pods.entries()) {
      await lab.spawn(
        `storm${i}`,
        p.ns,
        burstSenderArgv('eth1', 'ff:ff:ff:ff:ff:ff', `l2fed-storm${i}`, 40_000, 4000),
      );
    }
    await new Promise((r) => setTimeout(r, 1000));
    await lab.netns.veth({ ns: s0.ns, ifname: 'loop0' }, { ns: s1.ns, ifname: 'loop1' });
    t.teardown(() =>
      lab.runner
        .run(['ip', 'link', 'del', 'loop0'], { netns: s0.ns, allowFailure: true })
        .then(() => undefined),
    );
    await plug(lab, s0, 'loop0');
    await plug(lab, s1, 'loop1');
    const joined = Date.now();
    const cut = await until(loops[1]!, (r) => r.networks[0]?.blocked === true, 15_000);
    const cutMs = Date.now() - joined;
    t.log(`storm: loop cut ${cutMs} ms after the join (bound 200/s, 4000/s offered per pod)`);
    t.true(cut?.networks[0]?.blocked, JSON.stringify(cut?.networks[0]));
    t.true(cutMs < 4 * INTERVAL_MS + 3000, `cut within about two checks: ${cutMs} ms`);
    t.false(loops[0]!.network('cdn')?.blocked, 'site0 does not block');
  },
);
