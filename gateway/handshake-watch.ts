/**
 * Which peers need a prompt WireGuard handshake after an apply, and whether this gateway
 * is the one that retries it. Pure; the gateway runs the checks (gateway.ts).
 *
 * Why: a key rotation (or a new peering) changes both sides at about the same time, and
 * each then sends a handshake initiation: the rotating side on its next packet (a new
 * private key expires its sessions), the peer side at once (persistent keepalive on the
 * new peer entry). When each initiation reaches the other side after that side's change,
 * each side answers the other's initiation, which replaces its own pending one, so both
 * answers are dropped (an answer counts only while its initiation is pending). Neither
 * side then has a session, and WireGuard sends the next initiation only REKEY_TIMEOUT
 * (5 s) after the last: traffic stops for 5 s.
 *
 * The cure: exactly one side of each pair, the one whose public key sorts first (both
 * sides know both keys, so they agree without talking), checks that a handshake completed
 * after the change and otherwise re-creates the peer entry: a new entry is the one thing
 * that makes WireGuard initiate at once (not rate-limited). One side only, so the retry
 * cannot cross another retry.
 */
import type { DesiredPeer, ObservedTunnel } from './model.js';
import type { Step } from './plan.js';

/** A peer that needs a handshake newer than `before` (unix s; 0 = any handshake). */
export interface HandshakeDue {
  readonly publicKey: string;
  readonly before: number;
}

/** True when this gateway, not the peer, retries a handshake the two sides both wanted. */
export function retriesHandshake(ownPublicKey: string, peerPublicKey: string): boolean {
  return ownPublicKey < peerPublicKey;
}

/**
 * The peers this gateway must see a new handshake with after running `steps` on
 * `observed`: every peer when the private key of an existing tunnel changed, else the
 * peers whose entry is new. Only those this side retries for (retriesHandshake). A new
 * tunnel has none (nothing raced with it).
 */
export function handshakesDue(
  steps: readonly Step[],
  observed: ObservedTunnel | undefined,
  peers: readonly DesiredPeer[],
  ownPublicKey: string,
): HandshakeDue[] {
  if (!observed) return [];
  const had = new Map(observed.peers.map((p) => [p.publicKey, p.latestHandshake]));
  const keyChanged = steps.some((s) => s.kind === 'tunnel-set-key');
  const added = new Set(
    steps.flatMap((s) =>
      s.kind === 'tunnel-set-peer' && !had.has(s.peer.publicKey) ? [s.peer.publicKey] : [],
    ),
  );
  // A standby entry cannot handshake before its peer switches (standby-keys.ts).
  return peers
    .filter((p) => !p.standby && (keyChanged || added.has(p.publicKey)))
    .filter((p) => retriesHandshake(ownPublicKey, p.publicKey))
    .map((p) => ({ publicKey: p.publicKey, before: had.get(p.publicKey) ?? 0 }));
}
