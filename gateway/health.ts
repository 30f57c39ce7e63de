/**
 * Health of the data plane as plain data: per peer (handshake age, in-tunnel probe RTT
 * and loss) and per network (device state and a data-path check on the VXLAN counters).
 * The judging functions are pure, so tables test them; health-monitor.ts gathers inputs.
 */

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
 * Judges one network. Data-path check: between two checks, if the device sent frames
 * into the tunnel but received none while its peers' tunnels are up, frames do not cross
 * ("connected but nothing passes"). Pure.
 */
export function judgeNetwork(input: {
  readonly deviceUp: boolean;
  readonly peers: readonly PeerStatus[];
  readonly now: Counters;
  readonly before: Counters | undefined;
}): { status: NetworkStatus; reason: string } {
  if (!input.deviceUp) return { status: 'down', reason: 'VXLAN device missing or down' };
  if (input.peers.length === 0) return { status: 'ok', reason: 'no peers carry this network' };
  const down = input.peers.filter((p) => p === 'down').length;
  if (down === input.peers.length) return { status: 'down', reason: 'no peer reachable' };
  const b = input.before;
  if (b && input.now.txPackets > b.txPackets && input.now.rxPackets === b.rxPackets) {
    return {
      status: 'not-receiving',
      reason: `sent ${input.now.txPackets - b.txPackets} frames since the last check, received none`,
    };
  }
  if (down > 0)
    return { status: 'degraded', reason: `${down} of ${input.peers.length} peers down` };
  // Nothing sent and nothing received: the tunnels are fine, but no frame proved the path.
  if (b && input.now.txPackets === b.txPackets && input.now.rxPackets === b.rxPackets)
    return { status: 'ok', reason: 'idle: no frames since the last check' };
  return { status: 'ok', reason: '' };
}
