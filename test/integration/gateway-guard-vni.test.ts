/**
 * The guard's per-peer VNI check (gateway/firewall.ts, docs/gateway.md "VXLAN only
 * through the tunnel"). Three sites: sites 0 and 1 share networks alpha and beta; site 2
 * shares only alpha. Site 2 sends hand-made VXLAN for beta from its own namespace to
 * site 1's transit address: the packets leave through its WireGuard tunnel with its real
 * transit address, as a compromised peer gateway would send them. With the guard none
 * reaches beta at site 1; the same packets for alpha (which site 2 carries) and for beta
 * from site 0 (which carries it) do. Without the table site 2's injection gets through:
 * the test can fail.
 */
import { testWith } from '../fixtures/privileges.js';
import {
  GatewayLab,
  type LabNetwork,
  type LabPod,
  type LabSite,
} from '../fixtures/gateway-testbed.js';
import type { GatewayConfigInput } from '../../gateway/config.js';
import { DEFAULT_NFT } from '../../gateway/firewall-nft.js';
import { dataPlaneSnapshots } from '../fixtures/data-plane-snapshot.js';
import { DEFAULT_VXLAN_PORT } from '../../gateway/config.js';
import { receivedCount, receiverArgv } from '../fixtures/frames.js';
import { injectorArgv } from '../fixtures/vxlan-inject.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', DEFAULT_NFT, 'python3'],
});

const ALPHA: LabNetwork = { name: 'alpha', vni: 100, subnet: 10 };
const BETA: LabNetwork = { name: 'beta', vni: 200, subnet: 20 };
const INJECTED = 20;

/** The lab config, with beta carried only between sites 0 and 1. */
function config(lab: GatewayLab, site: LabSite): GatewayConfigInput {
  const nets = site.index === 2 ? [ALPHA] : [ALPHA, BETA];
  const c = lab.config(site, nets);
  const notSite2 = (p: string) => p !== 'site2';
  return {
    ...c,
    networks: c.networks!.map((n) =>
      n.name === BETA.name ? { ...n, peers: (n.peers ?? []).filter(notSite2) } : n,
    ),
  };
}

test.serial(
  'gateway - a peer cannot inject VXLAN into a VNI it does not carry with us',
  async (t) => {
    const lab = await GatewayLab.create(3, 'linux-bridge');
    t.teardown(() => lab.dispose());
    const [s0, s1, s2] = lab.sites as [LabSite, LabSite, LabSite];
    // Sites 0 and 2 stay silent (no IPv6; no IGMP for 224.0.0.x, which a Linux bridge
    // sends when it comes up, see gateway-guard.test.ts), so site 1's beta counter moves
    // only by injection.
    for (const s of [s0, s2]) {
      await lab.runner.run(
        [
          'sysctl',
          '-qw',
          'net.ipv6.conf.default.disable_ipv6=1',
          'net.ipv4.igmp_link_local_mcast_reports=0',
        ],
        { netns: s.ns, mutates: true },
      );
    }
    for (const site of lab.sites) {
      for (const net of site.index === 2 ? [ALPHA] : [ALPHA, BETA]) await lab.addSegment(site, net);
      await site.gateway.apply(config(lab, site));
    }
    const alphaPod = await lab.addPod(s1, ALPHA, 12, 1370);
    const betaPod = await lab.addPod(s1, BETA, 12, 1370);

    // Declarative: a re-apply runs no mutating command and leaves the data plane as it was.
    const before = await dataPlaneSnapshots(lab.runner, lab.sites);
    s1.runner.clear();
    t.deepEqual((await s1.gateway.apply(config(lab, s1))).steps, []);
    t.deepEqual(s1.runner.mutatingCommands(), []);
    t.deepEqual(await dataPlaneSnapshots(lab.runner, lab.sites), before, 'data plane unchanged');

    /** Sends from `from`'s gateway namespace (through its tunnel) and counts what reached `pod`. */
    async function inject(from: LabSite, net: LabNetwork, pod: LabPod, marker: string) {
      const dev = `l2fv${net.vni}`;
      const rx = await lab.spawn(
        `rx-${marker}`,
        pod.ns,
        receiverArgv('eth1', marker, 1.5, 5),
        /ready/,
      );
      const before = await lab.rxPackets(s1.ns, dev);
      await lab.runner.run(
        injectorArgv(s1.transitAddress, DEFAULT_VXLAN_PORT, net.vni, INJECTED, marker),
        { netns: from.ns, timeoutMs: 15_000 },
      );
      const frames = await receivedCount(rx);
      return { frames, rx: (await lab.rxPackets(s1.ns, dev)) - before };
    }

    const guarded = await inject(s2, BETA, betaPod, 'l2fed-s2-beta');
    t.deepEqual(guarded, { frames: 0, rx: 0 }, 'site 2 gets nothing into beta');
    // The guard is not simply closed: the pairs each peer carries pass.
    const alpha = await inject(s2, ALPHA, alphaPod, 'l2fed-s2-alpha');
    t.is(alpha.frames, INJECTED, 'site 2 reaches alpha, which it carries');
    const beta = await inject(s0, BETA, betaPod, 'l2fed-s0-beta');
    t.is(beta.frames, INJECTED, 'site 0 reaches beta, which it carries');

    // Proof that the test can fail: without the table site 2's injection gets through.
    await lab.runner.run([DEFAULT_NFT, 'delete', 'table', 'inet', 'l2fed'], {
      netns: s1.ns,
      mutates: true,
    });
    const open = await inject(s2, BETA, betaPod, 'l2fed-s2-open');
    t.log(`guarded ${JSON.stringify(guarded)}, without the table ${JSON.stringify(open)}`);
    t.true(open.frames > 0, `site 2 reached beta without the table: ${open.frames}`);

    // The next apply restores the table in one nft transaction first. (VXLAN devices
    // learn source MACs: it also forgets the injected one, learned from site 2.)
    s1.runner.clear();
    const repair = await s1.gateway.apply(config(lab, s1));
    t.deepEqual(
      repair.steps.map((s) => (s.kind === 'fdb-forget' ? `${s.kind} ${s.mac} ${s.dst}` : s.kind)),
      ['firewall-set', `fdb-forget 02:00:00:00:aa:01 ${s2.transitAddress}`],
    );
    t.is(s1.runner.mutatingCommands()[0], `${DEFAULT_NFT} -f -`);
    t.deepEqual(await inject(s2, BETA, betaPod, 'l2fed-s2-again'), { frames: 0, rx: 0 });

    // Consent moves with the config: once site 1 carries beta to site 2 too, it passes.
    const shared = { ...lab.config(s1, [ALPHA, BETA]) };
    s1.runner.clear();
    const widened = await s1.gateway.apply(shared);
    t.true(widened.steps.some((s) => s.kind === 'firewall-set'));
    t.is((await inject(s2, BETA, betaPod, 'l2fed-s2-granted')).frames, INJECTED);
  },
);
