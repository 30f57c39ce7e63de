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
 *   instead of failing the whole config;
 * - a peer the config cannot carry (bad or duplicate public key, our own key, bad
 *   endpoint, transit address invalid, ours, shared or outside the transit subnet, listed
 *   twice) is dropped alone with a PeerProblem naming it and the reason, so one bad or
 *   hostile entry cannot take the other peers down (the gateway refuses a config as a
 *   whole); a peer network whose VNI disagrees with ours is not carried to that peer.
 */
import {
  addressOf,
  endpointProblem,
  inSubnet,
  MAX_PEER_ENDPOINTS,
  parseGatewayConfig,
  WG_KEY_RE,
  type GatewayConfigInput,
} from '../gateway/config.js';
import { ConfigError } from '../gateway/errors.js';
import { z } from 'zod';
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

/** Why a peer (or one network of a peer) is not in the gateway config. */
export const PEER_PROBLEM_REASONS = [
  'DuplicatePeer',
  'SelfPeer',
  'InvalidPublicKey',
  'OwnPublicKey',
  'DuplicatePublicKey',
  'InvalidEndpoint',
  'InvalidTransitAddress',
  'TransitAddressConflict',
  'TransitOutsideSubnet',
  'RefusedByGateway',
  'VniMismatch',
] as const;
export type PeerProblemReason = (typeof PEER_PROBLEM_REASONS)[number];

export interface PeerProblem {
  /** The peer's cluster id as the peer map names it. */
  readonly peer: string;
  readonly reason: PeerProblemReason;
  /** Set when only this network is not carried to the peer (the tunnel stays). */
  readonly network?: string;
  /** For people: what is wrong and what to do. */
  readonly message: string;
}

export type BuildGatewayConfigResult =
  | {
      readonly ok: true;
      readonly config: GatewayConfigInput;
      readonly skipped: readonly SkippedNetwork[];
      /** Peers dropped from the config (or networks not carried to one), sorted by peer. */
      readonly peerProblems: readonly PeerProblem[];
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
  /** This gateway's own public keys (active and pending): no peer may use them. */
  ownPublicKeys: readonly string[] = [],
): BuildGatewayConfigResult {
  const skipped: SkippedNetwork[] = [];
  const vniOf = new Map(peerMap.networks.map((n) => [n.name, n.vni]));
  const maxMtu = maxNetworkMtu(settings.underlayMtu);
  const exported = new Set(desired.networks.map((n) => n.metadata.name));
  const offered = new Map(
    desired.peerings.map((p) => [p.spec.remoteCluster, p.spec.networks ?? [...exported]]),
  );
  const ownTransit = `${peerMap.transitAddress}/${settings.transitPrefixLength}`;
  const problems: PeerProblem[] = [];
  const declared = peerMap.peers
    .filter((p) => offered.has(p.cluster))
    .map((p) => ({
      ...p,
      networks: p.networks.filter((n) => {
        if (!exported.has(n.name) || !offered.get(p.cluster)!.includes(n.name)) return false;
        const ours = vniOf.get(n.name);
        if (ours === undefined || ours === n.vni) return true;
        problems.push({
          peer: p.cluster,
          reason: 'VniMismatch',
          network: n.name,
          message: `the peer map lists ${n.name} for ${p.cluster} with VNI ${n.vni}, but ours is ${ours}; ${n.name} is not carried to ${p.cluster} until the broker's map agrees (report it to the broker's operators)`,
        });
        return false;
      }),
    }))
    .sort((a, b) => cmp(a.cluster, b.cluster));
  const bad = peerProblems(declared, settings.clusterId, ownTransit, ownPublicKeys);
  problems.push(...bad);
  let peers = declared.filter((p) => !bad.some((b) => b.peer === p.cluster));
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
  const configWith = (carried: typeof peers): GatewayConfigInput => {
    const names = new Set(carried.map((p) => p.cluster));
    return {
      ...base(settings, ownTransit),
      peers: carried.map((p) => ({
        name: p.cluster,
        publicKey: p.publicKey,
        endpoints: [...p.endpoints],
        transitAddress: p.transitAddress,
      })),
      networks: networks.map((n) => ({ ...n, peers: (n.peers ?? []).filter((x) => names.has(x)) })),
    };
  };
  // The gateway's parser is the judge. A peer it still refuses (a rule not mirrored above)
  // is dropped with the gateway's words; anything else refuses the config as a whole.
  for (;;) {
    const config = configWith(peers);
    let err: unknown;
    try {
      parseGatewayConfig(config);
      return { ok: true, config, skipped, peerProblems: sortProblems(problems) };
    } catch (e) {
      err = e;
    }
    if (!(err instanceof ConfigError)) return { ok: false, message: String(err) };
    const refused = new Map<number, string>();
    for (const i of err.issues) {
      const m = /^peers\[(\d+)\]/.exec(i.path);
      if (!m) return { ok: false, message: err.message }; // not one peer's fault
      const at = Number(m[1]);
      refused.set(at, `${refused.get(at) ?? ''}${i.path}: ${i.message}; `);
    }
    for (const [i, why] of refused) {
      problems.push({
        peer: peers[i]!.cluster,
        reason: 'RefusedByGateway',
        message: `${peers[i]!.cluster} left out of the gateway config: ${why}report it to the broker's operators`,
      });
    }
    peers = peers.filter((_, i) => !refused.has(i));
  }
}

function sortProblems(p: readonly PeerProblem[]): PeerProblem[] {
  return [...p].sort(
    (a, b) =>
      cmp(a.peer, b.peer) || cmp(a.network ?? '', b.network ?? '') || cmp(a.reason, b.reason),
  );
}

type DeclaredPeer = PeerMap['peers'][number];

/**
 * Problems that keep a peer out of the gateway config, at most one per peer (the first
 * found). Duplicates drop every holder: which one is genuine cannot be told from here.
 */
function peerProblems(
  peers: readonly DeclaredPeer[],
  self: string,
  ownTransit: string,
  ownPublicKeys: readonly string[],
): PeerProblem[] {
  const out = new Map<string, PeerProblem>();
  const add = (peer: string, reason: PeerProblemReason, message: string) => {
    if (!out.has(peer)) out.set(peer, { peer, reason, message });
  };
  const holders = (key: (p: DeclaredPeer) => string) => {
    const by = new Map<string, string[]>();
    for (const p of peers) by.set(key(p), [...(by.get(key(p)) ?? []), p.cluster]);
    return by;
  };
  for (const [name, list] of holders((p) => p.cluster)) {
    if (list.length > 1) {
      add(
        name,
        'DuplicatePeer',
        `the peer map lists ${name} ${list.length} times; it is left out until the broker sends one entry`,
      );
    }
  }
  const byKey = holders((p) => p.publicKey);
  const byTransit = holders((p) => p.transitAddress);
  const own = addressOf(ownTransit);
  for (const p of peers) {
    const name = p.cluster;
    const others = (by: Map<string, string[]>, v: string) =>
      (by.get(v) ?? []).filter((c) => c !== name);
    if (name === self) {
      add(
        name,
        'SelfPeer',
        `the peer map lists this cluster (${self}) as its own peer; entry ignored`,
      );
    } else if (!WG_KEY_RE.test(p.publicKey)) {
      add(
        name,
        'InvalidPublicKey',
        `${name}'s public key ${JSON.stringify(p.publicKey.slice(0, 60))} is not a WireGuard key (44 characters of base64); ${name} is left out until it registers a valid key`,
      );
    } else if (ownPublicKeys.includes(p.publicKey)) {
      add(
        name,
        'OwnPublicKey',
        `${name} registered with this gateway's own public key; ${name} is left out (a cluster may only register its own key)`,
      );
    } else if (others(byKey, p.publicKey).length > 0) {
      add(
        name,
        'DuplicatePublicKey',
        `${name}'s public key ${p.publicKey} is also the key of ${others(byKey, p.publicKey).join(', ')}; all of them are left out, since WireGuard cannot tell them apart (one registered another's key: ask the broker's operators)`,
      );
    } else if (p.endpoints.length === 0 || p.endpoints.length > MAX_PEER_ENDPOINTS) {
      add(
        name,
        'InvalidEndpoint',
        `${name} has ${p.endpoints.length} endpoints (1..${MAX_PEER_ENDPOINTS} allowed); ${name} is left out`,
      );
    } else if (p.endpoints.some((e) => endpointProblem(e) !== undefined)) {
      const e = p.endpoints.find((x) => endpointProblem(x) !== undefined)!;
      add(
        name,
        'InvalidEndpoint',
        `${name}'s endpoint ${JSON.stringify(e.slice(0, 60))}: ${endpointProblem(e)}; ${name} is left out`,
      );
    } else if (!isIpv4(p.transitAddress)) {
      add(
        name,
        'InvalidTransitAddress',
        `${name}'s transit address ${JSON.stringify(p.transitAddress.slice(0, 60))} is not an IPv4 address; ${name} is left out`,
      );
    } else if (p.transitAddress === own) {
      add(
        name,
        'TransitAddressConflict',
        `${name}'s transit address ${p.transitAddress} is this gateway's own; ${name} is left out`,
      );
    } else if (others(byTransit, p.transitAddress).length > 0) {
      add(
        name,
        'TransitAddressConflict',
        `${name}'s transit address ${p.transitAddress} is also that of ${others(byTransit, p.transitAddress).join(', ')}; all of them are left out`,
      );
    } else if (!inSubnet(p.transitAddress, ownTransit)) {
      add(
        name,
        'TransitOutsideSubnet',
        `${name}'s transit address ${p.transitAddress} is outside the transit subnet ${ownTransit}; ${name} is left out (check transitPrefixLength in the agent config against the broker's transit pool)`,
      );
    }
  }
  return [...out.values()];
}

const ipv4 = z.ipv4();
const isIpv4 = (s: string) => ipv4.safeParse(s).success;

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
