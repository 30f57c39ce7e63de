/**
 * The active per-network probe (gateway/l2-probe.ts): on an idle network every check's
 * probe frame crosses to the peer and moves its VXLAN receive counter, tenants never see
 * a probe (Linux bridge and OVS drop the link-local group address), and a path that
 * breaks silently (the tunnel still answers, VXLAN does not pass) turns the network
 * not-receiving without any tenant traffic.
 */
import type { ExecutionContext } from 'ava';
import { DEFAULT_NFT } from '../../gateway/firewall-nft.js';
import { HealthMonitor } from '../../gateway/health-monitor.js';
import type { HealthReport } from '../../gateway/health.js';
import { GatewayLab, type LabNetwork, type LabSite } from '../fixtures/gateway-testbed.js';
import { DEFAULT_VXLAN_PORT } from '../../gateway/config.js';
import { receivedCount, receiverArgv } from '../fixtures/frames.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping', 'python3', 'ethtool', DEFAULT_NFT],
});

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };
const SILENCE_MS = 5000;

/** Waits (bounded) until the monitor's latest report satisfies `ok`. */
async function until(
  monitor: HealthMonitor,
  ok: (h: HealthReport) => boolean,
  ms: number,
): Promise<HealthReport | undefined> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const h = monitor.latest;
    if (h && ok(h)) return h;
    await new Promise((r) => setTimeout(r, 200));
  }
  return monitor.latest;
}

const probe = test.macro({
  async exec(t: ExecutionContext, segment: 'ovs' | 'linux-bridge') {
    const lab = await GatewayLab.create(2, segment);
    t.teardown(() => lab.dispose());
    const [s0] = lab.sites as [LabSite];
    const pods = [];
    for (const site of lab.sites) {
      // No IPv6 from the segment bridges either (OVS's internal port sends MLD/RS): the
      // silence check below must fire on its own, not on unanswered tenant frames.
      await lab.runner.run(['sysctl', '-qw', 'net.ipv6.conf.default.disable_ipv6=1'], {
        netns: site.ns,
        mutates: true,
      });
      await lab.addSegment(site, CDN);
      await site.gateway.apply(lab.config(site, [CDN]));
      const pod = await lab.addPod(site, CDN, 11 + site.index, 1370);
      // Idle tenants: no IPv6 chatter, so only probes can move the counters.
      await lab.runner.run(['sysctl', '-qw', 'net.ipv6.conf.eth1.disable_ipv6=1'], {
        netns: pod.ns,
        mutates: true,
      });
      pods.push(pod);
    }
    // The pods listen for anything of the probe's EtherType with its text.
    const listeners = await Promise.all(
      pods.map((p, i) =>
        lab.spawn(`probe-rx${i}`, p.ns, receiverArgv('eth1', 'l2fed-probe', 1, 6), /ready/),
      ),
    );
    const monitors = lab.sites.map(
      (site) =>
        new HealthMonitor({
          gateway: site.gateway,
          runner: lab.runner,
          intervalMs: 500,
          silenceLimitMs: SILENCE_MS,
        }),
    );
    t.teardown(() => Promise.all(monitors.map((m) => m.stop())));
    const [m0] = monitors as [HealthMonitor];
    const before = await lab.rxPackets(s0.ns, 'l2fv100');
    for (const m of monitors) m.start();

    // Idle, and yet site 1's probes reach site 0 and prove the path.
    const up = await until(
      m0,
      (h) => h.peers[0]?.status === 'up' && h.networks[0]?.status === 'ok',
      20_000,
    );
    t.is(up?.networks[0]?.status, 'ok', up?.networks[0]?.reason);
    t.is(up?.networks[0]?.probeError, '');
    // A check takes about a second here (three in-tunnel pings and the reads), so wait
    // for three of site 1's probes rather than for a fixed time.
    let gained = 0;
    for (const end = Date.now() + 20_000; Date.now() < end && gained < 3;) {
      await new Promise((r) => setTimeout(r, 250));
      gained = (await lab.rxPackets(s0.ns, 'l2fv100')) - before;
    }
    t.log(`${segment}: site 0 received ${gained} frames on an idle network (probes)`);
    t.true(gained >= 3, `probe frames arrive: ${gained}`);
    t.is(m0.latest?.networks[0]?.status, 'ok', m0.latest?.networks[0]?.reason);
    // Tenants saw none of them.
    t.deepEqual(await Promise.all(listeners.map((l) => receivedCount(l))), [0, 0]);

    // A silent break: VXLAN no longer passes at site 0, the tunnel still answers.
    await lab.runner.run([DEFAULT_NFT, '-f', '-'], {
      netns: s0.ns,
      mutates: true,
      input: `table inet breaker {\n chain input {\n  type filter hook input priority filter - 20; policy accept;\n  udp dport ${DEFAULT_VXLAN_PORT} drop\n }\n}\n`,
    });
    const started = Date.now();
    // Each report's arrival time: the bound below is in check periods as they ran.
    const reportedAt: number[] = [];
    const unsubscribe = m0.subscribe(() => reportedAt.push(Date.now()));
    const broken = await until(m0, (h) => h.networks[0]?.status === 'not-receiving', 20_000);
    const foundMs = Date.now() - started;
    unsubscribe();
    const gaps = reportedAt.map((at, i) => at - (reportedAt[i - 1] ?? started));
    const period = Math.max(...gaps);
    // What the monitor guarantees (docs/status.md): the silence counts from the first check
    // after the break (≤ 1 period), the limit is judged on whole seconds at a check's start
    // (≤ 5 s + 1 period), and that check reports when it ends (≤ 1 period); plus this
    // loop's 200 ms poll. And not before limit − 1 s (whole seconds) − 1 period (the last
    // frame may have been counted a check before the break): it is the silence rule.
    const bound = SILENCE_MS + 3 * period + 250;
    t.log(
      `${segment}: not-receiving after ${foundMs} ms (limit ${SILENCE_MS} ms, checks every ` +
        `0.5 s; longest check period ${period} ms → bound ${bound} ms)`,
    );
    t.is(broken?.networks[0]?.status, 'not-receiving', broken?.networks[0]?.reason);
    t.true(foundMs <= bound, `found after ${foundMs} ms, bound ${bound} ms`);
    t.true(foundMs >= SILENCE_MS - 1000 - period, `found after ${foundMs} ms, before the limit`);
    t.regex(broken?.networks[0]?.reason ?? '', /not even a probe/);
    t.is(broken?.peers[0]?.status, 'up', 'the tunnel itself still works');

    await lab.runner.run([DEFAULT_NFT, 'delete', 'table', 'inet', 'breaker'], {
      netns: s0.ns,
      mutates: true,
    });
    const healed = await until(m0, (h) => h.networks[0]?.status === 'ok', 15_000);
    t.is(healed?.networks[0]?.status, 'ok', healed?.networks[0]?.reason);
  },
  title: (_p, segment: string) =>
    `gateway probe - ${segment}: idle path proven, silent break found`,
});

test(probe, 'linux-bridge');
test(probe, 'ovs');
