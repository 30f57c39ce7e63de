/**
 * The broker: answers `l2fed.v1.>` requests in the `l2fed-broker` queue group and
 * keeps all state in JetStream KV. Start as many as you like against one NATS
 * (cluster); each request is handled by exactly one replica and replicas coordinate
 * only through KV compare-and-set. Embeddable: the lab and the admin API start it
 * in-process with `Broker.start()` and stop it with `stop()`.
 */
import { connect, type ConnectionOptions, type NatsConnection, type Subscription } from 'nats';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino, type Logger } from 'pino';
import { resolveConfig, type BrokerConfig, type BrokerConfigInput } from './config.js';
import { KvStore } from './kv-store.js';
import { Federation } from './federation.js';
import { handleRequest } from './request-handler.js';
import { BROKER_QUEUE_GROUP, SUBJECT_PREFIX } from './protocol.js';
import { BUCKETS } from './records.js';
import { inboxPrefix } from './auth-config.js';
import { PeerMapForwarder } from './peer-map-forwarder.js';
import { BrokerMetrics } from './metrics.js';

async function openWithRetry(
  nc: NatsConnection,
  config: BrokerConfig,
  timeoutMs: number,
  log: Logger,
): Promise<KvStore> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await KvStore.open(nc.jetstream(), config);
    } catch (err) {
      if (Date.now() + 500 > deadline) throw err;
      log.info({ attempt, err: String(err) }, 'JetStream not ready, retrying');
      await sleep(500);
    }
  }
}

export interface BrokerOptions {
  /** Use this connection (not closed by stop()). Otherwise one is opened from `connect`. */
  readonly nc?: NatsConnection;
  readonly connect?: ConnectionOptions;
  readonly config?: BrokerConfigInput;
  readonly logger?: Logger;
  /** Replica name for logs. */
  readonly name?: string;
  /**
   * How long start() keeps retrying to open the KV buckets while JetStream is not
   * ready yet (fresh NATS cluster still electing its meta leader). Default 30 s.
   */
  readonly startTimeoutMs?: number;
  /** Where this replica records its metrics (broker/metrics.ts); default a new registry. */
  readonly metrics?: BrokerMetrics;
}

export type BrokerState = 'running' | 'stopping' | 'stopped';

/** Counts since start, for logs, tests and the benchmark. */
export interface BrokerStats {
  handled: number;
  failed: number;
  /** Requests dropped unhandled: their reply subject was not the requester's own inbox. */
  repliesRefused: number;
}

/**
 * True when `reply` is an inbox of the cluster named in `subject`
 * (`_INBOX_<id>.<token>…`, see auth-config.ts). The broker publishes with its own NATS
 * rights, so a reply anywhere else would let a cluster make the broker write for it:
 * another cluster's KV key, another cluster's inbox, or a JetStream API call. The id
 * token need not be valid (a malformed id still gets its error reply in its own inbox
 * namespace); it must be a plain token.
 */
export function isOwnInbox(subject: string, reply: string): boolean {
  const id = subject.split('.')[2] ?? '';
  if (!subject.startsWith(`${SUBJECT_PREFIX}.`) || !/^[A-Za-z0-9_-]+$/.test(id)) return false;
  const prefix = `${inboxPrefix(id)}.`;
  // Tokens only after the prefix: no wildcards, whitespace or empty tokens.
  return (
    reply.startsWith(prefix) &&
    /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(reply.slice(prefix.length))
  );
}

export class Broker {
  private stateValue: BrokerState = 'running';
  private inFlight = 0;
  private readonly waiters: (() => void)[] = [];
  private idle: (() => void) | undefined;
  private reconcileTimer: NodeJS.Timeout | undefined;
  private reconciling: Promise<unknown> | undefined;
  private readonly loop: Promise<void>;
  readonly stats: BrokerStats = { handled: 0, failed: 0, repliesRefused: 0 };

  private constructor(
    readonly nc: NatsConnection,
    private readonly ownsConnection: boolean,
    readonly config: BrokerConfig,
    readonly federation: Federation,
    private readonly sub: Subscription,
    private readonly log: Logger,
    /** Publishes each peer-map change to its cluster (peer-map-forwarder.ts). */
    readonly forwarder: PeerMapForwarder,
    readonly metrics: BrokerMetrics,
  ) {
    // The loop ends when the subscription closes; an error there (e.g. the
    // connection closed for good) is logged, never an unhandled rejection.
    this.loop = this.serve().catch((err: unknown) =>
      this.log.error({ err: String(err) }, 'request loop ended with an error'),
    );
    this.scheduleReconcile();
  }

  /** Recomputes every peer map now (see Federation.reconcile). Safe at any time. */
  async reconcile(): Promise<{ refreshed: number }> {
    return this.metrics.reconcile(() => this.federation.reconcile());
  }

  private scheduleReconcile(): void {
    const every = this.config.reconcileIntervalMs;
    if (every === 0 || this.stateValue !== 'running') return;
    // Jitter so replicas started together do not reconcile in lockstep.
    this.reconcileTimer = setTimeout(
      () => {
        this.reconciling = this.reconcile()
          .then((r) => this.log.debug(r, 'reconciled peer maps'))
          .catch((err: unknown) => this.log.warn({ err: String(err) }, 'reconcile failed'))
          .finally(() => this.scheduleReconcile());
      },
      every * (0.75 + Math.random() / 2),
    );
    this.reconcileTimer.unref();
  }

  /**
   * Connects (unless given a connection), opens or creates the KV buckets and starts
   * answering requests. Safe to call for several replicas at once.
   */
  static async start(opts: BrokerOptions = {}): Promise<Broker> {
    const config = resolveConfig(opts.config);
    const log = (opts.logger ?? pino({ level: process.env.L2FED_LOG_LEVEL ?? 'warn' })).child({
      component: 'broker',
      replica: opts.name,
    });
    const owns = opts.nc === undefined;
    const nc =
      opts.nc ??
      (await connect({
        name: `l2fed-broker${opts.name ? `-${opts.name}` : ''}`,
        maxReconnectAttempts: -1,
        reconnectTimeWait: 250,
        // nats.js otherwise captures a stack trace on every request: ~20 % of the
        // broker's CPU under load (issue 15 profile); errors still name the KV operation.
        noAsyncTraces: true,
        ...opts.connect,
      }));
    let sub: Subscription | undefined;
    let forwarder: PeerMapForwarder | undefined;
    try {
      const store = await openWithRetry(nc, config, opts.startTimeoutMs ?? 30_000, log);
      const metrics = opts.metrics ?? new BrokerMetrics();
      metrics.watchFederation(store);
      const federation = new Federation(metrics.meterStore(store), config);
      forwarder = new PeerMapForwarder(nc, log);
      sub = nc.subscribe(`${SUBJECT_PREFIX}.>`, { queue: BROKER_QUEUE_GROUP });
      // Started means reachable: until the server has the subscription, a request that
      // races it gets "no responders" (seen when an agent was already waiting).
      await nc.flush();
      log.info({ buckets: Object.values(BUCKETS), replicas: config.replicas }, 'broker started');
      return new Broker(nc, owns, config, federation, sub, log, forwarder, metrics);
    } catch (err) {
      sub?.unsubscribe();
      await forwarder?.stop();
      if (owns) await nc.close();
      throw err;
    }
  }

  get state(): BrokerState {
    return this.stateValue;
  }

  private async serve(): Promise<void> {
    for await (const msg of this.sub) {
      if (msg.reply && !isOwnInbox(msg.subject, msg.reply)) {
        // Dropped before handling: a request nobody may be told about changes nothing.
        this.stats.repliesRefused++;
        this.metrics.replyRefused();
        this.logRefused(msg.subject, msg.reply);
        continue;
      }
      await this.acquire();
      void this.handle(msg.subject, msg.data, msg.reply, (data) => msg.respond(data)).finally(() =>
        this.release(),
      );
    }
  }

  private lastRefusedLog = 0;
  private refusedSinceLog = 0;

  /** At most one warning a second, so a flood of bad requests cannot flood the log. */
  private logRefused(subject: string, reply: string): void {
    this.refusedSinceLog++;
    if (Date.now() - this.lastRefusedLog < 1000) return;
    this.log.warn(
      {
        subject: subject.slice(0, 200),
        reply: reply.slice(0, 200),
        dropped: this.refusedSinceLog,
        droppedTotal: this.stats.repliesRefused,
      },
      "request dropped: its reply subject is not the requester's own inbox (_INBOX_<clusterId>.…)",
    );
    this.lastRefusedLog = Date.now();
    this.refusedSinceLog = 0;
  }

  private async handle(
    subject: string,
    data: Uint8Array,
    reply: string | undefined,
    respond: (data: Uint8Array) => boolean,
  ): Promise<void> {
    const started = Date.now();
    const out = await this.metrics.request(subject, () =>
      handleRequest(this.federation, subject, data, this.config.maxPayloadBytes),
    );
    if (out.ok) this.stats.handled++;
    else this.stats.failed++;
    const level = out.ok ? 'debug' : out.error.code === 'INTERNAL' ? 'error' : 'info';
    this.log[level](
      { subject, ms: Date.now() - started, error: out.ok ? undefined : out.error },
      out.ok ? 'request handled' : 'request refused',
    );
    if (!reply) return; // a plain publish has nobody to answer
    try {
      respond(new TextEncoder().encode(JSON.stringify(out)));
    } catch (err) {
      this.log.warn({ subject, err }, 'could not send reply');
    }
  }

  private async acquire(): Promise<void> {
    if (this.inFlight < this.config.maxInFlight) {
      this.inFlight++;
      return;
    }
    await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private release(): void {
    const next = this.waiters.shift();
    if (next) {
      next(); // hand the slot over
      return;
    }
    this.inFlight--;
    if (this.inFlight === 0) this.idle?.();
  }

  /**
   * Stops taking requests, finishes the ones in flight, then closes the connection
   * if the broker opened it. Idempotent.
   */
  async stop(): Promise<void> {
    if (this.stateValue !== 'running') {
      await this.loop.catch(() => undefined);
      return;
    }
    this.stateValue = 'stopping';
    clearTimeout(this.reconcileTimer);
    if (!this.nc.isClosed()) await this.sub.drain().catch(() => undefined);
    else this.sub.unsubscribe();
    await this.loop.catch(() => undefined);
    await this.reconciling;
    if (this.inFlight > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    await this.forwarder.stop();
    if (this.ownsConnection && !this.nc.isClosed()) await this.nc.drain().catch(() => undefined);
    this.stateValue = 'stopped';
    this.log.info(this.stats, 'broker stopped');
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
