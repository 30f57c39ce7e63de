/**
 * Turns a failed admin call into a message that says what to do: which address was
 * tried, which flag or environment variable to check, which field to fix.
 */
import { status } from '@grpc/grpc-js';
import { describeError } from '../lib/errors.js';

interface CallError {
  code?: unknown;
  details?: unknown;
  fieldViolations?: { field: string; description: string }[];
  adminAddress?: string;
}

const HINTS: Partial<Record<number, (addr: string) => string>> = {
  [status.UNAVAILABLE]: (a) =>
    `is the broker running with its admin API on ${a}? Check --server (or L2FED_SERVER); ` +
    `with mTLS also --ca, --cert and --key`,
  [status.UNAUTHENTICATED]: () =>
    'pass a valid admin token with --token-file FILE (make one with "l2fed pki token")',
  [status.DEADLINE_EXCEEDED]: () => 'the broker did not answer in time; retry, or raise --timeout',
  [status.UNIMPLEMENTED]: () => 'the broker is older than this CLI; upgrade the broker',
};

/** One or more lines for stderr. */
export function explainCliError(err: unknown): string {
  const e = err as CallError;
  if (typeof e?.code !== 'number' || typeof e.details !== 'string') return describeError(err);
  const name = (status as unknown as Record<number, string>)[e.code] ?? String(e.code);
  const lines = [`${name}: ${e.details}`];
  for (const v of e.fieldViolations ?? []) lines.push(`  field ${v.field}: ${v.description}`);
  const hint = HINTS[e.code];
  if (hint) lines.push(`  hint: ${hint(e.adminAddress ?? 'the given address')}`);
  return lines.join('\n');
}
