/**
 * Desired state from the FederatedNetwork and ClusterPeering CRDs, watched with the
 * ListWatch informer of `@kubernetes/client-node`. The informer re-lists on watch expiry
 * (410 Gone, as an ERROR event or an HTTP status) and diffs the new list against its cache,
 * so nothing is lost or duplicated; this class adds what it leaves out: restart with backoff
 * after other errors, periodic resync, and one validated snapshot out of two caches.
 */
import { ListWatch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import { KINDS, type CustomKind } from './constants.js';
import { backoffDelay, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.js';
import { buildDesiredState, type DesiredState } from './desired-state.js';
import { KubeWatchError, ManifestError } from './errors.js';
import {
  BookmarkingWatch,
  collectionPath,
  customObjectsApi,
  httpStatusOf,
  listFunction,
} from './kube-client.js';
import { checkObject, type Manifest } from './manifests.js';
import { clusterPeeringStatus } from './schema-peering.js';
import { federatedNetworkStatus } from './schema-network.js';
import type { ManifestProblem } from './problems.js';
import { SourceEmitter, type DesiredStateSource, type SourceListener } from './source.js';

export interface KubernetesSourceOptions {
  readonly kubeConfig: KubeConfig;
  /** Re-emit the current state this often (level-triggered reconcile); 0 disables. */
  readonly resyncMs?: number;
  /** Coalesce bursts of events (a re-list) into one snapshot. */
  readonly debounceMs?: number;
  /** Retry of list/watch after errors other than 410. */
  readonly backoff?: BackoffOptions;
  /** Server-side watch timeout; the informer reconnects from its resourceVersion. */
  readonly watchTimeoutSeconds?: number;
}

export const KUBE_DEFAULTS = {
  resyncMs: 300_000,
  debounceMs: 50,
  watchTimeoutSeconds: 300,
} as const;

const STOP_WAIT_MS = 2_000;

/** The problem "file" of objects read from the API server. */
export const KUBE_ORIGIN = 'kubernetes';

const KIND_LIST = Object.keys(KINDS) as CustomKind[];

/**
 * A {@link DesiredStateSource} over the two CRDs. Emits the first snapshot only once both
 * kinds have been listed. An object that fails validation (possible with an outdated CRD)
 * is reported, and its last valid version, if any, stays in the state.
 */
export class KubernetesSource implements DesiredStateSource {
  readonly kind = 'kubernetes' as const;
  private readonly emitter = new SourceEmitter();
  private readonly informers: Record<CustomKind, ListWatch<KubernetesObject>>;
  private readonly synced = new Set<CustomKind>();
  private readonly attempts: Record<CustomKind, number> = {
    FederatedNetwork: 0,
    ClusterPeering: 0,
  };
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private readonly inflight = new Set<Promise<void>>();
  private readonly lastValid = new Map<string, Manifest>();
  private readonly opts: Required<Omit<KubernetesSourceOptions, 'kubeConfig'>>;
  private debounce: NodeJS.Timeout | undefined;
  private resync: NodeJS.Timeout | undefined;
  private running = false;

  constructor(options: KubernetesSourceOptions) {
    this.opts = {
      resyncMs: options.resyncMs ?? KUBE_DEFAULTS.resyncMs,
      debounceMs: options.debounceMs ?? KUBE_DEFAULTS.debounceMs,
      backoff: options.backoff ?? DEFAULT_BACKOFF,
      watchTimeoutSeconds: options.watchTimeoutSeconds ?? KUBE_DEFAULTS.watchTimeoutSeconds,
    };
    const api = customObjectsApi(options.kubeConfig);
    const watch = new BookmarkingWatch(options.kubeConfig, this.opts.watchTimeoutSeconds);
    const make = (kind: CustomKind) => {
      const lw = new ListWatch<KubernetesObject>(
        collectionPath(kind),
        watch,
        listFunction(api, kind),
        false,
      );
      lw.on('change', () => this.schedule());
      lw.on('error', (err: unknown) => this.onError(kind, err));
      return lw;
    };
    this.informers = {
      FederatedNetwork: make('FederatedNetwork'),
      ClusterPeering: make('ClusterPeering'),
    };
  }

  subscribe(listener: SourceListener): () => void {
    return this.emitter.subscribe(listener);
  }

  current(): DesiredState | undefined {
    return this.emitter.current();
  }

  /** Lists both kinds and starts watching; resolves after the first attempt. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await Promise.all(KIND_LIST.map((kind) => this.startInformer(kind)));
    if (this.opts.resyncMs > 0) {
      this.resync = setInterval(() => this.publish('resync'), this.opts.resyncMs);
      this.resync.unref();
    }
    this.publish('change');
  }

  /** `await using source = …` stops it at scope exit. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    clearTimeout(this.debounce);
    clearInterval(this.resync);
    for (const t of this.retryTimers) clearTimeout(t);
    this.retryTimers.clear();
    await Promise.all(KIND_LIST.map((kind) => this.informers[kind].stop()));
    // ListWatch opens its watch after a list that was in flight when stop() came, even
    // though it is stopped; wait (bounded) for such starts and stop once more.
    if (this.inflight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, STOP_WAIT_MS)));
      await Promise.race([Promise.allSettled([...this.inflight]), bound]);
      clearTimeout(timer);
      await Promise.all(KIND_LIST.map((kind) => this.informers[kind].stop()));
    }
  }

  /** The informer's cached objects of one kind, as the API server sent them. */
  cached(kind: CustomKind): readonly KubernetesObject[] {
    return this.informers[kind].list();
  }

  private async startInformer(kind: CustomKind): Promise<void> {
    const lw = this.informers[kind];
    const started = lw.start();
    this.inflight.add(started);
    try {
      await started;
    } finally {
      this.inflight.delete(started);
    }
    // ListWatch reports list failures through 'error' and leaves the resourceVersion empty.
    if (this.running && lw.latestResourceVersion() !== '') {
      this.attempts[kind] = 0;
      if (!this.synced.has(kind)) {
        this.synced.add(kind);
        this.schedule();
      }
    }
  }

  private onError(kind: CustomKind, err: unknown): void {
    // Stopping aborts the watch request, which ListWatch reports as an error.
    if (!this.running) return;
    const status = httpStatusOf(err);
    this.emitter.error(new KubeWatchError(KINDS[kind].plural, status, { cause: err }));
    // ListWatch does not restart after errors other than 410; we do, with backoff.
    const delay = backoffDelay(this.attempts[kind]++, this.opts.backoff);
    const timer = setTimeout(() => {
      this.retryTimers.delete(timer);
      if (this.running) void this.startInformer(kind);
    }, delay);
    this.retryTimers.add(timer);
  }

  private schedule(): void {
    if (!this.running) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.publish('change'), this.opts.debounceMs);
  }

  private publish(cause: 'change' | 'resync'): void {
    if (!this.running || this.synced.size < KIND_LIST.length) return;
    const manifests: Manifest[] = [];
    const problems: ManifestProblem[] = [];
    const seen = new Set<string>();
    for (const kind of KIND_LIST) {
      for (const raw of this.informers[kind].list()) {
        const key = `${kind}/${raw.metadata?.name ?? ''}`;
        seen.add(key);
        const result = checkObject(withoutForeignStatus(kind, raw), {
          file: KUBE_ORIGIN,
          object: key,
        });
        if (result.ok) {
          const manifest = {
            ...result.manifest,
            origin: { file: KUBE_ORIGIN, document: 1, line: 1 },
          } as Manifest;
          this.lastValid.set(key, manifest);
          manifests.push(manifest);
        } else {
          problems.push(...result.problems);
          const previous = this.lastValid.get(key);
          if (previous) manifests.push(previous);
        }
      }
    }
    for (const key of this.lastValid.keys()) if (!seen.has(key)) this.lastValid.delete(key);
    const built = buildDesiredState(manifests, { withPods: false });
    if (!built.ok) problems.push(...built.problems);
    // Snapshot first: the valid part of the state applies even while one object is bad.
    if (built.ok) this.emitter.snapshot(built.state, cause, built.warnings);
    if (problems.length > 0) this.emitter.error(new ManifestError(problems), problems);
  }
}

const STATUS_SCHEMAS = {
  FederatedNetwork: federatedNetworkStatus,
  ClusterPeering: clusterPeeringStatus,
};

// Status is ours to write and only informational here. During an upgrade the CRD (and a
// newer agent) may add status fields this agent does not know; that must not invalidate
// the spec, so a status that does not parse is dropped rather than failing the object.
function withoutForeignStatus(kind: CustomKind, raw: KubernetesObject): unknown {
  const { status, ...rest } = raw as KubernetesObject & { status?: unknown };
  if (status === undefined || STATUS_SCHEMAS[kind].safeParse(status).success) return raw;
  return rest;
}
