/**
 * Federated networks stay isolated whatever the local VLAN layout (docs/gateway.md,
 * "Segments"). Site 0 puts `red` on OVS bridge br-shared with VLAN 20 and `blue` on the
 * same bridge without a VLAN; site 1 has each on its own bridge. An OVS port with no tag
 * is a trunk for every VLAN, so blue's VXLAN port used to carry red's frames (tagged 20)
 * to site 1's blue, and frames tagged 20 from site 1's blue into red. The gateway plugs
 * an untagged network's port as an access port of VLAN 0: it carries only untagged
 * frames, and OVS drops a frame that arrives on it with a VLAN header.
 *
 * Frames are raw (AF_PACKET) with the experimental EtherType and a marker; tagged ones
 * carry an 802.1Q (0x8100) or 802.1ad (0x88a8) header. On receive the kernel moves an
 * outer tag into the packet's aux data, so the receivers count tagged frames too.
 */
import { testWith } from '../fixtures/privileges.js';
import { GatewayLab, type LabNetwork, type LabSite } from '../fixtures/gateway-testbed.js';
import type { GatewayConfigInput } from '../../gateway/config.js';
import { DEFAULT_NFT } from '../../gateway/firewall-nft.js';
import { describeStep } from '../../gateway/plan.js';
import { EXPERIMENTAL_ETHERTYPE, receivedCount, receiverArgv } from '../fixtures/frames.js';
import { dataPlaneSnapshots } from '../fixtures/data-plane-snapshot.js';

const test = testWith({
  netAdmin: true,
  tools: [
    'ip',
    'bridge',
    'wg',
    'wireguard-go',
    DEFAULT_NFT,
    'python3',
    'ovs-vsctl',
    'ovs-ofctl',
    'ethtool',
  ],
});

const RED: LabNetwork = { name: 'red', vni: 120, subnet: 12 };
const BLUE: LabNetwork = { name: 'blue', vni: 130, subnet: 13 };
const SHARED = 'br-shared';
const FRAMES = 20;

/** Python: `count` broadcast frames from ifname, 20 ms apart, under the given VLAN tags. */
const SENDER = `
import socket, sys, time
ifname, marker, count, tags = sys.argv[1], sys.argv[2].encode(), int(sys.argv[3]), sys.argv[4:]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
src = s.getsockname()[4]
head = b"".join(int(tpid, 16).to_bytes(2, "big") + int(vid).to_bytes(2, "big") for tpid, vid in (t.split(":") for t in tags))
frame = b"\\xff" * 6 + src + head + (${EXPERIMENTAL_ETHERTYPE}).to_bytes(2, "big") + marker.ljust(46, b".")
for _ in range(count):
    s.send(frame)
    time.sleep(0.02)
`;

interface Pod {
  readonly ns: string;
}

test.serial(
  'gateway - ovs: an untagged network sharing a bridge with a VLAN network carries only untagged frames',
  async (t) => {
    const lab = await GatewayLab.create(2, 'ovs');
    t.teardown(() => lab.dispose());
    const [s0, s1] = lab.sites as [LabSite, LabSite];
    const vsctl = (site: LabSite, ...args: string[]) =>
      lab.runner.run(['ovs-vsctl', `--db=unix:${site.ovs!.dbSocket}`, ...args], {
        netns: site.ns,
        mutates: true,
      });

    // Site 0: one bridge, red on VLAN 20, blue untagged. Site 1: a bridge each.
    await vsctl(s0, 'add-br', SHARED, '--', 'set', 'bridge', SHARED, 'datapath_type=netdev');
    await lab.runner.run(['ip', 'link', 'set', SHARED, 'up'], { netns: s0.ns, mutates: true });
    await lab.addSegment(s1, RED);
    await lab.addSegment(s1, BLUE);
    const config = (site: LabSite): GatewayConfigInput => {
      const c = lab.config(site, [RED, BLUE]);
      if (site !== s0) return c;
      return {
        ...c,
        networks: c.networks!.map((n) => ({
          ...n,
          segment:
            n.name === RED.name
              ? { type: 'ovs', bridge: SHARED, vlan: 20 }
              : { type: 'ovs', bridge: SHARED },
        })),
      };
    };
    for (const site of lab.sites) await site.gateway.apply(config(site));

    /** A pod on site 0's shared bridge: red as an access port of VLAN 20, blue as OVS's default (a trunk). */
    async function sharedPod(net: LabNetwork, vlan?: number): Promise<Pod> {
      const ns = await lab.netns.add(`p0${net.name}`);
      const hostEnd = `v0${net.name}`;
      await lab.netns.veth({ ns, ifname: 'eth1' }, { ns: s0.ns, ifname: hostEnd }, { mtu: 1370 });
      await lab.netns.exec(ns, ['ethtool', '-K', 'eth1', 'tx', 'off'], { mutates: true });
      await vsctl(s0, 'add-port', SHARED, hostEnd, ...(vlan ? [`tag=${vlan}`] : []));
      return { ns };
    }
    const red0 = await sharedPod(RED, 20);
    const blue0 = await sharedPod(BLUE);
    const red1 = await lab.addPod(s1, RED, 12, 1370);
    const blue1 = await lab.addPod(s1, BLUE, 12, 1370);

    // Declarative: a re-apply at site 0 changes nothing, by its commands and by what the
    // data plane looks like.
    const before = await dataPlaneSnapshots(lab.runner, lab.sites);
    s0.runner.clear();
    t.deepEqual((await s0.gateway.apply(config(s0))).steps, []);
    t.deepEqual(s0.runner.mutatingCommands(), []);
    t.deepEqual(await dataPlaneSnapshots(lab.runner, lab.sites), before, 'data plane unchanged');

    /** Sends FRAMES from one pod and counts them at each receiver pod. */
    async function send(from: Pod, tags: string[], marker: string, to: Record<string, Pod>) {
      const rx = await Promise.all(
        Object.entries(to).map(
          async ([name, pod]) =>
            [
              name,
              await lab.spawn(
                `rx-${name}-${marker}`,
                pod.ns,
                receiverArgv('eth1', marker, 1.5, 5),
                /ready/,
              ),
            ] as const,
        ),
      );
      await lab.runner.run(['python3', '-c', SENDER, 'eth1', marker, String(FRAMES), ...tags], {
        netns: from.ns,
        timeoutMs: 15_000,
      });
      const counts: Record<string, number> = {};
      for (const [name, p] of rx) counts[name] = await receivedCount(p);
      return counts;
    }

    // Everything is measured first, then judged, so a failure shows both directions.
    // Red broadcast at site 0 must reach red at site 1, never blue.
    const fromRed = await send(red0, [], 'l2fed-red0', { red1, blue1 });
    // Blue at site 1, tagged as red's VLAN (802.1Q and 802.1ad), must never reach red.
    const tagged: Record<string, Record<string, number>> = {};
    for (const tpid of ['8100', '88a8']) {
      tagged[tpid] = await send(blue1, [`${tpid}:20`], `l2fed-blue1-${tpid}`, { red0, blue0 });
    }
    // Untagged blue still works both ways.
    const untagged = await send(blue1, [], 'l2fed-blue1', { blue0, red0 });
    const back = await send(blue0, [], 'l2fed-blue0', { blue1, red1 });
    t.log({ fromRed, tagged, untagged, back });

    t.deepEqual(fromRed, { red1: FRAMES, blue1: 0 }, "red's frames reach red, no pod of blue");
    t.deepEqual(
      tagged,
      { '8100': { red0: 0, blue0: 0 }, '88a8': { red0: 0, blue0: 0 } },
      'frames tagged 20 in blue reach no pod at site 0 (blue carries only untagged frames)',
    );
    t.deepEqual(untagged, { blue0: FRAMES, red0: 0 }, 'untagged blue reaches blue only');
    t.deepEqual(back, { blue1: FRAMES, red1: 0 }, 'and back');

    // Trunks on both sides (as older gateways plugged blue, or a hand edit) leak again;
    // the next apply re-plugs exactly those ports. (A trunk on one side alone leaks
    // nothing: the other side's access port drops the tagged frames.)
    for (const site of lab.sites)
      await vsctl(site, 'clear', 'Port', `l2fv${BLUE.vni}`, 'tag', 'vlan_mode');
    const trunk = await send(red0, [], 'l2fed-red0-trunk', { blue1 });
    for (const site of lab.sites) {
      site.runner.clear();
      const replug = await site.gateway.apply(config(site));
      const bridge = site === s0 ? SHARED : `br-${BLUE.name}`;
      t.deepEqual(replug.steps.map(describeStep), [`plug l2fv${BLUE.vni} into ovs:${bridge}`]);
    }
    const replugged = await send(red0, [], 'l2fed-red0-replugged', { blue1 });
    t.log({ trunk, replugged });
    t.is(trunk.blue1, FRAMES, 'trunk ports carry red into blue (the test can fail)');
    t.is(replugged.blue1, 0, 'after the re-plug nothing leaks');
  },
);
