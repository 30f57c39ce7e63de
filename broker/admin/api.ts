/**
 * The broker's full admin API: InfoService plus the federation, event and action
 * services, served by startAdminServer next to a running Broker. Everything the
 * services read comes from KV through the broker's NATS connection.
 */
import { Events, type NatsConnection } from 'nats';
import type { Broker } from '../broker.js';
import { startAdminServer, type AdminServer } from './server.js';
import type { AdminAuth } from './auth.js';
import type { AdminContext } from './context.js';
import { federationService } from './federation-service.js';
import { eventService } from './events-service.js';
import { actionService } from './actions-service.js';
import { ensureAuditBucket } from './audit.js';
import { DEFAULT_STALE_AFTER_MS } from './health.js';
import type { Logger } from '../../lib/log.js';

export interface BrokerAdminOptions {
  /** host:port to listen on; port 0 picks a free one. */
  readonly address: string;
  readonly auth: AdminAuth;
  /** Identities allowed to run actions ("cn:alice", "token:1a2b…"); default everyone. */
  readonly writers?: readonly string[];
  /** Health reports older than this are shown stale; default 60 s. */
  readonly staleAfterMs?: number;
  readonly log?: Logger;
}

/** The service list for a broker (exported for tests that build their own server). */
export function brokerAdminServices(ctx: AdminContext) {
  return [federationService(ctx), eventService(ctx), actionService(ctx)];
}

/**
 * Creates the audit bucket if needed and starts the admin server for `broker`. Stop
 * the returned server before the broker (its calls use the broker's connection).
 */
export async function startBrokerAdmin(
  broker: Broker,
  opts: BrokerAdminOptions,
): Promise<AdminServer> {
  await ensureAuditBucket(broker.nc, broker.config);
  const link = natsLink(broker.nc);
  const ctx: AdminContext = {
    natsUp: link.up,
    nc: broker.nc,
    federation: broker.federation,
    replicas: broker.config.replicas,
    storage: broker.config.storage,
    authType: opts.auth.type,
    staleAfterMs: opts.staleAfterMs ?? DEFAULT_STALE_AFTER_MS,
    claimGraceMs: broker.config.claimGraceMs,
    now: Date.now,
    ...(opts.writers ? { writers: opts.writers } : {}),
    ...(opts.log ? { log: opts.log } : {}),
  };
  const server = await startAdminServer({
    address: opts.address,
    auth: opts.auth,
    services: brokerAdminServices(ctx),
    onCallEnd: (method, code) => broker.metrics.adminCall(method, code),
    ...(opts.log ? { log: opts.log } : {}),
  });
  return {
    ...server,
    async stop(graceMs) {
      link.stop();
      await server.stop(graceMs);
    },
  };
}

/** Follows the connection's status events: up unless disconnected and not yet back. */
function natsLink(nc: NatsConnection): { up: () => boolean; stop: () => void } {
  let up = true;
  const events = nc.status();
  void (async () => {
    for await (const s of events) {
      if (s.type === Events.Disconnect) up = false;
      else if (s.type === Events.Reconnect) up = true;
    }
  })();
  // status() returns a QueuedIterator at runtime; its stop() ends the loop above.
  const stop = () => (events as AsyncIterable<unknown> & { stop?: () => void }).stop?.();
  return { up: () => up && !nc.isClosed(), stop };
}
