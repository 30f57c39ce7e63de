/**
 * What a lab is made of, computed from a federation folder (one subfolder per cluster)
 * before anything is created: namespaces, underlay and transit addresses, WireGuard
 * interface names, segment bridges, pod interfaces. Pure, so the layout is unit-tested
 * and `lab up --dry-run` can print it. Names come from cluster-agent/build-rules.ts, whose
 * rules `l2fed validate` applies: what validates, this plans and the topology builds.
 */
import { labBridge, labHostIfname, podIfname } from '../cluster-agent/build-rules.js';
import type { DesiredState } from '../cluster-agent/desired-state.js';
import { segmentOf, type FederatedNetwork } from '../cluster-agent/schema-network.js';
import { effectiveNetworkMtu, maxNetworkMtu } from '../gateway/mtu.js';
import { agreeMtu, type MemberAsk } from '../broker/network-mtu.js';

/** How the lab builds exported segments (a real cluster has its own). */
export const LAB_SEGMENTS = ['ovs', 'bridge'] as const;
export type LabSegmentKind = (typeof LAB_SEGMENTS)[number];

/**
 * Namespace prefix of every lab namespace; `l2fed cleanup --prefix l2fed-lab` finds them.
 * L2FED_LAB_PREFIX (starting with l2fed-) lets tests run a lab beside a real one.
 */
export const LAB_PREFIX = 'l2fed-lab';
export function labPrefix(): string {
  const p = process.env.L2FED_LAB_PREFIX ?? LAB_PREFIX;
  if (!/^l2fed-[a-z0-9-]+$/.test(p)) {
    throw new Error(`L2FED_LAB_PREFIX must look like l2fed-<letters/digits> (got ${p})`);
  }
  return p;
}
export const LAB_UNDERLAY_MTU = 1500;
export const LAB_WG_PORT = 51820;
/** Underlay: 198.18.0.0/24 on one switch namespace; lab-only addresses. */
export const underlayAddress = (index: number) => `198.18.0.${index + 1}`;

export interface LabSegment {
  readonly bridge: string;
  readonly type: 'ovs' | 'linux-bridge';
}

export interface LabPodInterface {
  /** Name inside the pod namespace. */
  readonly ifname: string;
  /** veth end in the gateway namespace, plugged into the segment bridge. */
  readonly hostIfname: string;
  readonly network: string;
  readonly bridge: string;
  /** OVS access-port tag, when the network's segment is a VLAN on an OVS bridge. */
  readonly vlan?: number;
  readonly ips: readonly string[];
  readonly mac?: string;
  readonly mtu: number;
}

export interface LabPod {
  readonly name: string;
  readonly cluster: string;
  readonly ns: string;
  readonly interfaces: readonly LabPodInterface[];
}

export interface LabCluster {
  readonly id: string;
  readonly index: number;
  /** Gateway namespace: holds the segments, the VXLAN devices and the WireGuard device. */
  readonly ns: string;
  readonly underlayAddress: string;
  readonly wgIfname: string;
  readonly listenPort: number;
  readonly segments: readonly LabSegment[];
  readonly pods: readonly LabPod[];
  readonly state: DesiredState;
}

export interface LabPlan {
  /** Random per lab; part of WireGuard interface names, which are machine-wide. */
  readonly id: string;
  /** Namespace prefix (LAB_PREFIX unless a test runs its own lab beside it). */
  readonly prefix: string;
  readonly segmentKind: LabSegmentKind;
  readonly switchNs: string;
  readonly clusters: readonly LabCluster[];
}

/** Effective MTU of a network in the lab (underlay 1500 minus WireGuard and VXLAN). */
export function networkMtu(net: FederatedNetwork): number {
  return effectiveNetworkMtu(LAB_UNDERLAY_MTU, net.spec.mtu ?? 'auto');
}

/**
 * The MTU each network's pods get: the one the broker agrees across the lab's members
 * (broker/network-mtu.ts agreeMtu over each member's ask), so a pod never sends a frame
 * another member's pods or gateway cannot take. Known before the agents run, since the
 * lab holds every member's desired state; the agents then apply the same value.
 */
export function labNetworkMtus(
  clusters: readonly { id: string; state: DesiredState }[],
): Map<string, number> {
  const capacity = maxNetworkMtu(LAB_UNDERLAY_MTU);
  const members = new Map<string, MemberAsk[]>();
  for (const c of clusters) {
    for (const n of c.state.networks) {
      const requested = n.spec.mtu === 'auto' ? undefined : n.spec.mtu;
      const ask = requested === undefined ? { capacity } : { requested, capacity };
      const list = members.get(n.metadata.name) ?? [];
      list.push({ cluster: c.id, ask });
      members.set(n.metadata.name, list);
    }
  }
  return new Map(
    [...members].flatMap(([name, list]) => {
      const agreed = agreeMtu(list);
      return agreed ? [[name, agreed.value] as const] : [];
    }),
  );
}

/**
 * The lab's view of a network's segment. `bridge` mode turns every segment into a Linux
 * bridge of the same name (VLAN tags do not apply there; the bridge is the segment).
 * L2S-M networks have no lab equivalent and become a bridge named after the network.
 */
export function labSegment(
  net: FederatedNetwork,
  kind: LabSegmentKind,
): LabSegment & { vlan?: number } {
  const seg = segmentOf(net.spec.segment);
  const bridge = labBridge(net);
  if (kind === 'bridge' || seg.type === 'linuxBridge') return { bridge, type: 'linux-bridge' };
  return seg.type === 'ovsBridge' && seg.vlan !== undefined
    ? { bridge, type: 'ovs', vlan: seg.vlan }
    : { bridge, type: 'ovs' };
}

/**
 * Name of a pod interface's veth end in the gateway namespace: derived from the pod
 * name alone, so adding or removing other pods never renames it (15-byte limit). The
 * build rules reserve the form (cluster-agent/build-rules.ts).
 */
export const hostIfname = labHostIfname;

/** Builds the plan. Clusters are ordered by id, so addresses are stable across runs. */
export function planLab(
  clusters: readonly { id: string; state: DesiredState }[],
  opts: { id: string; segmentKind: LabSegmentKind; prefix?: string },
): LabPlan {
  const sorted = [...clusters].sort((a, b) => a.id.localeCompare(b.id));
  const prefix = opts.prefix ?? LAB_PREFIX;
  return {
    id: opts.id,
    prefix,
    segmentKind: opts.segmentKind,
    switchNs: `${prefix}.underlay`,
    clusters: sorted.map((c, index) =>
      planCluster(c.id, c.state, index, { ...opts, prefix, mtus: labNetworkMtus(sorted) }),
    ),
  };
}

/**
 * Start of a lab's WireGuard interface names (and so of wireguard-go's socket names).
 * `l2fw`, not `l2f` + id: an id starting with "v" would look like a VXLAN device name.
 */
export function labWgPrefix(labId: string): string {
  return `l2fw${labId}`;
}

function planCluster(
  id: string,
  state: DesiredState,
  index: number,
  opts: {
    id: string;
    segmentKind: LabSegmentKind;
    prefix: string;
    mtus: ReadonlyMap<string, number>;
  },
): LabCluster {
  const ns = `${opts.prefix}-${id}`;
  const nets = new Map(state.networks.map((n) => [n.metadata.name, n]));
  const segments = new Map<string, LabSegment>();
  for (const n of state.networks) {
    const s = labSegment(n, opts.segmentKind);
    segments.set(s.bridge, { bridge: s.bridge, type: s.type });
  }
  const pods = (state.pods ?? []).map((pod): LabPod => {
    const interfaces = pod.networks.map((sel, i): LabPodInterface => {
      const net = nets.get(sel.name);
      // buildDesiredState already rejects pods on networks this cluster does not export.
      if (!net) throw new Error(`pod ${pod.metadata.name}: network ${sel.name} is not exported`);
      const seg = labSegment(net, opts.segmentKind);
      return {
        ifname: podIfname(sel, i),
        hostIfname: hostIfname(pod.metadata.name, i),
        network: sel.name,
        bridge: seg.bridge,
        ...(seg.vlan !== undefined ? { vlan: seg.vlan } : {}),
        ips: sel.ips,
        ...(sel.mac !== undefined ? { mac: sel.mac } : {}),
        mtu: opts.mtus.get(sel.name) ?? networkMtu(net),
      };
    });
    return { name: pod.metadata.name, cluster: id, ns: `${ns}.${pod.metadata.name}`, interfaces };
  });
  return {
    id,
    index,
    ns,
    underlayAddress: underlayAddress(index),
    wgIfname: `${labWgPrefix(opts.id)}${index}`.slice(0, 15),
    listenPort: LAB_WG_PORT,
    segments: [...segments.values()],
    pods,
    state,
  };
}
