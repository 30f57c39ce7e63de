/**
 * Glue between grpc-js handlers and async functions: every handler runs through
 * `unary` (or `serverStream`), so thrown errors always reach toGrpcStatus, the single
 * error mapping, and nothing a handler throws can crash the broker.
 */
import type { sendUnaryData, ServerUnaryCall, ServerWritableStream } from '@grpc/grpc-js';
import { InvalidArgumentError, toGrpcStatus } from './errors.js';
import { isDns1123Label } from '../names.js';
import type { Logger } from '../../lib/log.js';

/** Wraps an async unary handler; errors become gRPC statuses through toGrpcStatus. */
export function unary<Req, Res>(
  method: string,
  fn: (call: ServerUnaryCall<Req, Res>) => Promise<Res>,
  log?: Logger,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    fn(call).then(
      (res) => callback(null, res),
      (err: unknown) => {
        const st = toGrpcStatus(err);
        log?.info({ method, code: st.code, details: st.details }, 'admin call refused');
        callback(st, null);
      },
    );
  };
}

/** Wraps an async server-stream handler; the promise ends the stream or fails it. */
export function serverStream<Req, Res>(
  method: string,
  fn: (call: ServerWritableStream<Req, Res>) => Promise<void>,
  log?: Logger,
): (call: ServerWritableStream<Req, Res>) => void {
  return (call) => {
    fn(call).then(
      () => {
        if (!call.cancelled) call.end();
      },
      (err: unknown) => {
        const st = toGrpcStatus(err);
        log?.info({ method, code: st.code, details: st.details }, 'admin stream ended');
        // grpc-js turns an 'error' event on a server stream into the final status.
        if (!call.cancelled) call.emit('error', Object.assign(new Error(st.details), st));
      },
    );
  };
}

/** Requires a DNS-1123 label in `field` (cluster ids, network names). */
export function requireName(value: string, field: string, what: string): string {
  if (!value) throw InvalidArgumentError.field(field, `give the ${what} name`);
  if (!isDns1123Label(value))
    throw InvalidArgumentError.field(
      field,
      `"${value}" is not a valid ${what} name: use lower-case letters, digits and "-" (a DNS-1123 label)`,
    );
  return value;
}

/** Requires a non-empty reason (kept in the audit record). */
export function requireReason(reason: string): string {
  const r = reason.trim();
  if (!r)
    throw InvalidArgumentError.field(
      'reason',
      'say why (e.g. --reason "gateway compromised, ticket OPS-123"); it is kept in the audit log',
    );
  if (r.length > 500) throw InvalidArgumentError.field('reason', 'keep it under 500 characters');
  return r;
}
