/**
 * Property tests of the admin gRPC API over a real socket, against the real broker on
 * nats-server with the generated credentials (test/fixtures/admin.ts): random junk
 * requests, valid requests with one field made bad, and random bytes as the request
 * body, for every unary method. Each answer must be a success or a refusal with a
 * known code (never INTERNAL/UNKNOWN, except gRPC's own "Error deserializing request"
 * for undecodable bytes); an INVALID_ARGUMENT must name the mutated field in its
 * BadRequest detail (WatchEvents too); and a refused call must leave every KV stream untouched (same
 * message count and first/last sequence, hence byte-identical content), checked after
 * every input, with a full byte dump compared at the end. The server still answers.
 * Runs: test/fixtures/property.ts (L2FED_FUZZ_RUNS raises them).
 */
import type { ExecutionContext } from 'ava';
import fc from 'fast-check';
import { Client, credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import type { NatsConnection } from 'nats';
import { testWith } from '../fixtures/privileges.js';
import { seedScenario, startAdminFixture, type AdminFixture } from '../fixtures/admin.js';
import { ALL_BUCKETS, dumpKv } from '../fixtures/broker.js';
import { checkProperty, isLongFuzzRun } from '../fixtures/property.js';
import type { AdminCallError } from '../../broker/admin/calls.js';
import { FederationServiceService } from '../../proto/gen/l2fed/admin/v1/federation.js';
import { ActionServiceService } from '../../proto/gen/l2fed/admin/v1/actions.js';
import { isDns1123Label } from '../../broker/names.js';
import { encodeCursor, EVENT_SOURCES } from '../../broker/admin/events.js';
import { decodeFieldViolations } from '../../broker/admin/status-details.js';

const test = testWith({ tools: ['nats-server'] });

/** Refusal codes a bad request may get; anything else (INTERNAL, UNKNOWN…) is a bug. */
const REFUSALS = new Set([
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.FAILED_PRECONDITION,
  status.ALREADY_EXISTS,
]);
const CLUSTERS = ['athens', 'bristol', 'madrid'];
const NETWORKS = ['cdn', 'iot', 'web'];
const MASK_FIELDS = ['id', 'public_key', 'endpoints', 'transit_address', 'exports', 'cordon'];

// ------------------------------------------------------------------------ generators

const validName = fc.oneof(
  fc.constantFrom(...CLUSTERS, ...NETWORKS),
  fc.stringMatching(/^[a-z]([a-z0-9-]{0,20}[a-z0-9])?$/),
);
const badName = fc
  .oneof(
    fc.constantFrom('', '-x', 'x-', 'Madrid', 'a'.repeat(64), 'a.b', 'madrid\n', 'ma_drid'),
    fc.string({ maxLength: 70 }),
    fc.string({ unit: 'binary', maxLength: 70 }),
  )
  .filter((s) => !isDns1123Label(s));
const reason = fc.string({ minLength: 1, maxLength: 60 }).filter((s) => s.trim().length > 0);
const badReason = fc.oneof(
  fc.constantFrom('', ' ', '\n\t'),
  fc.string({ minLength: 501, maxLength: 600 }).filter((s) => s.trim().length > 500),
);
const mask = fc.uniqueArray(fc.constantFrom(...MASK_FIELDS), { maxLength: 3 });
const badMask = fc
  .tuple(
    mask,
    fc.string({ maxLength: 20 }).filter((s) => !MASK_FIELDS.includes(s)),
  )
  .map(([m, junk]) => [...m, junk]);
const pageSize = fc.integer({ min: 0, max: 50 });
const badPageSize = fc.integer({ min: -(2 ** 31), max: -1 });
const badPageToken = fc.oneof(
  fc.string({ minLength: 1, maxLength: 60 }),
  fc.base64String({ minLength: 4 }),
);
const filter = fc.oneof(fc.constant(''), validName);
const badFilter = badName.filter((s) => s !== '');
const junkString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  validName,
);
const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const uint32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });

type Req = Record<string, unknown>;
interface Mutation {
  /** The request with one field made bad. */
  readonly set: (r: Req) => fc.Arbitrary<Req>;
  /** The field the INVALID_ARGUMENT must name. */
  readonly names: RegExp;
}
interface Method {
  readonly service: 'federation' | 'actions';
  readonly name: string;
  readonly valid: fc.Arbitrary<Req>;
  readonly junk: fc.Arbitrary<Req>;
  readonly mutations: readonly Mutation[];
}

const set = (field: string, bad: fc.Arbitrary<unknown>, names: RegExp): Mutation => ({
  set: (r) => bad.map((v) => ({ ...r, [field]: v })),
  names,
});
const NAME = (field: string, proto = field) => set(field, badName, new RegExp(`^${proto}$`));
const REASON = set('reason', badReason, /^reason$/);
const PAGE = [
  set('pageSize', badPageSize, /^page_size$/),
  set('pageToken', badPageToken, /^page_token$/),
];
const listJunk = (extra: Record<string, fc.Arbitrary<unknown>> = {}) =>
  fc.record({ pageSize: int32, pageToken: junkString, ...extra });
const SAME_PAIR: Mutation = {
  set: (r) => fc.constant({ ...r, clusterB: r.clusterA }),
  names: /^cluster_b$/,
};

const METHODS: readonly Method[] = [
  {
    service: 'federation',
    name: 'listClusters',
    valid: fc.record({ pageSize, pageToken: fc.constant(''), readMask: mask }),
    junk: listJunk({ readMask: fc.array(junkString, { maxLength: 4 }) }),
    mutations: [...PAGE, set('readMask', badMask, /^read_mask\.paths\[\d+\]$/)],
  },
  {
    service: 'federation',
    name: 'getCluster',
    valid: fc.record({ id: validName, readMask: mask }),
    junk: fc.record({ id: junkString, readMask: fc.array(junkString, { maxLength: 4 }) }),
    mutations: [NAME('id'), set('readMask', badMask, /^read_mask\.paths\[\d+\]$/)],
  },
  ...(['listNetworks', 'listPeerings', 'listTunnelHealth'] as const).map((name): Method => ({
    service: 'federation',
    name,
    valid: fc.record({ pageSize, pageToken: fc.constant(''), cluster: filter }),
    junk: listJunk({ cluster: junkString }),
    mutations: [...PAGE, set('cluster', badFilter, /^cluster$/)],
  })),
  {
    service: 'federation',
    name: 'getNetwork',
    valid: fc.record({ name: validName }),
    junk: fc.record({ name: junkString }),
    mutations: [NAME('name')],
  },
  ...(['getPeering', 'getTunnelHealth'] as const).map((name): Method => ({
    service: 'federation',
    name,
    valid: fc
      .record({ clusterA: validName, clusterB: validName })
      .filter((r) => r.clusterA !== r.clusterB),
    junk: fc.record({ clusterA: junkString, clusterB: junkString }),
    mutations: [NAME('clusterA', 'cluster_a'), NAME('clusterB', 'cluster_b'), SAME_PAIR],
  })),
  ...(['cordonCluster', 'uncordonCluster'] as const).map((name): Method => ({
    service: 'actions',
    name,
    valid: fc.record({ cluster: validName, reason }),
    junk: fc.record({ cluster: junkString, reason: junkString }),
    mutations: [NAME('cluster'), REASON],
  })),
  {
    service: 'actions',
    name: 'evictCluster',
    valid: fc.record({ cluster: validName, reason, force: fc.boolean() }),
    junk: fc.record({ cluster: junkString, reason: junkString, force: fc.boolean() }),
    mutations: [NAME('cluster'), REASON],
  },
  {
    service: 'actions',
    name: 'releaseNetwork',
    valid: fc.record({ name: validName, reason, force: fc.boolean() }),
    junk: fc.record({ name: junkString, reason: junkString, force: fc.boolean() }),
    mutations: [NAME('name'), REASON],
  },
  {
    service: 'actions',
    name: 'releaseAllocation',
    valid: fc.oneof(
      fc.record({ vni: uint32, reason }),
      fc.record({ transitAddress: fc.ipV4(), reason }),
    ),
    junk: fc.record(
      { vni: uint32, transitAddress: junkString, reason: junkString },
      { requiredKeys: [] },
    ),
    mutations: [
      REASON,
      {
        // both or neither of the oneof
        set: (r) =>
          fc.constant(
            'vni' in r
              ? { ...r, transitAddress: '100.64.0.1' }
              : { ...r, transitAddress: undefined, vni: undefined },
          ),
        names: /^allocation$/,
      },
      {
        set: (r) =>
          fc
            .oneof(fc.string({ maxLength: 20 }), fc.ipV6())
            .filter((s) => !/^\d{1,3}(\.\d{1,3}){3}$/.test(s))
            .map((bad) => ({ reason: r.reason, transitAddress: bad })),
        names: /^transit_address$/,
      },
    ],
  },
  {
    service: 'actions',
    name: 'listAuditRecords',
    valid: fc.record({ pageSize, pageToken: fc.constant('') }),
    junk: listJunk(),
    mutations: PAGE,
  },
];

/** A valid request of `m` with exactly one field made bad, and the field to name. */
const nearValid = (m: Method) =>
  fc
    .tuple(m.valid, fc.constantFrom(...m.mutations))
    .chain(([r, mu]) => mu.set(r).map((req) => ({ req, names: mu.names })));

// ------------------------------------------------------------------------ harness

/** Message count and first/last sequence of every KV stream: any write changes it. */
async function streamStates(nc: NatsConnection): Promise<string> {
  const jsm = await nc.jetstreamManager();
  const out: string[] = [];
  for (const b of ALL_BUCKETS) {
    try {
      const s = (await jsm.streams.info(`KV_${b}`)).state;
      out.push(`${b}:${s.messages}/${s.first_seq}/${s.last_seq}`);
    } catch (err) {
      out.push(`${b}:${(err as Error).message}`);
    }
  }
  return out.join(' ');
}

interface Outcome {
  readonly ok: boolean;
  readonly code?: number;
  readonly details?: string;
  readonly fields: readonly string[];
}

async function callMethod(fx: AdminFixture, m: Method, req: Req): Promise<Outcome> {
  const svc = fx.api[m.service] as unknown as Record<string, (r: Req) => Promise<unknown>>;
  try {
    await svc[m.name]!(req);
    return { ok: true, fields: [] };
  } catch (err) {
    const e = err as AdminCallError;
    if (typeof e.code !== 'number') throw err;
    return {
      ok: false,
      code: e.code,
      details: e.details,
      fields: e.fieldViolations.map((v) => v.field),
    };
  }
}

/** Tracks the KV: unchanged after a refusal; re-baselined after an accepted input. */
async function kvGuard(fx: AdminFixture) {
  let baseline = await streamStates(fx.nc);
  const initialDump = await dumpKv(fx.nc);
  let changed = false;
  return {
    async check(accepted: boolean): Promise<string | undefined> {
      const now = await streamStates(fx.nc);
      if (accepted) {
        changed ||= now !== baseline;
        baseline = now;
        return undefined;
      }
      return now === baseline
        ? undefined
        : `KV changed after a refused input: ${baseline} → ${now}`;
    },
    /** When nothing was accepted, the full dump (keys, revisions, bytes) is identical. */
    async finalDumpMatches(): Promise<boolean> {
      return changed || (await dumpKv(fx.nc)) === initialDump;
    },
  };
}

const describe = (o: Outcome) =>
  o.ok
    ? 'OK'
    : `${status[o.code!]} ${JSON.stringify(o.details)} fields ${JSON.stringify(o.fields)}`;

async function fixture(t: ExecutionContext) {
  if (isLongFuzzRun()) t.timeout(60 * 60_000);
  const fx = await startAdminFixture(t);
  await seedScenario(fx);
  return fx;
}

// ------------------------------------------------------------------------ tests

test('admin properties - valid requests with one field made bad are refused naming that field; KV untouched', async (t) => {
  const fx = await fixture(t);
  const kv = await kvGuard(fx);
  const arb = fc.constantFrom(...METHODS).chain((m) => nearValid(m).map((x) => ({ m, ...x })));
  await checkProperty(
    t,
    'admin near-valid requests',
    fc.asyncProperty(arb, async ({ m, req, names }) => {
      const o = await callMethod(fx, m, req);
      const where = `${m.name}(${JSON.stringify(req)}) → ${describe(o)}`;
      if (o.ok || o.code !== status.INVALID_ARGUMENT) throw new Error(`not refused: ${where}`);
      if (!o.fields.some((f) => names.test(f)) || !o.details)
        throw new Error(`violation does not name ${names}: ${where}`);
      const drift = await kv.check(false);
      if (drift) throw new Error(`${drift} (${where})`);
    }),
  );
  t.true(await kv.finalDumpMatches(), 'every KV key, revision and value byte-identical');
  t.is((await fx.api.info.getVersion({})).component, 'broker');
});

test('admin properties - random junk requests get an answer or a known refusal; refusals leave KV untouched', async (t) => {
  const fx = await fixture(t);
  const kv = await kvGuard(fx);
  const arb = fc.constantFrom(...METHODS).chain((m) => m.junk.map((req) => ({ m, req })));
  let accepted = 0;
  await checkProperty(
    t,
    'admin junk requests',
    fc.asyncProperty(arb, async ({ m, req }) => {
      const o = await callMethod(fx, m, req);
      const where = `${m.name}(${JSON.stringify(req)}) → ${describe(o)}`;
      if (!o.ok && !REFUSALS.has(o.code!)) throw new Error(`unexpected status: ${where}`);
      if (o.code === status.INVALID_ARGUMENT && (o.fields.length === 0 || !o.details))
        throw new Error(`INVALID_ARGUMENT without a field violation: ${where}`);
      if (o.ok) accepted++;
      const drift = await kv.check(o.ok);
      if (drift) throw new Error(`${drift} (${where})`);
    }),
  );
  t.log(`${accepted} junk requests were valid reads or actions`);
  t.true(await kv.finalDumpMatches());
  t.is((await fx.api.info.getVersion({})).component, 'broker');
});

test('admin properties - random bytes as a request body: a known refusal or gRPC deserialization error; KV untouched', async (t) => {
  const fx = await fixture(t);
  const kv = await kvGuard(fx);
  const raw = new Client(fx.address, credentials.createInsecure());
  t.teardown(() => raw.close());
  const paths = [
    ...Object.values(FederationServiceService).map((d) => d.path),
    ...Object.values(ActionServiceService).map((d) => d.path),
  ];
  const send = (path: string, body: Buffer) =>
    new Promise<Outcome>((resolve) => {
      raw.makeUnaryRequest(
        path,
        (b: Buffer) => b,
        (b: Buffer) => b,
        body,
        new Metadata(),
        { deadline: new Date(Date.now() + 10_000) },
        (err: ServiceError | null) =>
          resolve(
            err
              ? { ok: false, code: err.code, details: err.details, fields: [] }
              : { ok: true, fields: [] },
          ),
      );
    });
  await checkProperty(
    t,
    'admin raw request bytes',
    fc.asyncProperty(
      fc.constantFrom(...paths),
      fc.uint8Array({ maxLength: 256 }),
      async (path, bytes) => {
        const o = await send(path, Buffer.from(bytes));
        const where = `${path} ${Buffer.from(bytes).toString('hex')} → ${describe(o)}`;
        const undecodable =
          o.code === status.INTERNAL && /deserializing request/.test(o.details ?? '');
        if (!o.ok && !REFUSALS.has(o.code!) && !undecodable)
          throw new Error(`unexpected status: ${where}`);
        const drift = await kv.check(o.ok);
        if (drift) throw new Error(`${drift} (${where})`);
      },
    ),
  );
  t.true(await kv.finalDumpMatches());
  t.is((await fx.api.info.getVersion({})).component, 'broker');
});

test('admin properties - WatchEvents with junk or one-field-bad requests: a stream or a refusal naming the field; KV untouched', async (t) => {
  const fx = await fixture(t);
  const kv = await kvGuard(fx);
  const kinds = EVENT_SOURCES.map((s) => s.kind as number);
  const validKinds = fc.uniqueArray(fc.constantFrom(...kinds), { maxLength: 3 });
  const token = fc
    .dictionary(fc.constantFrom(...kinds.map(String)), fc.nat({ max: 1000 }))
    .map((c) => encodeCursor(c));
  const badKind = fc.oneof(
    fc.integer({ min: -(2 ** 31), max: 0 }),
    fc.integer({ min: 8, max: 2 ** 31 - 1 }),
  );
  const arb = fc.oneof(
    // near-valid: one field made bad, and the field the refusal must name
    fc.tuple(validKinds, badKind, fc.nat()).map(([ks, bad, at]) => {
      const i = at % (ks.length + 1);
      return {
        req: {
          kinds: [...ks.slice(0, i), bad, ...ks.slice(i)],
          resumeToken: '',
          includeInitial: false,
        },
        names: new RegExp(`^kinds\\[${i}\\]$`),
      };
    }),
    fc.tuple(validKinds, badPageToken).map(([ks, junk]) => ({
      req: { kinds: ks, resumeToken: junk, includeInitial: false },
      names: /^resume_token$/,
    })),
    fc.tuple(validKinds, token).map(([ks, tok]) => ({
      req: { kinds: ks, resumeToken: tok, includeInitial: true },
      names: /^include_initial$/,
    })),
    // junk: any answer but a crash
    fc
      .record({
        kinds: fc.array(int32, { maxLength: 4 }),
        resumeToken: junkString,
        includeInitial: fc.boolean(),
      })
      .map((req) => ({ req, names: undefined })),
  );
  /** The stream's first outcome: an error status, or accepted (data, or quiet for 100 ms). */
  const watch = (req: Req) =>
    new Promise<Outcome>((resolve) => {
      const call = fx.api.events.watchEvents(req as never, new Metadata(), {
        deadline: new Date(Date.now() + 10_000),
      });
      const accept = () => {
        clearTimeout(quiet);
        resolve({ ok: true, fields: [] });
        call.cancel();
      };
      const quiet = setTimeout(accept, 100);
      call.on('data', accept);
      call.on('error', (err: ServiceError) => {
        clearTimeout(quiet);
        const bin = err.metadata?.get('grpc-status-details-bin')[0];
        resolve(
          err.code === status.CANCELLED
            ? { ok: true, fields: [] }
            : {
                ok: false,
                code: err.code,
                details: err.details,
                fields: bin instanceof Buffer ? decodeFieldViolations(bin).map((v) => v.field) : [],
              },
        );
      });
    });
  await checkProperty(
    t,
    'admin WatchEvents requests',
    fc.asyncProperty(arb, async ({ req, names }) => {
      const o = await watch(req);
      const where = `watchEvents(${JSON.stringify(req)}) → ${describe(o)}`;
      if (names) {
        if (o.ok || o.code !== status.INVALID_ARGUMENT) throw new Error(`not refused: ${where}`);
        if (!o.fields.some((f) => names.test(f)))
          throw new Error(`violation does not name ${names}: ${where}`);
      } else if (!o.ok && o.code !== status.INVALID_ARGUMENT) {
        throw new Error(`unexpected status: ${where}`);
      }
      const drift = await kv.check(false); // watching never writes
      if (drift) throw new Error(`${drift} (${where})`);
    }),
  );
  t.true(await kv.finalDumpMatches());
});
