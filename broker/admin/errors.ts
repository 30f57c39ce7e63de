/**
 * Admin API errors and the ONE place that turns any thrown value into a gRPC status.
 * Handlers throw typed errors (these, or the broker's own from errors.ts); `toGrpcStatus`
 * picks the code, keeps a message that says what to do, and for INVALID_ARGUMENT adds
 * google.rpc.BadRequest field violations in the `grpc-status-details-bin` trailer.
 */
import { Metadata, status, type StatusObject } from '@grpc/grpc-js';
import { describeError } from '../../lib/errors.js';
import {
  BrokerError,
  ClusterTakeoverError,
  ConflictError,
  InvalidRequestError,
  NotRegisteredError,
  PoolExhaustedError,
  StoreUnavailableError,
} from '../errors.js';
import { encodeBadRequestStatus, type FieldViolation } from './status-details.js';

/** Base of admin API errors; `kind` selects the gRPC code in toGrpcStatus. */
export abstract class AdminError extends Error {
  abstract readonly kind: AdminErrorKind;
}

export const ADMIN_ERROR_KINDS = [
  'invalid-argument',
  'not-found',
  'already-exists',
  'failed-precondition',
  'permission-denied',
  'unavailable',
  'deadline-exceeded',
] as const;
export type AdminErrorKind = (typeof ADMIN_ERROR_KINDS)[number];

/** One or more request fields are wrong; each violation says which and how to fix it. */
export class InvalidArgumentError extends AdminError {
  override name = 'InvalidArgumentError';
  readonly kind = 'invalid-argument';
  constructor(readonly violations: readonly FieldViolation[]) {
    super(violations.map((v) => `${v.field}: ${v.description}`).join('; '));
  }
  /** Shorthand for a single violation. */
  static field(field: string, description: string): InvalidArgumentError {
    return new InvalidArgumentError([{ field, description }]);
  }
}

/** The named object does not exist. */
export class NotFoundError extends AdminError {
  override name = 'NotFoundError';
  readonly kind = 'not-found';
}

/** The action was already done (e.g. cordoning a cordoned cluster). */
export class AlreadyExistsError extends AdminError {
  override name = 'AlreadyExistsError';
  readonly kind = 'already-exists';
}

/** The state does not allow the action; the message says what must change first. */
export class FailedPreconditionError extends AdminError {
  override name = 'FailedPreconditionError';
  readonly kind = 'failed-precondition';
}

/** The caller is authenticated but may not do this. */
export class PermissionDeniedError extends AdminError {
  override name = 'PermissionDeniedError';
  readonly kind = 'permission-denied';
}

/** The call's deadline leaves no time to do the work. */
export class DeadlineError extends AdminError {
  override name = 'DeadlineError';
  readonly kind = 'deadline-exceeded';
}

const KIND_CODES = {
  'invalid-argument': status.INVALID_ARGUMENT,
  'not-found': status.NOT_FOUND,
  'already-exists': status.ALREADY_EXISTS,
  'failed-precondition': status.FAILED_PRECONDITION,
  'permission-denied': status.PERMISSION_DENIED,
  unavailable: status.UNAVAILABLE,
  'deadline-exceeded': status.DEADLINE_EXCEEDED,
} as const satisfies Record<AdminErrorKind, status>;

/** NATS errors that mean "the store did not answer" (no responders, timeout, closed). */
function isNatsUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return (
    typeof code === 'string' &&
    ['503', 'TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_DRAINING', 'DISCONNECT'].includes(code)
  );
}

const UNAVAILABLE_HINT =
  'the broker cannot reach NATS JetStream; check that nats-server is up and retry';

/**
 * Maps any thrown value to the status a handler sends. The only such mapping in the
 * admin API: handlers never pick codes themselves. Unknown errors become INTERNAL
 * with their description (no stack traces).
 */
export function toGrpcStatus(err: unknown): Partial<StatusObject> {
  const make = (code: status, details: string, metadata = new Metadata()) => ({
    code,
    details,
    metadata,
  });
  if (err instanceof InvalidArgumentError) {
    const md = new Metadata();
    md.set(
      'grpc-status-details-bin',
      encodeBadRequestStatus(status.INVALID_ARGUMENT, err.message, err.violations),
    );
    return make(status.INVALID_ARGUMENT, err.message, md);
  }
  if (err instanceof AdminError) return make(KIND_CODES[err.kind], err.message);
  if (err instanceof StoreUnavailableError || isNatsUnavailable(err))
    return make(status.UNAVAILABLE, `${UNAVAILABLE_HINT} (${describeError(err)})`);
  if (err instanceof NotRegisteredError)
    return make(status.NOT_FOUND, `cluster "${err.clusterId}" is not registered`);
  if (err instanceof ClusterTakeoverError) return make(status.ALREADY_EXISTS, err.message);
  if (err instanceof ConflictError) return make(status.ABORTED, err.message);
  if (err instanceof PoolExhaustedError) return make(status.RESOURCE_EXHAUSTED, err.message);
  if (err instanceof InvalidRequestError)
    return toGrpcStatus(InvalidArgumentError.field(err.field ?? '', err.message));
  if (err instanceof BrokerError) return make(status.INTERNAL, err.message);
  return make(status.INTERNAL, `internal admin API error: ${describeError(err)}; see broker logs`);
}
