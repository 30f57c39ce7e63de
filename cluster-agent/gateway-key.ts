/**
 * The gateway's WireGuard public key as the agent knows it, and its rotation lifecycle:
 *
 *   unknown ──learn──► in-use ──gateway writes a new key──► rotating ──apply with it──► in-use
 *
 * While `rotating`, the new key is written on the gateway but the tunnel still uses
 * `active`; any apply switches the tunnel, so the agent announces `pending` to the broker
 * and applies only once every peer's gateway holds it (rotationWait); then it commits
 * (the broker's key := `active`). Pure values; the agent keeps one and replaces it on
 * each event.
 */
import type { PeerMap } from '../broker/records.js';

export type GatewayKey =
  | { readonly phase: 'unknown' }
  | { readonly phase: 'in-use'; readonly active: string }
  | { readonly phase: 'rotating'; readonly active: string; readonly pending: string };

export const UNKNOWN_KEY: GatewayKey = { phase: 'unknown' };

/** The key state from what the gateway reports (its active key and any pending one). */
export function gatewayKey(active: string, pending?: string): GatewayKey {
  return pending && pending !== active
    ? { phase: 'rotating', active, pending }
    : { phase: 'in-use', active };
}

/** The key the tunnel uses now, if known. */
export function activeKey(k: GatewayKey): string | undefined {
  return k.phase === 'unknown' ? undefined : k.active;
}

/** A rotated key the tunnel does not use yet. */
export function pendingKey(k: GatewayKey): string | undefined {
  return k.phase === 'rotating' ? k.pending : undefined;
}

/** The key the broker should hold: a pending rotated key, else the one in use. */
export function announcedKey(k: GatewayKey): string | undefined {
  return pendingKey(k) ?? activeKey(k);
}

/** After an apply whose report says the tunnel now uses `active`. */
export function afterApply(k: GatewayKey, active: string): GatewayKey {
  const pending = pendingKey(k);
  return gatewayKey(active, pending === active ? undefined : pending);
}

/** Where a rotation stands in this cluster's own peer map (broker key-rotation.ts). */
export interface RotationWait {
  /** The broker announces `pending` as this cluster's next key. */
  readonly announced: boolean;
  /** Every peer's gateway holds it: the tunnel may switch. */
  readonly ready: boolean;
  /** Peers in the map that have not acknowledged it yet, sorted. */
  readonly waitingFor: readonly string[];
}

/**
 * Whether the tunnel may switch to `pending`: only once the map announces it and every
 * peer in the map acknowledged that its gateway holds it (a peer that never learnt the
 * key would lose its tunnel to us). No map yet: not announced, nobody known.
 */
export function rotationWait(
  map: Pick<PeerMap, 'peers' | 'nextKey'> | undefined,
  pending: string,
): RotationWait {
  if (!map) return { announced: false, ready: false, waitingFor: [] };
  const announced = map.nextKey?.publicKey === pending;
  const held = new Set(announced ? map.nextKey.heldBy : []);
  const waitingFor = map.peers
    .map((p) => p.cluster)
    .filter((c) => !held.has(c))
    .sort();
  return { announced, ready: announced && waitingFor.length === 0, waitingFor };
}
