/**
 * Test doubles for the agent's three collaborators. The fake broker runs the real
 * Federation over the in-memory FakeKvStore, so peer maps follow the real consent rules;
 * the fake gateway validates with the real parser and keeps every applied config. Both
 * have one-shot error injection and a "down" switch.
 */
import { randomBytes } from 'node:crypto';
import { FakeKvStore } from '../broker/fake-kv-store.js';
import { Federation } from '../broker/federation.js';
import { resolveConfig } from '../broker/config.js';
import type {
  HealthRequest,
  PeeringsRequest,
  Results,
  RotateKeyRequest,
} from '../broker/protocol.js';
import type { PeerMap } from '../broker/records.js';
import { parseGatewayConfig, type GatewayConfigInput } from '../gateway/config.js';
import { effectiveNetworkMtu, tunnelMtu } from '../gateway/mtu.js';
import type { BrokerApi, BrokerEvent, RegisterBody } from './broker-link.js';
import { BrokerUnavailableError, GatewayCallError } from './errors.js';
import type {
  GatewayApi,
  GatewayApplyResult,
  GatewayStateView,
  HealthReport,
} from './gateway-client.js';
import { makeState, type DesiredState } from './desired-state.js';
import { SourceEmitter, type DesiredStateSource, type SourceListener } from './source.js';

export const FAKE_PUBLIC_KEY = 'x4gOZYP7gYK/0dBhgSvq7+nIu9ygrsAx6gqwmjXzT0I=';

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

  start(): void {}
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

  rotateKey(body: RotateKeyRequest): Promise<Results['rotate-key']> {
    return this.call('rotate-key', body, () => this.federation.rotateKey(this.clusterId, body));
  }

  setExports(networks: readonly string[]): Promise<Results['exports']> {
    return this.call('exports', { networks }, () =>
      this.federation.setExports(this.clusterId, networks),
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

/** A second valid key, what the fake gateway's first RotateKey yields. */
export const FAKE_NEXT_PUBLIC_KEY = 'mB1ZsTJ5fY0yq7VbC3d8k2Lr9hWx4nQe6uPo1aZcXw0=';

/** A gateway that validates and remembers; no data plane. */
export class FakeGateway implements GatewayApi {
  readonly applied: GatewayConfigInput[] = [];
  /** The key the tunnel uses, and one RotateKey wrote that the next apply switches to. */
  activeKey = FAKE_PUBLIC_KEY;
  pendingKey: string | undefined;
  /** Keys the next RotateKey calls return, in order; then random ones. */
  readonly nextKeys = [FAKE_NEXT_PUBLIC_KEY];
  down = false;
  health: HealthReport | undefined;
  private failOnce: GatewayCallError | undefined;
  private reportValue: GatewayApplyResult['report'] | undefined;

  failNextApply(code = 'INTERNAL', details = 'step failed'): void {
    this.failOnce = new GatewayCallError('Apply', code, details);
  }

  get last(): GatewayConfigInput | undefined {
    return this.applied.at(-1);
  }

  apply(input: GatewayConfigInput): Promise<GatewayApplyResult> {
    if (this.down)
      return Promise.reject(new GatewayCallError('Apply', 'UNAVAILABLE', 'connect refused'));
    const fail = this.failOnce;
    this.failOnce = undefined;
    if (fail) return Promise.reject(fail);
    let c;
    try {
      c = parseGatewayConfig(input);
    } catch (err) {
      return Promise.reject(
        new GatewayCallError('Apply', 'INVALID_ARGUMENT', (err as Error).message),
      );
    }
    const changed = JSON.stringify(this.last) === JSON.stringify(input) ? [] : ['changed'];
    const switched = this.pendingKey !== undefined;
    if (this.pendingKey) this.activeKey = this.pendingKey;
    this.pendingKey = undefined;
    const steps = switched ? [...changed, 'tunnel-set-key'] : changed;
    this.applied.push(input);
    this.reportValue = {
      identity: c.identity,
      publicKey: this.activeKey,
      tunnelKind: 'wireguard-go',
      tunnelIfname: c.wireguard.ifname,
      tunnelMtu: tunnelMtu(c.underlayMtu),
      networks: c.networks.map((n) => ({
        name: n.name,
        vni: n.vni,
        device: `l2fv${n.vni}`,
        mtu: effectiveNetworkMtu(c.underlayMtu, n.mtu),
      })),
    };
    return Promise.resolve({ steps, durationMs: 1, report: this.reportValue });
  }

  getState(): Promise<GatewayStateView> {
    if (this.down) {
      return Promise.reject(new GatewayCallError('GetState', 'UNAVAILABLE', 'connect refused'));
    }
    return Promise.resolve({
      report: this.reportValue,
      health: this.health,
      ...(this.pendingKey ? { pendingPublicKey: this.pendingKey } : {}),
    });
  }

  rotateKey(): Promise<{ publicKey: string }> {
    if (this.down) {
      return Promise.reject(new GatewayCallError('RotateKey', 'UNAVAILABLE', 'connect refused'));
    }
    if (!this.reportValue) {
      return Promise.reject(
        new GatewayCallError('RotateKey', 'FAILED_PRECONDITION', 'apply a config first'),
      );
    }
    const next = this.nextKeys.shift() ?? randomBytes(32).toString('base64');
    this.pendingKey = next;
    return Promise.resolve({ publicKey: next });
  }

  close(): void {}
}

/** A source whose state the test sets directly. */
export class FakeSource implements DesiredStateSource {
  readonly kind = 'folder' as const;
  private readonly emitter = new SourceEmitter();

  constructor(private initial: DesiredState = makeState([], [])) {}

  private started = false;

  start(): Promise<void> {
    this.started = true;
    this.emitter.snapshot(this.initial, 'initial');
    return Promise.resolve();
  }
  stop(): Promise<void> {
    return Promise.resolve();
  }
  subscribe(listener: SourceListener): () => void {
    return this.emitter.subscribe(listener);
  }
  current(): DesiredState | undefined {
    return this.emitter.current();
  }
  /** Sets the desired state; emitted at once when started, else at start. */
  set(state: DesiredState): void {
    this.initial = state;
    if (this.started) this.emitter.snapshot(state, 'change');
  }
  fail(error: Error): void {
    this.emitter.error(error);
  }
}

/** madrid exports cdn (Linux bridge) and peers bristol. */
export const CDN_WITH_BRISTOL = makeState(
  [
    {
      apiVersion: 'l2fed.io/v1alpha1',
      kind: 'FederatedNetwork',
      metadata: { name: 'cdn' },
      spec: { segment: { linuxBridge: 'br-cdn' }, mtu: 'auto' },
    },
  ],
  [
    {
      apiVersion: 'l2fed.io/v1alpha1',
      kind: 'ClusterPeering',
      metadata: { name: 'bristol' },
      spec: { remoteCluster: 'bristol' },
    },
  ],
);

export type { PeerMap };
