/**
 * A gateway client that validates with the real config parser and remembers every
 * applied config; no data plane. One-shot error injection (`failNextApply`), a `down`
 * switch, and RotateKey with a pending key the next apply switches to.
 */
import { randomBytes } from 'node:crypto';
import { parseGatewayConfig, type GatewayConfigInput } from './config.js';
import { effectiveNetworkMtu, tunnelMtu } from './mtu.js';
import { GATEWAY_API_REVISION } from './grpc-convert.js';
import {
  GatewayCallError,
  type GatewayApi,
  type GatewayApplyResult,
  type GatewayStateView,
  type HealthReport,
} from './client.js';

/** The key the fake gateway's tunnel starts with. */
export const FAKE_PUBLIC_KEY = 'x4gOZYP7gYK/0dBhgSvq7+nIu9ygrsAx6gqwmjXzT0I=';

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
  /**
   * The API revision it reports (grpc-convert.ts). Set 0 for a gateway older than the
   * field: like a real one over gRPC it then drops `keepKey` and peers' `nextPublicKey`
   * unread (proto3 skips unknown fields).
   */
  apiRevision = GATEWAY_API_REVISION;
  health: HealthReport | undefined;
  private failOnce: GatewayCallError | undefined;
  private reportValue: GatewayApplyResult['report'] | undefined;

  private driftOnce = false;

  /** The next apply finds the data plane drifted: it runs a step even for the same config. */
  driftNextApply(): void {
    this.driftOnce = true;
  }

  failNextApply(code = 'INTERNAL', details = 'step failed'): void {
    this.failOnce = new GatewayCallError('Apply', code, details);
  }

  get last(): GatewayConfigInput | undefined {
    return this.applied.at(-1);
  }

  apply(asked: GatewayConfigInput): Promise<GatewayApplyResult> {
    const input = this.apiRevision >= 1 ? asked : withoutRevision1Fields(asked);
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
    const drifted = this.driftOnce;
    this.driftOnce = false;
    const changed =
      JSON.stringify(this.last) === JSON.stringify(input) && !drifted ? [] : ['changed'];
    const switched = this.pendingKey !== undefined && !input.wireguard?.keepKey;
    if (switched) {
      this.activeKey = this.pendingKey!;
      this.pendingKey = undefined;
    }
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
    return Promise.resolve({
      steps,
      durationMs: 1,
      report: this.reportValue,
      apiRevision: this.apiRevision,
    });
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

/** What a revision-0 gateway reads of a config: no keepKey, no peer's nextPublicKey. */
function withoutRevision1Fields(c: GatewayConfigInput): GatewayConfigInput {
  const { keepKey: _keep, ...wireguard } = c.wireguard;
  return {
    ...c,
    wireguard,
    peers: c.peers?.map(({ nextPublicKey: _next, ...p }) => p),
  };
}
