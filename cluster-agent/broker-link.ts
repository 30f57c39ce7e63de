/**
 * The agent's connection to the broker: NATS request/reply for the protocol verbs and a
 * watch on the cluster's own peer map. The reconcile loop sees only the BrokerApi
 * interface (tests pass a fake). The real link keeps trying to connect in the
 * background, so an agent started while NATS is down still starts (from its cache) and
 * joins as soon as NATS answers; while disconnected every request fails fast with
 * BrokerUnavailableError instead of queueing.
 */
import { connect, Events, type ConnectionOptions, type KvEntry, type NatsConnection } from 'nats';
import { BrokerClient } from '../broker/client.js';
import { connectOptionsFor, inboxPrefix, type Credential } from '../broker/auth-config.js';
import type {
  AckKeyRequest,
  AnnounceKeyRequest,
  HealthRequest,
  PeeringsRequest,
  Results,
  RotateKeyRequest,
} from '../broker/protocol.js';
import type { NetworkMtuAsk } from '../broker/network-mtu.js';
import { BrokerReplyError } from '../broker/errors.js';
import type { Logger } from '../lib/log.js';
import { backoffDelay } from './backoff.js';
import { BrokerUnavailableError } from './errors.js';

export type RegisterBody = {
  publicKey: string;
  endpoints: string[];
  capabilities?: string[];
  vxlanPort?: number;
};

export type BrokerEvent =
  | { readonly type: 'connection'; readonly connected: boolean }
  /**
   * The current peer map as received, NOT validated: whoever consumes it checks it
   * (the agent with checkPeerMap, peer-map-schema.ts). undefined: the broker has none.
   */
  | { readonly type: 'peer-map'; readonly peerMap: unknown }
  /** The current peer map could not even be decoded (not JSON); `reason` says why. */
  | { readonly type: 'peer-map-invalid'; readonly reason: string };

/** What the agent needs from the broker. Methods may be called concurrently. */
export interface BrokerApi {
  readonly connected: boolean;
  /** Starts connecting and watching in the background. Idempotent. */
  start(): void;
  /** Stops watches and closes the connection. Idempotent. */
  stop(): Promise<void>;
  subscribe(fn: (e: BrokerEvent) => void): () => void;
  register(body: RegisterBody): Promise<Results['register']>;
  rotateKey(body: RotateKeyRequest): Promise<Results['rotate-key']>;
  /** Announces this gateway's next key (a rotation's first step; docs/broker.md). */
  announceKey(body: AnnounceKeyRequest): Promise<Results['announce-key']>;
  /** This gateway holds `body.cluster`'s announced next key as a standby entry. */
  ackKey(body: AckKeyRequest): Promise<Results['ack-key']>;
  /**
   * Declares the exported networks with this cluster's MTU ask per network. A broker
   * older than the MTU agreement refuses the `mtu` field; the link then sends the
   * networks alone (the agent keeps its local MTU, as the map carries no agreement).
   */
  setExports(
    networks: readonly string[],
    mtu?: readonly NetworkMtuAsk[],
  ): Promise<Results['exports']>;
  setPeerings(peerings: PeeringsRequest['peerings']): Promise<Results['peerings']>;
  reportHealth(body: HealthRequest): Promise<void>;
}

export interface NatsBrokerLinkOptions {
  readonly clusterId: string;
  readonly servers: readonly string[];
  readonly credential?: Credential;
  readonly tlsCa?: string;
  readonly requestTimeoutMs: number;
  /** Also read the peer map this often, in case a watch silently stalls. */
  readonly pollMs: number;
  readonly log: Logger;
}

/** True for errors that mean "try again later" rather than "your request is wrong". */
export function isRetryableBrokerError(err: unknown): boolean {
  if (err instanceof BrokerUnavailableError) return true;
  if (err instanceof BrokerReplyError) return err.retryable;
  return false;
}

export class NatsBrokerLink implements BrokerApi {
  private nc: NatsConnection | undefined;
  private client: BrokerClient | undefined;
  private stopped = false;
  private started = false;
  private connectedValue = false;
  private pollTimer: NodeJS.Timeout | undefined;
  private watchStop: (() => void) | undefined;
  private readonly listeners = new Set<(e: BrokerEvent) => void>();
  private connecting: Promise<void> | undefined;
  private wake: (() => void) | undefined;

  constructor(private readonly o: NatsBrokerLinkOptions) {}

  get connected(): boolean {
    return this.connectedValue;
  }

  subscribe(fn: (e: BrokerEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.connecting = this.connectLoop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    clearTimeout(this.pollTimer);
    this.watchStop?.();
    await this.connecting;
    if (this.nc && !this.nc.isClosed()) await this.nc.close().catch(() => undefined);
  }

  register(body: RegisterBody): Promise<Results['register']> {
    return this.request('register', (c) => c.request('register', body));
  }

  announceKey(body: AnnounceKeyRequest): Promise<Results['announce-key']> {
    return this.request('announce-key', (c) => c.request('announce-key', body));
  }

  ackKey(body: AckKeyRequest): Promise<Results['ack-key']> {
    return this.request('ack-key', (c) => c.request('ack-key', body));
  }

  rotateKey(body: RotateKeyRequest): Promise<Results['rotate-key']> {
    return this.request('rotate-key', (c) => c.request('rotate-key', body));
  }

  async setExports(
    networks: readonly string[],
    mtu?: readonly NetworkMtuAsk[],
  ): Promise<Results['exports']> {
    const plain = { networks: [...networks] };
    if (!mtu) return this.request('exports', (c) => c.request('exports', plain));
    try {
      return await this.request('exports', (c) =>
        c.request('exports', { ...plain, mtu: mtu.map((a) => ({ ...a })) }),
      );
    } catch (err) {
      if (!(err instanceof BrokerReplyError && err.code === 'INVALID_REQUEST')) throw err;
      if (err.field !== 'mtu') throw err;
      this.o.log.warn(
        'the broker does not know MTU agreement (older version); exports sent without MTU asks',
      );
      return this.request('exports', (c) => c.request('exports', plain));
    }
  }

  setPeerings(peerings: PeeringsRequest['peerings']): Promise<Results['peerings']> {
    return this.request('peerings', (c) => c.request('peerings', { peerings }));
  }

  async reportHealth(body: HealthRequest): Promise<void> {
    await this.request('health', (c) => c.request('health', body));
  }

  private async request<T>(op: string, fn: (c: BrokerClient) => Promise<T>): Promise<T> {
    const c = this.client;
    if (!c || !this.connectedValue) throw new BrokerUnavailableError(op);
    try {
      return await fn(c);
    } catch (err) {
      if (err instanceof BrokerReplyError) throw err;
      // Timeouts, "no responders" (no broker replica up), connection closed.
      throw new BrokerUnavailableError(op, { cause: err });
    }
  }

  private emit(e: BrokerEvent): void {
    for (const fn of [...this.listeners]) {
      try {
        fn(e);
      } catch (err) {
        this.o.log.warn({ err: String(err) }, 'broker event listener threw');
      }
    }
  }

  private setConnected(v: boolean): void {
    if (this.connectedValue === v) return;
    this.connectedValue = v;
    this.o.log.info({ connected: v }, v ? 'broker connection up' : 'broker connection lost');
    this.emit({ type: 'connection', connected: v });
    if (v) this.restartWatch();
  }

  private connectOptions(): ConnectionOptions {
    const auth = this.o.credential
      ? connectOptionsFor(this.o.credential, this.o.clusterId)
      : { inboxPrefix: inboxPrefix(this.o.clusterId) };
    return {
      servers: [...this.o.servers],
      name: `l2fed-agent-${this.o.clusterId}`,
      ...auth,
      ...(this.o.tlsCa ? { tls: { caFile: this.o.tlsCa } } : {}),
      timeout: 2000,
      // After the first connect nats.js reconnects forever on its own.
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      pingInterval: 5000,
    };
  }

  /** First connect with backoff (nats.js gives up on a failed first connect). */
  private async connectLoop(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const nc = await connect(this.connectOptions());
        if (this.stopped) {
          await nc.close();
          return;
        }
        this.nc = nc;
        this.client = new BrokerClient(nc, this.o.clusterId, {
          timeoutMs: this.o.requestTimeoutMs,
        });
        void this.followStatus(nc);
        this.setConnected(true);
        this.schedulePoll();
        return;
      } catch (err) {
        const delay = backoffDelay(attempt, { initialMs: 250, maxMs: 5000 });
        this.o.log.debug({ err: String(err), delay }, 'NATS not reachable, retrying');
        await new Promise<void>((resolve) => {
          this.wake = resolve;
          setTimeout(resolve, delay);
        });
      }
    }
  }

  private async followStatus(nc: NatsConnection): Promise<void> {
    for await (const s of nc.status()) {
      if (s.type === Events.Disconnect) this.setConnected(false);
      if (s.type === Events.Reconnect) this.setConnected(true);
    }
    this.setConnected(false); // closed for good
  }

  /** (Re)opens the watch on the own peer-map key; a stalled or ended watch is replaced. */
  private restartWatch(): void {
    this.watchStop?.();
    const client = this.client;
    if (!client || this.stopped) return;
    let stopped = false;
    let iter: { stop(): void } | undefined;
    this.watchStop = () => {
      stopped = true;
      iter?.stop();
    };
    void (async () => {
      try {
        const it = await client.watchPeerMap();
        iter = it;
        if (stopped) return it.stop();
        for await (const e of it) this.emit(peerMapEvent(e));
      } catch (err) {
        if (!stopped) this.o.log.info({ err: String(err) }, 'peer-map watch ended; polling');
      }
    })();
  }

  private schedulePoll(): void {
    if (this.stopped) return;
    this.pollTimer = setTimeout(() => {
      void this.pollOnce().finally(() => this.schedulePoll());
    }, this.o.pollMs);
  }

  private async pollOnce(): Promise<void> {
    if (!this.client || !this.connectedValue) return;
    try {
      this.emit({ type: 'peer-map', peerMap: await this.client.peerMap() });
    } catch (err) {
      // A value that is not JSON is the broker's fault, not the connection's: report it.
      if (err instanceof SyntaxError) this.emit(notJson(err));
      else this.o.log.debug({ err: String(err) }, 'peer-map read failed');
    }
  }
}

/** Decodes a watched KV entry; junk bytes become an event, not a watch that dies. */
function peerMapEvent(e: KvEntry): BrokerEvent {
  if (e.operation !== 'PUT') return { type: 'peer-map', peerMap: undefined };
  try {
    return { type: 'peer-map', peerMap: JSON.parse(new TextDecoder().decode(e.value)) as unknown };
  } catch (err) {
    return notJson(err);
  }
}

const notJson = (err: unknown): BrokerEvent => ({
  type: 'peer-map-invalid',
  reason: `the stored peer map is not JSON (${err instanceof Error ? err.message : String(err)})`,
});
