/**
 * Prometheus metrics of one broker replica (prom-client, its own Registry, so several
 * replicas in one process, as in tests and the lab, never collide). Served on
 * `GET /metrics` only when `metrics.listen` / `--metrics-listen` is set (broker/main.ts).
 *
 * Labels stay bounded however many clusters join: per-request series are labelled by
 * verb and reply code only, KV series by bucket, operation and result, admin calls by
 * method and gRPC code; cluster ids appear nowhere. Federation-wide numbers (clusters,
 * networks, peerings) are gauges read from KV at scrape time, at most once per
 * `federationIntervalMs`, so a scrape every few seconds does not multiply KV reads.
 */
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Store } from './kv-store.js';
import { VERBS, type Reply } from './protocol.js';
import { KEYS, type BucketId, type ClusterRecord, type PeeringsRecord } from './records.js';

/** Federation gauges are read from KV at most this often (ms) by default. */
export const FEDERATION_READ_INTERVAL_MS = 30_000;
/** KV reads in flight while counting the federation. */
const READ_CONCURRENCY = 16;

export interface BrokerMetricsOptions {
  /** See FEDERATION_READ_INTERVAL_MS. */
  readonly federationIntervalMs?: number;
  /** Clock (ms) for the read interval; tests move it. */
  readonly now?: () => number;
}

type KvOp = 'get' | 'read' | 'cas' | 'create' | 'put' | 'delete' | 'keys';
type KvResult = 'ok' | 'conflict' | 'error';

export class BrokerMetrics {
  readonly registry = new Registry();
  private readonly requests: Counter<'verb' | 'code'>;
  private readonly requestSeconds: Histogram<'verb'>;
  private readonly repliesRefused: Counter;
  private readonly kvOps: Counter<'bucket' | 'op' | 'result'>;
  private readonly peerMapWrites: Counter<'result'>;
  private readonly reconcileSeconds: Histogram<'result'>;
  private readonly adminCalls: Counter<'method' | 'code'>;
  private readonly clusters: Gauge;
  private readonly cordoned: Gauge;
  private readonly networks: Gauge;
  private readonly peerings: Gauge<'consent'>;
  private readonly readErrors: Counter;
  private readonly readAt: Gauge;
  private federation: Store | undefined;
  private lastRead = -Infinity;
  private reading: Promise<void> | undefined;
  private readonly intervalMs: number;
  private readonly now: () => number;

  constructor(o: BrokerMetricsOptions = {}) {
    this.intervalMs = o.federationIntervalMs ?? FEDERATION_READ_INTERVAL_MS;
    this.now = o.now ?? Date.now;
    const registers = [this.registry];
    // Every federation gauge reads (or reuses) the same snapshot when scraped.
    const collect = () => this.readFederation();
    this.requests = new Counter({
      name: 'l2fed_broker_requests_total',
      help: 'Agent requests (l2fed.v1.<cluster>.<verb>) handled by this replica, by verb and reply code (OK or the error code); verb "unknown" for subjects that name no verb',
      labelNames: ['verb', 'code'],
      registers,
    });
    this.requestSeconds = new Histogram({
      name: 'l2fed_broker_request_duration_seconds',
      help: 'Time to handle one agent request, from receipt to reply (includes the peer-map recomputes the request causes), by verb',
      labelNames: ['verb'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    for (const verb of VERBS) {
      this.requests.inc({ verb, code: 'OK' }, 0);
      this.requestSeconds.zero({ verb });
    }
    this.repliesRefused = new Counter({
      name: 'l2fed_broker_replies_refused_total',
      help: "Requests dropped unhandled because their reply subject was not the requester's own inbox",
      registers,
    });
    this.kvOps = new Counter({
      name: 'l2fed_broker_kv_operations_total',
      help: 'JetStream KV operations of request handling and recomputes, by bucket, operation and result (conflict: a compare-and-set lost to another writer and is retried; error: the store did not answer)',
      labelNames: ['bucket', 'op', 'result'],
      registers,
    });
    this.peerMapWrites = new Counter({
      name: 'l2fed_broker_peer_map_writes_total',
      help: 'Peer-map writes (written, deleted) and the compare-and-sets that lost a race and were redone (conflict)',
      labelNames: ['result'],
      registers,
    });
    for (const result of ['written', 'deleted', 'conflict']) this.peerMapWrites.inc({ result }, 0);
    this.reconcileSeconds = new Histogram({
      name: 'l2fed_broker_peer_map_reconcile_duration_seconds',
      help: 'Duration of a full recompute of every peer map (the periodic reconcile), by result',
      labelNames: ['result'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
      registers,
    });
    this.reconcileSeconds.zero({ result: 'ok' });
    this.adminCalls = new Counter({
      name: 'l2fed_broker_admin_calls_total',
      help: 'gRPC admin API calls that ended, by method (service/method) and status code name',
      labelNames: ['method', 'code'],
      registers,
    });
    this.clusters = new Gauge({
      name: 'l2fed_broker_registered_clusters',
      help: 'Clusters registered in the federation (read from KV)',
      collect,
      registers,
    });
    this.cordoned = new Gauge({
      name: 'l2fed_broker_cordoned_clusters',
      help: 'Registered clusters an operator cordoned (left out of every peer map)',
      collect,
      registers,
    });
    this.networks = new Gauge({
      name: 'l2fed_broker_networks',
      help: 'Federated networks with a VNI bound, i.e. exported by at least one cluster',
      collect,
      registers,
    });
    this.peerings = new Gauge({
      name: 'l2fed_broker_peerings',
      help: 'Pairs of clusters where one declares the other: consent "mutual" (both declare each other) or "one_sided" (waiting for the other)',
      labelNames: ['consent'],
      collect,
      registers,
    });
    this.readErrors = new Counter({
      name: 'l2fed_broker_federation_read_errors_total',
      help: 'Reads of the federation gauges from KV that failed (the gauges keep their last values)',
      collect,
      registers,
    });
    this.readAt = new Gauge({
      name: 'l2fed_broker_federation_read_timestamp_seconds',
      help: 'When the federation gauges were last read from KV (Unix time; 0: never)',
      collect,
      registers,
    });
  }

  /**
   * Runs one request's handler (broker.ts: handleRequest) and records its verb, reply
   * code and duration. The reply passes through unchanged.
   */
  async request<T extends Reply<unknown>>(subject: string, handle: () => Promise<T>): Promise<T> {
    const started = performance.now();
    const token = subject.split('.')[3] ?? '';
    const verb = (VERBS as readonly string[]).includes(token) ? token : 'unknown';
    const out = await handle();
    this.requests.inc({ verb, code: out.ok ? 'OK' : out.error.code });
    this.requestSeconds.observe({ verb }, (performance.now() - started) / 1000);
    return out;
  }

  /** Counts a request dropped before handling (see Broker.isOwnInbox). */
  replyRefused(): void {
    this.repliesRefused.inc();
  }

  /** Runs and times one full peer-map recompute; its result or error passes through. */
  async reconcile<T>(run: () => Promise<T>): Promise<T> {
    const end = this.reconcileSeconds.startTimer();
    try {
      const r = await run();
      end({ result: 'ok' });
      return r;
    } catch (err) {
      end({ result: 'error' });
      throw err;
    }
  }

  /** Counts one admin call that ended (broker/admin/call-metrics.ts). */
  adminCall(method: string, code: string): void {
    this.adminCalls.inc({ method, code });
  }

  /** `store` with every operation counted (and peer-map writes); behaviour unchanged. */
  meterStore(store: Store): Store {
    const count = (bucket: BucketId, op: KvOp, result: KvResult) => {
      this.kvOps.inc({ bucket, op, result });
      if (bucket !== 'peerMaps' || op === 'get' || op === 'read' || op === 'keys') return;
      if (result === 'conflict') this.peerMapWrites.inc({ result: 'conflict' });
      else if (result === 'ok') {
        this.peerMapWrites.inc({ result: op === 'delete' ? 'deleted' : 'written' });
      }
    };
    const metered = async <T>(
      bucket: BucketId,
      op: KvOp,
      run: () => Promise<T>,
      lost: (r: T) => boolean = () => false,
    ): Promise<T> => {
      let r: T;
      try {
        r = await run();
      } catch (err) {
        count(bucket, op, 'error');
        throw err;
      }
      count(bucket, op, lost(r) ? 'conflict' : 'ok');
      return r;
    };
    const conflict = (r: { type: string }) => r.type === 'conflict';
    return {
      get: (b, k) => metered(b, 'get', () => store.get(b, k)),
      read: (b, k) => metered(b, 'read', () => store.read(b, k)),
      cas: (b, k, v, rev) => metered(b, 'cas', () => store.cas(b, k, v, rev), conflict),
      create: (b, k, v) => metered(b, 'create', () => store.create(b, k, v), conflict),
      put: (b, k, v) => metered(b, 'put', () => store.put(b, k, v)),
      delete: (b, k, rev) =>
        metered(
          b,
          'delete',
          () => store.delete(b, k, rev),
          (ok) => !ok,
        ),
      keys: (b, f) => metered(b, 'keys', () => store.keys(b, f)),
    };
  }

  /**
   * Serve the federation gauges from `store` (unmetered: scrapes are not request work).
   * Without it they are absent.
   */
  watchFederation(store: Store): void {
    this.federation = store;
  }

  /** Refreshes the federation gauges when older than the interval; one read at a time. */
  private readFederation(): Promise<void> {
    const store = this.federation;
    if (!store || this.now() - this.lastRead < this.intervalMs) return this.reading ?? done;
    this.lastRead = this.now();
    this.reading ??= countFederation(store)
      .then((c) => {
        this.clusters.set(c.clusters);
        this.cordoned.set(c.cordoned);
        this.networks.set(c.networks);
        this.peerings.set({ consent: 'mutual' }, c.mutual);
        this.peerings.set({ consent: 'one_sided' }, c.oneSided);
        this.readAt.set(Date.now() / 1000);
      })
      // The gauges keep their last values; the timestamp shows how old they are.
      .catch(() => this.readErrors.inc())
      .finally(() => (this.reading = undefined));
    return this.reading;
  }
}

const done = Promise.resolve();

/** What the federation gauges show, counted from KV. */
export interface FederationCounts {
  readonly clusters: number;
  readonly cordoned: number;
  readonly networks: number;
  readonly mutual: number;
  readonly oneSided: number;
}

/**
 * Counts clusters (and cordoned ones), bound networks and declared pairs from KV: one
 * key listing per bucket, then one read per cluster record and per peerings record.
 */
export async function countFederation(store: Store): Promise<FederationCounts> {
  const [clusterIds, networkKeys, declarers] = await Promise.all([
    store.keys('clusters', '>'),
    store.keys('networks', KEYS.network('*')),
    store.keys('peerings', '>'),
  ]);
  const records = await mapLimit(clusterIds, (id) => store.get<ClusterRecord>('clusters', id));
  const declared = await mapLimit(declarers, (id) => store.get<PeeringsRecord>('peerings', id));
  const edges = new Set<string>();
  for (const [i, rec] of declared.entries()) {
    for (const p of rec?.value.peerings ?? []) {
      if (p.remoteCluster !== declarers[i]) edges.add(`${declarers[i]} ${p.remoteCluster}`);
    }
  }
  let mutual = 0;
  let oneSided = 0;
  for (const e of edges) {
    const [a, b] = e.split(' ') as [string, string];
    if (!edges.has(`${b} ${a}`)) oneSided++;
    else if (a < b) mutual++; // each mutual pair once
  }
  return {
    clusters: records.filter((r) => r !== undefined).length,
    cordoned: records.filter((r) => r?.value.cordon !== undefined).length,
    networks: networkKeys.length,
    mutual,
    oneSided,
  };
}

async function mapLimit<T, R>(items: readonly T[], fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(READ_CONCURRENCY, items.length) }, worker));
  return out;
}
