/**
 * Typed broker errors. Each sets `name`, keeps `cause` and carries typed fields; one
 * function (`toErrorBody`) maps any thrown value to the structured error reply that
 * goes back on the wire, so the protocol never leaks stack traces or raw NATS errors.
 */
import { describeError } from '../lib/errors.js';

/** Every error code a broker reply can carry. Stable: agents switch on these. */
export const ERROR_CODES = [
  'BAD_JSON',
  'INVALID_REQUEST',
  'PAYLOAD_TOO_LARGE',
  'UNKNOWN_SUBJECT',
  'NOT_REGISTERED',
  'CLUSTER_ID_TAKEN',
  'KEY_MISMATCH',
  'KEY_IN_USE',
  'POOL_EXHAUSTED',
  'QUOTA_EXCEEDED',
  'CONFLICT',
  'UNAVAILABLE',
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** Error codes after which the same request may simply be retried later. */
export const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set(['CONFLICT', 'UNAVAILABLE']);

/** The `error` member of a failed reply. */
export interface ErrorBody {
  readonly code: ErrorCode;
  readonly message: string;
  /** Dotted path of the offending request field, when one field is to blame. */
  readonly field?: string;
  /** When the same request can succeed (ms from now), if the broker knows; clients retry then. */
  readonly retryAfterMs?: number;
}

/** Base class of errors that become a structured reply with their own code. */
export abstract class BrokerError extends Error {
  abstract readonly code: ErrorCode;
  readonly field: string | undefined;
  /** See ErrorBody.retryAfterMs. */
  retryAfterMs: number | undefined;
  constructor(message: string, options?: { cause?: unknown; field?: string }) {
    super(message, { cause: options?.cause });
    this.field = options?.field;
  }
}

/** The request body is not JSON. Nothing was changed. */
export class BadJsonError extends BrokerError {
  override name = 'BadJsonError';
  readonly code = 'BAD_JSON';
}

/** The request failed schema validation (unknown field, bad name, out of range …). */
export class InvalidRequestError extends BrokerError {
  override name = 'InvalidRequestError';
  readonly code = 'INVALID_REQUEST';
}

/** The request body is larger than the configured maximum. */
export class PayloadTooLargeError extends BrokerError {
  override name = 'PayloadTooLargeError';
  readonly code = 'PAYLOAD_TOO_LARGE';
  constructor(
    readonly size: number,
    readonly limit: number,
  ) {
    super(`request body is ${size} bytes, the limit is ${limit}; send fewer items per request`);
  }
}

/** The subject is not one of the l2fed.v1 request subjects. */
export class UnknownSubjectError extends BrokerError {
  override name = 'UnknownSubjectError';
  readonly code = 'UNKNOWN_SUBJECT';
  constructor(
    readonly subject: string,
    message: string,
    field?: string,
  ) {
    super(message, field === undefined ? undefined : { field });
  }
}

/** The cluster must register before it exports networks or declares peerings. */
export class NotRegisteredError extends BrokerError {
  override name = 'NotRegisteredError';
  readonly code = 'NOT_REGISTERED';
  constructor(readonly clusterId: string) {
    super(`cluster "${clusterId}" is not registered; send l2fed.v1.${clusterId}.register first`);
  }
}

/** A key rotation named a previous key the broker does not hold. Nothing changed. */
export class KeyMismatchError extends BrokerError {
  override name = 'KeyMismatchError';
  readonly code = 'KEY_MISMATCH';
  constructor(readonly clusterId: string) {
    super(
      `previousKey is not the key registered for cluster "${clusterId}"; ` +
        `read the registered key with l2fed.v1.${clusterId}.get and rotate from it`,
      { field: 'previousKey' },
    );
  }
}

/**
 * Another cluster already uses this WireGuard public key; peers could not tell them
 * apart. The reply does not name the holder (`holder` is for the broker's log only).
 */
export class KeyInUseError extends BrokerError {
  override name = 'KeyInUseError';
  readonly code = 'KEY_IN_USE';
  constructor(
    readonly clusterId: string,
    readonly holder: string,
  ) {
    super(
      `this WireGuard public key is already registered by another cluster; every gateway ` +
        `needs its own key: generate one (wg genkey | wg pubkey) and register with it`,
      { field: 'publicKey' },
    );
  }
}

/**
 * Someone registered an existing cluster id with a different public key while the
 * registered key's gateway was still heard from (see Federation.register: a replaced
 * gateway's new key is accepted once the old one has been silent for rejoinAfterMs).
 * Nothing changed apart from the cluster record's `rejoin` note.
 */
export class ClusterTakeoverError extends BrokerError {
  override name = 'ClusterTakeoverError';
  readonly code = 'CLUSTER_ID_TAKEN';
  constructor(
    readonly clusterId: string,
    /** How long ago the registered key's gateway was last heard from, and the wait left. */
    readonly rejoin?: { readonly silentMs: number; readonly waitMs: number },
  ) {
    super(
      rejoin
        ? `cluster "${clusterId}" is registered with another WireGuard public key, whose ` +
            `gateway was heard from ${Math.round(rejoin.silentMs / 1000)} s ago. If this gateway ` +
            `replaced it (new node, key file lost), the broker accepts this key once the old ` +
            `one has been silent long enough (about ${Math.ceil(rejoin.waitMs / 1000)} s from ` +
            `now) and peers switch to it; to accept it at once, an admin evicts the old ` +
            `registration (l2fed evict ${clusterId} --force --reason "gateway replaced"). If the ` +
            `old gateway still runs, two gateways claim this cluster: stop one`
        : `cluster id "${clusterId}" is registered with a different WireGuard public key; ` +
            `use the original key, or rotate it with l2fed.v1.<id>.rotate-key`,
      { field: 'publicKey' },
    );
    if (rejoin) this.retryAfterMs = Math.ceil(rejoin.waitMs);
  }
}

/** No free VNI or transit address is left in the configured range. */
export class PoolExhaustedError extends BrokerError {
  override name = 'PoolExhaustedError';
  readonly code = 'POOL_EXHAUSTED';
  constructor(
    readonly pool: 'vni' | 'transit',
    readonly probed: number,
  ) {
    super(
      `no free ${pool === 'vni' ? 'VNI' : 'transit address'} after probing ${probed} ` +
        `candidates; widen the ${pool === 'vni' ? 'vniRange' : 'transitPool'} broker setting ` +
        `or wait for quarantined entries to expire`,
    );
  }
}

/** A per-cluster limit of the broker config would be exceeded. Nothing was changed. */
export class QuotaExceededError extends BrokerError {
  override name = 'QuotaExceededError';
  readonly code = 'QUOTA_EXCEEDED';
  constructor(
    readonly clusterId: string,
    /** The broker setting that sets the limit. */
    readonly limit: string,
    readonly max: number,
    message: string,
    field?: string,
  ) {
    super(
      `cluster "${clusterId}": ${message} (broker setting ${limit} = ${max})`,
      field === undefined ? undefined : { field },
    );
  }
}

/** Compare-and-set kept losing to concurrent writers; the request may be retried. */
export class ConflictError extends BrokerError {
  override name = 'ConflictError';
  readonly code = 'CONFLICT';
  constructor(
    readonly key: string,
    readonly attempts: number,
  ) {
    super(`too much contention on "${key}" (${attempts} attempts); retry the request`);
  }
}

/** NATS / JetStream did not answer (restart, leader election, timeout). Retryable. */
export class StoreUnavailableError extends BrokerError {
  override name = 'StoreUnavailableError';
  readonly code = 'UNAVAILABLE';
  constructor(
    readonly operation: string,
    cause: unknown,
  ) {
    super(`state store unavailable during ${operation}: ${describeError(cause)}; retry shortly`, {
      cause,
    });
  }
}

/** The broker configuration is invalid; thrown at start, never sent on the wire. */
export class BrokerConfigError extends Error {
  override name = 'BrokerConfigError';
  constructor(
    message: string,
    readonly field?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A reply from the broker carried an error (client side). */
export class BrokerReplyError extends Error {
  override name = 'BrokerReplyError';
  readonly code: ErrorCode;
  readonly field: string | undefined;
  constructor(
    readonly subject: string,
    body: ErrorBody,
  ) {
    super(`${subject}: ${body.code}: ${body.message}${body.field ? ` (field ${body.field})` : ''}`);
    this.code = body.code;
    this.field = body.field;
    // Only a sane hint is followed: a broker must not park an agent for long.
    const after = body.retryAfterMs;
    this.retryAfterMs =
      typeof after === 'number' && Number.isFinite(after) && after >= 0
        ? Math.min(after, 10 * 60_000)
        : undefined;
  }
  /** See ErrorBody.retryAfterMs (bounded to 10 min). */
  readonly retryAfterMs: number | undefined;
  get retryable(): boolean {
    return RETRYABLE_CODES.has(this.code);
  }
}

/** Maps any thrown value to the error body of a reply; unknown errors become INTERNAL. */
export function toErrorBody(err: unknown): ErrorBody {
  if (err instanceof BrokerError) {
    return {
      code: err.code,
      message: err.message,
      ...(err.field === undefined ? {} : { field: err.field }),
      ...(err.retryAfterMs === undefined ? {} : { retryAfterMs: err.retryAfterMs }),
    };
  }
  return { code: 'INTERNAL', message: `internal broker error: ${describeError(err)}` };
}
