/**
 * `npm run bench [-- --only id[,id]] [--quick] [--help]`: runs the benchmark sections of
 * bench/sections.ts, writes bench/results/<YYYY-MM-DD>.json (UTC date; a `--quick` smoke
 * run writes <date>-quick.json and leaves docs/ alone) and renders docs/benchmarks.md and
 * its charts (bench/report.ts).
 *
 * Each section runs in its own Node process (its own process group), killed when it
 * outlives its budgetMs or the 15 min bound of the whole run, so one hung section cannot
 * hold the rest. A section that throws is recorded as failed with its error and the rest
 * still run. Afterwards the runner lists what the section left behind: processes still in
 * its process group, and namespaces, temp dirs, daemons and containers named with the
 * prefix it was given (lib/cleanup.ts, list mode only). Exit code: 0 when every section
 * passed and left nothing, 1 otherwise, 2 for a usage error (nothing is run).
 *
 * With `--only`, sections of an earlier results file (the same date's, else the newest
 * earlier day's) that were not run again are kept (each records its own start time,
 * commit and load).
 */
import { spawn } from 'node:child_process';
import { readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { mkdtemp } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, release, tmpdir, totalmem, version } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { findLeftovers, type Leftovers } from '../lib/cleanup.js';
import { ExecaRunner } from '../lib/runner.js';
import { shortId } from '../lib/short-id.js';
import {
  DEFAULT_TARGETS,
  parseBenchRun,
  REPO_ROOT,
  renderReport,
  sectionSchema,
  writeBenchRun,
  type BenchRun,
  type SectionRun,
} from './report.js';
import { SECTIONS, type SectionEntry } from './sections.js';
import { z } from 'zod';

/** The whole run's bound (issue 15). */
export const RUN_BOUND_MS = 15 * 60_000;
/** After SIGTERM, how long a section's process has to finish its cleanup. */
const KILL_GRACE_MS = 20_000;
/**
 * What a run needs beyond its sections' budgets, which must leave it free within
 * RUN_BOUND_MS (bench/run.test.ts): one overrunning section's kill grace, and the
 * runner's own work — machine facts, the leftover check after each section (not under
 * its deadline), rendering the report and charts (0.9 s on a quiet box) — with room for
 * a loaded one.
 */
export const HARNESS_RESERVE_MS = KILL_GRACE_MS + 40_000;
const SELF = fileURLToPath(import.meta.url);

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** The entries `--only` names, in registry order; throws naming unknown ids. */
export function selectSections(
  all: readonly SectionEntry[],
  only: string | undefined,
): SectionEntry[] {
  if (all.length === 0)
    throw new UsageError('no benchmark sections are registered (bench/sections.ts)');
  if (only === undefined) return [...all];
  const ids = only
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const known = new Set(all.map((e) => e.id));
  const unknown = ids.filter((i) => !known.has(i));
  if (unknown.length || ids.length === 0) {
    throw new UsageError(
      `--only: unknown section ${unknown.join(', ') || '(none given)'}; known: ${[...known].join(', ')}`,
    );
  }
  return all.filter((e) => ids.includes(e.id));
}

/** Throws when sections need root and this process is not root (before anything runs). */
export function checkRoot(selected: readonly SectionEntry[], isRoot: boolean): void {
  const needRoot = selected.filter((e) => e.root).map((e) => e.id);
  if (isRoot || needRoot.length === 0) return;
  const rest = selected.filter((e) => !e.root).map((e) => e.id);
  throw new UsageError(
    `section${needRoot.length > 1 ? 's' : ''} ${needRoot.join(', ')} need${needRoot.length > 1 ? '' : 's'} root ` +
      '(network namespaces, WireGuard, OVS): run `sudo npm run bench`' +
      (rest.length ? `, or \`npm run bench -- --only ${rest.join(',')}\` for the others` : ''),
  );
}

/**
 * The results file an `--only` run keeps the other sections from, among `files` (names in
 * the results folder): today's (`<date>.json`) when there is one, else the newest of an
 * earlier day. Without the fall-back, the first `--only` run of a day rendered
 * docs/benchmarks.md with that one section and dropped every other section's charts.
 * Quick runs (`-quick.json`) and other files are never chosen.
 */
export function previousResultsFile(files: readonly string[], date: string): string | undefined {
  const days = files
    .filter((f) => /^\d{4}-\d{2}-\d{2}\.json$/.test(f) && f.slice(0, 10) <= date)
    .sort();
  return days.at(-1);
}

/**
 * Sections of the new run, plus those of `previous` (today's or the newest earlier
 * results, previousResultsFile) that were not run now, in registry order.
 */
export function mergeSections(
  previous: readonly SectionRun[],
  now: readonly SectionRun[],
  order: readonly string[],
): SectionRun[] {
  const byId = new Map(previous.map((s) => [s.id, s]));
  for (const s of now) byId.set(s.id, s);
  const rank = (id: string) => (order.includes(id) ? order.indexOf(id) : order.length);
  return [...byId.values()].sort((a, b) => rank(a.id) - rank(b.id));
}

/** One line of /proc/<pid>/stat → pid and process group (comm may hold spaces and parens). */
export function parseStat(line: string): { pid: number; pgrp: number } | undefined {
  const close = line.lastIndexOf(')');
  if (close < 0) return undefined;
  const pid = Number(line.slice(0, line.indexOf(' ')));
  // After "pid (comm) ": state ppid pgrp …
  const pgrp = Number(line.slice(close + 2).split(' ')[2]);
  return Number.isInteger(pid) && Number.isInteger(pgrp) ? { pid, pgrp } : undefined;
}

/** Live processes in process group `pgrp`, other than `except`. */
export async function processesInGroup(
  pgrp: number,
  except: readonly number[] = [],
): Promise<{ pid: number; command: string }[]> {
  const out: { pid: number; command: string }[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry) || except.includes(Number(entry))) continue;
    try {
      const st = parseStat(await readFile(`/proc/${entry}/stat`, 'utf8'));
      if (st?.pgrp !== pgrp) continue;
      const cmd = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0').join(' ').trim();
      out.push({ pid: st.pid, command: cmd });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/** Leftovers as report lines (the same words as `l2fed cleanup --check`). */
export function describeLeftovers(l: Leftovers): string[] {
  return [
    ...l.namespaces.map((n) => `namespace ${n}`),
    ...l.processes.map((p) => `process ${p.pid}: ${p.command}`),
    ...l.wgSockets.map((s) => `socket ${s}`),
    ...l.runDirs.map((d) => `directory ${d}`),
    ...l.containers.map((c) => `container ${c}`),
    ...l.netnsEtc.map((d) => `directory ${d}`),
  ];
}

const utcDate = (d: Date) => d.toISOString().slice(0, 10);
const load3 = () => loadavg().map((x) => Math.round(x * 100) / 100) as [number, number, number];

async function git(args: string[]): Promise<string> {
  const r = await new ExecaRunner().run(['git', ...args], { allowFailure: true });
  return r.exitCode === 0 ? r.stdout.trim() : '';
}

async function machineFacts(): Promise<Omit<BenchRun['machine'], 'loadAfter'>> {
  return {
    cores: availableParallelism(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    kernel: `${release()} (${version()})`,
    node: process.version,
    memoryMiB: Math.round(totalmem() / 2 ** 20),
    gitRev: (await git(['-C', REPO_ROOT, 'rev-parse', 'HEAD'])) || 'unknown',
    gitDirty:
      (await git(['-C', REPO_ROOT, 'status', '--porcelain', '--untracked-files=no'])) !== '',
    loadBefore: load3(),
  };
}

interface ChildOutcome {
  readonly result?: unknown;
  readonly error?: string;
  /** Processes of the section still running when run() resolved (then killed on exit). */
  readonly leftovers?: string[];
  /** The child's own helpers, in its group before the section ran (end with it). */
  readonly runnerPids?: number[];
}

/**
 * Runs one section in a child process with a deadline. Never throws: every failure
 * becomes a failed SectionRun.
 */
async function runSection(
  entry: SectionEntry,
  o: {
    quick: boolean;
    timeoutMs: number;
    gitRev: string;
    registry: string | undefined;
    onChild: (pid?: number) => void;
  },
): Promise<SectionRun> {
  const prefix = `l2fed-b${shortId(4)}`;
  const dir = await mkdtemp(join(tmpdir(), 'bench-run-'));
  const outFile = join(dir, 'section.json');
  const startedAt = new Date();
  const loadBefore = load3();
  const t0 = performance.now();
  let killedFor: string | undefined;
  let outcome: ChildOutcome = {};
  try {
    const child = spawn(
      process.execPath,
      [
        '--import',
        'tsx',
        SELF,
        '--child',
        entry.id,
        '--prefix',
        prefix,
        '--out',
        outFile,
        '--budget-ms',
        String(o.timeoutMs),
        ...(o.quick ? ['--quick'] : []),
        ...(o.registry ? ['--registry', o.registry] : []),
      ],
      // Its own process group: the runner can find (and end) everything it started.
      { cwd: REPO_ROOT, detached: true, stdio: ['ignore', 'inherit', 'inherit'] },
    );
    o.onChild(child.pid);
    const exited = new Promise<void>((res) => child.once('exit', () => res()));
    const spawnError = new Promise<Error>((res) => child.once('error', res));
    let killTimer: NodeJS.Timeout | undefined;
    const deadline = setTimeout(() => {
      killedFor = `exceeded its time (${Math.round(o.timeoutMs / 1000)} s: the section's budgetMs or what was left of the run's 15 min) and was stopped`;
      signalGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS);
    }, o.timeoutMs);
    const first = await Promise.race([exited.then(() => undefined), spawnError]);
    clearTimeout(deadline);
    clearTimeout(killTimer);
    o.onChild(undefined);
    if (first instanceof Error) throw first;
    try {
      outcome = JSON.parse(await readFile(outFile, 'utf8')) as ChildOutcome;
    } catch {
      outcome = {
        error: `the section's process ended (exit code ${child.exitCode ?? child.signalCode}) without a result`,
      };
    }
    const leftovers = [...(outcome.leftovers ?? [])];
    if (child.pid) {
      const group = await processesInGroup(child.pid);
      const runner = new Set(outcome.runnerPids ?? []);
      const named = (pid: number) => leftovers.some((l) => l.startsWith(`process ${pid}:`));
      leftovers.push(
        ...group
          .filter((p) => !named(p.pid) && !runner.has(p.pid))
          .map((p) => `process ${p.pid}: ${p.command}`),
      );
      // Ours (same process group): end them so they do not disturb the next section.
      for (const p of group) signalPid(p.pid, 'SIGKILL');
    }
    leftovers.push(...describeLeftovers(await findLeftovers(new ExecaRunner(), prefix)));
    const error = killedFor ?? outcome.error;
    const parsed = error ? undefined : sectionSchema.safeParse(outcome.result);
    const result = parsed?.success ? parsed.data : undefined;
    const resultError =
      parsed && !parsed.success
        ? `the section returned a malformed result: ${z.prettifyError(parsed.error)}`
        : undefined;
    const idError =
      result && result.id !== entry.id
        ? `the section returned id "${result.id}", registered as "${entry.id}"`
        : undefined;
    const failure = error ?? resultError ?? idError;
    return {
      id: entry.id,
      status: failure ? 'failed' : 'ok',
      startedAt: startedAt.toISOString(),
      gitRev: o.gitRev,
      budgetMs: entry.budgetMs,
      tookMs: Math.round(performance.now() - t0),
      loadBefore,
      loadAfter: load3(),
      ...(failure ? { error: failure } : {}),
      leftovers: leftovers.length
        ? [...leftovers, `(remove with: npx tsx cli/main.ts cleanup --prefix ${prefix})`]
        : [],
      ...(result && !idError ? { result } : {}),
    };
  } catch (err) {
    return {
      id: entry.id,
      status: 'failed',
      startedAt: startedAt.toISOString(),
      gitRev: o.gitRev,
      budgetMs: entry.budgetMs,
      tookMs: Math.round(performance.now() - t0),
      loadBefore,
      loadAfter: load3(),
      error: `the runner could not run the section: ${err instanceof Error ? err.message : String(err)}`,
      leftovers: [],
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function signalGroup(pid: number | undefined, sig: NodeJS.Signals): void {
  if (pid) signalPid(-pid, sig);
}

function signalPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** The child side: runs one section and writes a ChildOutcome to `out`. */
async function child(
  sections: readonly SectionEntry[],
  id: string,
  prefix: string,
  out: string,
  quick: boolean,
  budgetMs: number | undefined,
): Promise<number> {
  const entry = sections.find((e) => e.id === id);
  const log = (line: string) => void process.stderr.write(`[${id}] ${line}\n`);
  let outcome: ChildOutcome;
  try {
    if (!entry) throw new Error(`no section "${id}" in bench/sections.ts`);
    const mod = await entry.load();
    // Processes already in the group (tsx's esbuild service) are the runner's, not the section's.
    const before = (await processesInGroup(process.pid)).map((p) => p.pid);
    const result = await mod.run({ quick, log, prefix, ...(budgetMs ? { budgetMs } : {}) });
    const still = await processesInGroup(process.pid, [process.pid, ...before]);
    outcome = {
      result,
      runnerPids: before,
      leftovers: still.map(
        (p) => `process ${p.pid}: ${p.command} (still running when the section returned)`,
      ),
    };
  } catch (err) {
    outcome = { error: err instanceof Error ? (err.stack ?? err.message) : String(err) };
  }
  await writeFile(out, JSON.stringify(outcome));
  return outcome.error ? 1 : 0;
}

/** The `--help` text: options, and each section with its budget. */
export function usage(sections: readonly SectionEntry[]): string {
  const w = Math.max(0, ...sections.map((e) => e.id.length));
  const total = sections.reduce((s, e) => s + e.budgetMs, 0);
  const sudo = sections.some((e) => e.root) ? 'sudo ' : '';
  return [
    'usage: npm run bench [-- --only <id>[,<id>]] [--quick]',
    '',
    'Runs the benchmark sections below, each in its own process within its budget and the',
    `whole run within ${RUN_BOUND_MS / 60_000} min; writes bench/results/<UTC date>.json and renders`,
    'docs/benchmarks.md and its charts.',
    '',
    '  --only <id>[,<id>]  only these sections; the same day’s other sections are kept',
    '  --quick             smoke run (fewer runs, smaller sizes): <date>-quick.json, docs/ untouched',
    '  -h, --help          this text',
    '',
    `Sections (budget; root: needs sudo), ${Math.round(total / 1000)} s in all:`,
    ...sections.map(
      (e) => `  ${e.id.padEnd(w)}  ${Math.round(e.budgetMs / 1000)} s${e.root ? ', root' : ''}`,
    ),
    '',
    'One section:',
    `  ${sudo}npm run bench -- --only ${sections[0]?.id ?? '<id>'}`,
    '',
  ].join('\n');
}

async function loadRegistry(path: string | undefined): Promise<readonly SectionEntry[]> {
  if (!path) return SECTIONS;
  return ((await import(pathToFileURL(path).href)) as { SECTIONS: readonly SectionEntry[] })
    .SECTIONS;
}

async function main(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      only: { type: 'string' },
      quick: { type: 'boolean', default: false },
      child: { type: 'string' },
      prefix: { type: 'string' },
      out: { type: 'string' },
      'budget-ms': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
      // For the runner's own tests: another registry module, another results folder.
      registry: { type: 'string' },
      'results-dir': { type: 'string' },
    },
  });
  const registry = values.registry ? resolve(values.registry) : undefined;
  const sections = await loadRegistry(registry);
  if (values.help) {
    process.stdout.write(usage(sections));
    return 0;
  }
  if (values.child) {
    if (!values.prefix || !values.out) throw new UsageError('--child needs --prefix and --out');
    const budget = values['budget-ms'] ? Number(values['budget-ms']) : undefined;
    return child(sections, values.child, values.prefix, values.out, values.quick, budget);
  }
  const selected = selectSections(sections, values.only);
  checkRoot(selected, process.getuid?.() === 0);
  const started = new Date();
  const end = Date.now() + RUN_BOUND_MS;
  const machine = await machineFacts();
  const log = (line: string) => void process.stderr.write(`bench: ${line}\n`);
  log(
    `${selected.map((e) => e.id).join(', ')}${values.quick ? ' (quick)' : ''}; load ${machine.loadBefore.join(' ')}`,
  );

  let current: number | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    signalGroup(current, 'SIGTERM');
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const runs: SectionRun[] = [];
  for (const entry of selected) {
    const left = end - Date.now();
    if (left < 5_000) {
      runs.push({
        id: entry.id,
        status: 'failed',
        startedAt: new Date().toISOString(),
        gitRev: machine.gitRev,
        budgetMs: entry.budgetMs,
        tookMs: 0,
        loadBefore: load3(),
        loadAfter: load3(),
        error: 'not run: the 15 min bound of the whole run was reached',
        leftovers: [],
      });
      continue;
    }
    log(`${entry.id}: running (budget ${Math.round(entry.budgetMs / 1000)} s)`);
    const r = await runSection(entry, {
      quick: values.quick,
      timeoutMs: Math.min(entry.budgetMs, left),
      gitRev: machine.gitRev,
      registry,
      onChild: (pid) => (current = pid),
    });
    log(
      `${entry.id}: ${r.status} in ${(r.tookMs / 1000).toFixed(1)} s${r.error ? `: ${r.error.split('\n')[0]}` : ''}` +
        (r.leftovers.length ? `; LEFT BEHIND:\n  ${r.leftovers.join('\n  ')}` : ''),
    );
    runs.push(r);
  }

  const date = utcDate(started);
  const resultsDir = resolve(values['results-dir'] ?? join(REPO_ROOT, 'bench', 'results'));
  const path = join(resultsDir, `${date}${values.quick ? '-quick' : ''}.json`);
  let merged: SectionRun[] = runs;
  const prevName = values.quick
    ? `${date}-quick.json`
    : previousResultsFile(await readdir(resultsDir).catch(() => []), date);
  if (values.only && prevName) {
    const prevPath = join(resultsDir, prevName);
    try {
      const prev = parseBenchRun(await readFile(prevPath, 'utf8'), prevPath);
      merged = mergeSections(
        prev.sections,
        runs,
        sections.map((e) => e.id),
      );
      const kept = merged.filter((s) => !runs.includes(s)).map((s) => s.id);
      if (kept.length)
        log(`kept ${kept.join(', ')} from the earlier run in ${relative(REPO_ROOT, prevPath)}`);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        // This run's results are not lost for it; an unreadable file of today, which the
        // write below would replace, is kept beside it.
        const kept = prevPath === path ? `${path}.unreadable-${Date.now()}` : undefined;
        if (kept) await rename(path, kept);
        log(
          `could not keep the other sections: ${relative(REPO_ROOT, prevPath)} does not read ` +
            `(${err instanceof Error ? err.message : String(err)}); writing this run's sections only` +
            (kept ? `; that file is now ${relative(REPO_ROOT, kept)}` : ''),
        );
      }
    }
  }
  const run: BenchRun = {
    version: 1,
    date,
    quick: values.quick,
    startedAt: started.toISOString(),
    machine: { ...machine, loadAfter: load3() },
    sections: merged,
  };
  await writeBenchRun(path, run);
  const source = relative(REPO_ROOT, path);
  log(`wrote ${source}`);
  if (values.quick) {
    log(`quick run: docs/ left alone (render it with npx tsx bench/report.ts ${source})`);
  } else {
    await renderReport(run, { ...DEFAULT_TARGETS, source });
    log(`wrote ${relative(REPO_ROOT, DEFAULT_TARGETS.mdPath)} and its charts`);
  }
  const bad = runs.filter((r) => r.status === 'failed' || r.leftovers.length);
  if (bad.length) log(`failed or left something behind: ${bad.map((r) => r.id).join(', ')}`);
  return bad.length ? 1 : 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      const usage =
        err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
      console.error(
        `bench: ${err instanceof Error ? err.message : String(err)}` +
          (usage ? '\n(options and sections: npm run bench -- --help)' : ''),
      );
      process.exit(usage ? 2 : 1);
    },
  );
}
