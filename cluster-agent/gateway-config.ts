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
 * - a network's MTU is the one the broker agreed for all its members (peer map
 *   `networks[].mtu`, issue 12); an agreed MTU this cluster's underlay cannot carry
 *   skips the network with reason MtuTooLarge, naming this cluster. Without an
 *   agreement (an older broker) the local `mtu` applies, and a fixed one larger than the
 *   underlay allows is skipped the same way, instead of failing the whole config;
 * - a peer the config cannot carry is dropped alone with a PeerProblem naming it and the
 *   reason, so one bad or hostile entry cannot take the other peers down (the gateway
 *   refuses a config as a whole). Only what the gateway cannot know is checked here (the
 *   peer is this cluster, or uses this gateway's own key); everything else (bad or
 *   duplicate key, bad endpoint, transit address invalid, ours, shared or outside the
 *   subnet, listed twice) is judged by the gateway's own parser, whose issue path names
 *   the peer and gives the reason; a peer network whose VNI disagrees with ours is not
 *   carried to that peer.
 */
import {
  addressOf,
  parseGatewayConfig,
  WG_KEY_RE,
  type GatewayConfigInput,
} from '../gateway/config.js';
import { ConfigError, type ConfigIssue } from '../gateway/errors.js';
import { z } from 'zod';
import { maxNetworkMtu } from '../gateway/mtu.js';
import type { PeerMap } from '../broker/records.js';
import type { NetworkMtuAsk } from '../broker/network-mtu.js';
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
  /** VXLAN UDP port; undefined = the gateway's default (DEFAULT_VXLAN_PORT, 4797). */
  readonly vxlanPort?: number;
  /** Broadcast/multicast bound per network per peer; undefined = the gateway's default. */
  readonly bumLimit?: { readonly packetsPerSecond: number; readonly burst: number };
  /** L2S-M network name → local OVS bridge (and VLAN). */
  readonly l2sm: Readonly<Record<string, { readonly bridge: string; readonly vlan?: number }>>;
}

/** Why an exported network is not in the gateway config. */
export const SKIP_REASONS = ['NotAllocated', 'L2smNetworkNotMapped', 'MtuTooLarge'] as const;
/** One of SKIP_REASONS. */
export type SkipReason = (typeof SKIP_REASONS)[number];

/** An exported network left out of the gateway config, and why (shown in status). */
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
/**
 * One of PEER_PROBLEM_REASONS, shown as the ClusterPeering's `reason`: `SelfPeer` and
 * `OwnPublicKey` are found by the agent, `VniMismatch` drops one network only, the rest
 * come from the gateway parser's issue on that peer's field (`RefusedByGateway` for a
 * field without a more precise reason).
 */
export type PeerProblemReason = (typeof PEER_PROBLEM_REASONS)[number];

/**
 * A peer left out of the gateway config (or, with `network`, one network not carried to
 * it), as `agent.json` `peerProblems` and the peer's ClusterPeering status show it.
 */
export interface PeerProblem {
  /** The peer's cluster id as the peer map names it. */
  readonly peer: string;
  /** Machine-readable cause (see PeerProblemReason). */
  readonly reason: PeerProblemReason;
  /** Set when only this network is not carried to the peer (the tunnel stays). */
  readonly network?: string;
  /** For people: what is wrong and what to do. */
  readonly message: string;
}

/**
 * buildGatewayConfig's result: the config to apply with what was left out of it, or
 * (`ok: false`) the gateway's refusal of the config as a whole (an issue not about one
 * peer, e.g. two networks on one segment), which the agent reports without applying.
 */
export type BuildGatewayConfigResult =
  | {
      readonly ok: true;
      readonly config: GatewayConfigInput;
      readonly skipped: readonly SkippedNetwork[];
      /** Peers dropped from the config (or networks not carried to one), sorted by peer. */
      readonly peerProblems: readonly PeerProblem[];
    }
  | { readonly ok: false; readonly message: string };

/**
 * This cluster's MTU ask per exported network, for the exports request: `requested` from
 * a fixed spec.mtu (absent for auto) and `capacity`, the most the underlay carries. Pure.
 */
export function mtuAsks(
  desired: DesiredState,
  settings: Pick<GatewaySettings, 'underlayMtu'>,
): NetworkMtuAsk[] {
  const capacity = maxNetworkMtu(settings.underlayMtu);
  return desired.networks.map((n) =>
    n.spec.mtu === 'auto'
      ? { network: n.metadata.name, capacity }
      : { network: n.metadata.name, requested: n.spec.mtu, capacity },
  );
}

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
    ...(settings.bumLimit === undefined ? {} : { bumLimit: { ...settings.bumLimit } }),
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
  const agreedOf = new Map(peerMap.networks.map((n) => [n.name, n.mtu]));
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
  const dropped = new Map<string, PeerProblem>(
    localPeerProblems(declared, settings.clusterId, ownPublicKeys).map((b) => [b.peer, b]),
  );
  let peers = declared.filter((p) => !dropped.has(p.cluster));
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
    const agreed = agreedOf.get(name);
    if (agreed && agreed.value > maxMtu) {
      skipped.push({
        network: name,
        reason: 'MtuTooLarge',
        message: `this cluster (${settings.clusterId}) cannot carry ${name}'s network MTU ${agreed.value} (set by ${agreed.setBy}): its underlay MTU ${settings.underlayMtu} carries at most ${maxMtu} after WireGuard 80 and VXLAN 50; ${name} is left out until the broker agrees a smaller MTU (it does once this cluster's exports reach it) or the underlay MTU is raised`,
      });
      continue;
    }
    const mtu = agreed ? agreed.value : net.spec.mtu;
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
        ...nextKeyOf(p, carried, ownPublicKeys),
        endpoints: [...p.endpoints],
        transitAddress: p.transitAddress,
      })),
      networks: networks.map((n) => ({ ...n, peers: (n.peers ?? []).filter((x) => names.has(x)) })),
    };
  };
  // The gateway's parser is the judge. A peer it refuses is dropped with a reason read
  // from the issue's field; an issue that is not one peer's refuses the config as a whole.
  // Dropping peers can reveal more (cross-field rules run once the shapes are valid).
  for (;;) {
    const config = configWith(peers);
    let err: unknown;
    try {
      parseGatewayConfig(config);
      const all = [...problems, ...dropped.values()];
      return { ok: true, config, skipped, peerProblems: sortProblems(all) };
    } catch (e) {
      err = e;
    }
    if (!(err instanceof ConfigError)) return { ok: false, message: String(err) };
    const refused = refusedPeers(err, peers, ownTransit);
    if (!refused?.size) return { ok: false, message: err.message };
    for (const problem of refused.values())
      if (!dropped.has(problem.peer)) dropped.set(problem.peer, problem);
    peers = peers.filter((_, i) => !refused.has(i));
  }
}

/**
 * A peer's announced next key, when it is a valid key no other entry (or this gateway)
 * uses. Otherwise it is left out, so only that peer's rotation waits (the agent does not
 * acknowledge a key its gateway does not hold); the peer itself stays.
 */
function nextKeyOf(
  p: DeclaredPeer,
  all: readonly DeclaredPeer[],
  own: readonly string[],
): { nextPublicKey?: string } {
  const next = p.nextPublicKey;
  if (next === undefined || !WG_KEY_RE.test(next) || own.includes(next)) return {};
  const clash = all.some(
    (q) => q.publicKey === next || (q.cluster !== p.cluster && q.nextPublicKey === next),
  );
  return clash ? {} : { nextPublicKey: next };
}

function sortProblems(p: readonly PeerProblem[]): PeerProblem[] {
  return [...p].sort(
    (a, b) =>
      cmp(a.peer, b.peer) || cmp(a.network ?? '', b.network ?? '') || cmp(a.reason, b.reason),
  );
}

type DeclaredPeer = PeerMap['peers'][number];

/**
 * What only the agent can tell: a peer that is this cluster, or that uses this gateway's
 * own public key (the gateway's parser sees neither). At most one problem per peer.
 */
function localPeerProblems(
  peers: readonly DeclaredPeer[],
  self: string,
  ownPublicKeys: readonly string[],
): PeerProblem[] {
  const out: PeerProblem[] = [];
  for (const p of peers) {
    if (out.some((o) => o.peer === p.cluster)) continue;
    if (p.cluster === self) {
      out.push({
        peer: p.cluster,
        reason: 'SelfPeer',
        message: `the peer map lists this cluster (${self}) as its own peer; entry ignored`,
      });
    } else if (ownPublicKeys.includes(p.publicKey)) {
      out.push({
        peer: p.cluster,
        reason: 'OwnPublicKey',
        message: `${p.cluster} registered with this gateway's own public key; ${p.cluster} is left out (a cluster may only register its own key)`,
      });
    }
  }
  return out;
}

/** Fields of a peer in the order their problems are reported (the first one wins). */
const FIELD_ORDER = ['name', 'publicKey', 'endpoints', 'transitAddress'];

/**
 * The peers a ConfigError refuses, by index into `peers`, each with one problem (from its
 * first field in FIELD_ORDER); undefined when an issue is not about one peer.
 */
function refusedPeers(
  err: ConfigError,
  peers: readonly DeclaredPeer[],
  ownTransit: string,
): Map<number, PeerProblem> | undefined {
  // Shape issues carry zod's error as cause; cross-field ones (duplicates, own or outside
  // transit address) are raised after the shapes passed, without one.
  const crossField = !(err.cause instanceof z.ZodError);
  const byPeer = new Map<number, { field: string; issue: ConfigIssue }[]>();
  for (const issue of err.issues) {
    const m = /^peers\[(\d+)\]\.?([A-Za-z]*)/.exec(issue.path);
    if (!m || peers[Number(m[1])] === undefined) return undefined;
    const at = Number(m[1]);
    byPeer.set(at, [...(byPeer.get(at) ?? []), { field: m[2] ?? '', issue }]);
  }
  const rank = (f: string) =>
    FIELD_ORDER.includes(f) ? FIELD_ORDER.indexOf(f) : FIELD_ORDER.length;
  const out = new Map<number, PeerProblem>();
  for (const [at, list] of byPeer) {
    const first = [...list].sort((a, b) => rank(a.field) - rank(b.field))[0]!;
    out.set(at, describe(peers, at, first.field, first.issue, crossField, addressOf(ownTransit)));
  }
  return out;
}

/** A PeerProblem for the gateway's issue on peers[at].<field>, in the agent's words. */
function describe(
  peers: readonly DeclaredPeer[],
  at: number,
  field: string,
  issue: ConfigIssue,
  crossField: boolean,
  ownAddress: string,
): PeerProblem {
  const p = peers[at]!;
  const name = p.cluster;
  const q = (s: string) => JSON.stringify(s.slice(0, 60));
  const gateway = `${issue.path}: ${issue.message}`;
  const sharing = (value: (x: DeclaredPeer) => string) =>
    peers.filter((x, i) => i !== at && value(x) === value(p)).map((x) => x.cluster);
  const problem = (reason: PeerProblemReason, message: string): PeerProblem => ({
    peer: name,
    reason,
    message,
  });
  switch (field) {
    case 'name':
      if (!crossField) break;
      return problem(
        'DuplicatePeer',
        `the peer map lists ${name} ${sharing((x) => x.cluster).length + 1} times (${gateway}); it is left out until the broker sends one entry`,
      );
    case 'publicKey':
      return crossField
        ? problem(
            'DuplicatePublicKey',
            `${name}'s public key ${p.publicKey} is also the key of ${sharing((x) => x.publicKey).join(', ')}; all of them are left out, since WireGuard cannot tell them apart (one registered another's key: ask the broker's operators)`,
          )
        : problem(
            'InvalidPublicKey',
            `${name}'s public key ${q(p.publicKey)} is refused (${gateway}); ${name} is left out until it registers a valid key`,
          );
    case 'endpoints': {
      const j = /\.endpoints\[(\d+)\]/.exec(issue.path);
      const e = j ? p.endpoints[Number(j[1])] : undefined;
      const what =
        e === undefined
          ? `${name} has ${p.endpoints.length} endpoints`
          : `${name}'s endpoint ${q(e)}`;
      return problem(
        'InvalidEndpoint',
        `${what} (${issue.path}): ${issue.message}; ${name} is left out`,
      );
    }
    case 'transitAddress': {
      if (!crossField) {
        return problem(
          'InvalidTransitAddress',
          `${name}'s transit address ${q(p.transitAddress)} is not an IPv4 address (${gateway}); ${name} is left out`,
        );
      }
      const others = sharing((x) => x.transitAddress);
      if (others.length > 0) {
        return problem(
          'TransitAddressConflict',
          `${name}'s transit address ${p.transitAddress} is also that of ${others.join(', ')}; all of them are left out`,
        );
      }
      if (p.transitAddress === ownAddress) {
        return problem(
          'TransitAddressConflict',
          `${name}'s transit address: ${issue.message}; ${name} is left out`,
        );
      }
      return problem(
        'TransitOutsideSubnet',
        `${name}'s transit address: ${issue.message}; ${name} is left out (check transitPrefixLength in the agent config against the broker's transit pool)`,
      );
    }
  }
  return problem(
    'RefusedByGateway',
    `${name} left out of the gateway config: ${gateway}; report it to the broker's operators`,
  );
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
