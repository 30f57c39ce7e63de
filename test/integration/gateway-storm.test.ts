/**
 * Broadcast storms (issue 12): a pod sends a burst of broadcast frames as fast as its
 * socket takes them; the bound (config bumLimit, nft table inet l2fed_l2 of
 * gateway/loop-guard.ts) lets the peer receive at most burst + rate × send time, counts
 * the rest as dropped in the metrics, and does not touch unicast.
 */
import type { ExecutionContext } from 'ava';
import { DEFAULT_NFT } from '../../gateway/firewall-nft.js';
import { LoopMonitor } from '../../gateway/loop-monitor.js';
import { GatewayMetrics } from '../../gateway/metrics.js';
import { GatewayLab, type LabNetwork, type SegmentKind } from '../fixtures/gateway-testbed.js';
import { burstSenderArgv, parseBurst, receivedCount, receiverArgv } from '../fixtures/frames.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping', 'python3', 'ethtool', DEFAULT_NFT],
});

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };
const LIMIT = { packetsPerSecond: 100, burst: 20 };
const FRAMES = 3000;
/**
 * 5000 frames/s: far above the bound, and slow enough that the pod's veth and OVS's
 * AF_PACKET reader (which lost 3/4 of an unpaced 10 ms burst) pass every frame to the
 * gateway, so what the bound drops can be counted exactly.
 */
const PPS = 5000;

const storm = test.macro({
  async exec(t: ExecutionContext, segment: SegmentKind) {
    const lab = await GatewayLab.create(2, segment);
    t.teardown(() => lab.dispose());
    const pods = [];
    for (const site of lab.sites) {
      await lab.addSegment(site, CDN);
      await site.gateway.apply({ ...lab.config(site, [CDN]), bumLimit: LIMIT });
      pods.push(await lab.addPod(site, CDN, 11 + site.index, 1370));
    }
    const [a, b] = pods as [(typeof pods)[0], (typeof pods)[0]];
    t.true(await lab.reaches(a.ns, b.ip));
    const metrics = new GatewayMetrics('site0');
    const loops = lab.sites.map(
      (site, i) =>
        new LoopMonitor({
          gateway: site.gateway,
          runner: lab.runner,
          intervalMs: 60_000, // one check installs the table; the test reads counters itself
          ...(i === 0 ? { metrics } : {}),
        }),
    );
    for (const m of loops) await m.check();
    const [m0] = loops as [LoopMonitor];

    // The storm, with a ping running through it.
    const marker = `l2fed-storm-${Date.now()}`;
    const rx = await lab.spawn('rx-b', b.ns, receiverArgv('eth1', marker, 4, 20), /ready/);
    const ping = lab.runner.run(['ping', '-q', '-c', '20', '-i', '0.05', '-W', '2', b.ip], {
      netns: a.ns,
      allowFailure: true,
      timeoutMs: 30_000,
    });
    const sent = parseBurst(
      (
        await lab.runner.run(burstSenderArgv('eth1', 'ff:ff:ff:ff:ff:ff', marker, FRAMES, PPS), {
          netns: a.ns,
          timeoutMs: 60_000,
        })
      ).stdout,
    );
    const got = await receivedCount(rx);
    const bound = LIMIT.burst + LIMIT.packetsPerSecond * (sent.seconds + 0.5);
    t.log(
      `${segment}: ${sent.sent} broadcasts in ${sent.seconds.toFixed(3)} s, peer pod received ${got} (bound ${bound.toFixed(0)}: burst ${LIMIT.burst} + ${LIMIT.packetsPerSecond}/s)`,
    );
    t.is(sent.sent, FRAMES);
    t.true(got <= bound, `received ${got} > ${bound}`);
    t.true(got >= LIMIT.burst / 2, `the bound passes some broadcasts: ${got}`);
    t.regex(
      (await ping).stdout,
      /20 packets transmitted, 20 received/,
      'unicast flows through the storm',
    );

    // Counted: the next check reports the drops, per peer and direction, and the metric.
    const r = await m0.check();
    const path = r?.networks[0]?.paths[0];
    t.is(path?.peer, 'site1');
    const dropped = path?.bumDroppedOut ?? 0;
    t.log(`${segment}: site 0 dropped ${dropped} broadcasts to site1 (out)`);
    // Every storm frame the bound did not drop reached the pod, give or take a few: frames
    // lost elsewhere (fewer drops), and the pods' own broadcast and multicast during the
    // storm (ARP for the ping, IPv6 ND/MLD), which the bound drops and counts too (CI saw
    // 2925 dropped + 78 received of 3000).
    t.true(Math.abs(dropped - (FRAMES - got)) <= 30, `dropped ${dropped}, received ${got}`);
    t.regex(
      await metrics.registry.metrics(),
      new RegExp(
        `l2fed_gateway_bum_dropped_frames_total\\{network="cdn",peer="site1",direction="out",gateway="site0"\\} ${dropped}`,
      ),
    );

    // Unicast is not bounded: the same burst to b's MAC arrives (all but a few at most).
    const link = await lab.runner.run(['ip', '-j', 'link', 'show', 'eth1'], { netns: b.ns });
    const mac = (JSON.parse(link.stdout) as { address: string }[])[0]!.address;
    const uni = `l2fed-uni-${Date.now()}`;
    const rxU = await lab.spawn('rx-u', b.ns, receiverArgv('eth1', uni, 4, 20), /ready/);
    const sentU = parseBurst(
      (
        await lab.runner.run(burstSenderArgv('eth1', mac, uni, 500, PPS), {
          netns: a.ns,
          timeoutMs: 60_000,
        })
      ).stdout,
    );
    const gotU = await receivedCount(rxU);
    t.log(
      `${segment}: ${sentU.sent} unicast frames in ${sentU.seconds.toFixed(3)} s, ${gotU} arrived`,
    );
    t.true(gotU >= 490, `unicast is not bounded: ${gotU} of 500`);

    // A new bound for the network: the monitor rewrites that path's chains only (the
    // table and its base chains stay: same handles), and the new bound holds.
    const handles = async () => {
      const r = await lab.runner.run(
        [DEFAULT_NFT, '-j', '-a', 'list', 'table', 'inet', 'l2fed_l2'],
        { netns: lab.sites[0]!.ns },
      );
      const objects = (
        JSON.parse(r.stdout) as { nftables: { chain?: { name: string; handle: number } }[] }
      ).nftables;
      return objects.flatMap((o) =>
        o.chain && ['input', 'output'].includes(o.chain.name) ? [o.chain.handle] : [],
      );
    };
    const tableBefore = await handles();
    const TIGHT = { packetsPerSecond: 40, burst: 10 };
    await lab.sites[0]!.gateway.apply({ ...lab.config(lab.sites[0]!, [CDN]), bumLimit: TIGHT });
    await m0.check();
    t.deepEqual(await handles(), tableBefore, 'the table was not replaced');
    const marker2 = `l2fed-storm2-${Date.now()}`;
    const rx2 = await lab.spawn('rx-b2', b.ns, receiverArgv('eth1', marker2, 4, 20), /ready/);
    const sent2 = parseBurst(
      (
        await lab.runner.run(burstSenderArgv('eth1', 'ff:ff:ff:ff:ff:ff', marker2, 1500, PPS), {
          netns: a.ns,
          timeoutMs: 60_000,
        })
      ).stdout,
    );
    const got2 = await receivedCount(rx2);
    const bound2 = TIGHT.burst + TIGHT.packetsPerSecond * (sent2.seconds + 0.5);
    t.log(
      `${segment}: new bound ${TIGHT.packetsPerSecond}/s burst ${TIGHT.burst}: ${sent2.sent} broadcasts in ${sent2.seconds.toFixed(3)} s, ${got2} received (bound ${bound2.toFixed(0)})`,
    );
    t.true(got2 <= bound2, `received ${got2} > ${bound2}`);
    t.true(got2 >= TIGHT.burst / 2, `the bound passes some broadcasts: ${got2}`);
  },
  title: (_p, segment: SegmentKind) =>
    `gateway storm - ${segment}: broadcasts to a peer are bounded per network, counted, unicast flows`,
});

test.serial(storm, 'linux-bridge');
test.serial(storm, 'ovs');
