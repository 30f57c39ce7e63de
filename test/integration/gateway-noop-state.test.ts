/**
 * "Re-apply runs zero mutating commands" checked by what the data plane looks like, not
 * only by the gateway's own labelling of its commands (issue 17): the shared
 * test/fixtures/data-plane-snapshot.ts (devices with details and addresses, routes, FDB,
 * bridge VLANs, WireGuard peers, the nftables ruleset with rule handles and, on OVS, its
 * rows and OpenFlow rules) — read before and after a no-op re-apply and after a
 * restarted gateway adopts the running data plane, on both sites. A control shows the
 * comparison sees a change nobody labelled: the guard table made again with identical
 * rules.
 */
import type { ExecutionContext } from 'ava';
import { FIREWALL_FAMILY, FIREWALL_TABLE } from '../../gateway/firewall.js';
import { DEFAULT_NFT } from '../../gateway/firewall-nft.js';
import { testWith } from '../fixtures/privileges.js';
import { dataPlaneSnapshot, dataPlaneSnapshots } from '../fixtures/data-plane-snapshot.js';
import {
  GatewayLab,
  type LabNetwork,
  type LabSite,
  type SegmentKind,
} from '../fixtures/gateway-testbed.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping', 'ethtool', DEFAULT_NFT],
});

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };

const snapshot = (lab: GatewayLab, site: LabSite) => dataPlaneSnapshot(lab.runner, site);
const snapshots = (lab: GatewayLab) => dataPlaneSnapshots(lab.runner, lab.sites);

const noop = test.macro({
  async exec(t: ExecutionContext, segment: SegmentKind) {
    const lab = await GatewayLab.create(2, segment);
    t.teardown(() => lab.dispose());
    const pods = [];
    for (const site of lab.sites) {
      // No IPv6 anywhere: its link-local chatter (router solicitations, MLD, DAD) keeps
      // changing address flags and teaching the FDBs new MACs for seconds after a link
      // comes up, which is nobody's reconcile.
      for (const scope of ['all', 'default']) {
        await lab.runner.run(['sysctl', '-qw', `net.ipv6.conf.${scope}.disable_ipv6=1`], {
          netns: site.ns,
          mutates: true,
        });
      }
      await lab.addSegment(site, CDN);
      await site.gateway.apply(lab.config(site, [CDN]));
      const pod = await lab.addPod(site, CDN, 11 + site.index, 1370);
      await lab.runner.run(['sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1'], {
        netns: pod.ns,
        mutates: true,
      });
      pods.push(pod);
    }
    const [a, b] = pods as [(typeof pods)[0], (typeof pods)[0]];
    // Traffic first: the tunnel has a session and the FDBs have learned both pods.
    t.true(await lab.reaches(a.ns, b.ip));
    t.true(await lab.reaches(b.ns, a.ip));
    const [s0] = lab.sites as [LabSite];

    const before = await snapshots(lab);
    s0.runner.clear();
    const again = await s0.gateway.apply(lab.config(s0, [CDN]));
    t.deepEqual(again.steps, []);
    t.deepEqual(s0.runner.mutatingCommands(), []);
    t.deepEqual(await snapshots(lab), before, 'a no-op re-apply leaves the data plane as it was');

    // A fresh Gateway object (a restarted process) adopts the running data plane.
    const fresh = lab.restartGateway(s0);
    const adopted = await fresh.apply(lab.config(s0, [CDN]));
    t.deepEqual(adopted.steps, []);
    t.deepEqual(s0.runner.mutatingCommands(), []);
    t.deepEqual(await snapshots(lab), before, 'adopting leaves the data plane as it was');
    t.true(await lab.reaches(a.ns, b.ip), 'and traffic still passes');

    // Control: the guard table made again with the same rules, by a command nobody
    // labelled as mutating, is seen by the comparison (its rule handles change).
    const table = await lab.runner.run(
      [DEFAULT_NFT, 'list', 'table', FIREWALL_FAMILY, FIREWALL_TABLE],
      { netns: s0.ns },
    );
    await lab.runner.run([DEFAULT_NFT, '-f', '-'], {
      netns: s0.ns,
      input: `delete table ${FIREWALL_FAMILY} ${FIREWALL_TABLE}\n${table.stdout}`,
    });
    const remade = await snapshot(lab, s0);
    t.deepEqual(remade['ip -d addr'], before[0]!['ip -d addr']);
    t.notDeepEqual(remade['nft -a ruleset'], before[0]!['nft -a ruleset'], 'the control is seen');
  },
  title: (_, segment: SegmentKind) =>
    `gateway no-op - ${segment}: re-apply and adopt leave links, addresses, routes, FDB, WireGuard, nftables${segment === 'ovs' ? ', OVS' : ''} as they were`,
});

test.serial(noop, 'linux-bridge');
test.serial(noop, 'ovs');
