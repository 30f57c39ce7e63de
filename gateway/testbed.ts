/**
 * A throwaway federation on one machine, for gateway integration tests and the benchmark: an underlay switch
 * namespace (Linux bridge, 198.18.0.0/24), one namespace per gateway with its local
 * segments (Linux bridge or a private OVS with the netdev datapath), and pod namespaces
 * plugged into those segments. Every address is from 198.18.0.0/15 and lives only in
 * these namespaces. dispose() stops every daemon and removes every namespace and file.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { OvsInstance } from '../lib/ovs-process.js';
import { ExecaRunner, RecordingRunner, type CommandRunner } from '../lib/runner.js';
import { supervise, type SupervisedProcess } from '../lib/supervisor.js';
import { NetnsSet } from '../lib/netns.js';
import { shortId } from '../lib/short-id.js';
import type { GatewayConfigInput } from './config.js';
import { SupervisedLauncher } from './daemons.js';
import { Gateway } from './gateway.js';
import { NftFirewall } from './firewall-nft.js';
import { ensurePrivateKey } from './keys.js';
import type { Host } from './host.js';
import { IpLinks } from './links-ip.js';
import type { Backends } from './reconciler.js';
import { LinuxBridgeSegment } from './segment-linux-bridge.js';
import { OvsSegment, type OvsInterfaceSettings } from './segment-ovs.js';
import { WireguardGoTunnel } from './tunnel-wireguard-go.js';

export interface LabOptions {
  /** Open_vSwitch other_config for every site's OVS (e.g. userspace-tso-enable). */
  readonly ovsOtherConfig?: Readonly<Record<string, string>>;
  /** Leave TX checksum offload on for pods on OVS (to show the pitfall). */
  readonly keepPodTxOffload?: boolean;
  /**
   * How OVS reads its ports (the gateway's VXLAN ports and the pods' veths):
   * `system` (default: AF_PACKET, polled by the vswitchd main thread) or `afxdp`
   * (AF_XDP in generic XDP mode, polled by one PMD thread per site with
   * `pmd-maxsleep`, pinned to core `site index mod cores`). See docs/gateway.md.
   */
  readonly ovsPorts?: OvsPortMode;
  /** Start of the sites' WireGuard ifnames (default `l2fw`); a short id and index follow. */
  readonly wgIfnamePrefix?: string;
}

export type OvsPortMode = 'system' | 'afxdp';

/** Interface settings of every OVS port in `afxdp` mode. */
export const AFXDP_INTERFACE: OvsInterfaceSettings = {
  type: 'afxdp',
  options: { 'xdp-mode': 'generic' },
};

/** vswitchd other_config of a site in `afxdp` mode: one sleeping PMD on its own core. */
export function afxdpOtherConfig(siteIndex: number, cores: number): Record<string, string> {
  return {
    'pmd-maxsleep': '500',
    'pmd-cpu-mask': `0x${(1 << (siteIndex % Math.max(1, cores))).toString(16)}`,
  };
}

export type SegmentKind = 'linux-bridge' | 'ovs';

export interface LabNetwork {
  readonly name: string;
  readonly vni: number;
  /** Third octet of the pod subnet 198.19.X.0/24. */
  readonly subnet: number;
}

export interface LabSite {
  readonly index: number;
  readonly ns: string;
  readonly underlayAddress: string;
  readonly transitAddress: string;
  readonly ifname: string;
  readonly keyFile: string;
  publicKey: string;
  ovs: OvsInstance | undefined;
  /** Records every command of this site's gateway; clear() between phases. */
  readonly runner: RecordingRunner;
  gateway: Gateway;
}

export interface LabPod {
  readonly ns: string;
  readonly ifname: string;
  readonly address: string;
  readonly ip: string;
}

export const WG_PORT = 51820;

const UNDERLAY = (i: number) => `198.18.0.${i + 1}`;
const TRANSIT = (i: number) => `198.19.255.${i + 1}`;

export class GatewayLab {
  readonly sites: LabSite[] = [];
  readonly launcher = new SupervisedLauncher();
  private readonly helpers: SupervisedProcess[] = [];
  private switchNs = '';
  private readonly id = shortId();

  private constructor(
    readonly runner: CommandRunner,
    readonly netns: NetnsSet,
    readonly dir: { path: string; remove(): Promise<void> },
    readonly segment: SegmentKind,
    readonly opts: LabOptions = {},
  ) {}

  /** Builds n gateway namespaces on one underlay; gateways are created but not applied. */
  static async create(n: number, segment: SegmentKind, opts: LabOptions = {}): Promise<GatewayLab> {
    const runner = new ExecaRunner();
    const path = await mkdtemp(join(tmpdir(), 'l2fed-gwlab-'));
    const dir = { path, remove: () => rm(path, { recursive: true, force: true }) };
    const netns = new NetnsSet(runner, `l2fed-gw${shortId()}`);
    const lab = new GatewayLab(runner, netns, dir, segment, opts);
    try {
      await lab.build(n);
    } catch (err) {
      await lab.dispose();
      throw err;
    }
    return lab;
  }

  private async build(n: number): Promise<void> {
    const set = this.netns;
    this.switchNs = await set.add('sw');
    await set.exec(this.switchNs, ['ip', 'link', 'add', 'ulbr', 'type', 'bridge'], {
      mutates: true,
    });
    await set.exec(this.switchNs, ['ip', 'link', 'set', 'ulbr', 'up'], { mutates: true });
    for (let i = 0; i < n; i++) {
      const ns = await set.add(`g${i}`);
      await set.veth({ ns: this.switchNs, ifname: `u${i}` }, { ns, ifname: 'ul0' });
      await set.exec(this.switchNs, ['ip', 'link', 'set', `u${i}`, 'master', 'ulbr'], {
        mutates: true,
      });
      await set.addr(ns, 'ul0', `${UNDERLAY(i)}/24`);
      const ovs =
        this.segment === 'ovs'
          ? await OvsInstance.start({
              dir: join(this.dir.path, `ovs${i}`),
              netns: ns,
              otherConfig: {
                ...(this.afxdp ? afxdpOtherConfig(i, availableParallelism()) : {}),
                ...this.opts.ovsOtherConfig,
              },
            })
          : undefined;
      const keyFile = join(this.dir.path, `g${i}`, 'wg.key');
      const keys = await ensurePrivateKey(this.runner, keyFile);
      const runner = new RecordingRunner(this.runner);
      const site: LabSite = {
        index: i,
        ns,
        underlayAddress: UNDERLAY(i),
        transitAddress: TRANSIT(i),
        ifname: `${this.opts.wgIfnamePrefix ?? 'l2fw'}${this.id}${i}`,
        keyFile,
        publicKey: keys.publicKey,
        ovs,
        runner,
        gateway: this.newGateway(runner, ovs),
      };
      this.sites.push(site);
    }
  }

  private get afxdp(): boolean {
    return this.segment === 'ovs' && this.opts.ovsPorts === 'afxdp';
  }

  private newGateway(runner: CommandRunner, ovs: OvsInstance | undefined): Gateway {
    // afxdp mode: the same real backends the gateway builds, with the OVS port settings.
    const backends =
      this.afxdp && ovs
        ? (host: Host): Backends => ({
            firewall: new NftFirewall(host),
            tunnel: new WireguardGoTunnel(host, this.launcher),
            links: new IpLinks(host),
            segments: {
              'linux-bridge': new LinuxBridgeSegment(host),
              ovs: new OvsSegment(host, { dbSocket: ovs.dbSocket, interface: AFXDP_INTERFACE }),
            },
          })
        : undefined;
    return new Gateway({
      runner,
      launcher: this.launcher,
      ovsDbSocket: ovs?.dbSocket,
      tunnelKind: 'wireguard-go',
      backends,
    });
  }

  /** Drops the site's Gateway object (as a crash would) and makes a fresh one. */
  restartGateway(site: LabSite): Gateway {
    site.runner.clear();
    site.gateway = this.newGateway(site.runner, site.ovs);
    return site.gateway;
  }

  /** Creates the local segment bridge of a network in a site. */
  async addSegment(site: LabSite, net: LabNetwork): Promise<void> {
    const br = `br-${net.name}`;
    if (site.ovs) {
      await this.runner.run(
        [
          'ovs-vsctl',
          `--db=unix:${site.ovs.dbSocket}`,
          'add-br',
          br,
          '--',
          'set',
          'bridge',
          br,
          'datapath_type=netdev',
        ],
        { netns: site.ns, mutates: true },
      );
    } else {
      await this.netns.exec(site.ns, ['ip', 'link', 'add', br, 'type', 'bridge'], {
        mutates: true,
      });
    }
    await this.netns.exec(site.ns, ['ip', 'link', 'set', br, 'up'], { mutates: true });
  }

  /** The desired config of a site: all other sites as peers, the given networks to all. */
  config(
    site: LabSite,
    nets: readonly LabNetwork[],
    peers?: readonly LabSite[],
  ): GatewayConfigInput {
    const others = peers ?? this.sites.filter((s) => s !== site);
    return {
      identity: `site${site.index}`,
      netns: site.ns,
      wireguard: { ifname: site.ifname, listenPort: WG_PORT, privateKeyFile: site.keyFile },
      transitAddress: `${site.transitAddress}/24`,
      underlayMtu: 1500,
      peers: others.map((p) => ({
        name: `site${p.index}`,
        publicKey: p.publicKey,
        endpoints: [`${p.underlayAddress}:${WG_PORT}`],
        transitAddress: p.transitAddress,
      })),
      networks: nets.map((n) => ({
        name: n.name,
        vni: n.vni,
        segment: { type: this.segment, bridge: `br-${n.name}` },
        peers: others.map((p) => `site${p.index}`),
      })),
    };
  }

  /**
   * Creates a pod namespace with one interface on the network's segment in a site.
   * `host` is the pod's last address octet. MTU is the gateway's reported one.
   */
  async addPod(site: LabSite, net: LabNetwork, host: number, mtu: number): Promise<LabPod> {
    const short = `p${site.index}${net.name.slice(0, 3)}${host}`;
    const ns = await this.netns.add(short);
    const hostEnd = `v${site.index}${net.name.slice(0, 3)}${host}`;
    await this.netns.veth({ ns, ifname: 'eth1' }, { ns: site.ns, ifname: hostEnd }, { mtu });
    const br = `br-${net.name}`;
    if (site.ovs) {
      // OVS netdev reads the veth with AF_PACKET and never fills in a partial checksum:
      // the pod side must compute it, else TCP stalls (ICMP still passes).
      if (!this.opts.keepPodTxOffload) {
        await this.netns.exec(ns, ['ethtool', '-K', 'eth1', 'tx', 'off'], { mutates: true });
      }
      const iface = this.afxdp
        ? ['--', 'set', 'Interface', hostEnd, 'type=afxdp', 'options:xdp-mode=generic']
        : [];
      await this.runner.run(
        ['ovs-vsctl', `--db=unix:${site.ovs.dbSocket}`, 'add-port', br, hostEnd, ...iface],
        { netns: site.ns, mutates: true },
      );
    } else {
      await this.netns.exec(site.ns, ['ip', 'link', 'set', hostEnd, 'master', br], {
        mutates: true,
      });
    }
    const ip = `198.19.${net.subnet}.${host}`;
    await this.netns.addr(ns, 'eth1', `${ip}/24`);
    return { ns, ifname: 'eth1', address: `${ip}/24`, ip };
  }

  /** The receive packet counter of a device in a namespace. */
  async rxPackets(ns: string, dev: string): Promise<number> {
    const r = await this.runner.run(['ip', '-s', '-j', 'link', 'show', 'dev', dev], { netns: ns });
    const [link] = JSON.parse(r.stdout) as { stats64?: { rx?: { packets?: number } } }[];
    const n = link?.stats64?.rx?.packets;
    if (typeof n !== 'number') throw new Error(`no rx counter for ${dev}: ${r.stdout}`);
    return n;
  }

  /** Starts a helper process in a namespace; stopped on dispose. */
  async spawn(
    name: string,
    ns: string,
    argv: string[],
    readyWhen?: RegExp,
  ): Promise<SupervisedProcess> {
    const p = await supervise({ name, argv, netns: ns, readyWhen, readyTimeoutMs: 10_000 });
    this.helpers.push(p);
    return p;
  }

  /** Stops helpers, wireguard-go (so its sockets go), OVS; removes namespaces and files. */
  async dispose(): Promise<void> {
    await Promise.all(this.helpers.map((h) => h.stop(1000)));
    await this.launcher.stopAll();
    for (const s of this.sites) await s.ovs?.stop();
    await this.netns.dispose();
    await this.dir.remove();
  }
}
