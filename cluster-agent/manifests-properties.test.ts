/**
 * Property tests of the manifest boundary (parseManifests, `l2fed validate`'s validate(),
 * the folder source): random text, random YAML objects, and the shipped examples
 * (deploy/examples) with one field mutated (replaced by junk, removed, or an unknown key
 * added). Asserted: nothing throws; every problem has a reason and a fix; a refused
 * mutation is reported at the mutated field (or its parent or child); validate() never
 * writes; and the folder source keeps its last good state byte-identical after a bad
 * folder. Runs: test/fixtures/property.ts (L2FED_FUZZ_RUNS raises them).
 */
import test from 'ava';
import fc from 'fast-check';
import { readdirSync, readFileSync } from 'node:fs';
import { readFile, writeFile, cp } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { parseManifests } from './manifests.js';
import { formatPath, type ManifestProblem } from './problems.js';
import { validate } from './validate.js';
import { FolderSource } from './source-folder.js';
import { checkProperty, isLongFuzzRun } from '../test/fixtures/property.js';
import { makeRunDir } from '../test/fixtures/run-dir.js';

const EXAMPLES = join(import.meta.dirname, '..', 'deploy', 'examples');
const CLUSTER = 'madrid';

/** Every document of the examples, as plain objects (the valid seeds). */
const SEEDS: readonly Record<string, unknown>[] = readdirSync(EXAMPLES).flatMap((c) =>
  readdirSync(join(EXAMPLES, c)).flatMap((f) =>
    parseAllDocuments(readFileSync(join(EXAMPLES, c, f), 'utf8'))
      .map((d) => d.toJS() as unknown)
      .filter((o): o is Record<string, unknown> => typeof o === 'object' && o !== null),
  ),
);

/** Every path into a value (objects and arrays), including the root []. */
function pathsOf(v: unknown, at: (string | number)[] = []): (string | number)[][] {
  const out = [at];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...pathsOf(x, [...at, i])));
  else if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) out.push(...pathsOf(x, [...at, k]));
  return out;
}

type Edit =
  | { op: 'replace'; path: (string | number)[]; value: unknown }
  | { op: 'remove'; path: (string | number)[] }
  | { op: 'add'; path: (string | number)[]; key: string; value: unknown };

type Node = Record<string | number, unknown>;

function applyEdit(seed: unknown, e: Edit): unknown {
  const copy = structuredClone(seed);
  if (e.path.length === 0) return e.op === 'replace' ? e.value : copy;
  const parent = e.path.slice(0, -1).reduce<Node>((o, k) => o[k] as Node, copy as Node);
  const last = e.path[e.path.length - 1]!;
  const target = parent[last];
  if (e.op === 'replace') parent[last] = e.value;
  else if (e.op === 'remove') {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete parent[last];
  } else if (target && typeof target === 'object' && !Array.isArray(target)) {
    (target as Node)[e.key] = e.value;
  } else parent[last] = { [e.key]: e.value };
  return copy;
}

const junkValue = fc.oneof(
  fc.integer({ min: -70000, max: 70000 }),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.string({ maxLength: 30 }),
  fc.constantFrom('', 'auto', 'br-x', '999999', '-1', '10.0.0.1/33', 'Not_A_Name', 'a'.repeat(70)),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 6 }), { maxKeys: 2 }),
);

/** A seed document with one edit, the edit, and where a refusal must point. */
const mutated = fc.constantFrom(...SEEDS).chain((seed) =>
  fc
    .constantFrom(...pathsOf(seed))
    .chain((path) =>
      fc.oneof(
        junkValue.map((value): Edit => ({ op: 'replace', path, value })),
        fc.constant<Edit>({ op: 'remove', path }),
        fc
          .tuple(fc.stringMatching(/^[a-zA-Z][a-zA-Z0-9]{0,10}$/), junkValue)
          .map(([key, value]): Edit => ({ op: 'add', path, key, value })),
      ),
    )
    .map((edit) => ({ seed, edit, doc: applyEdit(seed, edit) })),
);

/** Where the problem for `edit` belongs: its path (for 'add', the unknown key). */
const editPath = (e: Edit) => formatPath(e.op === 'add' ? [...e.path, e.key] : e.path);

/** Related paths: equal, or one is the other's ancestor ('' is everything's). */
function related(a: string, b: string): boolean {
  const under = (x: string, y: string) =>
    y === '' || x === y || x.startsWith(`${y}.`) || x.startsWith(`${y}[`);
  return under(a, b) || under(b, a);
}

/** Returns why the problems are not well formed, or undefined. */
function badProblem(problems: readonly ManifestProblem[], file: string): string | undefined {
  for (const p of problems) {
    if (!['error', 'warning'].includes(p.severity)) return `severity ${p.severity}`;
    if (!p.reason || !p.hint) return `problem without reason or hint: ${JSON.stringify(p)}`;
    if (p.file !== file) return `problem names file ${p.file}, not ${file}`;
  }
  return undefined;
}

test('manifest properties - random text never throws; every problem has a reason and a fix', async (t) => {
  await checkProperty(
    t,
    'parseManifests(random text)',
    fc.property(
      fc.oneof(
        fc.string({ maxLength: 400 }),
        fc.string({ unit: 'binary', maxLength: 400 }),
        fc
          .array(
            fc.constantFrom(
              '---\n',
              'kind: Pod\n',
              'a: [\n',
              '&x a\n',
              '*x\n',
              '  - b\n',
              '{',
              ':',
            ),
            { maxLength: 20 },
          )
          .map((xs) => xs.join('')),
      ),
      (text) => {
        const r = parseManifests(text, 'f.yaml');
        const bad = badProblem(r.problems, 'f.yaml');
        if (bad) throw new Error(bad);
        return true;
      },
    ),
  );
});

test('manifest properties - random YAML objects never throw and are refused with located problems', async (t) => {
  const doc = fc.oneof(
    fc.jsonValue({ maxDepth: 4 }),
    fc.record(
      {
        apiVersion: fc.oneof(fc.constantFrom('l2fed.io/v1alpha1', 'v1'), fc.string()),
        kind: fc.oneof(
          fc.constantFrom('FederatedNetwork', 'ClusterPeering', 'Pod'),
          fc.constantFrom('valueOf', 'constructor', '__proto__', 'toString'),
          fc.string(),
        ),
        metadata: fc.oneof(
          fc.record({ name: fc.oneof(fc.string(), fc.integer()) }),
          fc.jsonValue(),
        ),
        spec: fc.jsonValue({ maxDepth: 4 }),
      },
      { requiredKeys: [] },
    ),
  );
  await checkProperty(
    t,
    'parseManifests(random objects)',
    fc.property(fc.array(doc, { minLength: 1, maxLength: 3 }), (docs) => {
      const text = docs.map((d) => stringify(d)).join('---\n');
      const r = parseManifests(text, 'f.yaml');
      const bad = badProblem(r.problems, 'f.yaml');
      if (bad) throw new Error(bad);
      return r.manifests.length + r.problems.length >= 0;
    }),
  );
});

test('manifest properties - an example with one field mutated is accepted or refused at that field', async (t) => {
  let refused = 0;
  const tried = await checkProperty(
    t,
    'parseManifests(mutated examples)',
    fc.property(mutated, ({ edit, doc }) => {
      const r = parseManifests(stringify(doc), 'm.yaml');
      const bad = badProblem(r.problems, 'm.yaml');
      if (bad) throw new Error(bad);
      const errors = r.problems.filter((p) => p.severity === 'error');
      if (errors.length === 0) return r.manifests.length === 1 || doc === null;
      refused++;
      // A changed kind is judged by another schema: any located problem will do.
      if (edit.path[0] === 'kind' || edit.path.length === 0) return true;
      const want = editPath(edit);
      if (!errors.some((p) => related(p.path, want)))
        throw new Error(`edit at ${want} reported only at ${errors.map((p) => p.path).join(', ')}`);
      return true;
    }),
  );
  t.log(`${refused} of ${tried} mutations refused`);
});

test('manifest properties - validate() and the folder source: a bad folder never replaces the last good state, and validate writes nothing', async (t) => {
  if (isLongFuzzRun()) t.timeout(60 * 60_000);
  const run = await makeRunDir('manifest-props');
  t.teardown(() => run.remove());
  const dir = join(run.path, CLUSTER);
  await cp(join(EXAMPLES, CLUSTER), dir, { recursive: true });
  const files = readdirSync(dir).sort();
  const originals = new Map(
    await Promise.all(files.map(async (f) => [f, await readFile(join(dir, f), 'utf8')] as const)),
  );
  const source = new FolderSource({ dir, clusterId: CLUSTER, debounceMs: 3_600_000, resyncMs: 0 });
  t.teardown(() => source.stop());
  await source.start();
  const good = source.current();
  t.truthy(good, 'the examples are a valid folder');
  // The state is plain data; its JSON is its bytes. (v8.serialize is not canonical: it
  // keeps V8's one- or two-byte string representation.)
  const bytes = () => JSON.stringify(source.current());
  const goodBytes = bytes();

  const snapshotDir = async (): Promise<string> =>
    JSON.stringify(
      await Promise.all(
        readdirSync(dir)
          .sort()
          .map(async (f) => [f, await readFile(join(dir, f), 'utf8')]),
      ),
    );
  let refused = 0;
  await checkProperty(
    t,
    'folder source + validate(mutated folder)',
    fc.asyncProperty(
      fc.constantFrom(...files),
      fc.oneof(
        mutated.map(({ doc }) => stringify(doc)),
        fc.string({ maxLength: 200 }),
      ),
      async (file, text) => {
        await writeFile(join(dir, file), text);
        try {
          const before = await snapshotDir();
          const report = await validate(dir, { clusterId: CLUSTER });
          if ((await snapshotDir()) !== before) throw new Error('validate changed the folder');
          const bad = report.problems.find((p) => !p.reason || !p.hint);
          if (bad) throw new Error(`problem without reason or hint: ${JSON.stringify(bad)}`);
          await source.refresh();
          if (!report.ok) {
            refused++;
            if (bytes() !== goodBytes)
              throw new Error(
                `a refused folder (${report.problems[0]?.reason}) replaced the last good state (version ${source.current()?.version}, was ${good?.version})`,
              );
          }
        } finally {
          await writeFile(join(dir, file), originals.get(file)!);
          await source.refresh();
        }
        if (bytes() !== goodBytes)
          throw new Error('restoring the folder did not restore the state');
      },
    ),
    { defaultRuns: 200 },
  );
  t.log(`${refused} mutated folders refused`);
});

// Found by the random-objects property: `kind in SCHEMAS` also matched Object.prototype's
// names, and parseManifests threw "schema.safeParse is not a function".
test('manifest properties - a kind named like an Object.prototype member is refused, not a crash', (t) => {
  for (const kind of ['valueOf', 'toString', 'constructor', 'hasOwnProperty', '__proto__']) {
    const r = parseManifests(`kind: ${kind}\nmetadata: {name: x}\n`, 'k.yaml');
    t.deepEqual(r.manifests, [], kind);
    t.is(r.problems.length, 1, kind);
    t.is(r.problems[0]?.path, 'kind');
    t.regex(r.problems[0]?.reason ?? '', new RegExp(`unsupported kind "${kind}"`));
  }
});
