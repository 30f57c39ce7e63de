/**
 * Health of the data plane as plain data: per peer (handshake age, in-tunnel probe RTT
 * and loss) and per network (device state and a data-path check on the VXLAN counters).
 * The judging functions are pure, so tables test them; health-monitor.ts gathers inputs.
 */
import type { EndpointSource } from './endpoint-failover.js';
import { tunnelPacketFor, VXLAN_OVERHEAD } from './mtu.js';

/** WireGuard rejects a session after 180 s without a handshake (REJECT_AFTER_TIME). */
export const HANDSHAKE_STALE_SECONDS = 180;

export interface ProbeResult {
  readonly sent: number;
  readonly received: number;
  /** 0..1 */
  readonly loss: number;
  /** Average RTT in ms; undefined when nothing came back. */
  readonly rttMs: number | undefined;
}

export const PEER_STATUSES = ['up', 'degraded', 'down'] as const;
export type PeerStatus = (typeof PEER_STATUSES)[number];

export interface PeerHealth {
  readonly name: string;
  readonly publicKey: string;
  /** The endpoint WireGuard uses (after a fail-over in this check: the new one). */
  readonly endpoint: string | undefined;
  /**
   * Whether `endpoint` is one of the configured (advertised) ones or one WireGuard
   * learned from the peer's packets (roamed, e.g. the peer is behind NAT).
   */
  readonly endpointSource: EndpointSource;
  /**
   * Times this gateway moved the peer to its next configured endpoint since the health
   * monitor started (endpoint fail-over; always 0 for a peer with one endpoint).
   */
  readonly endpointFailovers: number;
  /** Seconds since the last handshake; undefined = never. */
  readonly handshakeAgeSeconds: number | undefined;
  readonly rxBytes: number;
  readonly txBytes: number;
  readonly probe: ProbeResult;
  /**
   * Seconds (ms precision) since `probe` (and `pathMtu`) were measured: 0 = in this
   * check, more = kept from an earlier one (a peer the tunnel vouches for,
   * probe-schedule.ts). Absent from reports made before this field existed.
   */
  readonly probeAgeSeconds?: number;
  /** Path MTU inside the tunnel; absent when the peer carries no network. */
  readonly pathMtu?: PathMtu | undefined;
  readonly status: PeerStatus;
  /** Why the status is not "up", for people. */
  readonly reason: string;
}

export const NETWORK_STATUSES = ['ok', 'degraded', 'down', 'not-receiving'] as const;
export type NetworkStatus = (typeof NETWORK_STATUSES)[number];

export interface NetworkHealth {
  readonly name: string;
  readonly vni: number;
  readonly device: string;
  readonly mtu: number;
  readonly rxPackets: number;
  readonly txPackets: number;
  readonly status: NetworkStatus;
  readonly reason: string;
  /** Seconds since the receive counter last moved while a peer was reachable. */
  readonly silentSeconds: number;
  /** Why this check sent no probe frame on the network ('' = sent, or nothing to probe). */
  readonly probeError: string;
}

export interface HealthReport {
  /** ISO time of the check. */
  readonly at: string;
  readonly identity: string;
  readonly tunnel: { readonly kind: string; readonly ifname: string; readonly up: boolean };
  readonly peers: readonly PeerHealth[];
  readonly networks: readonly NetworkHealth[];
}

/** Parses the summary of `ping -q`. Pure. */
export function parsePing(text: string): ProbeResult {
  const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(text);
  const rtt = /= [\d.]+\/([\d.]+)\/[\d.]+\/[\d.]+ ms/.exec(text);
  const sent = counts ? Number(counts[1]) : 0;
  const received = counts ? Number(counts[2]) : 0;
  return {
    sent,
    received,
    loss: sent === 0 ? 1 : (sent - received) / sent,
    rttMs: rtt ? Number(rtt[1]) : undefined,
  };
}

/**
 * Path MTU to one peer, measured with don't-fragment probes inside the tunnel. Sizes are
 * inner IP packets in bytes (what a network's full-size frame becomes after VXLAN).
 */
export interface PathMtu {
  /** The largest packet the peer's networks need: max network MTU + VXLAN_OVERHEAD. */
  readonly needed: number;
  /**
   * The largest probe that crossed in this check. Equals `needed` when that size passed
   * (nothing larger is tried); undefined when not measured (the peer does not answer).
   */
  readonly measured: number | undefined;
  /** Networks whose full-size frames do not fit `measured`, sorted by name. */
  readonly cannotCarry: readonly string[];
}

/** A network as the path-MTU judge sees it: name and effective MTU (bytes). */
export interface NetworkNeed {
  readonly name: string;
  readonly mtu: number;
}

/**
 * The path MTU of a peer from its networks and the measured size (undefined = not
 * measured). Networks with an unknown MTU (0) are left out. Undefined when no network
 * with a known MTU goes to the peer. Pure.
 */
export function judgePathMtu(
  networks: readonly NetworkNeed[],
  measured: number | undefined,
): PathMtu | undefined {
  const known = networks.filter((n) => n.mtu > 0);
  if (known.length === 0) return undefined;
  const needed = Math.max(...known.map((n) => tunnelPacketFor(n.mtu)));
  const cannotCarry =
    measured === undefined
      ? []
      : known
          .filter((n) => tunnelPacketFor(n.mtu) > measured)
          .map((n) => n.name)
          .sort();
  return { needed, measured, cannotCarry };
}

/** True when the measured path MTU is below what the peer's networks need. */
export function pathTooSmall(m: PathMtu | undefined): m is PathMtu & { measured: number } {
  return m !== undefined && m.measured !== undefined && m.measured < m.needed;
}

/** The reason of a path-MTU fault, naming the peer, the measured and the needed size. */
export function pathMtuReason(peer: string, m: PathMtu & { measured: number }): string {
  return `path MTU to ${peer} is ${m.measured} B inside the tunnel, ${m.needed} B needed (network MTU + ${VXLAN_OVERHEAD} B VXLAN): cannot carry ${m.cannotCarry.join(', ')}`;
}

/** The judgement of a peer with nothing wrong: one object, not one per peer per check. */
const PEER_UP: { readonly status: PeerStatus; readonly reason: string } = Object.freeze({
  status: 'up',
  reason: '',
});

/**
 * Judges one peer from its handshake age, probe and path MTU. A peer that does not
 * answer is down, never an MTU fault. Pure; the result is read-only (shared when up).
 */
export function judgePeer(
  handshakeAgeSeconds: number | undefined,
  probe: ProbeResult,
  path?: { readonly peer: string; readonly mtu: PathMtu | undefined },
): { readonly status: PeerStatus; readonly reason: string } {
  if (handshakeAgeSeconds === undefined) {
    return { status: 'down', reason: 'no handshake yet (check endpoint, keys, firewall)' };
  }
  if (probe.received === 0) {
    return { status: 'down', reason: 'in-tunnel probe got no answer' };
  }
  const mtu = path?.mtu;
  const short = pathTooSmall(mtu) ? mtu : undefined;
  if (handshakeAgeSeconds <= HANDSHAKE_STALE_SECONDS && !short && probe.loss <= 0) return PEER_UP;
  const reasons: string[] = [];
  if (handshakeAgeSeconds > HANDSHAKE_STALE_SECONDS) {
    reasons.push(`last handshake ${handshakeAgeSeconds} s ago`);
  }
  if (short) reasons.push(pathMtuReason(path!.peer, short));
  if (probe.loss > 0) reasons.push(`probe loss ${(probe.loss * 100).toFixed(0)} %`);
  if (reasons.length > 0) return { status: 'degraded', reason: reasons.join('; ') };
  return PEER_UP;
}

/**
 * The largest size in [lo, hi] for which `passes` holds, given that `lo` passes and that
 * passing is monotone (a size passes when every smaller one does). Tries `hint` (the last
 * answer) and hint + 1 first, so an unchanged path costs two probes; otherwise a binary
 * search: at most 2 + ceil(log2(hi − lo + 1)) calls of `passes`.
 */
export async function searchLargest(
  lo: number,
  hi: number,
  passes: (size: number) => Promise<boolean>,
  hint?: number,
): Promise<number> {
  if (hint !== undefined && hint > lo && hint <= hi) {
    if (await passes(hint)) {
      lo = hint;
      if (hint < hi) {
        if (await passes(hint + 1)) lo = hint + 1;
        else hi = hint;
      }
    } else hi = hint - 1;
  }
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (await passes(mid)) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

export interface Counters {
  readonly rxPackets: number;
  readonly txPackets: number;
}

/**
 * Judges one network. Two data-path checks ("connected but nothing passes"):
 * - tenant frames went into the tunnel since the last check and none came back;
 * - nothing at all came in for `silenceLimitSeconds` while a peer's tunnel is up. Every
 *   gateway sends one probe frame per network per check (l2-probe.ts), so a working path
 *   never stays silent that long, even when no tenant talks.
 * The receive counter sums all peers of the network, so a path broken to one of several
 * peers hides behind the others. Pure.
 */
export function judgeNetwork(input: {
  readonly deviceUp: boolean;
  readonly peers: readonly PeerStatus[];
  readonly now: Counters;
  readonly before: Counters | undefined;
  /** Frames our own probes put on the device since `before` (one per peer per probe). */
  readonly probeTx?: number;
  /** Seconds since the receive counter last moved (since the monitor first saw it). */
  readonly silentSeconds?: number;
  /** Silence that counts as broken; undefined turns the silence check off. */
  readonly silenceLimitSeconds?: number;
  /** Peers of the network whose measured path MTU (bytes) is below `needed`. */
  readonly shortPaths?: readonly {
    readonly peer: string;
    readonly measured: number;
    readonly needed: number;
  }[];
  /** Frames the kernel dropped on the VXLAN device's transmit since `before` (tx_dropped). */
  readonly txDropped?: number;
}): { status: NetworkStatus; reason: string } {
  if (!input.deviceUp) return { status: 'down', reason: 'VXLAN device missing or down' };
  if (input.peers.length === 0) return { status: 'ok', reason: 'no peers carry this network' };
  // A loop, not filter: a callback per call was compiled again and again (issue 18).
  let down = 0;
  for (const p of input.peers) if (p === 'down') down++;
  if (down === input.peers.length) return { status: 'down', reason: 'no peer reachable' };
  const b = input.before;
  const rx = b ? input.now.rxPackets - b.rxPackets : 0;
  const tenantTx = b ? Math.max(0, input.now.txPackets - b.txPackets - (input.probeTx ?? 0)) : 0;
  if (b && tenantTx > 0 && rx === 0) {
    return {
      status: 'not-receiving',
      reason: `sent ${tenantTx} frames since the last check, received none`,
    };
  }
  const limit = input.silenceLimitSeconds;
  const silent = input.silentSeconds;
  if (limit !== undefined && silent !== undefined && silent >= limit) {
    return {
      status: 'not-receiving',
      reason: `no frame (not even a probe) from any peer for ${Math.round(silent)} s while a tunnel is up`,
    };
  }
  const short = input.shortPaths ?? [];
  if (short.length > 0) {
    const paths = short.map((p) => `${p.peer} (${p.measured} B)`).join(', ');
    return {
      status: 'degraded',
      reason: `full-size frames (${short[0]!.needed} B in the tunnel) do not fit the path MTU to ${paths}`,
    };
  }
  // Dropped before WireGuard saw them, with no error anywhere else (issue 18: a full host
  // neighbour table dropped 13,924 frames on one device while every peer answered probes).
  const dropped = input.txDropped ?? 0;
  if (dropped > 0) {
    return {
      status: 'degraded',
      reason:
        `the kernel dropped ${dropped} frames on their way to peers since the last check ` +
        `(tx_dropped of the VXLAN device): a full host neighbour table (dmesg "neighbor table ` +
        `overflow"; raise net.ipv4.neigh.default.gc_thresh3, docs/install.md) or a tunnel that ` +
        `cannot keep up`,
    };
  }
  if (down > 0)
    return { status: 'degraded', reason: `${down} of ${input.peers.length} peers down` };
  // No tenant frame either way: the path may be fine, but only probes prove it.
  if (b && tenantTx === 0 && rx === 0)
    return { status: 'ok', reason: 'idle: no frames since the last check' };
  return { status: 'ok', reason: '' };
}
