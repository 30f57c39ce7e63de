/**
 * Typed errors of the cluster-agent. Each sets `name`, keeps `cause` and carries the fields
 * a caller needs to act (file and field for manifests; kind, name and HTTP status for the
 * Kubernetes API). Messages say what was wrong and what to do.
 */
import { formatProblem, type ManifestProblem } from './problems.js';

/** One or more manifests are invalid; the desired state built from them was not used. */
export class ManifestError extends Error {
  override name = 'ManifestError';
  constructor(
    readonly problems: readonly ManifestProblem[],
    options?: { cause?: unknown },
  ) {
    const errors = problems.filter((p) => p.severity === 'error');
    const shown = errors.slice(0, 5).map(formatProblem);
    const more = errors.length > shown.length ? `\n… and ${errors.length - shown.length} more` : '';
    super(
      `${errors.length} invalid manifest problem(s); keeping the last good desired state:\n` +
        shown.join('\n') +
        more,
      options,
    );
  }
}

/** The manifest folder cannot be read at all (missing, not a directory, no permission). */
export class ManifestFolderError extends Error {
  override name = 'ManifestFolderError';
  constructor(
    readonly dir: string,
    /** Why, for people: "it does not exist", "it is not a directory", or the error code. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(
      `cannot read manifest folder ${dir}: ${reason}; check source.folder in the agent config`,
      options,
    );
  }
}

/**
 * Listing or watching a custom resource failed (connection, auth, RBAC, CRD missing). The
 * source retries with backoff; this error is reported meanwhile.
 */
export class KubeWatchError extends Error {
  override name = 'KubeWatchError';
  constructor(
    readonly resource: string,
    readonly statusCode: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(
      `watching ${resource} failed${statusCode ? ` (HTTP ${statusCode})` : ''}: ${hint(statusCode)}`,
      options,
    );
  }
}

/** Writing a status subresource failed. */
export class StatusWriteError extends Error {
  override name = 'StatusWriteError';
  constructor(
    readonly resource: string,
    readonly objectName: string,
    readonly statusCode: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(
      `writing status of ${resource}/${objectName} failed${statusCode ? ` (HTTP ${statusCode})` : ''}: ${hint(statusCode)}`,
      options,
    );
  }
}

function hint(statusCode: number | undefined): string {
  switch (statusCode) {
    case undefined:
      return 'the API server is unreachable; check the kubeconfig and the network, retrying';
    case 401:
      return 'not authenticated; check the agent credentials (ServiceAccount token)';
    case 403:
      return 'forbidden; apply deploy/rbac/cluster-agent.yaml and check the binding';
    case 404:
      return 'not found; apply the CRDs in deploy/crds/ (or the object was deleted)';
    case 409:
      return 'conflict with a concurrent write; will retry with a fresh read';
    case 415:
      return 'unsupported patch type; this is a bug in the agent';
    case 422:
      return 'the API server rejected the value; this is a bug in the agent';
    default:
      return 'the API server returned an error, retrying';
  }
}

/** The agent config file is missing, unreadable or invalid; the agent does not start. */
export class AgentConfigError extends Error {
  override name = 'AgentConfigError';
  constructor(
    readonly file: string,
    readonly problems: readonly string[],
    options?: { cause?: unknown },
  ) {
    super(
      `agent config ${file} is invalid:\n  ${problems.join('\n  ')}\nFix: see docs/cluster-agent.md (Agent config file)`,
      options,
    );
  }
}

/** The broker cannot be reached (NATS down or disconnected) or did not answer in time. */
export class BrokerUnavailableError extends Error {
  override name = 'BrokerUnavailableError';
  constructor(
    readonly operation: string,
    options?: { cause?: unknown },
  ) {
    super(
      `broker unreachable during ${operation}; keeping the gateway on the last known peer map and retrying`,
      options,
    );
  }
}

/** The on-disk peer-map cache cannot be written (read problems only warn). */
export class CacheWriteError extends Error {
  override name = 'CacheWriteError';
  constructor(
    readonly file: string,
    options?: { cause?: unknown },
  ) {
    super(
      `cannot write the agent cache ${file}; check cacheDir permissions and free space`,
      options,
    );
  }
}
