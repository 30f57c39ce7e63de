/**
 * The broker's gRPC admin server: the l2fed admin services, the standard health
 * service and server reflection (so grpcurl can list and call everything), behind
 * the configured authentication.
 */
import { Server, type UntypedServiceImplementation, type ServiceDefinition } from '@grpc/grpc-js';
import { loadFileDescriptorSetFromBuffer, loadSync } from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { HealthImplementation, protoPath as healthProtoPath } from 'grpc-health-check';
import {
  InfoServiceService,
  type GetVersionResponse,
  type InfoServiceServer,
} from '../../proto/gen/l2fed/admin/v1/info.js';
import { VERSION } from '../../lib/version.js';
import { loadDescriptorSet } from '../../lib/proto-descriptors.js';
import type { Logger } from '../../lib/log.js';
import {
  exposureProblem,
  serverCredentials,
  serverInterceptors,
  validateAdminAuth,
  type AdminAuth,
} from './auth.js';
import { callMetricsInterceptor, type CallEndObserver } from './call-metrics.js';

export interface AdminService {
  readonly definition: ServiceDefinition;
  readonly implementation: UntypedServiceImplementation;
}

export interface AdminServerOptions {
  /** host:port; port 0 picks a free one. */
  readonly address: string;
  readonly auth: AdminAuth;
  /** Services beyond InfoService (the federation API adds its own). */
  readonly services?: readonly AdminService[];
  readonly log?: Logger;
  /** Told the method and status name of every call that ends (metrics). */
  readonly onCallEnd?: CallEndObserver;
}

export interface AdminServer {
  /** The bound host:port. */
  readonly address: string;
  readonly health: HealthImplementation;
  /** Stops accepting calls and waits for running ones; forces after graceMs. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

export function versionInfo(component: string): GetVersionResponse {
  return { component, version: VERSION, api: 'l2fed.admin.v1', runtime: process.version };
}

const info: InfoServiceServer = {
  getVersion(_call, callback) {
    callback(null, versionInfo('broker'));
  },
};

/** Reflection over the admin descriptor set, listing only the services this server serves. */
function reflection(served: readonly string[]): ReflectionService {
  return new ReflectionService(
    {
      ...loadFileDescriptorSetFromBuffer(loadDescriptorSet('admin')),
      ...loadSync(healthProtoPath),
    },
    { services: [...served, 'grpc.health.v1.Health'] },
  );
}

/**
 * Binds and starts the admin server. Rejects (and binds nothing) on bad auth config,
 * and on insecure mode or clear-text tokens on a non-loopback address.
 */
export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  validateAdminAuth(options.auth);
  // Also checked by resolveAdmin; repeated here for callers that build AdminAuth directly.
  const exposed = exposureProblem(options.auth, options.address);
  if (exposed) throw new Error(exposed);
  if (options.auth.type === 'insecure') {
    const msg = `admin API on ${options.address} has NO authentication (insecure mode was requested)`;
    if (options.log) options.log.warn(msg);
    else console.warn(`warning: ${msg}`);
  }
  const server = new Server({
    interceptors: [
      ...(options.onCallEnd ? [callMetricsInterceptor(options.onCallEnd)] : []),
      ...serverInterceptors(options.auth),
    ],
  });
  server.addService(InfoServiceService, info);
  const names = ['l2fed.admin.v1.InfoService'];
  for (const s of options.services ?? []) {
    server.addService(s.definition, s.implementation);
    const first = Object.values(s.definition)[0];
    if (first) names.push(first.path.split('/')[1]!);
  }
  const health = new HealthImplementation({ '': 'SERVING' });
  for (const n of names) health.setStatus(n, 'SERVING');
  health.addToServer(server);
  reflection(names).addToServer(server);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(
      options.address,
      serverCredentials(options.auth),
      (err: Error | null, p: number) => (err ? reject(err) : resolve(p)),
    );
  });
  const host = options.address.slice(0, options.address.lastIndexOf(':'));
  let stopped: Promise<void> | undefined;
  return {
    address: `${host}:${port}`,
    health,
    stop(graceMs = 2000) {
      stopped ??= new Promise<void>((resolve) => {
        for (const n of ['', ...names]) health.setStatus(n, 'NOT_SERVING');
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      return stopped;
    },
  };
}
