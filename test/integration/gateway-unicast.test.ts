/**
 * Issue 11 item 7: known unicast goes only to the gateway behind the MAC. Three sites
 * share one network; a transfer between sites 0 and 1 must not reach site 2, broadcast
 * still reaches everyone once, and a MAC that moves to site 2 is reached there within
 * 2 s (the bound the issue sets). Real wireguard-go, VXLAN and bridges in namespaces.
 */
import type { ExecutionContext } from 'ava';
import { DEFAULT_VXLAN_PORT } from '../../gateway/config.js';
import { DEFAULT_NFT } from '../../gateway/firewall-nft.js';
import { testWith } from '../fixtures/privileges.js';
import {
  GatewayLab,
  type LabPod,
  type LabSite,
  type LabNetwork,
  type SegmentKind,
} from '../fixtures/gateway-testbed.js';
import {
  EXPERIMENTAL_ETHERTYPE,
  receivedCount,
  receiverArgv,
  senderArgv,
} from '../fixtures/frames.js';
import { dataPlaneSnapshots } from '../fixtures/data-plane-snapshot.js';

const test = testWith({
  netAdmin: true,
  tools: [
    'ip',
    'bridge',
    'wg',
    'wireguard-go',
    'ping',
    'iperf3',
    'tcpdump',
    'ethtool',
    'sysctl',
    DEFAULT_NFT,
  ],
});

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };
/** The bound on how long a moved MAC may stay unreachable. */
const MOVE_BOUND_MS = 2000;
/** Share of a transfer between two sites that a third may see (issue 11). */
const LEAK_BOUND = 0.01;

/** Python: send a unicast frame of our EtherType to dst every `period` s for `limit` s. */
const STREAM = `
import socket, sys, time
ifname, dst, marker, period, limit = sys.argv[1], sys.argv[2], sys.argv[3].encode(), float(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
frame = bytes.fromhex(dst.replace(":", "")) + s.getsockname()[4] + (${EXPERIMENTAL_ETHERTYPE}).to_bytes(2, "big") + marker.ljust(46, b".")
print("ready", flush=True)
end = time.time() + limit
while time.time() < end:
    s.send(frame)
    time.sleep(period)
`;

/** Python: print the wall-clock time (ms) the first frame carrying `marker` arrived. */
const FIRST_ARRIVAL = `
import socket, sys, time
ifname, marker, limit = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(${EXPERIMENTAL_ETHERTYPE}))
s.bind((ifname, 0))
s.settimeout(0.05)
print("ready", flush=True)
end = time.time() + limit
while time.time() < end:
    try:
        data, addr = s.recvfrom(65535)
    except socket.timeout:
        continue
    if addr[2] != socket.PACKET_OUTGOING and marker in data:
        print("first %.1f" % (time.time() * 1000), flush=True)
        sys.exit(0)
print("none", flush=True)
`;

/** Python: send one frame of our EtherType from any source MAC (a gateway's own device). */
const FORGED = `
import socket, sys
ifname, src, dst, marker = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].encode()
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
mac = lambda m: bytes.fromhex(m.replace(":", ""))
s.send(mac(dst) + mac(src) + (${EXPERIMENTAL_ETHERTYPE}).to_bytes(2, "big") + marker.ljust(46, b"."))
`;

interface Counters {
  readonly bytes: number;
  readonly packets: number;
}

async function rx(lab: GatewayLab, ns: string, dev: string): Promise<Counters> {
  const r = await lab.runner.run(['ip', '-s', '-j', 'link', 'show', 'dev', dev], { netns: ns });
  const [link] = JSON.parse(r.stdout) as { stats64: { rx: Counters } }[];
  return { bytes: link!.stats64.rx.bytes, packets: link!.stats64.rx.packets };
}

async function macOf(lab: GatewayLab, ns: string, dev = 'eth1'): Promise<string> {
  const r = await lab.runner.run(['ip', '-j', 'link', 'show', 'dev', dev], { netns: ns });
  return (JSON.parse(r.stdout) as { address: string }[])[0]!.address;
}

/** The VXLAN device's learned entries (state not permanent/static) as MAC → peer. */
async function learned(lab: GatewayLab, site: LabSite): Promise<Map<string, string>> {
  const r = await lab.runner.run(['bridge', '-j', 'fdb', 'show', 'dev', 'l2fv100'], {
    netns: site.ns,
  });
  const entries = JSON.parse(r.stdout || '[]') as { mac: string; dst?: string; state?: string }[];
  return new Map(
    entries
      .filter((e) => e.dst && e.state !== 'permanent' && e.state !== 'static')
      .map((e) => [e.mac, e.dst!]),
  );
}

/**
 * Moves a pod, MAC and address, from its site to another: unplugs its interface and
 * plugs a new one with the same MAC into `to`'s segment. IPv6 is off in the pod, so
 * it sends nothing until the test makes it.
 */
async function movePod(lab: GatewayLab, pod: LabPod, from: LabSite, to: LabSite): Promise<void> {
  const mac = await macOf(lab, pod.ns);
  await lab.runner.run(
    ['sysctl', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'],
    { netns: pod.ns, mutates: true },
  );
  const oldEnd = `v${from.index}${CDN.name}12`;
  if (from.ovs) {
    await lab.runner.run(['ovs-vsctl', `--db=unix:${from.ovs.dbSocket}`, 'del-port', oldEnd], {
      netns: from.ns,
      mutates: true,
    });
  }
  await lab.runner.run(['ip', 'link', 'del', oldEnd], { netns: from.ns, mutates: true });
  const newEnd = `m${to.index}${CDN.name}12`;
  await lab.netns.veth(
    { ns: pod.ns, ifname: 'eth1' },
    { ns: to.ns, ifname: newEnd },
    { mtu: 1370 },
  );
  await lab.runner.run(['ip', 'link', 'set', 'eth1', 'address', mac], {
    netns: pod.ns,
    mutates: true,
  });
  await lab.netns.addr(pod.ns, 'eth1', pod.address);
  if (to.ovs) {
    await lab.runner.run(
      ['ovs-vsctl', `--db=unix:${to.ovs.dbSocket}`, 'add-port', `br-${CDN.name}`, newEnd],
      { netns: to.ns, mutates: true },
    );
  } else {
    await lab.runner.run(['ip', 'link', 'set', newEnd, 'master', `br-${CDN.name}`], {
      netns: to.ns,
      mutates: true,
    });
  }
}

/**
 * `mesh`: every site peers with every other. `hub`: sites 1 and 2 do not peer (as
 * bristol and athens in the lab's examples), so site 2 never hears from site 1 and its
 * bridge floods frames for site 1's MACs to its pods as unknown unicast.
 */
type Topology = 'mesh' | 'hub';

function peersOf(lab: GatewayLab, site: LabSite, topology: Topology): LabSite[] {
  const others = lab.sites.filter((s) => s !== site);
  return topology === 'mesh' || site.index === 0 ? others : [lab.sites[0]!];
}

const unicast = test.macro({
  async exec(t: ExecutionContext, segment: SegmentKind, topology: Topology) {
    const lab = await GatewayLab.create(3, segment);
    t.teardown(() => lab.dispose());
    const pods: LabPod[] = [];
    const config = (site: LabSite) => lab.config(site, [CDN], peersOf(lab, site, topology));
    for (const site of lab.sites) {
      await lab.addSegment(site, CDN);
      await site.gateway.apply(config(site));
      pods.push(await lab.addPod(site, CDN, 11 + site.index, 1370));
    }
    const [a, b, c] = pods as [LabPod, LabPod, LabPod];
    const [s0, s1, s2] = lab.sites as [LabSite, LabSite, LabSite];
    // Tunnels up and every MAC seen once (ARP).
    t.true(await lab.reaches(a.ns, b.ip));
    t.true(await lab.reaches(a.ns, c.ip));
    if (topology === 'mesh') t.true(await lab.reaches(b.ns, c.ip));
    const [macA, macB] = [await macOf(lab, a.ns), await macOf(lab, b.ns)];

    // The sites learned where the MACs are, from the tunnel.
    t.is((await learned(lab, s0)).get(macB), s1.transitAddress);
    t.is((await learned(lab, s1)).get(macA), s0.transitAddress);

    // A bounded TCP transfer a → b while site 2 watches.
    const cap = await lab.spawn(
      'tcpdump',
      c.ns,
      [
        'tcpdump',
        '-i',
        'eth1',
        '-nn',
        '-l',
        '-e',
        '-q',
        `not broadcast and not multicast and (ether host ${macA} or ether host ${macB})`,
      ],
      /listening on/,
    );
    const vx0 = await rx(lab, s2.ns, 'l2fv100');
    const wg0 = await rx(lab, s2.ns, s2.ifname);
    const pod0 = await rx(lab, c.ns, 'eth1');
    const sent = (await lab.tcpTransfer(a.ns, b, { bytes: '10M' })).sum_sent.bytes;
    const vx1 = await rx(lab, s2.ns, 'l2fv100');
    const wg1 = await rx(lab, s2.ns, s2.ifname);
    const pod1 = await rx(lab, c.ns, 'eth1');
    await cap.stop();
    const seen = cap
      .output()
      .split('\n')
      .filter((l) => l.includes(macA) || l.includes(macB));
    const vxBytes = vx1.bytes - vx0.bytes;
    const wgBytes = wg1.bytes - wg0.bytes;
    // The capture may drop under load; the pod's rx counter cannot.
    const podBytes = pod1.bytes - pod0.bytes;
    t.log(
      `${segment}, ${topology}: a→b sent ${sent} B; site 2 got ${vxBytes} B (${vx1.packets - vx0.packets} frames) on its VXLAN device, ${wgBytes} B on WireGuard; pod c got ${podBytes} B and captured ${seen.length} frames of a or b`,
    );
    t.true(sent >= 10 * 1024 * 1024, `iperf3 sent ${sent}`);
    t.true(vxBytes <= LEAK_BOUND * sent, `site 2 VXLAN rx ${vxBytes} B of ${sent}`);
    t.true(wgBytes <= LEAK_BOUND * sent, `site 2 WireGuard rx ${wgBytes} B of ${sent}`);
    t.true(podBytes <= LEAK_BOUND * sent, `pod c rx ${podBytes} B of ${sent}`);
    t.deepEqual(seen, [], 'no frame of the transfer reaches a pod in site 2');

    // Broadcast still reaches every other pod exactly once.
    const rxB = await lab.spawn('rxB', b.ns, receiverArgv('eth1', 'l2fed-bcast'), /ready/);
    const rxC = await lab.spawn('rxC', c.ns, receiverArgv('eth1', 'l2fed-bcast'), /ready/);
    await lab.runner.run(senderArgv('eth1', 'ff:ff:ff:ff:ff:ff', 'l2fed-bcast'), { netns: a.ns });
    t.is(await receivedCount(rxB), 1);
    t.is(await receivedCount(rxC), 1);

    // Re-apply with learned entries present: zero mutating commands and the data plane
    // as it was; a restarted gateway adopts them too.
    const before = await dataPlaneSnapshots(lab.runner, lab.sites);
    for (const site of lab.sites) {
      site.runner.clear();
      t.deepEqual((await site.gateway.apply(config(site))).steps, []);
      t.deepEqual(site.runner.mutatingCommands(), []);
    }
    t.deepEqual(await dataPlaneSnapshots(lab.runner, lab.sites), before, 're-apply: unchanged');
    const fresh = lab.restartGateway(s0);
    t.deepEqual((await fresh.apply(config(s0))).steps, []);
    t.deepEqual(s0.runner.mutatingCommands(), []);
    t.deepEqual(await dataPlaneSnapshots(lab.runner, lab.sites), before, 'adopt: unchanged');
    t.is((await learned(lab, s0)).get(macB), s1.transitAddress, 'restart kept what was learned');

    // b's MAC moves to site 2. a streams to it all along; b sends one broadcast frame
    // from its new place; the first stream frame to reach it there ends the clock.
    await movePod(lab, b, s1, s2);
    const arrival = await lab.spawn(
      'first',
      b.ns,
      ['python3', '-c', FIRST_ARRIVAL, 'eth1', 'l2fed-move', '10'],
      /ready/,
    );
    await lab.spawn(
      'stream',
      a.ns,
      ['python3', '-c', STREAM, 'eth1', macB, 'l2fed-move', '0.02', '12'],
      /ready/,
    );
    const movedAt = Date.now();
    await lab.runner.run(senderArgv('eth1', 'ff:ff:ff:ff:ff:ff', 'l2fed-here'), { netns: b.ns });
    await arrival.exited;
    const first = /first ([0-9.]+)/.exec(arrival.output());
    t.truthy(first, `no frame reached b at site 2: ${arrival.output()}`);
    const ms = Number(first?.[1]) - movedAt;
    t.log(
      `${segment}, ${topology}: moved MAC reached at its new site ${ms.toFixed(0)} ms after its first frame`,
    );
    t.true(ms < MOVE_BOUND_MS, `converged in ${ms} ms`);
    t.is((await learned(lab, s0)).get(macB), s2.transitAddress);
  },
  title: (_, segment: SegmentKind, topology: Topology) =>
    `gateway - three sites on ${segment}, ${topology}: known unicast only to its site, broadcast to all, a moved MAC follows within 2 s`,
});

test.serial(unicast, 'linux-bridge', 'mesh');
test.serial(unicast, 'ovs', 'mesh');
test.serial(unicast, 'ovs', 'hub');
test.serial(unicast, 'linux-bridge', 'hub');

test.serial(
  'gateway - a VXLAN device of an older version (nolearning) is recreated learning, bounded',
  async (t) => {
    const lab = await GatewayLab.create(2, 'linux-bridge');
    t.teardown(() => lab.dispose());
    const [s0] = lab.sites as [LabSite];
    for (const site of lab.sites) {
      await lab.addSegment(site, CDN);
      await site.gateway.apply(lab.config(site, [CDN]));
    }
    // What earlier versions made: nolearning, no bound, one flood entry, plugged.
    const sh = (argv: string[]) => lab.runner.run(argv, { netns: s0.ns, mutates: true });
    await sh(['ip', 'link', 'del', 'l2fv100']);
    await sh(
      `ip link add l2fv100 type vxlan id 100 local 198.19.255.1 dstport ${DEFAULT_VXLAN_PORT} nolearning`.split(
        ' ',
      ),
    );
    await sh([
      'bridge',
      'fdb',
      'append',
      '00:00:00:00:00:00',
      'dev',
      'l2fv100',
      'dst',
      '198.19.255.2',
    ]);
    await sh([
      'ip',
      'link',
      'set',
      'l2fv100',
      'master',
      'br-cdn',
      'mtu',
      '1370',
      'arp',
      'off',
      'up',
    ]);
    s0.runner.clear();
    const r = await s0.gateway.apply(lab.config(s0, [CDN]));
    t.true(r.steps.some((s) => s.kind === 'vxlan-create'));
    const link = await lab.runner.run(['ip', '-d', '-j', 'link', 'show', 'dev', 'l2fv100'], {
      netns: s0.ns,
    });
    const [vx] = JSON.parse(link.stdout) as {
      linkinfo: { info_data: { learning: boolean; limit?: number } };
    }[];
    t.is(vx?.linkinfo.info_data.learning, true);
    t.is(vx?.linkinfo.info_data.limit, 4096);
    const before = await dataPlaneSnapshots(lab.runner, lab.sites);
    s0.runner.clear();
    t.deepEqual((await s0.gateway.apply(lab.config(s0, [CDN]))).steps, []);
    t.deepEqual(s0.runner.mutatingCommands(), []);
    t.deepEqual(await dataPlaneSnapshots(lab.runner, lab.sites), before, 'data plane unchanged');
  },
);

test.serial(
  'gateway - a peer sharing the network can claim a unicast MAC in it, not the flood list or a group address, and loses what it taught once it no longer carries the network',
  async (t) => {
    const lab = await GatewayLab.create(3, 'linux-bridge');
    t.teardown(() => lab.dispose());
    const pods: LabPod[] = [];
    for (const site of lab.sites) {
      await lab.addSegment(site, CDN);
      await site.gateway.apply(lab.config(site, [CDN]));
      pods.push(await lab.addPod(site, CDN, 11 + site.index, 1370));
    }
    const [a, b, c] = pods as [LabPod, LabPod, LabPod];
    const [s0, s1, s2] = lab.sites as [LabSite, LabSite, LabSite];
    t.true(await lab.reaches(a.ns, b.ip));
    t.true(await lab.reaches(a.ns, c.ip));
    const [macB, macC] = [await macOf(lab, b.ns), await macOf(lab, c.ns)];

    // Site 2's gateway turns hostile: it sends into cdn through its own VXLAN device,
    // from a group MAC, the all-zero MAC and b's MAC.
    const forge = (src: string) =>
      lab.runner.run(
        ['python3', '-c', FORGED, 'l2fv100', src, 'ff:ff:ff:ff:ff:ff', 'l2fed-forged'],
        {
          netns: s2.ns,
        },
      );
    for (const src of ['01:00:5e:00:00:fb', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00', macB]) {
      await forge(src);
    }
    let seen = await learned(lab, s0);
    t.false(seen.has('01:00:5e:00:00:fb'), 'a group source MAC is not learned');
    t.false(seen.has('ff:ff:ff:ff:ff:ff'), 'the broadcast address is not learned');
    t.false(seen.has('00:00:00:00:00:00'), 'the flood list is not redirected');
    // Claiming a unicast MAC in a shared network works, as ARP spoofing would. b's own
    // frames teach its MAC back (once in ~100 CI runs a frame of b's, e.g. the kernel's
    // ARP reachability probe after the pings above, came between the forgery and the
    // read): the claim is made again, up to 3 times, and must take each time it is read
    // before b speaks.
    for (let i = 0; i < 3 && seen.get(macB) !== s2.transitAddress; i++) {
      await forge(macB);
      seen = await learned(lab, s0);
    }
    t.is(seen.get(macB), s2.transitAddress);
    // Broadcast still goes to every peer, once.
    const rxB = await lab.spawn('rxB', b.ns, receiverArgv('eth1', 'l2fed-bcast'), /ready/);
    const rxC = await lab.spawn('rxC', c.ns, receiverArgv('eth1', 'l2fed-bcast'), /ready/);
    await lab.runner.run(senderArgv('eth1', 'ff:ff:ff:ff:ff:ff', 'l2fed-bcast'), { netns: a.ns });
    t.is(await receivedCount(rxB), 1);
    t.is(await receivedCount(rxC), 1);
    // The real owner's next frame takes its MAC back.
    t.true(await lab.ping(b.ns, a.ip));
    t.is((await learned(lab, s0)).get(macB), s1.transitAddress);

    // Site 0 stops carrying cdn with site 2 (the tunnel stays for other networks): the
    // same apply forgets what site 2 taught, and unicast to c's MAC no longer goes there.
    t.is((await learned(lab, s0)).get(macC), s2.transitAddress);
    const narrowed = lab.config(s0, [CDN]);
    narrowed.networks![0]!.peers = ['site1'];
    s0.runner.clear();
    await s0.gateway.apply(narrowed);
    t.true(
      s0.runner
        .mutatingCommands()
        .includes(`bridge fdb del ${macC} dev l2fv100 dst ${s2.transitAddress}`),
      s0.runner.mutatingCommands().join('\n'),
    );
    t.false([...(await learned(lab, s0)).values()].includes(s2.transitAddress));
    // Nothing may arrive: wait a bounded 4 s for frames that must not come.
    const rxAfter = await lab.spawn(
      'rxA',
      c.ns,
      receiverArgv('eth1', 'l2fed-after', 1.5, 4),
      /ready/,
    );
    for (let i = 0; i < 5; i++) {
      await lab.runner.run(senderArgv('eth1', macC, 'l2fed-after'), { netns: a.ns });
    }
    t.is(await receivedCount(rxAfter), 0);
    s0.runner.clear();
    t.deepEqual((await s0.gateway.apply(narrowed)).steps, []);
  },
);
