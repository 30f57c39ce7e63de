/**
 * A broker link for agent tests: it runs the real Federation over the in-memory
 * FakeKvStore, so peer maps follow the real consent rules. One-shot error injection
 * (`failNext`) and a connection switch (`setConnected`).
 */
import { FakeKvStore } from '../broker/kv-store-fake.js';
import { Federation } from '../broker/federation.js';
import { resolveConfig } from '../broker/config.js';
import type {
  AckKeyRequest,
  AnnounceKeyRequest,
  HealthRequest,
  PeeringsRequest,
  Results,
  RotateKeyRequest,
} from '../broker/protocol.js';
import type { PeerMap } from '../broker/records.js';
import type { NetworkMtuAsk } from '../broker/network-mtu.js';
import type { BrokerApi, BrokerEvent, RegisterBody } from './broker-link.js';
import { BrokerUnavailableError } from './errors.js';

/** One shared in-memory federation for several fake broker links. */
export function fakeFederation(): Federation {
  return new Federation(new FakeKvStore(), resolveConfig({ transitPool: '198.19.0.0/16' }));
}

export class FakeBroker implements BrokerApi {
  connected = true;
  readonly calls: { verb: string; body: unknown }[] = [];
  readonly health: HealthRequest[] = [];
  private failOnce = new Set<string>();
  private readonly listeners = new Set<(e: BrokerEvent) => void>();
  private lastMap = '';

  constructor(
    readonly federation: Federation,
    readonly clusterId: string,
  ) {}

  /** As the real link's watch: the current map arrives on start (also after a restart). */
  start(): void {
    this.lastMap = '';
    void this.pushMap();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }

  subscribe(fn: (e: BrokerEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The next call of `verb` fails as if the broker timed out. */
  failNext(verb: string): void {
    this.failOnce.add(verb);
  }

  /** Goes down / comes back, telling the agent as the NATS status stream would. */
  setConnected(v: boolean): void {
    this.connected = v;
    this.emit({ type: 'connection', connected: v });
    if (v) void this.pushMap();
  }

  /**
   * Sends `peerMap` as is, valid or not, as a compromised broker or a corrupted KV entry
   * could. The next change of the federation's map is pushed as usual.
   */
  emitPeerMap(peerMap: unknown): void {
    this.emit({ type: 'peer-map', peerMap });
  }

  /** Sends the current peer map if it changed (what the KV watch does). */
  async pushMap(): Promise<void> {
    if (!this.connected) return;
    const map = (await this.federation.get(this.clusterId)).peerMap ?? undefined;
    const text = JSON.stringify(map);
    if (text === this.lastMap) return;
    this.lastMap = text;
    this.emit({ type: 'peer-map', peerMap: map });
  }

  register(body: RegisterBody): Promise<Results['register']> {
    return this.call('register', body, () =>
      this.federation.register(this.clusterId, { capabilities: [], ...body }),
    );
  }

  announceKey(body: AnnounceKeyRequest): Promise<Results['announce-key']> {
    return this.call('announce-key', body, () => this.federation.announceKey(this.clusterId, body));
  }

  ackKey(body: AckKeyRequest): Promise<Results['ack-key']> {
    return this.call('ack-key', body, () => this.federation.ackKey(this.clusterId, body));
  }

  rotateKey(body: RotateKeyRequest): Promise<Results['rotate-key']> {
    return this.call('rotate-key', body, () => this.federation.rotateKey(this.clusterId, body));
  }

  setExports(
    networks: readonly string[],
    mtu?: readonly NetworkMtuAsk[],
  ): Promise<Results['exports']> {
    return this.call('exports', mtu ? { networks, mtu } : { networks }, () =>
      this.federation.setExports(this.clusterId, networks, mtu),
    );
  }

  setPeerings(peerings: PeeringsRequest['peerings']): Promise<Results['peerings']> {
    return this.call('peerings', { peerings }, () =>
      this.federation.setPeerings(this.clusterId, peerings),
    );
  }

  async reportHealth(body: HealthRequest): Promise<void> {
    await this.call('health', body, () => this.federation.setHealth(this.clusterId, body));
    this.health.push(body);
  }

  private async call<T>(verb: string, body: unknown, fn: () => Promise<T>): Promise<T> {
    if (!this.connected || this.failOnce.delete(verb)) throw new BrokerUnavailableError(verb);
    this.calls.push({ verb, body });
    const r = await fn();
    await this.pushMap();
    return r;
  }

  private emit(e: BrokerEvent): void {
    for (const fn of [...this.listeners]) fn(e);
  }
}

export type { PeerMap };
