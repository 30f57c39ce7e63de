/** The one place that maps gateway errors to gRPC status codes. */
import { status } from '@grpc/grpc-js';
import { CommandError, MissingToolError } from '../lib/errors.js';
import { ApplyError, ConfigError, KeyFileError, PreconditionError } from './errors.js';

export interface GrpcFailure {
  readonly code: status;
  readonly details: string;
}

/** Maps any thrown value to a status; the message says what was wrong. */
export function toGrpcStatus(err: unknown): GrpcFailure {
  const details = err instanceof Error ? err.message : String(err);
  if (err instanceof ConfigError) return { code: status.INVALID_ARGUMENT, details };
  if (
    err instanceof PreconditionError ||
    err instanceof KeyFileError ||
    err instanceof MissingToolError
  ) {
    return { code: status.FAILED_PRECONDITION, details };
  }
  if (err instanceof ApplyError && err.cause instanceof CommandError && err.cause.timedOut) {
    return { code: status.UNAVAILABLE, details };
  }
  return { code: status.INTERNAL, details };
}
