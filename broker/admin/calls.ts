/**
 * Promise-returning, deadline-bound clients of every admin service, for the CLI and
 * the tests: `const api = adminApi(conn); await api.federation.listClusters({...})`.
 * Failed calls reject with the grpc ServiceError plus `fieldViolations` decoded from
 * the google.rpc.BadRequest trailer, so callers can show which field to fix.
 */
import {
  Metadata,
  type CallOptions,
  type Client,
  type ClientUnaryCall,
  type ServiceError,
} from '@grpc/grpc-js';
import { FederationServiceClient } from '../../proto/gen/l2fed/admin/v1/federation.js';
import { ActionServiceClient } from '../../proto/gen/l2fed/admin/v1/actions.js';
import { EventServiceClient } from '../../proto/gen/l2fed/admin/v1/events.js';
import { InfoServiceClient } from '../../proto/gen/l2fed/admin/v1/info.js';
import { channelFor, type AdminConnection } from './client.js';
import { decodeFieldViolations, type FieldViolation } from './status-details.js';

/** A failed admin call. */
export type AdminCallError = ServiceError & { fieldViolations: FieldViolation[] };

type UnaryOf<F> = F extends (
  req: infer Q,
  md: Metadata,
  o: Partial<CallOptions>,
  cb: (e: ServiceError | null, r: infer R) => void,
) => ClientUnaryCall
  ? (req: Q) => Promise<R>
  : never;

/** The unary methods of a generated client, as promise functions. */
export type Promised<C> = {
  [
    K in keyof C as K extends keyof Client ? never : UnaryOf<C[K]> extends never ? never : K
  ]: UnaryOf<C[K]>;
};

function withViolations(err: ServiceError): AdminCallError {
  const bin = err.metadata?.get('grpc-status-details-bin')[0];
  return Object.assign(err, {
    fieldViolations: bin instanceof Buffer ? decodeFieldViolations(bin) : [],
  });
}

function promised<C extends Client>(client: C, deadlineMs: number): Promised<C> {
  return new Proxy({} as Promised<C>, {
    get(_t, name: string) {
      return (req: unknown) =>
        new Promise((resolve, reject) => {
          const method = (client as unknown as Record<string, (...a: unknown[]) => unknown>)[name];
          if (typeof method !== 'function') throw new Error(`no admin method ${name}`);
          method.call(
            client,
            req,
            new Metadata(),
            { deadline: new Date(Date.now() + deadlineMs) },
            (err: ServiceError | null, res: unknown) =>
              err ? reject(withViolations(err)) : resolve(res),
          );
        });
    },
  });
}

export interface AdminApi {
  readonly info: Promised<InstanceType<typeof InfoServiceClient>>;
  readonly federation: Promised<InstanceType<typeof FederationServiceClient>>;
  readonly actions: Promised<InstanceType<typeof ActionServiceClient>>;
  /** The raw events client (server streaming). */
  readonly events: InstanceType<typeof EventServiceClient>;
  close(): void;
}

/** Clients of every admin service over one connection setup; each call gets `deadlineMs`. */
export function adminApi(conn: AdminConnection, deadlineMs = 10_000): AdminApi {
  const ch = channelFor(conn);
  const info = new InfoServiceClient(conn.address, ch.credentials, ch.options);
  const federation = new FederationServiceClient(conn.address, ch.credentials, ch.options);
  const actions = new ActionServiceClient(conn.address, ch.credentials, ch.options);
  const events = new EventServiceClient(conn.address, ch.credentials, ch.options);
  return {
    info: promised(info, deadlineMs),
    federation: promised(federation, deadlineMs),
    actions: promised(actions, deadlineMs),
    events,
    close() {
      for (const c of [info, federation, actions, events]) c.close();
    },
  };
}
