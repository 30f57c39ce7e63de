/** Exponential backoff with full jitter, as used for retries against the API server. */

export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000 };

/**
 * Delay before retry number `attempt` (0-based): uniform in [cap/2, cap] where cap doubles
 * per attempt up to maxMs. Half-jitter keeps retries spread out without ever retrying at ~0.
 * Pure apart from `random`.
 */
export function backoffDelay(attempt: number, opts: BackoffOptions, random = Math.random): number {
  const cap = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(cap / 2 + (random() * cap) / 2);
}
