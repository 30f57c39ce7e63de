/**
 * The gateway.v1 gRPC service over a Gateway and its HealthMonitor. Binds to loopback by
 * default, or to a root-only unix socket: the agent runs next to the gateway, and the API
 * can change the data plane.
 */
import { chmod, lstat, mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
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
import {
  configFromProto,
  GATEWAY_API_REVISION,
  healthToProto,
  reportToProto,
} from './grpc-convert.js';
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
        return {
          steps: [...plan.lines],
          durationMs: 0,
          report: undefined,
          apiRevision: GATEWAY_API_REVISION,
        };
      }
      const r = await gateway.apply(input);
      return {
        steps: r.steps.map(describeStep),
        durationMs: r.durationMs,
        report: reportToProto(r.report),
        apiRevision: GATEWAY_API_REVISION,
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
  /** TCP port; 0 on a unix socket. */
  readonly port: number;
  /** What a client dials: host:port or unix:/path. */
  readonly address: string;
  close(): Promise<void>;
}

/**
 * Starts the service on host:port (port 0 = free) or, with `socket`, on a unix socket
 * only root can open (0600): the API can change the data plane and rotate the key, so on
 * a node it should not be reachable by every process that shares the loopback (e.g.
 * host-network pods). close() is idempotent.
 */
export async function startGatewayServer(opts: {
  gateway: Gateway;
  monitor?: HealthMonitor;
  host?: string;
  port?: number;
  socket?: string;
}): Promise<GatewayServer> {
  const server = new Server();
  server.addService(GatewayServiceService, gatewayService(opts.gateway, opts.monitor));
  const socket = opts.socket;
  if (socket) {
    // A missing directory is made 0700, so the socket is private before the chmod below.
    await mkdir(dirname(socket), { recursive: true, mode: 0o700 });
    await removeStaleSocket(socket);
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(
      socket ? `unix:${socket}` : `${opts.host ?? '127.0.0.1'}:${opts.port ?? 0}`,
      ServerCredentials.createInsecure(),
      (err, p) => (err ? reject(err) : resolve(p)),
    ),
  );
  if (socket) await chmod(socket, 0o600);
  let closed: Promise<void> | undefined;
  return {
    port,
    address: socket ? `unix:${socket}` : `${opts.host ?? '127.0.0.1'}:${port}`,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        // Streams (WatchHealth) never end on their own; do not wait for them forever.
        setTimeout(() => server.forceShutdown(), 1000).unref();
      }).then(() => (socket ? rm(socket, { force: true }) : undefined))),
  };
}

/** A socket file left by a killed gateway would make bind fail; anything else is kept. */
async function removeStaleSocket(path: string): Promise<void> {
  const st = await lstat(path).catch(() => undefined);
  if (!st) return;
  if (!st.isSocket()) {
    throw new Error(
      `gRPC socket path ${path} exists and is not a socket; remove it or pick another`,
    );
  }
  await rm(path);
}
