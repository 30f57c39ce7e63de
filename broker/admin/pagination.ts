/**
 * The one pagination scheme of every admin List call: items sorted by a stable key,
 * `page_size` (0 = default 100, capped at 1000, negative refused) and an opaque
 * `page_token` that encodes the last key returned and a fingerprint of the query, so
 * a token is refused when reused with other filters. Keys rather than offsets, so
 * concurrent inserts and deletes never repeat or skip an item that stays.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError } from './errors.js';

export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

export interface PageRequest {
  readonly pageSize: number;
  readonly pageToken: string;
}

export interface Page<T> {
  readonly items: T[];
  readonly nextPageToken: string;
  readonly totalSize: number;
}

const fingerprint = (query: string) =>
  createHash('sha256').update(query).digest('hex').slice(0, 12);

/**
 * One page of `items` (already sorted by `keyOf`, ascending). `query` names the list
 * and its filters, e.g. "peerings?cluster=madrid".
 */
export function paginate<T>(
  items: readonly T[],
  req: PageRequest,
  keyOf: (item: T) => string,
  query: string,
): Page<T> {
  if (!Number.isInteger(req.pageSize) || req.pageSize < 0)
    throw InvalidArgumentError.field('page_size', 'must be 0 (default 100) or a positive number');
  const size = Math.min(req.pageSize || DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE);
  let after: string | undefined;
  if (req.pageToken) {
    let parsed: { a?: unknown; q?: unknown } | undefined;
    try {
      parsed = JSON.parse(Buffer.from(req.pageToken, 'base64url').toString('utf8')) as {
        a?: unknown;
        q?: unknown;
      };
    } catch {
      parsed = undefined;
    }
    if (typeof parsed?.a !== 'string' || parsed.q !== fingerprint(query))
      throw InvalidArgumentError.field(
        'page_token',
        'is not a token from a previous page of this same query; repeat the call without page_token',
      );
    after = parsed.a;
  }
  const start = after === undefined ? 0 : items.findIndex((i) => keyOf(i) > after);
  const rest = start < 0 ? [] : items.slice(start);
  const page = rest.slice(0, size);
  const last = page[page.length - 1];
  const nextPageToken =
    rest.length > size && last !== undefined
      ? Buffer.from(JSON.stringify({ a: keyOf(last), q: fingerprint(query) })).toString('base64url')
      : '';
  return { items: page, nextPageToken, totalSize: items.length };
}
