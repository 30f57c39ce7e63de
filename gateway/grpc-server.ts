/**
 * The gateway.v1 gRPC service over a Gateway and its HealthMonitor. Binds to loopback by
 * default: the agent runs next to the gateway, and the API can change the data plane.
 */
import {
  Server,
  ServerCredentials,
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
} from '@grpc/grpc-js';
import {
  GatewayServiceService,
  type ApplyRequest,
  type ApplyResponse,
  type GatewayServiceServer,
  type GetStateRequest,
  type GetStateResponse,
  type RotateKeyRequest,
  type RotateKeyResponse,
  type WatchHealthRequest,
  type WatchHealthResponse,
} from '../proto/gen/l2fed/gateway/v1/gateway.js';
import { ConfigError, PreconditionError } from './errors.js';
import type { Gateway } from './gateway.js';
import { configFromProto, healthToProto, reportToProto } from './grpc-convert.js';
import { toGrpcStatus } from './grpc-status.js';
import type { HealthMonitor } from './health-monitor.js';
import { describeStep } from './plan.js';

function unary<Req, Res>(
  fn: (req: Req) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => void {
  return (call, cb) => {
    fn(call.request).then(
      (res) => cb(null, res),
      (err: unknown) => cb(toGrpcStatus(err)),
    );
  };
}

/** The service implementation. Calls are safe to overlap: the Gateway serialises them. */
export function gatewayService(gateway: Gateway, monitor?: HealthMonitor): GatewayServiceServer {
  return {
    apply: unary<ApplyRequest, ApplyResponse>(async (req) => {
      const input = configFromProto(req.config);
      if (req.dryRun) {
        const plan = await gateway.plan(input);
        return { steps: [...plan.lines], durationMs: 0, report: undefined };
      }
      const r = await gateway.apply(input);
      return {
        steps: r.steps.map(describeStep),
        durationMs: r.durationMs,
        report: reportToProto(r.report),
      };
    }),
    getState: unary<GetStateRequest, GetStateResponse>(() => {
      const report = gateway.lastReport;
      const health = monitor?.latest;
      return Promise.resolve({
        report: report && reportToProto(report),
        health: health && healthToProto(health),
        pendingPublicKey: gateway.pendingPublicKey ?? '',
      });
    }),
    rotateKey: unary<RotateKeyRequest, RotateKeyResponse>(async () => {
      try {
        return await gateway.rotateKey();
      } catch (err) {
        // No config yet is a state problem of the server, not a bad argument.
        if (err instanceof ConfigError) throw new PreconditionError('rotate key', err.message);
        throw err;
      }
    }),
    watchHealth: (call: ServerWritableStream<WatchHealthRequest, WatchHealthResponse>) => {
      if (!monitor) {
        call.emit('error', {
          code: status.UNIMPLEMENTED,
          details: 'health monitoring is not enabled on this gateway',
        });
        return;
      }
      if (monitor.latest) call.write({ health: healthToProto(monitor.latest) });
      const unsubscribe = monitor.subscribe((h) => call.write({ health: healthToProto(h) }));
      call.on('cancelled', unsubscribe);
      call.on('close', unsubscribe);
    },
  };
}

export interface GatewayServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Starts the service on host:port (port 0 = free). close() is idempotent. */
export async function startGatewayServer(opts: {
  gateway: Gateway;
  monitor?: HealthMonitor;
  host?: string;
  port?: number;
}): Promise<GatewayServer> {
  const server = new Server();
  server.addService(GatewayServiceService, gatewayService(opts.gateway, opts.monitor));
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      `${opts.host ?? '127.0.0.1'}:${opts.port ?? 0}`,
      ServerCredentials.createInsecure(),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
  let closed: Promise<void> | undefined;
  return {
    port,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        // Streams (WatchHealth) never end on their own; do not wait for them forever.
        setTimeout(() => server.forceShutdown(), 1000).unref();
      })),
  };
}
