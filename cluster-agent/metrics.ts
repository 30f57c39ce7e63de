/**
 * Prometheus metrics of one cluster agent (prom-client, its own Registry; default label
 * `cluster=<clusterId>`). Served on `GET /metrics` when the agent config has `metrics:`
 * (cluster-agent/main.ts; default port 9465, next to the gateway's 9464).
 *
 * Labels stay bounded: results are gRPC code names, states and sources are small fixed
 * sets, and no series is labelled by peer or network (the gateway's metrics have those).
 * Events (applies, passes, peer-map confirmations) are recorded as they happen; the
 * broker link, the peer-map source and the rotation state are read from the agent at
 * scrape time (watch()).
 */
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { GatewayCallError, type GatewayApi } from '../gateway/client.js';
import type { Outcome } from './reconcile-queue.js';

/** What the agent tells its metrics (AgentDeps.metrics). */
export interface AgentObserver {
  /** Runs one reconcile pass and records its duration and result. */
  timePass(pass: () => Promise<Outcome>): Promise<Outcome>;
  /**
   * The peer map in force was confirmed: by the broker (now), or loaded from the cache
   * saved at `at`.
   */
  peerMapConfirmed(at?: Date): void;
}

/** What is read from the agent and its broker link at scrape time. */
export interface AgentWatch {
  readonly broker: { readonly connected: boolean };
  readonly agent: {
    readonly view: {
      readonly peerMapFrom: 'broker' | 'cache' | 'none';
      readonly pendingKey: string | undefined;
      /** The tunnel keeps its key until every peer's gateway holds the pending one. */
      readonly rotationWaiting: boolean;
    };
  };
}

const SOURCES = ['broker', 'cache', 'none'] as const;
const ROTATION_STATES = ['idle', 'waiting', 'switching'] as const;

/** A gRPC status name as a label value; anything else is "error" (bounded). */
const resultOf = (err: unknown): string =>
  err instanceof GatewayCallError && /^[A-Z_]{2,32}$/.test(err.code) ? err.code : 'error';

export class AgentMetrics implements AgentObserver {
  readonly registry = new Registry();
  private readonly applies: Counter<'result'>;
  private readonly lastApply: Gauge;
  private readonly passSeconds: Histogram<'result'>;
  private readonly brokerConnected: Gauge;
  private readonly peerMapSource: Gauge<'source'>;
  private readonly peerMapAge: Gauge<'source'>;
  private readonly rotation: Gauge<'state'>;
  private watched: AgentWatch | undefined;
  private peerMapAt: number | undefined;

  constructor(clusterId: string) {
    this.registry.setDefaultLabels({ cluster: clusterId });
    const registers = [this.registry];
    const collect = () => this.collect();
    this.applies = new Counter({
      name: 'l2fed_agent_gateway_applies_total',
      help: 'Gateway Apply calls by result: ok, or the gRPC code of the failure (UNAVAILABLE, INVALID_ARGUMENT, INTERNAL …)',
      labelNames: ['result'],
      registers,
    });
    this.applies.inc({ result: 'ok' }, 0);
    this.lastApply = new Gauge({
      name: 'l2fed_agent_gateway_last_apply_timestamp_seconds',
      help: 'When the last gateway Apply succeeded (Unix time; 0: none since the agent started)',
      registers,
    });
    this.passSeconds = new Histogram({
      name: 'l2fed_agent_reconcile_duration_seconds',
      help: 'Duration of one reconcile pass (gateway key, broker declarations, gateway apply, status), by result: done, requeue (retried with backoff), error (the pass threw)',
      labelNames: ['result'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    this.passSeconds.zero({ result: 'done' });
    this.brokerConnected = new Gauge({
      name: 'l2fed_agent_broker_connected',
      help: '1 while the NATS link to the broker is up, else 0',
      collect,
      registers,
    });
    this.peerMapSource = new Gauge({
      name: 'l2fed_agent_peer_map_source',
      help: 'Where the peer map in force comes from: 1 for the current source (broker, cache: read at start and not confirmed by the broker since, none: no map yet), 0 for the others',
      labelNames: ['source'],
      collect,
      registers,
    });
    this.peerMapAge = new Gauge({
      name: 'l2fed_agent_peer_map_age_seconds',
      help: 'Seconds since the broker last confirmed the peer map in force (source broker) or since the cached map was saved (source cache); absent without a map',
      labelNames: ['source'],
      collect,
      registers,
    });
    this.rotation = new Gauge({
      name: 'l2fed_agent_key_rotation',
      help: 'Key rotation state, 1 for the current one: idle (none), waiting (the next key is announced; the tunnel keeps the current key until every peer gateway holds it), switching',
      labelNames: ['state'],
      collect,
      registers,
    });
  }

  /** `g` with every apply counted by result and the time of the last success kept. */
  gateway(g: GatewayApi): GatewayApi {
    return {
      apply: async (config) => {
        try {
          const r = await g.apply(config);
          this.applies.inc({ result: 'ok' });
          this.lastApply.set(Date.now() / 1000);
          return r;
        } catch (err) {
          this.applies.inc({ result: resultOf(err) });
          throw err;
        }
      },
      getState: () => g.getState(),
      rotateKey: () => g.rotateKey(),
      close: () => g.close(),
    };
  }

  async timePass(pass: () => Promise<Outcome>): Promise<Outcome> {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    try {
      const o = await pass();
      this.passSeconds.observe({ result: o.requeue ? 'requeue' : 'done' }, seconds());
      return o;
    } catch (err) {
      this.passSeconds.observe({ result: 'error' }, seconds());
      throw err;
    }
  }

  peerMapConfirmed(at?: Date): void {
    const ms = at?.getTime() ?? Date.now();
    if (Number.isFinite(ms)) this.peerMapAt = ms;
  }

  /** Read the broker link, the peer-map source and the rotation from here at each scrape. */
  watch(w: AgentWatch): void {
    this.watched = w;
  }

  private collect(): void {
    const w = this.watched;
    if (!w) return;
    const view = w.agent.view;
    this.brokerConnected.set(w.broker.connected ? 1 : 0);
    for (const source of SOURCES) {
      this.peerMapSource.set({ source }, view.peerMapFrom === source ? 1 : 0);
    }
    this.peerMapAge.reset();
    if (view.peerMapFrom !== 'none' && this.peerMapAt !== undefined) {
      this.peerMapAge.set(
        { source: view.peerMapFrom },
        Math.max(0, (Date.now() - this.peerMapAt) / 1000),
      );
    }
    const state =
      view.pendingKey === undefined ? 'idle' : view.rotationWaiting ? 'waiting' : 'switching';
    for (const s of ROTATION_STATES) this.rotation.set({ state: s }, s === state ? 1 : 0);
  }
}
