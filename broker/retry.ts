/** Bounded optimistic-concurrency loops: read, compute, compare-and-set, repeat. */
import { setTimeout as sleep } from 'node:timers/promises';
import { ConflictError } from './errors.js';

/** What one attempt of a CAS loop decided. */
export type Attempt<T> = { readonly type: 'done'; readonly value: T } | { readonly type: 'retry' };

export const done = <T>(value: T): Attempt<T> => ({ type: 'done', value });
export const retry = { type: 'retry' } as const satisfies Attempt<never>;

/**
 * Runs `attempt` until it returns done, at most `attempts` times, sleeping a short
 * jittered backoff between tries so racing replicas spread out. Throws ConflictError
 * (retryable for the caller) when contention never settles.
 */
export async function casLoop<T>(
  key: string,
  attempts: number,
  attempt: (n: number) => Promise<Attempt<T>>,
): Promise<T> {
  for (let n = 0; n < attempts; n++) {
    const r = await attempt(n);
    if (r.type === 'done') return r.value;
    await sleep(Math.random() * Math.min(100, 2 * 2 ** Math.min(n, 6)));
  }
  throw new ConflictError(key, attempts);
}

/** A random token stored in claims so a writer can recognise its own earlier write. */
export function nonce(): string {
  return Math.random().toString(36).slice(2, 12) + Date.now().toString(36);
}
