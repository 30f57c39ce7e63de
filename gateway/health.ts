/**
 * Health of the data plane as plain data: per peer (handshake age, in-tunnel probe RTT
 * and loss) and per network (device state and a data-path check on the VXLAN counters).
 * The judging functions are pure, so tables test them; health-monitor.ts gathers inputs.
 */

import type { EndpointSource } from './endpoint-failover.js';

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

/** Judges one peer from its handshake age and probe. Pure. */
export function judgePeer(
  handshakeAgeSeconds: number | undefined,
  probe: ProbeResult,
): { status: PeerStatus; reason: string } {
  if (handshakeAgeSeconds === undefined) {
    return { status: 'down', reason: 'no handshake yet (check endpoint, keys, firewall)' };
  }
  if (probe.received === 0) {
    return { status: 'down', reason: 'in-tunnel probe got no answer' };
  }
  if (handshakeAgeSeconds > HANDSHAKE_STALE_SECONDS) {
    return { status: 'degraded', reason: `last handshake ${handshakeAgeSeconds} s ago` };
  }
  if (probe.loss > 0) {
    return { status: 'degraded', reason: `probe loss ${(probe.loss * 100).toFixed(0)} %` };
  }
  return { status: 'up', reason: '' };
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
}): { status: NetworkStatus; reason: string } {
  if (!input.deviceUp) return { status: 'down', reason: 'VXLAN device missing or down' };
  if (input.peers.length === 0) return { status: 'ok', reason: 'no peers carry this network' };
  const down = input.peers.filter((p) => p === 'down').length;
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
  if (down > 0)
    return { status: 'degraded', reason: `${down} of ${input.peers.length} peers down` };
  // No tenant frame either way: the path may be fine, but only probes prove it.
  if (b && tenantTx === 0 && rx === 0)
    return { status: 'ok', reason: 'idle: no frames since the last check' };
  return { status: 'ok', reason: '' };
}
