/**
 * Property tests at the broker's message boundary (fake KV): arbitrary subjects, bodies
 * and reply subjects. `L2FED_FUZZ_RUNS=10000` for the long run.
 */
import test from 'ava';
import fc from 'fast-check';
import { checkProperty, isLongFuzzRun } from '../test/fixtures/property.js';
import { FakeKvStore } from './kv-store-fake.js';
import { Federation } from './federation.js';
import { resolveConfig } from './config.js';
import { handleRequest } from './request-handler.js';
import { isOwnInbox } from './broker.js';
import { ERROR_CODES } from './errors.js';
import { BUCKETS, type BucketId } from './records.js';
import { VERBS } from './protocol.js';

async function dump(store: FakeKvStore): Promise<string> {
  const out: string[] = [];
  for (const bucket of Object.keys(BUCKETS) as BucketId[])
    for (const key of (await store.keys(bucket, '>')).sort())
      out.push(`${bucket}/${key} ${JSON.stringify(await store.get(bucket, key))}`);
  return out.join('\n');
}

const KEY = 'x4gOZYP7gYK/0dBhgSvq7+nIu9ygrsAx6gqwmjXzT0I=';
const id = fc.constantFrom('a', 'b', 'zz', 'A', 'a_b', '', '*', '>');
const subject = fc.oneof(
  fc.tuple(id, fc.constantFrom(...VERBS, 'explode')).map(([i, v]) => `l2fed.v1.${i}.${v}`),
  fc.string({ maxLength: 40 }),
);
// Bodies: JSON near the schemas (right keys, wrong values), any JSON, and raw text.
const nearBody = fc.record(
  {
    publicKey: fc.oneof(fc.constant(KEY), fc.string()),
    previousKey: fc.oneof(fc.constant(KEY), fc.string()),
    endpoints: fc.array(fc.oneof(fc.constant('198.18.0.1:51820'), fc.string()), { maxLength: 10 }),
    networks: fc.array(fc.oneof(fc.constantFrom('cdn', 'iot'), fc.string()), { maxLength: 5 }),
    peerings: fc.array(fc.record({ remoteCluster: fc.oneof(fc.constant('b'), fc.string()) })),
    reportedAt: fc.string(),
    peers: fc.array(fc.anything(), { maxLength: 3 }),
    extra: fc.anything(),
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  nearBody.map((b) => JSON.stringify(b)),
  fc.json(),
  fc.string({ maxLength: 200 }),
);

test('properties - any request gets a structured reply; a refused one changes nothing', async (t) => {
  if (isLongFuzzRun()) t.timeout(20 * 60_000);
  await checkProperty(
    t,
    'broker requests',
    fc.asyncProperty(subject, body, async (subj, data) => {
      const store = new FakeKvStore();
      const fed = new Federation(store, resolveConfig({ transitPool: '100.64.0.0/28' }));
      await fed.register('a', {
        publicKey: KEY,
        endpoints: ['198.18.0.1:51820'],
        capabilities: [],
      });
      await fed.setExports('a', ['cdn']);
      const before = await dump(store);
      const reply = await handleRequest(fed, subj, new TextEncoder().encode(data), 64 * 1024);
      if (reply.ok) return true;
      if (!(ERROR_CODES as readonly string[]).includes(reply.error.code))
        throw new Error(`unknown code ${reply.error.code}`);
      if (reply.error.message.length < 10) throw new Error(`vague: ${reply.error.message}`);
      if (reply.error.code === 'INTERNAL') throw new Error(`INTERNAL: ${reply.error.message}`);
      if ((await dump(store)) !== before) throw new Error(`${reply.error.code} changed the store`);
      return true;
    }),
  );
});

test("properties - the broker answers only in the requester's own inbox", async (t) => {
  const token = fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/);
  const reply = fc.oneof(
    fc
      .tuple(fc.constantFrom('a', 'b', 'ab'), fc.array(token, { minLength: 1, maxLength: 3 }))
      .map(([i, ts]) => `_INBOX_${i}.${ts.join('.')}`),
    fc.string({ maxLength: 30 }),
    fc.string({ maxLength: 30 }).map((s) => `_INBOX_a.${s}`),
  );
  await checkProperty(
    t,
    'reply subjects',
    fc.property(reply, (r) => {
      const ok = isOwnInbox('l2fed.v1.a.get', r);
      const tokens = r.split('.');
      const expected =
        tokens[0] === '_INBOX_a' &&
        tokens.length > 1 &&
        tokens.slice(1).every((x) => /^[A-Za-z0-9_-]+$/.test(x));
      if (ok !== expected) throw new Error(`isOwnInbox(${JSON.stringify(r)}) = ${ok}`);
      return true;
    }),
  );
});
