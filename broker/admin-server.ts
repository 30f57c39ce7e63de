/**
 * The broker's gRPC admin server. Today it serves InfoService; the admin API issue
 * adds the federation services, health and reflection on the same server.
 */
import type { ServerCredentials } from '@grpc/grpc-js';
import { Server, type ServiceError } from '@grpc/grpc-js';
import {
  InfoServiceService,
  type GetVersionResponse,
  type InfoServiceServer,
} from '../proto/gen/l2fed/admin/v1/info.js';
import { VERSION } from '../lib/version.js';

export interface AdminServerOptions {
  /** host:port; port 0 picks a free one. */
  readonly address: string;
  readonly credentials: ServerCredentials;
}

export interface AdminServer {
  /** The bound host:port. */
  readonly address: string;
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

export async function startAdminServer(options: AdminServerOptions): Promise<AdminServer> {
  const server = new Server();
  server.addService(InfoServiceService, info);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(options.address, options.credentials, (err: Error | null, p: number) =>
      err ? reject(err) : resolve(p),
    );
  });
  const host = options.address.slice(0, options.address.lastIndexOf(':'));
  let stopped: Promise<void> | undefined;
  return {
    address: `${host}:${port}`,
    stop(graceMs = 2000) {
      stopped ??= new Promise<void>((resolve) => {
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

export type { ServiceError };
