/**
 * Which peers get an active in-tunnel probe in a health check (issue 18). Probing every
 * peer every check costs a packet exchange per peer per check, so a gateway's idle CPU
 * grew with its peers. Most of that tells nothing new: on an idle federation every peer
 * sends its probe frames through the tunnel each check, so WireGuard's receive counter
 * for a working peer moves between two checks anyway.
 *
 * The tunnel *vouches for* a peer when its last probe found it up (answered, no loss, path MTU
 * fine), nothing that probe depended on changed (its key, the size its networks need, its
 * endpoint, its transit address), its handshake is fresh, WireGuard received from it since
 * the end of the last check, and its last fast fail-over liveness echo (if it gets them)
 * was answered.
 * Every other peer is probed in every check, as before: a changed peer in the first check
 * after the change, a dead one in the first check after its last frame came in (so a peer
 * that still sent after the last check and then died is vouched for once more: above
 * `refresh` peers, `down` up to one check later than before). Of the peers vouched for, the `refresh`
 * probed longest ago are probed too, so RTT, loss and path MTU are re-measured for each
 * at least every ceil(peers / refresh) checks. With no more peers than `refresh`, every
 * peer is probed every check: small federations behave exactly as before.
 *
 * The idea is the neighbour-unreachability detection rule of RFC 4861 §7.3.1 and BFD's
 * demand mode (RFC 5880 §6.6): send probes only when nothing else shows the path works.
 * Receive progress shows only the peer-to-us direction; the periodic refresh covers the
 * other direction and the path MTU, at a fixed cost per check.
 */
import { HANDSHAKE_STALE_SECONDS } from './health.js';

/** Peers vouched for that are still probed per check, by default (see the module comment). */
export const DEFAULT_PROBE_REFRESH_PEERS = 8;

/** Above this refresh, the refresh peers are chosen by a sort, not by selection passes. */
const SELECT_AT_MOST = 16;

/** A peer as the check sees it now. */
export interface ProbeCandidate {
  readonly name: string;
  readonly publicKey: string;
  /** WireGuard's received bytes from the peer now; undefined = not in the tunnel. */
  readonly rxBytes: number | undefined;
  /** WireGuard's last handshake with the peer, unix s; 0 = never. */
  readonly latestHandshake: number;
  /** Inner packet size (bytes) the peer's networks need now; 0 = no network. */
  readonly needed: number;
  /** The check moved the peer to another endpoint. */
  readonly switched: boolean;
  /** The endpoint WireGuard uses now ('' = none). */
  readonly endpoint: string;
  /** The peer's transit address (the probe's destination) now. */
  readonly transitAddress: string;
  /**
   * Whether the last fast fail-over liveness echo to the peer was answered; undefined for
   * a peer without them (one endpoint, or echoes off). Such echoes go out every 250 ms, so
   * their replies move the receive counter up to the moment a peer dies: for these peers
   * the echo, not the counter, says whether it still answers.
   */
  readonly liveAnswered?: boolean | undefined;
}

/** What the monitor remembers of a peer's last probe. */
export interface LastProbe {
  /** The peer's public key when it was probed. */
  readonly publicKey: string;
  /** The size its networks needed then (bytes). */
  readonly needed: number;
  /** The endpoint and transit address it was probed over. */
  readonly endpoint: string;
  readonly transitAddress: string;
  /** The number of the check that probed it (increasing): the refresh order. Not a time,
   * so checks less than a second apart (or a pinned clock) still take turns. */
  readonly check: number;
  /** Its judged status then was "up". */
  readonly up: boolean;
}

/**
 * WireGuard's received bytes from a peer at the end of the previous check (after its
 * probes were answered, so the replies to our own probes are not taken for the peer's
 * traffic), with the key then.
 */
export interface LastRx {
  readonly publicKey: string;
  readonly rxBytes: number | undefined;
}

/**
 * Per-peer state by peer name (a Map will do). Not a callback: one made per check and
 * called per peer was compiled again and again by V8 (issue 18, --trace-opt).
 */
export interface Lookup<T> {
  get(name: string): T | undefined;
}

/**
 * The peers to probe now, by name: `must` for a peer the tunnel does not vouch for,
 * `refresh` for one probed in turn. `peers` in config order (ties of the refresh order
 * go to the earlier one). `refresh` ≥ 0 (an integer). Pure.
 */
export function peersToProbe(
  peers: readonly ProbeCandidate[],
  last: Lookup<LastProbe>,
  lastRx: Lookup<LastRx>,
  now: number,
  refresh: number,
): Map<string, 'must' | 'refresh'> {
  const probe = new Map<string, 'must' | 'refresh'>();
  // Vouched-for peers as indices into `peers` and the check each was last probed in (no
  // object per peer: this runs every check over every peer).
  const well: number[] = [];
  const wellCheck: number[] = [];
  for (let i = 0; i < peers.length; i++) {
    const p = peers[i]!;
    const l = last.get(p.name);
    const rx = lastRx.get(p.name);
    const vouched =
      l !== undefined &&
      l.up &&
      l.publicKey === p.publicKey &&
      l.needed === p.needed &&
      l.endpoint === p.endpoint &&
      l.transitAddress === p.transitAddress &&
      !p.switched &&
      p.liveAnswered !== false &&
      p.latestHandshake > 0 &&
      now - p.latestHandshake <= HANDSHAKE_STALE_SECONDS &&
      p.rxBytes !== undefined &&
      rx !== undefined &&
      rx.publicKey === p.publicKey &&
      rx.rxBytes !== undefined &&
      p.rxBytes > rx.rxBytes;
    if (vouched) {
      well.push(i);
      wellCheck.push(l.check);
    } else probe.set(p.name, 'must');
  }
  // No more vouched-for peers than the refresh: every peer is probed as before, as one
  // that must be (so a failing helper still costs each a ping, as it did).
  if (well.length <= refresh) {
    for (const i of well) probe.set(peers[i]!.name, 'must');
    return probe;
  }
  // The `refresh` probed longest ago, ties in config order. For the usual handful, a
  // few passes of a selection (no object per peer); for a large refresh, a stable sort
  // (passes would cost refresh × peers).
  const k = Math.floor(refresh);
  if (k > SELECT_AT_MOST) {
    const order = well.map((_, j) => j).sort((a, b) => wellCheck[a]! - wellCheck[b]!);
    for (const j of order.slice(0, k)) probe.set(peers[well[j]!]!.name, 'refresh');
    return probe;
  }
  for (let n = 0; n < k; n++) {
    let best = -1;
    for (let j = 0; j < well.length; j++) {
      if (wellCheck[j]! !== Infinity && (best < 0 || wellCheck[j]! < wellCheck[best]!)) best = j;
    }
    probe.set(peers[well[best]!]!.name, 'refresh');
    wellCheck[best] = Infinity;
  }
  return probe;
}
