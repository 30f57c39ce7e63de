/**
 * AF_XDP ports (docs/gateway.md, "AF_XDP ports") on the real OVS of this machine
 * (Debian 12, OVS 3.1 userspace `netdev` datapath, built with AF_XDP): the gateway's
 * VXLAN port and the pods' veths are `type=afxdp` ports read through an XSK socket, and
 * frames cross them; a port type the OVS does not offer (its `iface_types`) is refused
 * before any change. Everything lives in throwaway namespaces and is removed at teardown.
 */
import type { ExecutionContext } from 'ava';
import { testWith } from '../fixtures/privileges.js';
import { GatewayLab, type LabNetwork, type LabSite } from '../fixtures/gateway-testbed.js';
import { DEFAULT_NFT } from '../../gateway/firewall-nft.js';
import { ApplyError, PreconditionError } from '../../gateway/errors.js';
import { Gateway } from '../../gateway/gateway.js';
import { RecordingRunner } from '../../lib/runner.js';
import { dataPlaneSnapshots } from '../fixtures/data-plane-snapshot.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'wg', 'wireguard-go', DEFAULT_NFT, 'ovs-vsctl', 'ping', 'iperf3', 'ethtool'],
});

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };

interface IfaceRow {
  name: string;
  type: string;
  error: string;
  ofport: number;
  stats: Record<string, number>;
}

/** OVSDB JSON of `list Interface` as plain rows (sets and maps unwrapped). */
async function interfaces(lab: GatewayLab, site: LabSite): Promise<Map<string, IfaceRow>> {
  const r = await lab.runner.run(
    [
      'ovs-vsctl',
      `--db=unix:${site.ovs!.dbSocket}`,
      '--format=json',
      '--columns=name,type,error,ofport,statistics',
      'list',
      'Interface',
    ],
    { netns: site.ns },
  );
  const t = JSON.parse(r.stdout) as { data: unknown[][] };
  // An empty column is an empty set; a set of one is the bare atom.
  const scalar = (v: unknown): string | number | undefined =>
    Array.isArray(v) && v[0] === 'set'
      ? (v[1] as (string | number)[])[0]
      : (v as string | number | undefined);
  return new Map(
    t.data.map(([name, type, error, ofport, stats]) => [
      String(name),
      {
        name: String(name),
        type: String(type),
        error: String(scalar(error) ?? ''),
        ofport: Number(scalar(ofport)),
        stats: Object.fromEntries((stats as ['map', [string, number][]])[1]),
      },
    ]),
  );
}

/** The Open_vSwitch row's iface_types: what this OVS build and datapath offer. */
async function ifaceTypes(lab: GatewayLab, site: LabSite): Promise<string[]> {
  const r = await lab.runner.run(
    [
      'ovs-vsctl',
      `--db=unix:${site.ovs!.dbSocket}`,
      '--format=json',
      '--columns=iface_types',
      'list',
      'Open_vSwitch',
    ],
    { netns: site.ns },
  );
  const t = JSON.parse(r.stdout) as { data: unknown[][] };
  const types = t.data[0]?.[0];
  // A set of one element is the bare atom in OVSDB JSON.
  if (Array.isArray(types) && types[0] === 'set') return (types[1] as unknown[]).map(String);
  return typeof types === 'string' ? [types] : [];
}

/** The XDP program a device has, from `ip -d -j link` (`xdp.mode` 2 = generic/skb). */
async function xdpOf(lab: GatewayLab, ns: string, dev: string) {
  const r = await lab.runner.run(['ip', '-d', '-j', 'link', 'show', 'dev', dev], { netns: ns });
  const [link] = JSON.parse(r.stdout) as { xdp?: { mode?: number; prog?: { name?: string } } }[];
  return link?.xdp;
}

async function twoAfxdpSites(t: ExecutionContext) {
  const lab = await GatewayLab.create(2, 'ovs', { ovsPorts: 'afxdp' });
  t.teardown(() => lab.dispose());
  const pods = [];
  for (const site of lab.sites) {
    await lab.addSegment(site, CDN);
    const r = await site.gateway.apply(lab.config(site, [CDN]));
    pods.push(await lab.addPod(site, CDN, 11 + site.index, r.report.networks[0]!.mtu));
  }
  return { lab, a: pods[0]!, b: pods[1]! };
}

test.serial(
  'gateway afxdp - the VXLAN port and the pod veths are AF_XDP ports (XDP program attached, no error) and carry ping and TCP between two sites',
  async (t) => {
    const { lab, a, b } = await twoAfxdpSites(t);
    const [s0] = lab.sites as [LabSite];
    const types = await ifaceTypes(lab, s0);
    t.log(`iface_types: ${types.join(', ')}`);
    t.true(types.includes('afxdp'), 'this OVS offers afxdp');

    t.true(await lab.reaches(a.ns, b.ip), 'ping across the federation');
    const bps = (await lab.tcpTransfer(a.ns, b, { seconds: 2 })).sum_received.bits_per_second;
    t.true(bps > 1e6, `iperf3 ${bps} bit/s`);
    t.log(`pod-to-pod TCP over AF_XDP ports: ${(bps / 1e6).toFixed(0)} Mbit/s`);

    for (const site of lab.sites) {
      // vswitchd writes Interface statistics every 5 s (stats-update-interval): wait for
      // the write after the transfer, at most 12 s.
      let rows = await interfaces(lab, site);
      const counted = (r: Map<string, IfaceRow>) =>
        [...r.values()].every((p) => p.type !== 'afxdp' || (p.stats.rx_packets ?? 0) > 100);
      for (const end = Date.now() + 12_000; !counted(rows) && Date.now() < end;) {
        await new Promise((r) => setTimeout(r, 500));
        rows = await interfaces(lab, site);
      }
      const vxlan = rows.get(`l2fv${CDN.vni}`);
      const veth = [...rows.values()].find((r) => r.name.startsWith(`v${site.index}cdn`));
      for (const port of [vxlan, veth]) {
        t.truthy(port, `site ${site.index}: port missing`);
        t.is(port!.type, 'afxdp', `${port!.name} type`);
        t.is(port!.error, '', `${port!.name} error column`);
        t.true(port!.ofport > 0, `${port!.name} ofport ${port!.ofport}`);
        // What OVS read from and wrote to the port's XSK socket (ping, ARP and 2 s of TCP).
        t.true(port!.stats.rx_packets! > 100, `${port!.name} rx ${port!.stats.rx_packets}`);
        t.true(port!.stats.tx_packets! > 100, `${port!.name} tx ${port!.stats.tx_packets}`);
        // OVS loaded its XSK program in generic (skb) mode on the device.
        const xdp = await xdpOf(lab, site.ns, port!.name);
        t.is(xdp?.mode, 2, `${port!.name}: ${JSON.stringify(xdp)}`);
        t.is(xdp?.prog?.name, 'xsk_def_prog', `${port!.name}: ${JSON.stringify(xdp)}`);
      }
    }
  },
);

test.serial(
  'gateway afxdp - a port type this OVS does not list in iface_types is refused before any change, naming ovsPorts.type and the fix',
  async (t) => {
    const lab = await GatewayLab.create(1, 'ovs');
    t.teardown(() => lab.dispose());
    const [site] = lab.sites as [LabSite];
    await lab.addSegment(site, CDN);
    const types = await ifaceTypes(lab, site);
    // Debian's openvswitch-switch is built without DPDK (openvswitch-switch-dpdk has it).
    t.false(types.includes('dpdk'), `iface_types: ${types.join(', ')}`);
    const runner = new RecordingRunner(lab.runner);
    const gateway = new Gateway({
      runner,
      launcher: lab.launcher,
      ovsDbSocket: site.ovs!.dbSocket,
      tunnelKind: 'wireguard-go',
      ovsInterface: { type: 'dpdk' },
    });
    const before = await dataPlaneSnapshots(lab.runner, [site]);
    const err = await t.throwsAsync(gateway.apply(lab.config(site, [CDN], [])), {
      instanceOf: PreconditionError,
    });
    t.regex(err.message, /^ovsPorts\.type: "dpdk" is not a port type of this Open vSwitch/);
    t.regex(err.message, /iface_types: .*afxdp/);
    t.deepEqual(runner.mutatingCommands(), [], 'nothing changed');
    t.deepEqual(await dataPlaneSnapshots(lab.runner, [site]), before, 'data plane unchanged');
    const rows = await interfaces(lab, site);
    t.false(rows.has(`l2fv${CDN.vni}`), 'no VXLAN port plugged');
  },
);

test.serial(
  "gateway afxdp - a port vswitchd cannot open (AF_XDP native mode on a VXLAN device) fails the apply with OVS's reason, every time, instead of converging on a dead port",
  async (t) => {
    const lab = await GatewayLab.create(1, 'ovs');
    t.teardown(() => lab.dispose());
    const [site] = lab.sites as [LabSite];
    await lab.addSegment(site, CDN);
    const gateway = new Gateway({
      runner: new RecordingRunner(lab.runner),
      launcher: lab.launcher,
      ovsDbSocket: site.ovs!.dbSocket,
      tunnelKind: 'wireguard-go',
      // The vxlan driver has no native XDP: OVS adds the port and cannot open it.
      ovsInterface: { type: 'afxdp', options: { 'xdp-mode': 'native' } },
    });
    const port = `l2fv${CDN.vni}`;
    for (const attempt of [1, 2]) {
      const err = await t.throwsAsync(gateway.apply(lab.config(site, [CDN], [])), {
        instanceOf: ApplyError,
      });
      t.regex(
        err.message,
        new RegExp(
          `OVS could not open port ${port} \\(type=afxdp xdp-mode=native\\): could not add network device ${port} to ofproto \\(Invalid argument\\); fix ovsPorts`,
        ),
        `attempt ${attempt}`,
      );
    }
    const row = (await interfaces(lab, site)).get(port);
    t.is(row?.ofport, -1, 'OVS holds the port unopened');
  },
);
