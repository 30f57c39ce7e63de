/**
 * Where the agent's desired state comes from. Two implementations share this contract:
 * source-folder.ts (GitOps folder, standalone and lab) and source-kubernetes.ts (CRDs).
 *
 * A source emits full snapshots, never deltas: the reconcile loop always works on one whole
 * desired state, so a missed event can cost latency but never correctness.
 */
import type { DesiredState } from './desired-state.js';
import type { ManifestProblem } from './problems.js';

/** Why a snapshot was emitted. 'resync' repeats the current state on a timer (level-triggered). */
export const SNAPSHOT_CAUSES = ['initial', 'change', 'resync'] as const;
export type SnapshotCause = (typeof SNAPSHOT_CAUSES)[number];

export type SourceEvent =
  | {
      readonly type: 'snapshot';
      readonly state: DesiredState;
      readonly cause: SnapshotCause;
      /** Non-fatal findings (folder source), e.g. a peering naming a network not exported. */
      readonly warnings: readonly ManifestProblem[];
    }
  | {
      readonly type: 'error';
      readonly error: Error;
      /** Per-field problems when the error is about manifests; empty for I/O or API errors. */
      readonly problems: readonly ManifestProblem[];
      /** The state still in force: errors never replace it. */
      readonly lastGood: DesiredState | undefined;
    };

export type SourceListener = (event: SourceEvent) => void;

/** A source of desired state. */
export interface DesiredStateSource {
  readonly kind: 'folder' | 'kubernetes';
  /**
   * Starts watching. Resolves once the first attempt to read the state is over (a snapshot
   * or an error has been emitted); keeps retrying in the background after errors.
   * Calling start twice is a no-op.
   */
  start(): Promise<void>;
  /** Stops watching and releases timers, watchers and connections. Idempotent. */
  stop(): Promise<void>;
  /**
   * Registers a listener; returns its unsubscribe function. Listeners run synchronously, in
   * order; one that throws is isolated from the others and from the source.
   */
  subscribe(listener: SourceListener): () => void;
  /** The last good snapshot, if any. */
  current(): DesiredState | undefined;
}

/**
 * Listener bookkeeping shared by the sources, with the "emit only on change" rule: a
 * snapshot whose version equals the last one is dropped unless it is a resync, and an error
 * equal to the previous error is not repeated.
 */
export class SourceEmitter {
  private readonly listeners = new Set<SourceListener>();
  private last: DesiredState | undefined;
  private lastErrorKey: string | undefined;

  subscribe(listener: SourceListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  current(): DesiredState | undefined {
    return this.last;
  }

  /** Emits a snapshot if it is new, ends an error spell, or is a resync. Returns whether it was emitted. */
  snapshot(
    state: DesiredState,
    cause: SnapshotCause,
    warnings: readonly ManifestProblem[] = [],
  ): boolean {
    // After an error, even an unchanged state is news: the problem was fixed.
    const changed = this.last?.version !== state.version || this.lastErrorKey !== undefined;
    this.lastErrorKey = undefined;
    if (!changed && cause !== 'resync') return false;
    const effective: SnapshotCause = this.last === undefined ? 'initial' : cause;
    this.last = state;
    this.emit({ type: 'snapshot', state, cause: effective, warnings });
    return true;
  }

  /** Emits an error, unless it repeats the previous one verbatim. The last good state stays. */
  error(error: Error, problems: readonly ManifestProblem[] = []): boolean {
    const key = `${error.name}:${error.message}`;
    if (key === this.lastErrorKey) return false;
    this.lastErrorKey = key;
    this.emit({ type: 'error', error, problems, lastGood: this.last });
    return true;
  }

  private emit(event: SourceEvent): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(event);
      } catch (err) {
        // A faulty consumer must not stop the source nor starve the other listeners.
        process.emitWarning(
          `desired-state listener threw: ${err instanceof Error ? err.message : String(err)}`,
        );
      }
    }
  }
}

/**
 * Resolves with the next event that `match` accepts, or rejects after `timeoutMs`. For
 * start-up ("wait for the first snapshot") and for tests. Unsubscribes in every case.
 */
export function nextEvent(
  source: Pick<DesiredStateSource, 'subscribe'>,
  match: (e: SourceEvent) => boolean,
  timeoutMs: number,
): Promise<SourceEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`no matching desired-state event within ${timeoutMs} ms`));
    }, timeoutMs);
    const unsubscribe = source.subscribe((e) => {
      if (!match(e)) return;
      clearTimeout(timer);
      unsubscribe();
      resolve(e);
    });
  });
}
