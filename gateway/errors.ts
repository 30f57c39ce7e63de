/**
 * Typed errors of the gateway. Each sets `name`, keeps `cause` and carries typed fields,
 * so the gRPC layer (one mapping function) and the CLI can say what was wrong and what
 * to do without parsing messages.
 */

/** One problem found in a desired config; `path` names the field, e.g. `networks[1].vni`. */
export interface ConfigIssue {
  readonly path: string;
  readonly message: string;
}

/**
 * The desired config is invalid. Raised before any command runs, so the running state
 * is untouched. Maps to gRPC INVALID_ARGUMENT.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    readonly issues: readonly ConfigIssue[],
    options?: { cause?: unknown },
  ) {
    super(
      `invalid gateway config: ${issues.map((i) => `${i.path || '(root)'}: ${i.message}`).join('; ')}`,
      options,
    );
  }
}

/**
 * The config is valid but the host cannot carry it (a segment bridge that does not
 * exist, an OVS database that does not answer). Raised while planning, before any
 * mutating command. Maps to gRPC FAILED_PRECONDITION.
 */
export class PreconditionError extends Error {
  override name = 'PreconditionError';
  constructor(
    readonly subject: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${subject}: ${message}`, options);
  }
}

/**
 * A step of a plan failed while it was executed. `done` lists the steps that ran
 * before it; the next apply re-reads the state and carries on from there.
 * Maps to gRPC INTERNAL (or UNAVAILABLE when the cause is a timeout).
 */
export class ApplyError extends Error {
  override name = 'ApplyError';
  constructor(
    readonly step: string,
    readonly done: readonly string[],
    options: { cause: unknown },
  ) {
    const why = options.cause instanceof Error ? options.cause.message : String(options.cause);
    super(`apply failed at step "${step}" (after ${done.length} steps): ${why}`, options);
  }
}

/** The private key file is unusable (bad permissions, bad content). */
export class KeyFileError extends Error {
  override name = 'KeyFileError';
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`private key file ${path}: ${message}`, options);
  }
}

/** Output of a host tool could not be understood (version skew, unexpected format). */
export class ParseError extends Error {
  override name = 'ParseError';
  constructor(
    readonly tool: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot parse ${tool} output: ${message}`, options);
  }
}
