/**
 * The two sides the reconciler compares: the desired data-plane state (derived from a
 * GatewayConfig, pure) and the observed state (read from wg, ip, bridge, ovs-vsctl).
 * Both are plain data, so the planner is a pure function that tables can test.
 */
import { addressOf, type GatewayConfig, type SegmentConfig } from './config.js';
import { vxlanSources, type FirewallSpec, type ObservedFirewall } from './firewall.js';
import type { LearnedFdbEntry, UdpSocketHolder } from './links.js';
import { effectiveNetworkMtu, tunnelMtu } from './mtu.js';
import { vxlanName } from './names.js';

export { isVxlanDeviceName, VXLAN_PREFIX, vxlanName } from './names.js';

export interface DesiredPeer {
  readonly name: string;
  readonly publicKey: string;
  /**
   * The endpoint a `tunnel-set-peer` step sets: the first configured one, unless the
   * planner keeps a listed one that is in use (see plan.ts).
   */
  readonly endpoint: string;
  /** All configured endpoints; WireGuard may roam among them without a re-apply. */
  readonly endpoints: readonly string[];
  readonly allowedIps: readonly string[];
  readonly persistentKeepalive: number;
  /** The peer's next key during its rotation: no allowed IPs, no keepalive (standby-keys.ts). */
  readonly standby?: true;
}

export interface DesiredTunnel {
  readonly ifname: string;
  readonly listenPort: number;
  readonly privateKey: string;
  readonly privateKeyFile: string;
  readonly address: string;
  readonly mtu: number;
  readonly peers: readonly DesiredPeer[];
}

export interface DesiredVxlan {
  readonly network: string;
  readonly name: string;
  readonly vni: number;
  readonly local: string;
  readonly mtu: number;
  /** Transit addresses of the peers that carry this network, sorted. */
  readonly remotes: readonly string[];
  readonly segment: SegmentConfig;
}

export interface DesiredDataplane {
  readonly tunnel: DesiredTunnel;
  readonly vxlans: readonly DesiredVxlan[];
  /** The VXLAN guard (firewall.ts): VXLAN only through this tunnel, per peer only its VNIs. */
  readonly firewall: FirewallSpec;
  /** UDP port of every VXLAN device. */
  readonly vxlanPort: number;
}

/** Derives the desired data-plane state. Pure; `privateKey` is the key file's content. */
export function desiredState(config: GatewayConfig, privateKey: string): DesiredDataplane {
  const local = addressOf(config.transitAddress);
  const byName = new Map(config.peers.map((p) => [p.name, p]));
  return {
    tunnel: {
      ifname: config.wireguard.ifname,
      listenPort: config.wireguard.listenPort,
      privateKey,
      privateKeyFile: config.wireguard.privateKeyFile,
      address: config.transitAddress,
      mtu: tunnelMtu(config.underlayMtu),
      peers: config.peers.flatMap((p) => {
        const main: DesiredPeer = {
          name: p.name,
          publicKey: p.publicKey,
          endpoint: p.endpoints[0]!,
          endpoints: p.endpoints,
          allowedIps: [`${p.transitAddress}/32`],
          persistentKeepalive: p.persistentKeepalive,
        };
        return p.nextPublicKey
          ? [
              main,
              {
                ...main,
                publicKey: p.nextPublicKey,
                allowedIps: [],
                persistentKeepalive: 0,
                standby: true as const,
              },
            ]
          : [main];
      }),
    },
    firewall: {
      wgIfname: config.wireguard.ifname,
      vxlanPort: config.vxlanPort,
      // A peer may send a VNI only when this config carries that network to it.
      vxlanFrom: vxlanSources(
        config.networks.flatMap((n) =>
          n.peers.map((name) => ({ address: byName.get(name)!.transitAddress, vni: n.vni })),
        ),
      ),
    },
    vxlanPort: config.vxlanPort,
    vxlans: config.networks.map((n) => ({
      network: n.name,
      name: vxlanName(n.vni),
      vni: n.vni,
      local,
      mtu: effectiveNetworkMtu(config.underlayMtu, n.mtu),
      remotes: n.peers.map((name) => byName.get(name)!.transitAddress).sort(),
      segment: n.segment,
    })),
  };
}

export interface ObservedPeer {
  readonly publicKey: string;
  readonly endpoint: string | undefined;
  readonly allowedIps: readonly string[];
  /** Unix seconds of the last handshake; 0 = never. */
  readonly latestHandshake: number;
  readonly rxBytes: number;
  readonly txBytes: number;
  /** 0 = off. */
  readonly persistentKeepalive: number;
}

export interface ObservedTunnel {
  readonly ifname: string;
  readonly up: boolean;
  readonly mtu: number;
  readonly addresses: readonly string[];
  readonly privateKey: string | undefined;
  readonly publicKey: string | undefined;
  readonly listenPort: number;
  readonly peers: readonly ObservedPeer[];
}

export interface ObservedVxlan {
  readonly name: string;
  readonly vni: number;
  readonly local: string | undefined;
  readonly dstport: number;
  readonly learning: boolean;
  /** `maxaddress` of the device; 0 = unbounded. */
  readonly limit: number;
  /** NOARP set: the gateway's own stack answers no ARP through the device. */
  readonly noarp: boolean;
  readonly mtu: number;
  readonly up: boolean;
  /** All-zero FDB entries (head-end replication targets), sorted. */
  readonly remotes: readonly string[];
  /** MAC → peer entries the kernel learned from the tunnel, sorted by MAC. */
  readonly learned: readonly LearnedFdbEntry[];
}

/** Where a gateway-owned port is plugged, as a segment backend sees it. */
export interface ObservedAttachment {
  readonly port: string;
  readonly segment: SegmentConfig;
}

export interface ObservedSegments {
  /** Bridges that exist, per backend type. */
  readonly bridges: { readonly [K in SegmentConfig['type']]: readonly string[] };
  /** Attachments of gateway-owned (l2fv*) ports. */
  readonly attachments: readonly ObservedAttachment[];
}

export interface ObservedDataplane {
  /** The guard's nftables table; undefined = absent. */
  readonly firewall: ObservedFirewall | undefined;
  readonly tunnel: ObservedTunnel | undefined;
  readonly vxlans: readonly ObservedVxlan[];
  readonly segments: ObservedSegments;
  /** VXLAN and Geneve devices that are not the gateway's (a CNI's overlay, say). */
  readonly foreignTunnels?: readonly ForeignTunnel[];
  /**
   * UDP sockets on the wanted WireGuard listen port, read only when the tunnel is not
   * already on it (a CNI's WireGuard, say); undefined when not read.
   */
  readonly listenPortHolders?: readonly UdpSocketHolder[];
}

/** Another UDP tunnel device in the namespace, with the port its socket listens on. */
export interface ForeignTunnel {
  readonly name: string;
  readonly kind: string;
  readonly port: number;
}

/** Segment equality: same backend, bridge and (OVS) VLAN tag. */
export function sameSegment(a: SegmentConfig, b: SegmentConfig): boolean {
  if (a.type !== b.type || a.bridge !== b.bridge) return false;
  const vlan = (s: SegmentConfig) => (s.type === 'ovs' ? s.vlan : undefined);
  return vlan(a) === vlan(b);
}
