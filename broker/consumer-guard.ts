/**
 * Bounds the consumers clusters create on the peer-map stream. Current credentials give
 * a cluster no consumer grant (the broker pushes peer maps, peer-map-forwarder.ts); with
 * the older grant (nats-auth.conf from before the push) a cluster's NATS user may create
 * consumers filtered on its own peer-map key, and NATS cannot restrict how many or
 * whether they are durable.
 * So the broker enforces it: on every consumer-created advisory of the stream (and
 * every `intervalMs` as a safety net) it lists the stream's consumers and, per
 * cluster, deletes every durable one (watches are ephemeral ordered consumers) and
 * all but the newest `maxPerCluster`. Only the cluster's own watches are at stake:
 * nobody else can create a consumer on its key. nats.js recreates an ordered consumer
 * it loses, so an honest agent's watch heals.
 */
import type { ConsumerInfo, JetStreamManager, NatsConnection, Subscription } from 'nats';
import type { Logger } from 'pino';
import { BUCKETS } from './records.js';
import { isDns1123Label } from './names.js';

export const PEER_MAP_STREAM = `KV_${BUCKETS.peerMaps}`;
/** Advisory the server publishes when a consumer is created on the peer-map stream. */
export const CONSUMER_CREATED_ADVISORY = `$JS.EVENT.ADVISORY.CONSUMER.CREATED.${PEER_MAP_STREAM}.*`;

/** The cluster whose own key a consumer filters on, or undefined (broker/admin consumers). */
export function watcherCluster(c: ConsumerInfo): string | undefined {
  const prefix = `$KV.${BUCKETS.peerMaps}.`;
  const f = c.config.filter_subject;
  if (!f?.startsWith(prefix)) return undefined;
  const id = f.slice(prefix.length);
  return isDns1123Label(id) ? id : undefined;
}

/** Pure: which consumers to delete so each cluster keeps at most `max` non-durable ones. */
export function consumersToReap(all: readonly ConsumerInfo[], max: number): ConsumerInfo[] {
  const byCluster = new Map<string, ConsumerInfo[]>();
  const reap: ConsumerInfo[] = [];
  for (const c of all) {
    const id = watcherCluster(c);
    if (id === undefined) continue;
    if (c.config.durable_name) {
      reap.push(c);
      continue;
    }
    byCluster.set(id, [...(byCluster.get(id) ?? []), c]);
  }
  for (const list of byCluster.values()) {
    // Newest first: an agent that reconnected has a newer watch than the one it lost.
    list.sort((a, b) => Date.parse(b.created) - Date.parse(a.created));
    reap.push(...list.slice(max));
  }
  return reap;
}

export class ConsumerGuard {
  private timer: NodeJS.Timeout | undefined;
  private pending: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  reaped = 0;

  private constructor(
    private readonly jsm: JetStreamManager,
    private readonly sub: Subscription,
    private readonly maxPerCluster: number,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {
    // A NATS user without the advisory grant (config from before this guard) ends the
    // subscription with an error: log it, keep the timer sweeps, never crash.
    this.watch().catch((err: unknown) => {
      if (!this.stopped)
        this.log.warn(
          { err: String(err) },
          'consumer-created advisories unavailable (regenerate nats-auth.conf with gen-auth); sweeping on the timer only',
        );
    });
    this.schedule(0);
  }

  static async start(
    nc: NatsConnection,
    opts: { maxPerCluster: number; intervalMs: number; log: Logger },
  ): Promise<ConsumerGuard> {
    const jsm = await nc.jetstreamManager();
    // One replica reacts to each advisory; every replica still sweeps on its timer.
    const sub = nc.subscribe(CONSUMER_CREATED_ADVISORY, { queue: 'l2fed-broker-guard' });
    return new ConsumerGuard(jsm, sub, opts.maxPerCluster, opts.intervalMs, opts.log);
  }

  private async watch(): Promise<void> {
    for await (const _ of this.sub) this.soon();
  }

  /** A sweep within a few ms; a burst of advisories costs one sweep. */
  private soon(): void {
    if (this.pending || this.stopped) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      void this.sweep();
    }, 20);
  }

  private schedule(ms: number): void {
    if (this.stopped || this.intervalMs === 0) return;
    this.timer = setTimeout(
      () => void this.sweep().finally(() => this.schedule(this.intervalMs)),
      ms,
    );
    this.timer.unref();
  }

  /** Lists the stream's consumers and deletes what exceeds the bounds. Returns how many. */
  async sweep(): Promise<number> {
    if (this.running) {
      // One sweep at a time; a request during one gets one more right after it.
      await this.running;
      return this.sweep();
    }
    let n = 0;
    this.running = (async () => {
      try {
        const all: ConsumerInfo[] = [];
        // The server lists a consumer deleted mid-listing as null.
        for await (const c of this.jsm.consumers.list(PEER_MAP_STREAM)) if (c) all.push(c);
        for (const c of consumersToReap(all, this.maxPerCluster)) {
          await this.jsm.consumers.delete(PEER_MAP_STREAM, c.name).catch(() => false);
          n++;
        }
        if (n > 0) {
          this.reaped += n;
          this.log.warn(
            { reaped: n, total: this.reaped, maxPerCluster: this.maxPerCluster },
            'deleted durable or surplus consumers clusters created on the peer-map stream',
          );
        }
      } catch (err) {
        if (!this.stopped) this.log.warn({ err: String(err) }, 'consumer sweep failed');
      }
    })();
    await this.running;
    this.running = undefined;
    return n;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.pending);
    this.sub.unsubscribe();
    await this.running;
  }
}
