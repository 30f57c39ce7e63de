/**
 * The agent's work queue: one reconcile pass at a time over the newest state. Triggers
 * coalesce (any number of triggers during a pass cause exactly one more pass, which reads
 * the newest state: newest wins); a pass that asks to be requeued runs again after an
 * exponential backoff with jitter, and a trigger cuts the wait short. The backoff resets
 * after a pass that needs nothing more.
 */
import { backoffDelay, type BackoffOptions } from './backoff.js';

/** What a handler (and a pass) returns: done, or "run me again later, because …". */
export type Outcome =
  | { readonly requeue: false }
  | {
      readonly requeue: true;
      readonly reason: string;
      /** Retry no later than this (ms), e.g. when the broker says when a request can pass. */
      readonly withinMs?: number;
    };

export const DONE: Outcome = { requeue: false };
export const requeue = (reason: string, withinMs?: number): Outcome =>
  withinMs === undefined ? { requeue: true, reason } : { requeue: true, reason, withinMs };

/** Combines handler outcomes: requeue if any handler asks, with all reasons. */
export function combine(outcomes: readonly Outcome[]): Outcome {
  const asks = outcomes.filter((o) => o.requeue);
  if (asks.length === 0) return DONE;
  const within = asks.flatMap((o) => (o.withinMs === undefined ? [] : [o.withinMs]));
  return requeue(
    asks.map((o) => o.reason).join('; '),
    within.length ? Math.min(...within) : undefined,
  );
}

export interface ReconcileQueueOptions {
  readonly backoff: BackoffOptions;
  readonly random?: () => number;
  /** Called after every pass (logging, tests). */
  readonly onPass?: (outcome: Outcome, attempt: number, delayMs: number | undefined) => void;
}

/** Not reentrant by design: `pass` never runs twice at once. Safe to trigger from anywhere. */
export class ReconcileQueue {
  private running: Promise<void> | undefined;
  private dirty = false;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private attempt = 0;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly pass: () => Promise<Outcome>,
    private readonly o: ReconcileQueueOptions,
  ) {}

  /** Consecutive passes that asked for a requeue (0 after a clean pass). */
  get failures(): number {
    return this.attempt;
  }

  /** True while a retry is scheduled. */
  get backingOff(): boolean {
    return this.timer !== undefined;
  }

  /** Asks for a pass now (or right after the current one). Idempotent while pending. */
  trigger(): void {
    if (this.stopped) return;
    if (this.running) {
      this.dirty = true;
      return;
    }
    clearTimeout(this.timer);
    this.timer = undefined;
    this.running = this.loop();
  }

  private async loop(): Promise<void> {
    do {
      this.dirty = false;
      let outcome: Outcome;
      try {
        outcome = await this.pass();
      } catch (err) {
        // A handler bug must not stop the agent: treat it as "try again later".
        outcome = requeue(`pass threw: ${err instanceof Error ? err.message : String(err)}`);
      }
      let delay: number | undefined;
      if (outcome.requeue) {
        delay = backoffDelay(this.attempt, this.o.backoff, this.o.random);
        if (outcome.withinMs !== undefined) delay = Math.min(delay, outcome.withinMs);
        this.attempt++;
      } else {
        this.attempt = 0;
      }
      this.o.onPass?.(outcome, this.attempt, delay);
      if (!this.dirty && delay !== undefined && !this.stopped) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.trigger();
        }, delay);
      }
    } while (this.dirty && !this.stopped);
    this.running = undefined;
    if (!this.timer) for (const w of this.idleWaiters.splice(0)) w();
  }

  /**
   * Resolves once no pass runs, none is pending and no retry is scheduled (tests). A
   * queue that keeps backing off is never idle; bound the wait in the caller.
   */
  idle(): Promise<void> {
    if (!this.running && !this.timer) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Waits for the current pass and cancels retries. Idempotent. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.running;
    for (const w of this.idleWaiters.splice(0)) w();
  }
}
