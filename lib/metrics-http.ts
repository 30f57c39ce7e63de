/**
 * The `GET /metrics` endpoint every l2fed daemon serves (gateway, broker, cluster agent),
 * and the HOST:PORT parser for its listen flags. Takes anything shaped like a prom-client
 * Registry, so lib/ needs no prom-client import (each daemon owns its registry).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** What serveMetrics needs of a registry (prom-client's Registry has both). */
export interface MetricsSource {
  /** The exposition text. */
  metrics(): Promise<string>;
  readonly contentType: string;
}

/** A started metrics endpoint. close() is idempotent. */
export interface MetricsServer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` (Prometheus text) on host:port; port 0 picks a free one; host
 * defaults to 127.0.0.1. Anything else answers 404. Rejects when the port cannot be bound.
 */
export async function serveMetrics(
  registry: MetricsSource,
  opts: { host?: string; port?: number } = {},
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.split('?')[0] !== '/metrics') {
      res.writeHead(404).end('not found\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) => res.writeHead(500).end(String(err)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
  });
  let closed: Promise<void> | undefined;
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      (closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}

/**
 * Parses a listen address `HOST:PORT` (`[::1]:9466` for IPv6; port 0 = any free one).
 * Throws an Error naming `what` and the expected form; the caller adds its own type.
 */
export function parseListen(text: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65_535) {
    throw new Error(
      `${what} "${text}" is not HOST:PORT (e.g. 127.0.0.1:9466, 0.0.0.0:9466 or [::1]:9466)`,
    );
  }
  return { host: (m[1] ?? m[2])!, port };
}
