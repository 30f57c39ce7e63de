/**
 * The gateway's WireGuard public key as the agent knows it, and its rotation lifecycle:
 *
 *   unknown ──learn──► in-use ──gateway writes a new key──► rotating ──apply with it──► in-use
 *
 * While `rotating`, the new key is written on the gateway but the tunnel still uses
 * `active`; any apply switches the tunnel, so the agent applies only once the broker holds
 * `pending` (peers must know a key before the tunnel uses it). Pure values; the agent
 * keeps one and replaces it on each event.
 */
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
