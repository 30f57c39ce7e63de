/**
 * Builds the gateway's whole desired config from what the agent knows: the desired state
 * (which segments this cluster exports), the cluster's peer map from the broker (VNIs,
 * transit addresses, peers and the networks each carries) and local settings. Pure, so a
 * table of cases tests it; the agent calls it on every pass and applies only a changed
 * result.
 *
 * Rules:
 * - a network is carried when this cluster exports it (desired state) AND the broker has
 *   allocated its VNI (peer map `networks`); it goes to the peers whose entry lists it;
 * - every mutual peer gets a tunnel, even one with no common network (health-checked);
 * - local consent is enforced here too: a peer this cluster no longer declares, or a
 *   network its peering no longer offers, is dropped at once, without waiting for the
 *   broker (which may be unreachable) to withdraw it from the peer map;
 * - segments: ovsBridge → {type: 'ovs', bridge, vlan}; linuxBridge → {type:
 *   'linux-bridge'}; l2smNetwork → the OVS bridge the agent config maps that L2S-M network
 *   to, else the network is skipped with reason L2smNetworkNotMapped (l2fed does not talk
 *   to the L2S-M API, and guessing a bridge could merge two broadcast domains);
 * - a fixed `mtu` larger than the underlay allows is skipped with reason MtuTooLarge
 *   instead of failing the whole config.
 */
import { parseGatewayConfig, type GatewayConfigInput } from '../gateway/config.js';
import { maxNetworkMtu } from '../gateway/mtu.js';
import type { PeerMap } from '../broker/records.js';
import type { DesiredState } from './desired-state.js';
import { segmentOf, type FederatedNetwork } from './schema-network.js';

type GatewaySegment = NonNullable<GatewayConfigInput['networks']>[number]['segment'];

/** Local settings the config needs besides desired state and peer map. */
export interface GatewaySettings {
  readonly clusterId: string;
  readonly netns?: string;
  readonly wireguard: {
    readonly ifname: string;
    readonly listenPort: number;
    readonly privateKeyFile: string;
  };
  readonly transitPrefixLength: number;
  readonly underlayMtu: number;
  /** VXLAN UDP port; undefined = the gateway's default (4789). */
  readonly vxlanPort?: number;
  /** L2S-M network name → local OVS bridge (and VLAN). */
  readonly l2sm: Readonly<Record<string, { readonly bridge: string; readonly vlan?: number }>>;
}

/** Why an exported network is not in the gateway config. */
export const SKIP_REASONS = ['NotAllocated', 'L2smNetworkNotMapped', 'MtuTooLarge'] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

export interface SkippedNetwork {
  readonly network: string;
  readonly reason: SkipReason;
  /** For people: what is wrong and what to do. */
  readonly message: string;
}

export type BuildGatewayConfigResult =
  | {
      readonly ok: true;
      readonly config: GatewayConfigInput;
      readonly skipped: readonly SkippedNetwork[];
    }
  | { readonly ok: false; readonly message: string };

/** Maps a FederatedNetwork's segment to the gateway's segment, or explains why not. Pure. */
export function gatewaySegment(
  net: FederatedNetwork,
  settings: Pick<GatewaySettings, 'l2sm'>,
): { ok: true; segment: GatewaySegment } | { ok: false; message: string } {
  const s = segmentOf(net.spec.segment);
  switch (s.type) {
    case 'ovsBridge':
      return {
        ok: true,
        segment:
          s.vlan === undefined
            ? { type: 'ovs', bridge: s.bridge }
            : { type: 'ovs', bridge: s.bridge, vlan: s.vlan },
      };
    case 'linuxBridge':
      return { ok: true, segment: { type: 'linux-bridge', bridge: s.bridge } };
    case 'l2smNetwork': {
      const m = settings.l2sm[s.network];
      if (!m) {
        return {
          ok: false,
          message:
            `FederatedNetwork ${net.metadata.name} uses L2S-M network ${s.network}, which this ` +
            `agent has no OVS bridge for; add segments.l2sm.${s.network}: {bridge: <L2S-M OVS bridge>} to the agent config`,
        };
      }
      return {
        ok: true,
        segment:
          m.vlan === undefined
            ? { type: 'ovs', bridge: m.bridge }
            : { type: 'ovs', bridge: m.bridge, vlan: m.vlan },
      };
    }
  }
}

/**
 * The config to apply before the broker has allocated anything: no peers, no networks,
 * a placeholder transit address. Its only purpose is to make the gateway create its key
 * and report the public key the agent registers with. Pure.
 */
export function bootstrapGatewayConfig(
  settings: GatewaySettings,
  transitAddress: string,
): GatewayConfigInput {
  return base(settings, transitAddress);
}

function base(settings: GatewaySettings, transitAddress: string): GatewayConfigInput {
  return {
    identity: settings.clusterId,
    ...(settings.netns === undefined ? {} : { netns: settings.netns }),
    wireguard: { ...settings.wireguard },
    transitAddress,
    underlayMtu: settings.underlayMtu,
    ...(settings.vxlanPort === undefined ? {} : { vxlanPort: settings.vxlanPort }),
    peers: [],
    networks: [],
  };
}

/**
 * Builds the whole gateway config. Pure and deterministic (sorted by name). Returns
 * `ok: false` only when the result would still be refused by the gateway (validated here
 * with the gateway's own parser), with the gateway's message.
 */
export function buildGatewayConfig(
  desired: DesiredState,
  peerMap: PeerMap,
  settings: GatewaySettings,
): BuildGatewayConfigResult {
  const skipped: SkippedNetwork[] = [];
  const vniOf = new Map(peerMap.networks.map((n) => [n.name, n.vni]));
  const maxMtu = maxNetworkMtu(settings.underlayMtu);
  const exported = new Set(desired.networks.map((n) => n.metadata.name));
  const offered = new Map(
    desired.peerings.map((p) => [p.spec.remoteCluster, p.spec.networks ?? [...exported]]),
  );
  const peers = peerMap.peers
    .filter((p) => offered.has(p.cluster))
    .map((p) => ({
      ...p,
      networks: p.networks.filter(
        (n) => exported.has(n.name) && offered.get(p.cluster)!.includes(n.name),
      ),
    }))
    .sort((a, b) => cmp(a.cluster, b.cluster));
  const networks: NonNullable<GatewayConfigInput['networks']>[number][] = [];
  for (const net of [...desired.networks].sort((a, b) => cmp(a.metadata.name, b.metadata.name))) {
    const name = net.metadata.name;
    const vni = vniOf.get(name);
    if (vni === undefined) {
      skipped.push({
        network: name,
        reason: 'NotAllocated',
        message: `the broker has not allocated a VNI for ${name} yet (exports not published, or broker unreachable)`,
      });
      continue;
    }
    const seg = gatewaySegment(net, settings);
    if (!seg.ok) {
      skipped.push({ network: name, reason: 'L2smNetworkNotMapped', message: seg.message });
      continue;
    }
    const mtu = net.spec.mtu;
    if (mtu !== 'auto' && mtu > maxMtu) {
      skipped.push({
        network: name,
        reason: 'MtuTooLarge',
        message: `${name}: spec.mtu ${mtu} does not fit underlay MTU ${settings.underlayMtu} (max ${maxMtu} after WireGuard 80 and VXLAN 50); lower spec.mtu or use auto`,
      });
      continue;
    }
    networks.push({
      name,
      vni,
      segment: seg.segment,
      mtu,
      peers: peers.filter((p) => p.networks.some((n) => n.name === name)).map((p) => p.cluster),
    });
  }
  const config: GatewayConfigInput = {
    ...base(settings, `${peerMap.transitAddress}/${settings.transitPrefixLength}`),
    peers: peers.map((p) => ({
      name: p.cluster,
      publicKey: p.publicKey,
      endpoints: [...p.endpoints],
      transitAddress: p.transitAddress,
    })),
    networks,
  };
  try {
    parseGatewayConfig(config);
  } catch (err) {
    return { ok: false, message: (err as Error).message };
  }
  return { ok: true, config, skipped };
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
