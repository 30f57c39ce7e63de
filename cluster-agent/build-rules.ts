/**
 * The build rules: what a manifest folder must meet, after defaults are filled in, so that
 * what `l2fed validate` accepts is what the lab (and Multus, the kernel and the gateway)
 * can build. One module, applied by `l2fed validate`, by the agent's folder source
 * (folder-scan.ts) and by `l2fed lab up` before anything is created; the lab takes its
 * names from here too (pod interface defaults, veth host ends, bridges), so the rules and
 * the builder cannot drift apart. docs/cluster-agent.md lists the rules.
 */
import { createHash } from 'node:crypto';
import { segmentKey } from '../gateway/config.js';
import { maxNetworkMtu, VXLAN_OVERHEAD, WIREGUARD_OVERHEAD } from '../gateway/mtu.js';
import { BlockList, isIPv4 } from 'node:net';
import type { Manifest } from './manifests.js';
import type { ManifestProblem } from './problems.js';
import type { NetworkSelection } from './multus.js';
import type { PodManifest } from './schema-pod.js';
import { segmentOf, type FederatedNetwork } from './schema-network.js';

/** How the lab builds segments (lab/plan.ts LAB_SEGMENTS); 'ovs' unless told. */
export type SegmentBuild = 'ovs' | 'bridge';

/**
 * What the folder is checked for: how segments are built, and the gateways' underlay MTU
 * (bytes; a fixed network MTU must fit it after WireGuard and VXLAN). Without
 * `underlayMtu` the MTU rule is skipped (the agent reports a network it cannot carry per
 * network, MtuTooLarge, instead of refusing its folder).
 */
export interface BuildTarget {
  readonly segments?: SegmentBuild;
  readonly underlayMtu?: number;
}

/**
 * Names a pod interface may not take: `lo` exists in every namespace, `eth0` is the pod's
 * primary (cluster network) interface under Kubernetes and Multus, and the kernel refuses
 * `all` and `default` (they name /proc/sys/net/*\/conf entries).
 */
export const POD_RESERVED_IFNAMES = ['lo', 'eth0', 'all', 'default'] as const;

/** The lab's underlay port in each gateway namespace (lab/topology.ts). */
export const LAB_UNDERLAY_IFNAME = 'ul0';

/**
 * Names a segment bridge may not take in the gateway's namespace: the kernel's, the lab's
 * underlay port and the devices of the OVS userspace datapath.
 */
export const BRIDGE_RESERVED_IFNAMES = [
  'lo',
  'all',
  'default',
  LAB_UNDERLAY_IFNAME,
  'ovs-netdev',
  'ovs-system',
] as const;

/** Clusters in one federation folder: the lab's underlay is one /24 (198.18.0.1-254). */
export const MAX_LAB_CLUSTERS = 254;

/** Prefix of the gateway's own devices (VXLAN `l2fv<VNI>`, WireGuard `l2f…`). */
export const GATEWAY_IFNAME_PREFIX = 'l2f';

/** Host ends of the lab's pod veths: `l` + 8 hex digits of sha256(pod) + `-` + index. */
export const LAB_HOST_IFNAME_PATTERN = /^l[0-9a-f]{8}-[0-9]+$/;

/** Linux interface names are at most IFNAMSIZ - 1 bytes. */
const IFNAME_MAX = 15;

/** The name Multus (and so the lab) gives entry `index` of a pod when it names none. */
export function defaultPodIfname(index: number): string {
  return `net${index + 1}`;
}

/** The pod-side name of entry `index`: its own, or the default. */
export function podIfname(sel: NetworkSelection, index: number): string {
  return sel.interface ?? defaultPodIfname(index);
}

/**
 * Name of a pod interface's veth end in the gateway namespace: derived from the pod
 * name alone, so adding or removing other pods never renames it (15-byte limit).
 */
export function labHostIfname(pod: string, index: number): string {
  return `l${createHash('sha256').update(pod).digest('hex').slice(0, 8)}-${index}`;
}

/** The bridge a network's segment is built as (an L2S-M network: its name, cut to 15). */
export function labBridge(net: FederatedNetwork): string {
  const seg = segmentOf(net.spec.segment);
  return seg.type === 'l2smNetwork' ? seg.network.slice(0, IFNAME_MAX) : seg.bridge;
}

const ANNOTATION = 'metadata.annotations["k8s.v1.cni.cncf.io/networks"]';

type Where = Omit<ManifestProblem, 'severity' | 'reason' | 'hint' | 'path'>;

function where(m: Manifest): Where {
  return {
    file: m.origin.file,
    document: m.origin.document,
    line: m.origin.line,
    object: `${m.kind}/${m.object.metadata.name}`,
  };
}

const docOf = (m: Manifest) => `${m.origin.file}, document ${m.origin.document}`;

/**
 * Every build rule that concerns one cluster folder (pods, their interfaces and addresses,
 * segment bridges). Errors only. Pure. `segments` is how the lab will build segments.
 */
export function clusterBuildProblems(
  manifests: readonly Manifest[],
  opts: BuildTarget = {},
): ManifestProblem[] {
  const pods = manifests.filter((m): m is Extract<Manifest, { kind: 'Pod' }> => m.kind === 'Pod');
  const networks = manifests.filter(
    (m): m is Extract<Manifest, { kind: 'FederatedNetwork' }> => m.kind === 'FederatedNetwork',
  );
  return [
    ...podNameProblems(pods),
    ...pods.flatMap(podProblems),
    ...bridgeProblems(networks, opts.segments ?? 'ovs'),
    ...(opts.underlayMtu === undefined ? [] : mtuProblems(networks, opts.underlayMtu)),
    ...duplicateAddressProblems([
      { cluster: '', pods: pods.map((m) => ({ pod: m.object, where: where(m) })) },
    ]),
  ];
}

// The lab names a pod's network namespace and veth ends after the pod name alone.
function podNameProblems(pods: readonly Extract<Manifest, { kind: 'Pod' }>[]): ManifestProblem[] {
  const out: ManifestProblem[] = [];
  const first = new Map<string, Extract<Manifest, { kind: 'Pod' }>>();
  const hostEnds = new Map<string, string>();
  for (const m of pods) {
    const name = m.object.metadata.name;
    const prev = first.get(name);
    const ns = (p: PodManifest) => p.metadata.namespace ?? '(none)';
    if (prev === undefined) first.set(name, m);
    else if (ns(prev.object) !== ns(m.object)) {
      // Same namespace too: desired-state.ts reports it as a duplicate object.
      out.push({
        ...where(m),
        severity: 'error',
        path: 'metadata.name',
        reason: `pod name "${name}" is also used by the pod in namespace ${ns(prev.object)} (${docOf(prev)}); the lab names pod network namespaces and veths by pod name alone, so pod names must be unique in a cluster whatever their namespace`,
        hint: 'rename one of the two pods',
      });
      continue;
    }
    // 32 bits of a hash: a clash is unlikely, and would fail `ip link add` if it happened.
    const host = labHostIfname(name, 0);
    const other = hostEnds.get(host);
    if (other !== undefined && other !== name) {
      out.push({
        ...where(m),
        severity: 'error',
        path: 'metadata.name',
        reason: `the lab's veth names for pod ${name} (${host}) equal those of pod ${other}`,
        hint: 'rename one of the two pods',
      });
    }
    hostEnds.set(host, name);
  }
  return out;
}

function podProblems(m: Extract<Manifest, { kind: 'Pod' }>): ManifestProblem[] {
  const out: ManifestProblem[] = [];
  const at = (path: string, reason: string, hint: string) =>
    out.push({ ...where(m), severity: 'error', path: `${ANNOTATION}${path}`, reason, hint });
  const ifnames = new Map<string, number>();
  m.object.networks.forEach((sel, i) => {
    const name = podIfname(sel, i);
    const how =
      sel.interface === undefined
        ? `interface ${name} (the default name of entry ${i}, which names none)`
        : `interface ${name}`;
    if ((POD_RESERVED_IFNAMES as readonly string[]).includes(name)) {
      at(
        `[${i}].interface`,
        `${how} is reserved in a pod (${POD_RESERVED_IFNAMES.join(', ')}: loopback, the primary interface, kernel names)`,
        'pick another name, e.g. net1 or cdn0',
      );
    }
    const prev = ifnames.get(name);
    if (prev !== undefined) {
      at(
        `[${i}].interface`,
        `${how} is also the interface of entry ${prev} once defaults (net1, net2, … by position) are filled in`,
        `give entry ${i} an interface name no other entry of this pod uses`,
      );
    } else ifnames.set(name, i);
    const addrs = new Map<string, number>();
    sel.ips.forEach((cidr, j) => {
      const addr = canonicalAddress(cidr);
      const bad = unusableAddress(cidr);
      if (bad) {
        at(
          `[${i}].ips[${j}]`,
          `${cidr} is ${bad}, which a pod interface cannot use`,
          'use a unicast host address, e.g. 10.10.0.11/24 or fd00:10::11/64',
        );
      }
      const dup = addrs.get(addr);
      if (dup !== undefined) {
        at(
          `[${i}].ips[${j}]`,
          `address ${addr} is already listed as ips[${dup}]`,
          'list each address once',
        );
      } else addrs.set(addr, j);
    });
    if (sel.mac !== undefined && /^(00:){5}00$/.test(sel.mac)) {
      at(
        `[${i}].mac`,
        'the all-zero MAC 00:00:00:00:00:00 cannot be assigned to an interface',
        'use a locally administered unicast MAC such as 02:00:00:00:00:01, or omit mac',
      );
    }
  });
  return out;
}

const V4_UNUSABLE: [string, number, string][] = [
  ['0.0.0.0', 8, 'an unspecified ("this network") address'],
  ['127.0.0.0', 8, 'a loopback address'],
  ['224.0.0.0', 4, 'a multicast address'],
  ['240.0.0.0', 4, 'a reserved or broadcast address'],
];
const V6_UNUSABLE: [string, number, string][] = [
  ['::', 128, 'the unspecified address'],
  ['::1', 128, 'the loopback address'],
  ['ff00::', 8, 'a multicast address'],
];

/** Why an address cannot go on a pod interface, or undefined when it can. */
export function unusableAddress(cidr: string): string | undefined {
  const addr = cidr.split('/')[0]!;
  const v4 = isIPv4(addr);
  for (const [net, len, what] of v4 ? V4_UNUSABLE : V6_UNUSABLE) {
    const list = new BlockList();
    list.addSubnet(net, len, v4 ? 'ipv4' : 'ipv6');
    if (list.check(addr, v4 ? 'ipv4' : 'ipv6')) return what;
  }
  return undefined;
}

/** The address of a CIDR in one spelling (IPv6 compressed, lower case). */
export function canonicalAddress(cidr: string): string {
  const addr = cidr.split('/')[0]!;
  return isIPv4(addr) ? addr : new URL(`http://[${addr}]`).hostname.slice(1, -1);
}

// A fixed MTU the underlay cannot carry validates but fails in the gateway (MTU too large).
function mtuProblems(
  networks: readonly Extract<Manifest, { kind: 'FederatedNetwork' }>[],
  underlayMtu: number,
): ManifestProblem[] {
  const max = maxNetworkMtu(underlayMtu);
  return networks.flatMap((m) => {
    const mtu = m.object.spec.mtu;
    if (typeof mtu !== 'number' || mtu <= max) return [];
    return [
      {
        ...where(m),
        severity: 'error' as const,
        path: 'spec.mtu',
        reason: `MTU ${mtu} does not fit an underlay MTU of ${underlayMtu}: the largest network MTU it carries is ${max} (WireGuard ${WIREGUARD_OVERHEAD} and VXLAN ${VXLAN_OVERHEAD} bytes of overhead)`,
        hint: `set spec.mtu to at most ${max} or "auto", or, if the gateways' underlay is larger (jumbo frames), say so with --underlay-mtu`,
      },
    ];
  });
}

// Bridges live in the gateway namespace beside the gateway's, the lab's and OVS's devices.
function bridgeProblems(
  networks: readonly Extract<Manifest, { kind: 'FederatedNetwork' }>[],
  segments: SegmentBuild,
): ManifestProblem[] {
  const out: ManifestProblem[] = [];
  const sorted = [...networks].sort((a, b) =>
    a.object.metadata.name.localeCompare(b.object.metadata.name),
  );
  const first = new Map<string, Extract<Manifest, { kind: 'FederatedNetwork' }>>();
  for (const m of sorted) {
    const seg = segmentOf(m.object.spec.segment);
    const bridge = labBridge(m.object);
    const field = `spec.segment.${seg.type}`;
    const as =
      seg.type === 'l2smNetwork'
        ? ` (the lab builds L2S-M network ${seg.network} as bridge ${bridge})`
        : '';
    const reserved = (BRIDGE_RESERVED_IFNAMES as readonly string[]).includes(bridge)
      ? `is reserved in the gateway's namespace (${BRIDGE_RESERVED_IFNAMES.join(', ')})`
      : bridge.startsWith(GATEWAY_IFNAME_PREFIX)
        ? `starts with "${GATEWAY_IFNAME_PREFIX}", the prefix of the gateway's own devices (VXLAN l2fv<VNI>, WireGuard)`
        : LAB_HOST_IFNAME_PATTERN.test(bridge)
          ? "has the form of the lab's pod veth ends (l<8 hex digits>-<n>)"
          : undefined;
    if (reserved) {
      out.push({
        ...where(m),
        severity: 'error',
        path: field,
        reason: `bridge name ${bridge}${as} ${reserved}`,
        hint: 'pick another bridge name, e.g. br-<network>',
      });
    }
    const prev = first.get(bridge);
    if (prev === undefined) {
      first.set(bridge, m);
      continue;
    }
    const p = segmentOf(prev.object.spec.segment);
    // One local segment: segment-layout.ts reports that clash already.
    if (segmentKeyOf(p) === segmentKeyOf(seg)) continue;
    const ovsVlans = p.type === 'ovsBridge' && seg.type === 'ovsBridge';
    if (ovsVlans && segments === 'ovs') continue;
    out.push({
      ...where(m),
      severity: 'error',
      path: field,
      reason: `network ${m.object.metadata.name} builds its segment as bridge ${bridge}${as}, which network ${prev.object.metadata.name} also uses (${docOf(prev)}); ${
        ovsVlans
          ? 'with --segment bridge the lab turns OVS VLANs into one Linux bridge, merging the two networks'
          : 'only OVS networks with different VLANs can share a bridge'
      }`,
      hint: ovsVlans
        ? 'give each network its own OVS bridge, or run the lab with --segment ovs'
        : 'give each network its own bridge',
    });
  }
  return out;
}

// As segment-layout.ts compares segments (an L2S-M key can never equal a bridge's).
function segmentKeyOf(s: ReturnType<typeof segmentOf>): string {
  return s.type === 'l2smNetwork' ? `l2sm ${s.network}` : segmentKey(s);
}

/** A pod of a cluster, with where it was declared. */
export interface LocatedPod {
  readonly pod: PodManifest;
  readonly where: Where;
}

/**
 * Duplicate MACs and IP addresses per network. A MAC twice on one network is an error
 * everywhere (a switch learns it on one port only, so one of the two loses its traffic).
 * An IP address twice is an error within a cluster and between clusters `connected` on
 * that network (an active peering carries it), a warning otherwise (harmless until they
 * peer). `acrossOnly` skips pairs within one cluster (the cluster's own rules report
 * them). Pure.
 */
export function duplicateAddressProblems(
  clusters: readonly { cluster: string; pods: readonly LocatedPod[] }[],
  opts: {
    connected?: (a: string, b: string, network: string) => boolean;
    acrossOnly?: boolean;
  } = {},
): ManifestProblem[] {
  const out: ManifestProblem[] = [];
  const macs = new Map<string, { cluster: string; who: string }>();
  const ips = new Map<string, { cluster: string; who: string }>();
  const whoOf = (cluster: string, pod: string) => (cluster === '' ? pod : `${cluster}/${pod}`);
  for (const c of clusters) {
    for (const { pod, where: w } of c.pods) {
      const who = whoOf(c.cluster, pod.metadata.name);
      pod.networks.forEach((sel, i) => {
        if (sel.mac !== undefined) {
          const key = `${sel.name} ${sel.mac.toLowerCase()}`;
          const prev = macs.get(key);
          if (prev === undefined) macs.set(key, { cluster: c.cluster, who });
          else if (!(opts.acrossOnly && prev.cluster === c.cluster)) {
            out.push({
              ...w,
              severity: 'error',
              path: `${ANNOTATION}[${i}].mac`,
              reason: `MAC ${sel.mac.toLowerCase()} on network ${sel.name} is also used by ${prev.who}; on one segment the switches deliver it to one of them only`,
              hint: 'give each interface on a network its own MAC, or omit mac for a random one',
            });
          }
        }
        sel.ips.forEach((cidr, j) => {
          const addr = canonicalAddress(cidr);
          const key = `${sel.name} ${addr}`;
          const prev = ips.get(key);
          if (prev === undefined) {
            ips.set(key, { cluster: c.cluster, who });
            return;
          }
          if (prev.who === who) return; // one pod: the pod's own rules report it
          if (opts.acrossOnly && prev.cluster === c.cluster) return;
          const error =
            prev.cluster === c.cluster ||
            (opts.connected?.(prev.cluster, c.cluster, sel.name) ?? false);
          out.push({
            ...w,
            severity: error ? 'error' : 'warning',
            path: `${ANNOTATION}[${i}].ips[${j}]`,
            reason: `address ${addr} on network ${sel.name} is also used by ${prev.who}${error ? '; on one segment ARP answers for one of them only' : ' (their clusters do not connect this network yet)'}`,
            hint: 'give each pod on a network its own address',
          });
        });
      });
    }
  }
  return out;
}
