import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { DEFAULT_VXLAN_PORT } from '../../gateway/config.js';
import { testWith } from '../fixtures/privileges.js';
import {
  GatewayLab,
  WG_PORT,
  type LabNetwork,
  type SegmentKind,
} from '../fixtures/gateway-testbed.js';
import { receivedCount, receiverArgv, senderArgv } from '../fixtures/frames.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping', 'iperf3', 'tcpdump', 'ethtool'],
});

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };

async function twoSites(t: ExecutionContext, segment: SegmentKind) {
  const lab = await GatewayLab.create(2, segment);
  t.teardown(() => lab.dispose());
  const pods = [];
  for (const site of lab.sites) {
    await lab.addSegment(site, CDN);
    const r = await site.gateway.apply(lab.config(site, [CDN]));
    t.is(r.report.tunnel.kind, 'wireguard-go');
    t.is(r.report.tunnel.mtu, 1420);
    t.is(r.report.networks[0]?.mtu, 1370);
    pods.push(await lab.addPod(site, CDN, 11 + site.index, r.report.networks[0]!.mtu));
  }
  return { lab, pods: pods as [(typeof pods)[0], (typeof pods)[0]] };
}

const dataPath = test.macro({
  async exec(t, segment: SegmentKind) {
    const { lab, pods } = await twoSites(t, segment);
    const [a, b] = pods;
    const [g0] = lab.sites as [(typeof lab.sites)[0]];

    // Capture every frame on site 0's underlay while traffic flows, to a file, until the
    // test stops it after the last frame it sends: only WireGuard may appear. (It stopped
    // at 2,000 packets before, which the iperf3 run used up before the non-IP frame.)
    const pcap = join(lab.dir.path, 'underlay.pcap');
    const cap = await lab.spawn(
      'tcpdump',
      g0.ns,
      ['tcpdump', '-i', 'ul0', '-nn', '-U', '-s', '128', '-Z', 'root', '-w', pcap],
      /listening on/,
    );

    const ping = await lab.runner.run(['ping', '-c', '3', '-i', '0.2', '-W', '3', b.ip], {
      netns: a.ns,
      allowFailure: true,
      timeoutMs: 20_000,
    });
    t.regex(ping.stdout, /3 packets transmitted, 3 received/, ping.stdout);

    // ARP resolved across the federation: a's neighbour entry for b is complete.
    const neigh = await lab.runner.run(['ip', 'neigh', 'show', b.ip, 'dev', 'eth1'], {
      netns: a.ns,
    });
    t.regex(neigh.stdout, /lladdr [0-9a-f:]{17}/);

    // TCP: a bounded iperf3 transfer completes.
    const bps = (await lab.tcpTransfer(a.ns, b, { seconds: 2 })).sum_received.bits_per_second;
    t.true(bps > 1e6, `iperf3 ${bps} bit/s`);
    t.log(`${segment}: pod-to-pod TCP ${(bps / 1e6).toFixed(0)} Mbit/s`);

    // A non-IP Ethernet frame crosses (unicast to b's MAC).
    const mac = /lladdr ([0-9a-f:]{17})/.exec(neigh.stdout)![1]!;
    const rx = await lab.spawn('rx', b.ns, receiverArgv('eth1', 'l2fed-nonip'), /ready/);
    const nonIpSentAt = Date.now() / 1000;
    await lab.runner.run(senderArgv('eth1', mac, 'l2fed-nonip'), { netns: a.ns });
    t.is(await receivedCount(rx), 1);

    await cap.stop();
    // `-tt`: each line starts with its time in unix seconds.
    const read = async (filter: string, ...opts: string[]) =>
      (await lab.runner.run(['tcpdump', '-r', pcap, '-nn', '-tt', ...opts, filter])).stdout
        .split('\n')
        .filter(Boolean);
    const wgFilter = `udp src port ${WG_PORT} and udp dst port ${WG_PORT}`;
    const tunnel = await read(wgFilter, '-q');
    t.true(tunnel.length > 10, `captured ${tunnel.length} WireGuard packets`);
    // The capture covers the whole window: the non-IP frame crossed in WireGuard too.
    const last = Number(tunnel.at(-1)?.split(' ')[0]);
    t.true(last >= nonIpSentAt, `last WireGuard packet at ${last}, frame sent at ${nonIpSentAt}`);
    // Everything else, IP or not: only the underlay's own link control may be there.
    const lines = await read(`not (${wgFilter})`);
    const underlayArp =
      /ARP, (Request who-has 198\.18\.0\.\d+ tell 198\.18\.0\.\d+|Reply 198\.18\.0\.\d+ is-at )/;
    // The underlay links' own IPv6 link-local control traffic (router solicitations,
    // neighbour discovery, MLD) is not tunnel traffic and carries no pod payload. MLD
    // reports carry a hop-by-hop header, which tcpdump prints as "HBH". Before a link has
    // its link-local address (duplicate address detection), it sends from "::".
    const linkControl =
      /IP6 (fe80::\S+|::) > \S+: (HBH )?ICMP6, (router solicitation|router advertisement|neighbor (solicitation|advertisement)|multicast listener)/;
    // The same for IPv4: IGMP reports for link-local groups (224.0.0.0/24), from 0.0.0.0
    // while a link has no address (seen once: 'IP 0.0.0.0 > 224.0.0.22: igmp v3 report').
    const igmp = /IP (0\.0\.0\.0|198\.18\.0\.\d+) > 224\.0\.0\.\d+: igmp /;
    const other = lines.filter(
      (l) => !linkControl.test(l) && !underlayArp.test(l) && !igmp.test(l),
    );
    t.deepEqual(other, [], 'underlay carries only WireGuard');
    const vxlan = new RegExp(`VXLAN|\\.${DEFAULT_VXLAN_PORT}[ :]`);
    t.false(lines.some((l) => vxlan.test(l)));
    // No pod or transit address (198.19.0.0/16) ever appears in clear.
    t.false(lines.some((l) => /198\.19\./.test(l)));
  },
  title: (_, segment: SegmentKind) =>
    `gateway - two sites on ${segment}: ARP, ping, TCP, non-IP, WireGuard only`,
});

test.serial(dataPath, 'linux-bridge');
test.serial(dataPath, 'ovs');
