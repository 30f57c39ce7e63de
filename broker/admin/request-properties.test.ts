/**
 * Property tests of the pure pieces that turn an admin gRPC request into an action:
 * names, reasons, read masks, page sizes and tokens, event resume tokens. For random
 * junk and for valid values with one part mutated: never an unexpected exception
 * (only InvalidArgumentError), the violation names the request field, and the gRPC
 * status built from it is INVALID_ARGUMENT with the same field in its BadRequest detail.
 * Runs: test/fixtures/property.ts (L2FED_FUZZ_RUNS raises them).
 */
import test from 'ava';
import fc from 'fast-check';
import { status } from '@grpc/grpc-js';
import { InvalidArgumentError, toGrpcStatus } from './errors.js';
import { requireName, requireReason } from './rpc.js';
import { checkClusterMask } from './field-mask.js';
import { MAX_PAGE_SIZE, paginate } from './pagination.js';
import { decodeCursor, encodeCursor, EVENT_SOURCES } from './events.js';
import { decodeFieldViolations } from './status-details.js';
import { isDns1123Label } from '../names.js';
import { checkProperty } from '../../test/fixtures/property.js';

const CLUSTER_FIELDS = [
  'id',
  'public_key',
  'endpoints',
  'capabilities',
  'transit_address',
  'registered_at',
  'exports',
  'declared_peers',
  'active_peers',
  'cordon',
  'health',
];

/** Strings that are often almost a DNS label, sometimes one, sometimes anything. */
export const nameish = fc.oneof(
  fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/),
  fc.stringMatching(/^[a-zA-Z0-9._-]{0,70}$/),
  fc.constantFrom('', '-a', 'a-', 'A', 'a'.repeat(64), 'a.b', 'madrid\n', ' madrid', 'ma_drid'),
  fc.string({ unit: 'binary', maxLength: 80 }),
);

/**
 * Runs fn; returns undefined when it returned, the InvalidArgumentError when it threw
 * one, and fails the property on any other exception (with its type and message).
 */
function refusal(fn: () => unknown): InvalidArgumentError | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    if (err instanceof InvalidArgumentError) return err;
    throw new Error(`unexpected ${(err as Error)?.name}: ${(err as Error)?.message}`);
  }
}

/** The status the handler would send names `field` in message and BadRequest detail. */
function namesField(err: InvalidArgumentError, field: RegExp): boolean {
  const st = toGrpcStatus(err);
  const bin = st.metadata?.get('grpc-status-details-bin')[0];
  const decoded = bin instanceof Buffer ? decodeFieldViolations(bin) : [];
  return (
    st.code === status.INVALID_ARGUMENT &&
    err.violations.length > 0 &&
    err.violations.every((v) => field.test(v.field) && v.description.length > 0) &&
    decoded.length === err.violations.length &&
    decoded.every((v, i) => v.field === err.violations[i]!.field) &&
    field.test(st.details ?? '')
  );
}

test('admin request properties - names: a DNS-1123 label passes unchanged, anything else is refused naming the field', async (t) => {
  await checkProperty(
    t,
    'requireName',
    fc.property(nameish, fc.constantFrom('id', 'cluster', 'cluster_a', 'name'), (v, field) => {
      const err = refusal(() => requireName(v, field, 'cluster'));
      if (err === undefined) return isDns1123Label(v);
      return !isDns1123Label(v) && namesField(err, new RegExp(`^${field}\\b`));
    }),
  );
});

test('admin request properties - reasons: 1..500 non-blank characters, else refused naming reason', async (t) => {
  await checkProperty(
    t,
    'requireReason',
    fc.property(
      fc.oneof(
        fc.string({ maxLength: 40 }),
        fc.string({ unit: 'grapheme', minLength: 480, maxLength: 520 }),
        fc.stringMatching(/^\s{0,10}$/),
      ),
      (reason) => {
        const err = refusal(() => requireReason(reason));
        const r = reason.trim();
        if (err === undefined) return r.length > 0 && r.length <= 500;
        return (r.length === 0 || r.length > 500) && namesField(err, /^reason\b/);
      },
    ),
  );
});

test('admin request properties - read masks: the first unknown path is named by index', async (t) => {
  const path = fc.oneof(fc.constantFrom(...CLUSTER_FIELDS), nameish);
  await checkProperty(
    t,
    'checkClusterMask',
    fc.property(fc.array(path, { maxLength: 12 }), (paths) => {
      const err = refusal(() => checkClusterMask(paths));
      const bad = paths.findIndex((p) => !CLUSTER_FIELDS.includes(p));
      if (err === undefined) return bad < 0;
      return bad >= 0 && namesField(err, new RegExp(`^read_mask\\.paths\\[${bad}\\]`));
    }),
  );
});

const keys = fc.uniqueArray(fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/), { maxLength: 40 });

test('admin request properties - pagination: every page size and junk or mutated token is a page or a page_token/page_size refusal', async (t) => {
  const junkToken = fc.oneof(
    fc.string({ maxLength: 60 }),
    fc.base64String({ maxLength: 60 }),
    fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? 'null').toString('base64url')),
    fc
      .record({ a: fc.anything(), q: fc.oneof(fc.string(), fc.anything()) }, { requiredKeys: [] })
      .map((v) => Buffer.from(JSON.stringify(v) ?? 'null').toString('base64url')),
  );
  await checkProperty(
    t,
    'paginate',
    fc.property(
      keys,
      fc.oneof(fc.integer(), fc.integer({ min: -2, max: 1200 }), fc.double()),
      junkToken,
      (ks, pageSize, pageToken) => {
        const items = [...ks].sort();
        const err = refusal(() => paginate(items, { pageSize, pageToken }, (k) => k, 'q'));
        if (err === undefined) return Number.isInteger(pageSize) && pageSize >= 0;
        return namesField(err, /^page_(token|size)\b/);
      },
    ),
  );
});

test('admin request properties - pagination: walking the tokens returns every item once, in order; a token is bound to its query', async (t) => {
  await checkProperty(
    t,
    'paginate walk',
    fc.property(keys, fc.integer({ min: 1, max: 7 }), fc.nat(), (ks, size, flip) => {
      const items = [...ks].sort();
      const seen: string[] = [];
      let token = '';
      let pages = 0;
      do {
        const p = paginate(items, { pageSize: size, pageToken: token }, (k) => k, 'clusters');
        seen.push(...p.items);
        if (p.items.length > Math.min(size, MAX_PAGE_SIZE) || p.totalSize !== items.length)
          return false;
        if (p.nextPageToken) {
          // The same token with other filters is refused, naming page_token.
          const other = refusal(() =>
            paginate(items, { pageSize: size, pageToken: p.nextPageToken }, (k) => k, 'peerings'),
          );
          if (!other || !namesField(other, /^page_token\b/)) return false;
          // One character changed: refused, or (if still a token of this query) a page.
          const chars = [...p.nextPageToken];
          const i = flip % chars.length;
          chars[i] = chars[i] === 'A' ? 'B' : 'A';
          const mutated = refusal(() =>
            paginate(items, { pageSize: size, pageToken: chars.join('') }, (k) => k, 'clusters'),
          );
          if (mutated && !namesField(mutated, /^page_token\b/)) return false;
        }
        token = p.nextPageToken;
      } while (token && ++pages < 100);
      return JSON.stringify(seen) === JSON.stringify(items);
    }),
  );
});

test('admin request properties - event resume tokens: junk is refused naming resume_token; real ones round-trip', async (t) => {
  const kinds = EVENT_SOURCES.map((s) => s.kind);
  const cursor = fc.dictionary(
    fc.constantFrom(...kinds.map(String)),
    fc.nat({ max: Number.MAX_SAFE_INTEGER }),
  );
  await checkProperty(
    t,
    'decodeCursor',
    fc.property(
      fc.oneof(
        fc.string({ maxLength: 80 }),
        fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v) ?? '').toString('base64url')),
        // near-valid: a real cursor with one entry made bad
        fc
          .tuple(cursor, fc.string({ maxLength: 6 }), fc.anything())
          .map(([c, k, v]) => Buffer.from(JSON.stringify({ ...c, [k]: v })).toString('base64url')),
        cursor.map((c) => encodeCursor(c)),
      ),
      (token) => {
        const err = refusal(() => decodeCursor(token));
        if (err !== undefined) return namesField(err, /^resume_token\b/);
        const c = decodeCursor(token);
        return Object.entries(c).every(
          ([k, v]) => kinds.map(String).includes(k) && Number.isInteger(v) && v! >= 0,
        );
      },
    ),
  );
});
