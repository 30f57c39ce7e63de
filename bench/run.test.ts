import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseBenchRun, type SectionRun } from './report.js';
import {
  checkRoot,
  mergeSections,
  previousResultsFile,
  parseStat,
  HARNESS_RESERVE_MS,
  RUN_BOUND_MS,
  selectSections,
  UsageError,
} from './run.js';
import { SECTIONS, type SectionEntry } from './sections.js';

const fake = (id: string, root = false): SectionEntry => ({
  id,
  budgetMs: 1000,
  root,
  load: () => Promise.reject(new Error('not loaded in this test')),
});
const all = [fake('a'), fake('b', true), fake('c', true)];

test('the registered sections have unique ids and budgets within the 15 min bound', (t) => {
  for (const e of SECTIONS) t.true(e.budgetMs > 0 && e.budgetMs <= RUN_BOUND_MS, e.id);
  t.is(new Set(SECTIONS.map((e) => e.id)).size, SECTIONS.length);
});

test('the budgets of all sections plus the harness reserve fit the 15 min bound', (t) => {
  // A full run must never reach the bound that stops the last sections unrun.
  const sum = SECTIONS.reduce((s, e) => s + e.budgetMs, 0);
  t.true(
    sum + HARNESS_RESERVE_MS <= RUN_BOUND_MS,
    `budgets ${sum / 1000} s + harness reserve ${HARNESS_RESERVE_MS / 1000} s > ${RUN_BOUND_MS / 1000} s`,
  );
  t.log(
    `budgets ${sum / 1000} s + reserve ${HARNESS_RESERVE_MS / 1000} s of ${RUN_BOUND_MS / 1000} s`,
  );
});

test('the gateway idle cost (issue 18) is a section of npm run bench', (t) => {
  const e = SECTIONS.find((s) => s.id === 'gateway-idle');
  t.truthy(e);
  t.true(e?.root); // namespaces
});

test('--help names the options and the registered sections with their budgets', async (t) => {
  const r = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'bench/run.ts', '--registry', 'bench/run-fixture.ts', '--help'],
    { timeout: 30_000 },
  );
  t.regex(r.stdout, /--only <id>\[,<id>\]/);
  t.regex(r.stdout, /--quick/);
  t.regex(r.stdout, /^ {2}ok +60 s/m);
  t.regex(r.stdout, /^ {2}slow +3 s/m);
  t.regex(r.stdout, /npm run bench -- --only ok$/m);
});

test('a usage error exits 2, changes nothing and points at --help', async (t) => {
  const r = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', 'bench/run.ts', '--registry', 'bench/run-fixture.ts', '--onyl', 'ok'],
    { timeout: 30_000 },
  ).then(
    () => ({ code: 0, stderr: '' }),
    (e: { code: number; stderr: string }) => e,
  );
  t.is(r.code, 2);
  t.regex(r.stderr, /Unknown option '--onyl'.*npm run bench -- --help/s);
});

test('--only picks sections in registry order and names unknown ones', (t) => {
  t.deepEqual(
    selectSections(all, 'c, a').map((e) => e.id),
    ['a', 'c'],
  );
  t.deepEqual(
    selectSections(all, undefined).map((e) => e.id),
    ['a', 'b', 'c'],
  );
  const err = t.throws(() => selectSections(all, 'a,zz'), { instanceOf: UsageError });
  t.is(err.message, '--only: unknown section zz; known: a, b, c');
  t.throws(() => selectSections([], undefined), { message: /no benchmark sections/ });
});

test('sections that need root are refused, before anything runs, when not root', (t) => {
  t.notThrows(() => checkRoot(all, true));
  t.notThrows(() => checkRoot([fake('a')], false));
  const err = t.throws(() => checkRoot(all, false), { instanceOf: UsageError });
  t.is(
    err.message,
    'sections b, c need root (network namespaces, WireGuard, OVS): run `sudo npm run bench`, ' +
      'or `npm run bench -- --only a` for the others',
  );
});

test('an --only run keeps the other sections of the same day, in registry order', (t) => {
  const run = (id: string, gitRev: string) => ({ id, gitRev }) as SectionRun;
  const merged = mergeSections(
    [run('c', 'old'), run('a', 'old')],
    [run('a', 'new')],
    ['a', 'b', 'c'],
  );
  t.deepEqual(
    merged.map((s) => [s.id, s.gitRev]),
    [
      ['a', 'new'],
      ['c', 'old'],
    ],
  );
});

test('an --only run on a new day keeps the other sections of the newest earlier day (the report keeps their charts)', (t) => {
  const files = ['2026-11-29.json', '2026-11-30.json', '2026-11-30-quick.json', 'README.md'];
  t.is(previousResultsFile(files, '2026-12-01'), '2026-11-30.json');
  t.is(previousResultsFile([...files, '2026-12-01.json'], '2026-12-01'), '2026-12-01.json');
  t.is(previousResultsFile(['2026-12-02.json'], '2026-12-01'), undefined, 'never a later day');
  t.is(
    previousResultsFile(['2026-11-30-quick.json'], '2026-12-01'),
    undefined,
    'never a quick run',
  );
  t.is(previousResultsFile([], '2026-12-01'), undefined);
});

test('/proc stat lines parse even when the command name holds spaces and parens', (t) => {
  t.deepEqual(parseStat('4242 (tmux: server) S 1 4240 4240 0 -1 4194560'), {
    pid: 4242,
    pgrp: 4240,
  });
  t.deepEqual(parseStat('17 (a) b) R 3 9 9 0'), { pid: 17, pgrp: 9 });
  t.is(parseStat('garbage'), undefined);
});

// The runner end to end over fake sections (bench/run-fixture.ts): real child processes,
// no namespaces or daemons.
test('each section runs on its own: failures, leftovers and overruns are recorded, the rest run', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'bench-run-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const r = await promisify(execFile)(
    process.execPath,
    [
      '--import',
      'tsx',
      'bench/run.ts',
      '--registry',
      'bench/run-fixture.ts',
      '--quick',
      '--results-dir',
      dir,
    ],
    { timeout: 90_000 },
  ).then(
    () => ({ code: 0 }),
    (e: { code: number; stderr: string }) => e,
  );
  t.is(r.code, 1);
  const [file] = await readdir(dir);
  t.regex(file ?? '', /^\d{4}-\d{2}-\d{2}-quick\.json$/);
  const run = parseBenchRun(await readFile(join(dir, file!), 'utf8'), file!);
  const by = new Map(run.sections.map((s) => [s.id, s]));
  // The fixture's leftover dir goes whatever the assertions below say.
  const dirLine = by.get('leaves')?.leftovers.find((l) => l.startsWith('directory '));
  t.teardown(() =>
    dirLine ? rm(dirLine.slice('directory '.length), { recursive: true, force: true }) : undefined,
  );
  t.deepEqual([...by.keys()], ['ok', 'throws', 'leaves', 'slow', 'malformed']);

  const ok = by.get('ok')!;
  t.is(ok.status, 'ok');
  t.deepEqual(ok.leftovers, []); // the runner's helper (sleep 301) is not the section's
  t.deepEqual(ok.result?.figures[0]?.target, { op: '>=', value: 40, met: true });
  // The section is told the time it has (its budget here: the run's bound is far).
  t.deepEqual(ok.result?.notes, ['budgetMs 60000']);

  t.is(by.get('throws')!.status, 'failed');
  t.regex(by.get('throws')!.error ?? '', /^Error: broken on purpose/);

  const leaves = by.get('leaves')!;
  t.is(leaves.status, 'ok');
  t.regex(dirLine ?? '', /^directory \/.*\/l2fed-b[0-9a-z]{4}-left$/);
  t.false(leaves.leftovers.some((l) => /sleep 301/.test(l)));
  const proc = leaves.leftovers.find((l) => / sleep 300/.test(l));
  t.regex(proc ?? '', /^process \d+: sleep 300 \(still running when the section returned\)$/);
  // The runner ended it (it was in the section's process group).
  const pid = Number(/^process (\d+)/.exec(proc ?? '')?.[1]);
  t.throws(() => process.kill(pid, 0));
  t.regex(
    leaves.leftovers.at(-1) ?? '',
    /^\(remove with: npx tsx cli\/main\.ts cleanup --prefix l2fed-b/,
  );

  const slow = by.get('slow')!;
  t.is(slow.status, 'failed');
  t.regex(slow.error ?? '', /exceeded its time \(3 s/);
  t.true(slow.tookMs < 30_000, `slow took ${slow.tookMs} ms`);

  t.is(by.get('malformed')!.status, 'failed');
  t.regex(by.get('malformed')!.error ?? '', /malformed result: .*tookMs/s);
});
