/**
 * The cluster agent: makes this cluster a member of the federation. It follows the
 * desired state (a source), the broker (registration, exports, peerings, the peer map)
 * and the gateway (whole-config Apply, health), and writes status.
 *
 * One reconcile pass at a time (ReconcileQueue) over the newest state; every event just
 * records what it learnt and triggers a pass. A pass runs small handlers, each of which
 * returns "requeue?"; any requeue retries the pass with backoff and jitter. The data plane
 * never waits for the broker: the gateway is programmed from the last known peer map
 * (on disk, PeerMapCache) while the broker is unreachable, and the agent re-sends its
 * whole declaration when the broker comes back, so changes made meanwhile catch up.
 */
import { BrokerReplyError } from '../broker/errors.js';
import type { PeerMap } from '../broker/records.js';
import { DEFAULT_VXLAN_PORT, type GatewayConfigInput } from '../gateway/config.js';
import type { Logger } from '../lib/log.js';
import { isRetryableBrokerError, type BrokerApi, type BrokerEvent } from './broker-link.js';
import { canonicalJson, type DesiredState } from './desired-state.js';
import {
  activeKey,
  afterApply,
  gatewayKey,
  pendingKey,
  rotationWait,
  UNKNOWN_KEY,
  type GatewayKey,
} from './gateway-key.js';
import type {
  GatewayApi,
  GatewayApplyResult,
  GatewayReport,
  HealthReport,
} from '../gateway/client.js';
import {
  bootstrapGatewayConfig,
  buildGatewayConfig,
  mtuAsks,
  type BuildGatewayConfigResult,
  type GatewaySettings,
} from './gateway-config.js';
import { healthRequestFrom } from './health-report.js';
import type { PeerMapCache } from './peer-map-cache.js';
import { checkPeerMap } from './peer-map-schema.js';
import { combine, DONE, ReconcileQueue, requeue, type Outcome } from './reconcile-queue.js';
import type { DesiredStateSource, SourceEvent } from './source.js';
import { buildStatuses } from './status-builder.js';
import type { AgentSummary, StatusSink, TunnelDetail } from './status-sink.js';
import type { PeeringStatusInput } from './status-writer.js';
import type { BackoffOptions } from './backoff.js';
import { GatewayCallError } from '../gateway/client.js';
import type { AgentObserver } from './metrics.js';

/**
 * The gateway.v1 API revision (ApplyResponse.api_revision) that honours `keepKey` and
 * peers' `nextPublicKey`. An older gateway drops both unread (proto3), so acknowledging a
 * next key it was sent, or rotating with keepKey, would break tunnels without a word.
 */
const STANDBY_KEYS_REVISION = 1;

export interface AgentSettings extends GatewaySettings {
  /** Endpoints other gateways dial, sent to the broker. */
  readonly endpoints: readonly string[];
  readonly bootstrapTransitAddress: string;
  readonly healthPollMs: number;
  /** The resync interval (ms) after activity; resyncs that find nothing back off from it. */
  readonly resyncMs: number;
  /** The most a resync interval backs off to while idle (ms); default 16 × resyncMs. */
  readonly resyncMaxMs?: number;
  /**
   * A peering status whose only change is a measurement (RTT, handshake time) is
   * rewritten at most this often (ms); default 60 s. Any other change is written at once.
   */
  readonly measurementRefreshMs?: number;
  /** Rotate the gateway key this often; absent = only when asked (RotateKey on the gateway). */
  readonly keyRotationMs?: number;
  readonly backoff: BackoffOptions;
}

export interface AgentDeps {
  readonly settings: AgentSettings;
  readonly source: DesiredStateSource;
  readonly broker: BrokerApi;
  readonly gateway: GatewayApi;
  readonly status: StatusSink;
  readonly cache: PeerMapCache;
  readonly log: Logger;
  readonly random?: () => number;
  readonly clock?: () => Date;
  /** Told of every pass and peer-map confirmation (cluster-agent/metrics.ts). */
  readonly metrics?: AgentObserver;
}

/**
 * The delay (ms) before the next resync: resyncMs (`minMs`) after activity (an apply
 * that ran steps, a new registration, peer map or desired state), else double the last
 * delay up to `maxMs`. A resync re-declares everything to the broker, and each
 * declaration costs the broker a recompute of this cluster's and all its peers' maps, so
 * an idle federation must not pay it every resyncMs.
 */
export function nextResyncDelay(
  lastMs: number,
  active: boolean,
  o: { readonly minMs: number; readonly maxMs: number },
): number {
  return active ? o.minMs : Math.max(o.minMs, Math.min(o.maxMs, lastMs * 2));
}

/**
 * A peering's status without what every health check measures anew (RTT, loss, handshake
 * time, the RTT in TunnelHealthy's message): what must reach the status at once.
 */
function withoutMeasurements(p: {
  readonly status: PeeringStatusInput;
  readonly tunnel?: TunnelDetail;
}): unknown {
  const { rtt: _rtt, lastHandshake: _handshake, ...status } = p.status;
  return {
    status: {
      ...status,
      conditions: status.conditions.map((c) =>
        c.reason === 'HandshakeAndProbeOk' ? { ...c, message: '' } : c,
      ),
    },
    tunnel: p.tunnel && { state: p.tunnel.state, reason: p.tunnel.reason },
  };
}

type Applied = { ok: true; report: GatewayReport } | { ok: false; error: string };

const msg = (err: unknown) => (err instanceof Error ? err.message : String(err));

/**
 * One agent. start() and stop() are idempotent; everything else happens in the
 * serialised reconcile pass, so no two handlers ever run at once.
 */
export class Agent {
  private readonly queue: ReconcileQueue;
  private readonly unsubscribe: (() => void)[] = [];
  private timers: NodeJS.Timeout[] = [];
  private started = false;
  private stopped = false;

  // What the agent knows; written by events and handlers, read by the pass.
  private desired: DesiredState | undefined;
  private sourceError: string | undefined;
  private peerMap: PeerMap | undefined;
  private peerMapFrom: AgentSummary['peerMapFrom'] = 'none';
  /** Why the newest peer map was refused; the last good one (peerMap) stays in force. */
  private peerMapError: string | undefined;
  private cachedConfig: GatewayConfigInput | undefined;
  /** The gateway's key and where its rotation stands (gateway-key.ts). */
  private key: GatewayKey = UNKNOWN_KEY;
  /** The key the broker holds for this cluster (a rotation must name it). */
  private registeredKey: string | undefined;
  /** The schedule asked for a new key; taken once the current key is known and in use. */
  private rotationDue = false;
  /** The next key the broker acknowledged as announced (announceNextKey). */
  private announcedNext: string | undefined;
  /** `<peer> <key>` of peers' next keys acknowledged to the broker (ackNextKeys). */
  private readonly acked = new Set<string>();
  /** While our tunnel waits for peers to hold our next key: whom, for status. */
  private rotationStatus: string | undefined;
  private tunnelKind: string | undefined;
  /** API revision of the gateway's last Apply reply; undefined before the first. */
  private gatewayRevision: number | undefined;
  private registeredAs: string | undefined;
  /**
   * The broker refused `vxlanPort` as an unknown field (it is older than the field):
   * registrations leave it out, as older agents do, so a rolling upgrade that reaches
   * an agent first does not cut the cluster off. Reset on every reconnect and resync
   * (forgetPublished), so an upgraded broker gets the port.
   */
  private brokerLacksVxlanPort = false;
  /** The warning about it is logged once per process, not on every resync's retry. */
  private vxlanPortWarned = false;
  private transitAddress: string | undefined;
  private publishedVersion: string | undefined;
  private appliedKey: string | undefined;
  private applied: Applied | undefined;
  private build: BuildGatewayConfigResult | undefined;
  private loggedPeerProblems = '[]';
  private cacheDirty = false;
  private health: HealthReport | undefined;
  private reportedHealthAt: string | undefined;
  private brokerError: string | undefined;
  private gatewayError: string | undefined;
  private lastApply: { at: string; steps: number } | undefined;
  /** What was last written per status key: its text, its text without measurements, when. */
  private readonly written = new Map<string, { text: string; steady?: string; at: number }>();
  /** Something changed since the last resync (see nextResyncDelay). */
  private activeSinceResync = false;
  private resyncTimer: NodeJS.Timeout | undefined;
  private resyncDueAt = 0;

  constructor(private readonly d: AgentDeps) {
    const pass = () => this.pass();
    this.queue = new ReconcileQueue(() => d.metrics?.timePass(pass) ?? pass(), {
      backoff: d.settings.backoff,
      random: d.random,
      onPass: (o, attempt, delay) => {
        if (o.requeue) d.log.info({ reason: o.reason, attempt, delayMs: delay }, 'requeue');
      },
    });
  }

  /** Loads the cache, starts source, broker link and timers, runs the first pass. */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const cached = await this.d.cache.load();
    if (cached.type === 'hit') {
      this.peerMap = cached.state.peerMap;
      this.peerMapFrom = cached.state.peerMap ? 'cache' : 'none';
      if (cached.state.peerMap) this.d.metrics?.peerMapConfirmed(new Date(cached.state.savedAt));
      this.cachedConfig = cached.state.gatewayConfig;
      this.registeredKey = cached.state.registeredKey;
      this.d.log.info({ savedAt: cached.state.savedAt }, 'starting from the peer-map cache');
    } else if (cached.type === 'invalid') {
      this.d.log.warn({ reason: cached.reason }, 'ignoring the peer-map cache');
    }
    this.unsubscribe.push(this.d.source.subscribe((e) => this.onSource(e)));
    this.unsubscribe.push(this.d.broker.subscribe((e) => this.onBroker(e)));
    this.d.broker.start();
    this.queue.trigger(); // program the gateway from the cache before the source is read
    await this.d.source.start();
    this.every(this.d.settings.healthPollMs, () => void this.pollGateway());
    this.scheduleResync(this.d.settings.resyncMs);
    const rotateEvery = this.d.settings.keyRotationMs;
    if (rotateEvery) {
      this.every(rotateEvery, () => {
        this.rotationDue = true;
        this.queue.trigger();
      });
    }
  }

  /** Stops timers, the loop, the source and the broker link. The data plane stays. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.resyncTimer);
    for (const u of this.unsubscribe) u();
    await this.queue.stop();
    await this.d.source.stop();
    await this.d.broker.stop();
    this.d.gateway.close();
  }

  /** Resolves when no pass is running or scheduled (tests). */
  idle(): Promise<void> {
    return this.queue.idle();
  }

  /** A read-only view for tests and logs. */
  get view() {
    return {
      publicKey: activeKey(this.key),
      pendingKey: pendingKey(this.key),
      registeredKey: this.registeredKey,
      desiredVersion: this.desired?.version,
      registered: this.registeredAs !== undefined,
      publishedVersion: this.publishedVersion,
      peerMapFrom: this.peerMapFrom,
      applied: this.applied,
      failures: this.queue.failures,
      rotationWaiting: this.rotationStatus !== undefined,
    };
  }

  /** Resyncs on a timer that backs off while idle (nextResyncDelay). */
  private scheduleResync(ms: number): void {
    clearTimeout(this.resyncTimer);
    if (this.stopped) return;
    this.resyncDueAt = Date.now() + ms;
    this.resyncTimer = setTimeout(() => {
      const min = this.d.settings.resyncMs;
      const max = Math.max(min, this.d.settings.resyncMaxMs ?? 16 * min);
      const next = nextResyncDelay(ms, this.activeSinceResync, { minMs: min, maxMs: max });
      this.activeSinceResync = false;
      this.resync();
      this.scheduleResync(next);
    }, ms);
    this.resyncTimer.unref();
  }

  /** Something changed: the next resync comes within resyncMs again (never later). */
  private noteActivity(): void {
    this.activeSinceResync = true;
    const min = this.d.settings.resyncMs;
    if (this.resyncTimer && this.resyncDueAt > Date.now() + min) this.scheduleResync(min);
  }

  private every(ms: number, fn: () => void): void {
    const t = setInterval(fn, ms);
    t.unref();
    this.timers.push(t);
  }

  private onSource(e: SourceEvent): void {
    if (e.type === 'snapshot') {
      if (e.state.version !== this.desired?.version) this.noteActivity();
      this.desired = e.state;
      this.sourceError = undefined;
    } else {
      this.sourceError = e.error.message;
      this.d.log.warn(
        { err: e.error.message },
        'desired state invalid; keeping the last good state',
      );
    }
    this.queue.trigger();
  }

  private onBroker(e: BrokerEvent): void {
    if (e.type === 'connection') {
      // Re-declare everything after a reconnect: the broker may have missed changes.
      if (e.connected) this.forgetPublished();
    } else if (e.type === 'peer-map-invalid') {
      this.refusePeerMap(e.reason);
    } else {
      // No map means "nothing known yet" (not registered, or a fresh store); keep ours.
      if (e.peerMap === undefined) return;
      // Untrusted input: a map that fails the check must not reach any handler.
      const r = checkPeerMap(e.peerMap, this.d.settings.clusterId);
      if (!r.ok) return this.refusePeerMap(r.message);
      const wasRefused = this.peerMapError !== undefined;
      this.peerMapError = undefined;
      this.d.metrics?.peerMapConfirmed();
      if (canonicalJson(r.peerMap) === canonicalJson(this.peerMap)) {
        this.peerMapFrom = 'broker';
        if (wasRefused) this.queue.trigger(); // the status changes
        return;
      }
      this.logMtuChanges(this.peerMap, r.peerMap);
      this.noteActivity();
      this.peerMap = r.peerMap;
      this.peerMapFrom = 'broker';
      this.cacheDirty = true;
    }
    this.queue.trigger();
  }

  /** A member joining or leaving moves a network's agreed MTU for every member: say so. */
  private logMtuChanges(before: PeerMap | undefined, after: PeerMap): void {
    for (const n of after.networks) {
      const was = before?.networks.find((b) => b.name === n.name)?.mtu;
      if (!n.mtu || !was || was.value === n.mtu.value) continue;
      this.d.log.warn(
        {
          network: n.name,
          from: was.value,
          to: n.mtu.value,
          setBy: n.mtu.setBy,
          limit: n.mtu.limit,
        },
        n.mtu.value < was.value ? 'network MTU lowered by a member' : 'network MTU raised',
      );
    }
  }

  /** Keeps the last good peer map (and so the data plane and cache) and says why. */
  private refusePeerMap(reason: string): void {
    const kept =
      this.peerMapFrom === 'none'
        ? 'no peer map is in force yet (the gateway keeps its current config)'
        : `keeping the last good peer map (from ${this.peerMapFrom}) and the data plane built from it`;
    const error = `peer map from the broker refused: ${reason}; ${kept}; report this to the broker's operators`;
    if (error === this.peerMapError) return;
    this.peerMapError = error;
    this.d.log.warn({ err: reason }, 'peer map refused; keeping the last good one');
    this.queue.trigger();
  }

  private forgetPublished(): void {
    this.registeredAs = undefined;
    // A reconnect may be to an upgraded broker: offer the port again.
    this.brokerLacksVxlanPort = false;
    this.publishedVersion = undefined;
    // Re-sent too (idempotent): the broker may have missed them.
    this.announcedNext = undefined;
    this.acked.clear();
  }

  /** Level-triggered repair: re-declare to the broker and re-apply to the gateway. */
  private resync(): void {
    this.forgetPublished();
    this.appliedKey = undefined;
    this.queue.trigger();
  }

  private async pollGateway(): Promise<void> {
    try {
      const st = await this.d.gateway.getState();
      if (!st.report && this.key.phase !== 'unknown') {
        // The gateway process restarted and lost its config: apply again.
        this.appliedKey = undefined;
        this.queue.trigger();
      }
      if (
        st.report &&
        this.key.phase !== 'unknown' &&
        st.pendingPublicKey !== pendingKey(this.key)
      ) {
        // Somebody (an operator, the lab) rotated the key on the gateway: publish it.
        this.key = gatewayKey(this.key.active, st.pendingPublicKey);
        this.queue.trigger();
      }
      if (st.health && st.health.at !== this.health?.at) {
        this.health = st.health;
        this.queue.trigger();
      }
    } catch (err) {
      this.gatewayError = msg(err);
    }
  }

  private async pass(): Promise<Outcome> {
    const outcomes = [await this.ensureGatewayKey()];
    outcomes.push(await this.startRotation());
    outcomes.push(await this.rotateAtBroker());
    outcomes.push(await this.registerCluster());
    outcomes.push(await this.announceNextKey());
    // Gateway before broker: a withdrawn peering or network leaves the data plane at
    // once (local consent), not after two broker round trips.
    outcomes.push(await this.programGateway());
    outcomes.push(await this.ackNextKeys());
    outcomes.push(await this.rotateAtBroker()); // commit a switch programGateway just made
    outcomes.push(await this.publishDesired());
    outcomes.push(await this.reportHealth());
    outcomes.push(await this.writeStatus());
    return combine(outcomes);
  }

  private noteApplied(config: GatewayConfigInput, r: GatewayApplyResult): void {
    this.key = afterApply(this.key, r.report.publicKey);
    this.tunnelKind = r.report.tunnelKind;
    if (r.apiRevision < STANDBY_KEYS_REVISION && this.gatewayRevision !== r.apiRevision) {
      this.d.log.warn({ apiRevision: r.apiRevision }, gatewayTooOld(r.apiRevision));
    }
    this.gatewayRevision = r.apiRevision;
    this.appliedKey = canonicalJson(config);
    this.applied = { ok: true, report: r.report };
    this.gatewayError = undefined;
    this.lastApply = { at: (this.d.clock?.() ?? new Date()).toISOString(), steps: r.steps.length };
    if (r.steps.length > 0) this.noteActivity();
    if (r.steps.length > 0) this.d.log.info({ steps: r.steps }, 'gateway applied');
  }

  /**
   * Handler: know the gateway's public key. From GetState when the gateway has a config,
   * else by applying the cached config (data plane up at once) or a bootstrap config.
   */
  private async ensureGatewayKey(): Promise<Outcome> {
    if (this.key.phase !== 'unknown') return DONE;
    try {
      const st = await this.d.gateway.getState();
      if (st.report) {
        this.key = gatewayKey(st.report.publicKey, st.pendingPublicKey);
        this.tunnelKind = st.report.tunnelKind;
        // An apply would switch to a pending key the peers may not know yet.
        if (!this.cachedConfig || this.key.phase === 'rotating') return DONE;
      }
      const config =
        this.cachedConfig ??
        bootstrapGatewayConfig(this.d.settings, this.d.settings.bootstrapTransitAddress);
      this.noteApplied(config, await this.d.gateway.apply(config));
      return DONE;
    } catch (err) {
      this.gatewayError = msg(err);
      if (err instanceof GatewayCallError && err.code === 'INVALID_ARGUMENT' && this.cachedConfig) {
        this.d.log.warn({ err: msg(err) }, 'cached gateway config refused; bootstrapping instead');
        this.cachedConfig = undefined;
      }
      return requeue(`gateway: ${msg(err)}`);
    }
  }

  /** Handler: on schedule, have the gateway write a new key (it stays pending). */
  private async startRotation(): Promise<Outcome> {
    if (!this.rotationDue || this.key.phase !== 'in-use') return DONE;
    // Only a gateway known to keep its key while peers catch up (keepKey) may rotate.
    if (this.gatewayRevision === undefined) return DONE; // the next apply tells
    if (this.gatewayRevision < STANDBY_KEYS_REVISION) {
      this.rotationDue = false; // gatewayTooOld, in the log and status, says why
      return DONE;
    }
    try {
      const { publicKey } = await this.d.gateway.rotateKey();
      this.key = gatewayKey(this.key.active, publicKey);
      this.rotationDue = false;
      this.d.log.info({ publicKey }, 'gateway key rotated; publishing it');
      return DONE;
    } catch (err) {
      this.gatewayError = msg(err);
      return requeue(`rotate key: ${msg(err)}`);
    }
  }

  /**
   * Handler: commit a switched key at the broker (its key := the one the tunnel uses).
   * Peers' gateways promoted it already when it handshaked; their maps now drop the old.
   */
  private async rotateAtBroker(): Promise<Outcome> {
    const want = activeKey(this.key);
    if (!want || !this.registeredKey || this.registeredKey === want) return DONE;
    if (!this.d.broker.connected) return requeue('broker unreachable');
    try {
      const r = await this.d.broker.rotateKey({ previousKey: this.registeredKey, publicKey: want });
      this.d.log.info({ publicKey: want, rotated: r.rotated }, 'broker holds the new key');
      this.registeredKey = r.cluster.publicKey;
      this.registeredAs = undefined;
      this.cacheDirty = true;
      this.brokerError = undefined;
      return DONE;
    } catch (err) {
      this.brokerError = msg(err);
      return requeue(`rotate key at the broker: ${msg(err)}`);
    }
  }

  /**
   * Handler: announce the gateway's pending key as our next key (broker key-rotation.ts),
   * so peers' gateways install it as a standby entry and acknowledge it.
   */
  private async announceNextKey(): Promise<Outcome> {
    const pending = pendingKey(this.key);
    const active = activeKey(this.key);
    if (!pending || this.registeredKey !== active || this.announcedNext === pending) return DONE;
    if (this.registeredAs === undefined) return DONE; // registerCluster goes first
    if (!this.d.broker.connected) return requeue('broker unreachable');
    try {
      await this.d.broker.announceKey({ publicKey: active!, nextKey: pending });
      this.d.log.info({ nextKey: pending }, 'next key announced; waiting for peers to hold it');
      this.announcedNext = pending;
      this.brokerError = undefined;
      return DONE;
    } catch (err) {
      this.brokerError = msg(err);
      return requeue(`announce the next key: ${msg(err)}`);
    }
  }

  /**
   * Handler: tell the broker which peers' next keys the gateway holds now (the applied
   * config's standby entries), so those peers may switch. Refused acks (the peer moved
   * on, or is no peer any more) are not retried: the next map says what is current.
   */
  private async ackNextKeys(): Promise<Outcome> {
    const config = this.applied?.ok ? this.cachedConfig : undefined;
    // A gateway older than standby keys dropped them: it holds none, so nothing to ack.
    const standby = (this.gatewayRevision ?? 0) >= STANDBY_KEYS_REVISION;
    const held = (standby ? (config?.peers ?? []) : []).flatMap((p) =>
      p.nextPublicKey ? [{ cluster: p.name, nextKey: p.nextPublicKey }] : [],
    );
    const current = new Set(held.map((h) => `${h.cluster} ${h.nextKey}`));
    for (const k of this.acked) if (!current.has(k)) this.acked.delete(k);
    const todo = held.filter((h) => !this.acked.has(`${h.cluster} ${h.nextKey}`));
    if (todo.length === 0) return DONE;
    if (!this.d.broker.connected || this.registeredAs === undefined)
      return requeue('broker unreachable');
    let outcome = DONE;
    for (const h of todo) {
      try {
        await this.d.broker.ackKey(h);
        this.acked.add(`${h.cluster} ${h.nextKey}`);
      } catch (err) {
        if (isRetryableBrokerError(err)) {
          outcome = requeue(`acknowledge ${h.cluster}'s next key: ${msg(err)}`);
          continue;
        }
        this.d.log.info({ peer: h.cluster, err: msg(err) }, 'next key acknowledgement refused');
        this.acked.add(`${h.cluster} ${h.nextKey}`);
      }
    }
    return outcome;
  }

  /** Handler: register (idempotent on the broker) with the current key and endpoints. */
  private async registerCluster(): Promise<Outcome> {
    const announced = activeKey(this.key);
    if (!announced) return DONE; // ensureGatewayKey already asked for a requeue
    // Mid-rotation the broker holds the old key; rotateAtBroker goes first.
    if (this.registeredKey && this.registeredKey !== announced) return DONE;
    const capabilities = this.tunnelKind ? [this.tunnelKind.replace(/[^a-z0-9-]/g, '-')] : [];
    const body = {
      publicKey: announced,
      endpoints: [...this.d.settings.endpoints],
      capabilities,
      // The broker pairs only clusters whose VXLAN devices use one port (peer-map.ts).
      ...(this.brokerLacksVxlanPort
        ? {}
        : { vxlanPort: this.d.settings.vxlanPort ?? DEFAULT_VXLAN_PORT }),
    };
    const key = canonicalJson(body);
    if (this.registeredAs === key) return DONE;
    if (!this.d.broker.connected) return requeue('broker unreachable');
    try {
      const r = await this.d.broker.register(body);
      if (r.created) this.noteActivity(); // the broker had lost us: a repair
      this.registeredAs = key;
      if (this.registeredKey !== r.cluster.publicKey) this.cacheDirty = true;
      this.registeredKey = r.cluster.publicKey;
      this.transitAddress = r.cluster.transitAddress;
      this.brokerError = undefined;
      return DONE;
    } catch (err) {
      if (
        err instanceof BrokerReplyError &&
        err.field === 'vxlanPort' &&
        /unknown field/.test(err.message) &&
        !this.brokerLacksVxlanPort
      ) {
        this.brokerLacksVxlanPort = true;
        this.d.log[this.vxlanPortWarned ? 'debug' : 'warn'](
          { err: msg(err) },
          'the broker does not know vxlanPort (older than this agent): registering without it, ' +
            'so it cannot check that peers use the same VXLAN port; upgrade the broker',
        );
        this.vxlanPortWarned = true;
        return requeue('register again without vxlanPort', 0);
      }
      this.brokerError = msg(err);
      // A replaced gateway's key is accepted at a time the broker names: retry right then.
      const within = err instanceof BrokerReplyError ? err.retryAfterMs : undefined;
      return isRetryableBrokerError(err)
        ? requeue(`register: ${msg(err)}`)
        : requeue(msg(err), within === undefined ? undefined : within + 250);
    }
  }

  /** Handler: declare exports and peerings (whole sets, idempotent) for the newest state. */
  private async publishDesired(): Promise<Outcome> {
    const desired = this.desired;
    if (!desired || this.registeredAs === undefined) return DONE;
    if (this.publishedVersion === desired.version) return DONE;
    try {
      await this.d.broker.setExports(
        desired.networks.map((n) => n.metadata.name),
        mtuAsks(desired, this.d.settings),
      );
      await this.d.broker.setPeerings(
        desired.peerings.map((p) =>
          p.spec.networks === undefined
            ? { remoteCluster: p.spec.remoteCluster }
            : { remoteCluster: p.spec.remoteCluster, networks: [...p.spec.networks] },
        ),
      );
      this.publishedVersion = desired.version;
      this.brokerError = undefined;
      return DONE;
    } catch (err) {
      this.brokerError = msg(err);
      return requeue(`publish: ${msg(err)}`);
    }
  }

  /** Handler: build the whole gateway config and apply it when it changed. */
  private async programGateway(): Promise<Outcome> {
    const desired = this.desired;
    if (this.key.phase === 'unknown' || !desired) return DONE;
    const map =
      this.peerMap ??
      (this.transitAddress
        ? {
            cluster: this.d.settings.clusterId,
            transitAddress: this.transitAddress,
            networks: [],
            peers: [],
          }
        : undefined);
    if (!map) return DONE; // nothing allocated yet: the bootstrap config stays
    const ownKeys = [activeKey(this.key), pendingKey(this.key)].filter(
      (k): k is string => k !== undefined,
    );
    this.build = buildGatewayConfig(desired, map, this.d.settings, ownKeys);
    if (this.build.ok && this.build.peerProblems.length > 0) {
      const text = canonicalJson(this.build.peerProblems);
      if (text !== this.loggedPeerProblems) {
        this.d.log.warn(
          { problems: this.build.peerProblems },
          'peers left out of the gateway config',
        );
      }
      this.loggedPeerProblems = text;
    }
    if (!this.build.ok) {
      this.d.log.warn({ err: this.build.message }, 'gateway config refused; waiting for a change');
      return DONE; // retrying cannot help; a new desired state or peer map will
    }
    // A pending key switches the tunnel only once every peer's gateway holds it
    // (acknowledged through the broker) or the broker already committed it; until then
    // applies keep the tunnel's key (keepKey), so other changes still go on. Once ready,
    // switch even if nothing else changed.
    const pending = pendingKey(this.key);
    this.rotationStatus = undefined;
    let hold = false;
    if (pending && this.registeredKey !== pending) {
      const wait = rotationWait(this.peerMap, pending);
      if (!wait.ready) {
        this.rotationStatus = wait.announced
          ? `rotation waiting for: ${wait.waitingFor.join(', ')} (their gateways do not hold the next key yet; the tunnel keeps the current key)`
          : 'rotation waiting for: the broker to announce the next key';
        hold = true;
      }
    }
    const built = this.build.config;
    const config = hold ? { ...built, wireguard: { ...built.wireguard, keepKey: true } } : built;
    let outcome = DONE;
    if (canonicalJson(config) !== this.appliedKey || (pending && !hold)) {
      try {
        this.noteApplied(config, await this.d.gateway.apply(config));
        this.cachedConfig = config;
        this.cacheDirty = true;
      } catch (err) {
        this.applied = { ok: false, error: msg(err) };
        this.gatewayError = msg(err);
        outcome = requeue(`apply: ${msg(err)}`);
      }
    }
    if (this.cacheDirty) {
      try {
        await this.d.cache.save({
          peerMap: this.peerMap,
          gatewayConfig: this.cachedConfig,
          registeredKey: this.registeredKey,
        });
        this.cacheDirty = false;
      } catch (err) {
        this.d.log.warn({ err: msg(err) }, 'cache not saved');
      }
    }
    return outcome;
  }

  /** Handler: send the newest gateway health check to the broker (best effort). */
  private async reportHealth(): Promise<Outcome> {
    const h = this.health;
    if (!h || h.at === this.reportedHealthAt) return DONE;
    if (!this.d.broker.connected || this.registeredAs === undefined) return DONE;
    try {
      await this.d.broker.reportHealth(healthRequestFrom(h));
      this.reportedHealthAt = h.at;
    } catch (err) {
      // Not worth a retry: the next check (seconds away) is newer anyway.
      this.d.log.info({ err: msg(err) }, 'health report not delivered');
    }
    return DONE;
  }

  /** Handler: write the status of every object (only what changed) and the summary. */
  private async writeStatus(): Promise<Outcome> {
    try {
      const summary: AgentSummary = {
        clusterId: this.d.settings.clusterId,
        broker: {
          connected: this.d.broker.connected,
          registered: this.registeredAs !== undefined,
          ...(this.transitAddress ? { transitAddress: this.transitAddress } : {}),
          ...(this.publishedVersion ? { publishedVersion: this.publishedVersion } : {}),
          ...(this.brokerError ? { lastError: this.brokerError } : {}),
        },
        gateway: {
          ...(this.key.phase !== 'unknown' ? { publicKey: this.key.active } : {}),
          ...(this.key.phase === 'rotating' ? { pendingPublicKey: this.key.pending } : {}),
          ...(this.key.phase === 'rotating' && this.rotationStatus
            ? { rotation: this.rotationStatus }
            : {}),
          ...(this.lastApply ? { lastApply: this.lastApply } : {}),
          ...(this.gatewayError ? { lastError: this.gatewayError } : {}),
          ...(this.gatewayRevision !== undefined && this.gatewayRevision < STANDBY_KEYS_REVISION
            ? { outdated: gatewayTooOld(this.gatewayRevision) }
            : {}),
        },
        peerMapFrom: this.peerMapFrom,
        ...(this.desired ? { desiredVersion: this.desired.version } : {}),
        ...(this.sourceError ? { sourceError: this.sourceError } : {}),
        ...(this.peerMapError ? { peerMapError: this.peerMapError } : {}),
        ...(this.build?.ok && this.build.peerProblems.length > 0
          ? { peerProblems: this.build.peerProblems }
          : {}),
      };
      await this.writeIfChanged('agent', summary, () => this.d.status.writeAgent(summary));
      const desired = this.desired;
      if (!desired) return DONE;
      const s = buildStatuses({
        clusterId: this.d.settings.clusterId,
        desired,
        peerMap: this.peerMap,
        ...(this.peerMapError ? { peerMapError: this.peerMapError } : {}),
        published: this.publishedVersion === desired.version,
        build: this.build,
        underlayMtu: this.d.settings.underlayMtu,
        applied: this.applied,
        health: this.health,
        now: this.d.clock?.() ?? new Date(),
      });
      for (const [name, st] of s.networks) {
        await this.writeIfChanged(`n/${name}`, st, () => this.d.status.writeNetwork(name, st));
      }
      for (const [name, st] of s.peerings) {
        await this.writeIfChanged(
          `p/${name}`,
          st,
          () => this.d.status.writePeering(name, st.status, st.tunnel),
          withoutMeasurements(st),
        );
      }
      const names = `${[...s.networks.keys()].join(',')}|${[...s.peerings.keys()].join(',')}`;
      await this.writeIfChanged('names', names, async () => {
        await this.d.status.prune('FederatedNetwork', [...s.networks.keys()]);
        await this.d.status.prune('ClusterPeering', [...s.peerings.keys()]);
      });
      return DONE;
    } catch (err) {
      return requeue(`status: ${msg(err)}`);
    }
  }

  /**
   * Writes when the value changed. With `steady` (the value without its measurements), a
   * change of measurements alone is written at most every measurementRefreshMs: a new RTT
   * each health check would otherwise rewrite every peering's status (a file, or a PATCH
   * to the API server) every check while nothing changed.
   */
  private async writeIfChanged(
    key: string,
    value: unknown,
    write: () => Promise<void>,
    steady?: unknown,
  ): Promise<void> {
    const text = canonicalJson(value);
    const last = this.written.get(key);
    if (last?.text === text) return;
    const steadyText = steady === undefined ? undefined : canonicalJson(steady);
    const now = Date.now();
    const refresh = this.d.settings.measurementRefreshMs ?? 60_000;
    if (steadyText !== undefined && last?.steady === steadyText && now - last.at < refresh) return;
    await write();
    this.written.set(key, {
      text,
      ...(steadyText === undefined ? {} : { steady: steadyText }),
      at: now,
    });
  }
}

/** What an agent does not do with a gateway older than standby keys, and the fix. */
function gatewayTooOld(revision: number): string {
  return (
    `the gateway answers with API revision ${revision}, older than this agent: it drops ` +
    "peers' next keys and keepKey unread, so this cluster acknowledges no peer's next key " +
    '(their rotations wait for it) and starts no scheduled key rotation; upgrade the ' +
    'gateway (docs/upgrading.md, Compatibility)'
  );
}
