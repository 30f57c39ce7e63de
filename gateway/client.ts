/**
 * The agent's side of the gateway API (l2fed.gateway.v1): a promise-based client over the
 * generated grpc-js client, behind the small GatewayApi interface the reconcile loop uses
 * (tests pass a fake). Every call has a deadline; failures become GatewayCallError with
 * the gRPC status name, so the loop can tell "config refused" from "gateway not running".
 */
import { Metadata, credentials, status, type ServiceError } from '@grpc/grpc-js';
import {
  GatewayServiceClient,
  type GatewayReport,
  type HealthReport,
} from '../proto/gen/l2fed/gateway/v1/gateway.js';
import type { GatewayConfigInput } from './config.js';
import { configToProto } from './grpc-convert.js';

export type { GatewayReport, HealthReport };

export interface GatewayApplyResult {
  /** Steps that ran, one line each; empty = the data plane already matched. */
  readonly steps: readonly string[];
  readonly durationMs: number;
  readonly report: GatewayReport;
  /**
   * The gateway's API revision (GATEWAY_API_REVISION in grpc-convert.ts); 0 = a gateway
   * older than the field, which dropped `keepKey` and peers' `nextPublicKey` unread.
   */
  readonly apiRevision: number;
}

export interface GatewayStateView {
  /** Absent until the gateway's first successful apply (in this gateway process). */
  readonly report: GatewayReport | undefined;
  /** Absent until the first health check after an apply. */
  readonly health: HealthReport | undefined;
  /** A rotated key the tunnel does not use yet (RotateKey ran, the next Apply switches). */
  readonly pendingPublicKey?: string | undefined;
}

/** What the agent needs from a gateway. Implementations must be safe to call concurrently. */
export interface GatewayApi {
  /** Applies the whole config; idempotent on the gateway side. @throws GatewayCallError */
  apply(config: GatewayConfigInput): Promise<GatewayApplyResult>;
  /** Reads the last report and health. Read-only. @throws GatewayCallError */
  getState(): Promise<GatewayStateView>;
  /** Writes a new private key on the gateway; the next Apply switches to it. */
  rotateKey(): Promise<{ publicKey: string }>;
  close(): void;
}

const codeName = (code: number): string =>
  Object.entries(status).find(([, v]) => Number(v) === code)?.[0] ?? String(code);

/** gRPC client for one gateway address (insecure: loopback next to the agent). */
export class GrpcGatewayClient implements GatewayApi {
  private readonly client: GatewayServiceClient;

  constructor(
    readonly address: string,
    private readonly opts: {
      readonly applyTimeoutMs?: number;
      readonly readTimeoutMs?: number;
    } = {},
  ) {
    this.client = new GatewayServiceClient(address, credentials.createInsecure());
  }

  apply(config: GatewayConfigInput): Promise<GatewayApplyResult> {
    return new Promise((resolve, reject) => {
      this.client.apply(
        { config: configToProto(config), dryRun: false },
        new Metadata(),
        { deadline: Date.now() + (this.opts.applyTimeoutMs ?? 60_000) },
        (err, res) => {
          if (err) return reject(this.wrap('Apply', err));
          if (!res.report) {
            return reject(new GatewayCallError('Apply', 'INTERNAL', 'reply carried no report'));
          }
          resolve({
            steps: res.steps,
            durationMs: res.durationMs,
            report: res.report,
            apiRevision: res.apiRevision,
          });
        },
      );
    });
  }

  getState(): Promise<GatewayStateView> {
    return new Promise((resolve, reject) => {
      this.client.getState(
        {},
        new Metadata(),
        { deadline: Date.now() + (this.opts.readTimeoutMs ?? 5000) },
        (err, res) =>
          err
            ? reject(this.wrap('GetState', err))
            : resolve({
                report: res.report,
                health: res.health,
                ...(res.pendingPublicKey ? { pendingPublicKey: res.pendingPublicKey } : {}),
              }),
      );
    });
  }

  rotateKey(): Promise<{ publicKey: string }> {
    return new Promise((resolve, reject) => {
      this.client.rotateKey(
        {},
        new Metadata(),
        { deadline: Date.now() + (this.opts.readTimeoutMs ?? 5000) },
        (err, res) =>
          err ? reject(this.wrap('RotateKey', err)) : resolve({ publicKey: res.publicKey }),
      );
    });
  }

  close(): void {
    this.client.close();
  }

  private wrap(method: string, err: ServiceError): GatewayCallError {
    return new GatewayCallError(method, codeName(err.code), err.details || err.message, {
      cause: err,
    });
  }
}

/**
 * A call to the gateway's gRPC API failed. `code` is the gRPC status code name
 * (INVALID_ARGUMENT: the config was refused and nothing ran; FAILED_PRECONDITION: e.g. a
 * segment bridge is missing; UNAVAILABLE: the gateway is not running).
 */
export class GatewayCallError extends Error {
  override name = 'GatewayCallError';
  constructor(
    readonly method: string,
    readonly code: string,
    readonly details: string,
    options?: { cause?: unknown },
  ) {
    super(`gateway ${method} failed (${code}): ${details}${gatewayHint(code)}`, options);
  }
}

function gatewayHint(code: string): string {
  switch (code) {
    case 'UNAVAILABLE':
      return '; is the gateway running at the configured gateway.address? retrying';
    case 'DEADLINE_EXCEEDED':
      return '; the gateway did not answer in time, retrying';
    case 'FAILED_PRECONDITION':
      return '; fix the host (e.g. create the segment bridge), retrying';
    case 'INVALID_ARGUMENT':
      return '; the agent built a config the gateway refuses: check the FederatedNetwork spec and agent config';
    default:
      return '';
  }
}
