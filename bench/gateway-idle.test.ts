import test from 'ava';
import {
  idleSection,
  MODE_LABEL,
  parseChildCpuMs,
  plan,
  type IdleSample,
  type Mode,
} from './gateway-idle.js';
import { renderChartSvg, sectionSchema } from './report.js';

const PEERS = [1, 10, 50, 100];
const checks = { before: 4, after: 10 };

/**
 * Samples of `runs` runs: before grows with peers, after by `afterSlope` ms per peer; each
 * run ends with a repeated 1-peer "after" sample, 2 % slower than the run's first.
 */
function samples(
  runs: number,
  afterSlope: number,
  jitter: number[] = [1, 1.1, 0.95],
): IdleSample[] {
  const out: IdleSample[] = [];
  const one = (run: number, mode: Mode, peers: number, j: number): IdleSample => {
    const n = checks[mode];
    const perCheck = mode === 'before' ? 100 + 6.5 * peers : 12 + afterSlope * peers;
    return {
      run,
      mode,
      peers,
      checks: n,
      starts: mode === 'before' ? (peers + 2) * n : 0,
      cpuMs: perCheck * j * n,
      helperMs: mode === 'after' ? 0.05 * peers * n : 0,
      wallMs: 50 * n,
      notUp: 0,
    };
  };
  for (let run = 0; run < runs; run++) {
    const j = jitter[run % jitter.length]!;
    for (const peers of PEERS)
      for (const mode of ['before', 'after'] as Mode[]) out.push(one(run, mode, peers, j));
    out.push({ ...one(run, 'after', 1, j * 1.02), repeat: true });
  }
  return out;
}

const section = (s: IdleSample[]) =>
  idleSection(s, { peers: PEERS, runs: 3, checks, tookMs: 1234 });
const fig = (sec: ReturnType<typeof section>, id: string) => {
  const f = sec.figures.find((x) => x.id === id);
  if (!f) throw new Error(`no figure ${id}: ${sec.figures.map((x) => x.id).join(', ')}`);
  return f;
};

test('the section has the shape the report reads, figures per check against 1 peer of the same run', (t) => {
  const s = section(samples(3, 0));
  t.notThrows(() => sectionSchema.parse(s));
  t.is(s.id, 'gateway-idle');
  t.is(fig(s, 'idle-starts-per-check-before-100').stat.median, 102);
  t.is(fig(s, 'idle-starts-per-check-after-100').stat.median, 0);
  // Process starts must not grow with peers (after); before grows by one per peer.
  t.deepEqual(fig(s, 'idle-starts-growth-after').target, { op: '<=', value: 0, met: true });
  t.is(fig(s, 'idle-starts-growth-before').stat.median, 99);
  t.is(fig(s, 'idle-starts-growth-before').target, undefined);
  // Ratios pair samples of the same run: a run that is 10 % slower throughout cancels out.
  const before = fig(s, 'idle-cpu-ratio-before-100').stat;
  t.is(before.n, 3);
  for (const x of [before.min, before.max]) t.is(x.toFixed(6), (750 / 106.5).toFixed(6));
  t.is(fig(s, 'idle-cpu-ratio-after-100').stat.median, 1);
  t.is(fig(s, 'idle-cpu-after-over-before-100').stat.median.toFixed(6), (12 / 750).toFixed(6));
  t.deepEqual(fig(s, 'idle-peers-not-up').target, { op: '<=', value: 0, met: true });
});

test('flat within noise: the CPU ratio is judged against how much two 1-peer samples differ', (t) => {
  const flat = section(samples(3, 0.005)); // +0.5 ms at 100 peers on 12: within the noise
  const noise = fig(flat, 'idle-cpu-noise').stat;
  t.is(noise.n, 30); // every ordered pair of 6 samples: 3 runs, first and repeat
  t.is(noise.max.toFixed(6), ((1.1 * 1.02) / 0.95).toFixed(6));
  // What a peer adds to a check: 0.005 ms after, 6.5 ms before (run 0; the median run).
  t.is(fig(flat, 'idle-cpu-per-peer-after').stat.median.toFixed(6), '0.005000');
  t.is(
    fig(flat, 'idle-cpu-per-peer-after-over-before').stat.median.toFixed(6),
    (0.005 / 6.5).toFixed(6),
  );
  const r100 = fig(flat, 'idle-cpu-ratio-after-100');
  t.deepEqual(r100.target, { op: '<=', value: noise.max, met: true });
  const growing = section(samples(3, 0.1)); // 12 → 22 ms: not noise
  t.false(fig(growing, 'idle-cpu-ratio-after-100').target!.met);
  t.true(fig(growing, 'idle-cpu-ratio-after-10').target!.met); // 13 / 12 = 1.08
  t.is(fig(growing, 'idle-cpu-ratio-before-100').target, undefined);
});

test('only complete runs count; the repeat is noise only; a lone 1-peer sample gives no noise estimate', (t) => {
  const partial = samples(2, 0).filter((s) => !(s.run === 1 && s.peers === 100));
  const one = idleSection(partial, { peers: PEERS, runs: 2, checks, tookMs: 1 });
  t.is(fig(one, 'idle-starts-growth-after').stat.n, 1);
  // The repeat (2 % slower) is not a run's baseline: the 1-peer ratios stay exact.
  t.is(fig(one, 'idle-cpu-ratio-after-100').stat.median, 1);
  t.is(fig(one, 'idle-cpu-noise').stat.n, 2); // run 0's first and repeat
  const lone = idleSection(
    partial.filter((s) => !s.repeat),
    { peers: PEERS, runs: 2, checks, tookMs: 1 },
  );
  t.false(lone.figures.some((f) => f.id === 'idle-cpu-noise'));
  t.is(fig(lone, 'idle-cpu-ratio-after-100').target, undefined);
  t.true(lone.notes?.some((n) => /no noise estimate/.test(n)));
  t.throws(() => idleSection([], { peers: PEERS, runs: 1, checks, tookMs: 1 }), {
    message: /no complete run/,
  });
});

test('charts: CPU (log scale) and process starts per check vs peers, one line per shape', async (t) => {
  const s = section(samples(3, 0));
  const cpu = s.charts.find((c) => c.id === 'cpu-per-check-vs-peers')!;
  t.is(cpu.y.scale, 'log');
  t.is(cpu.rows.length, 8);
  t.deepEqual(
    cpu.rows.filter((r) => r.shape === MODE_LABEL.before).map((r) => r.cpuMs),
    [106.5, 165, 425, 750],
  );
  const starts = s.charts.find((c) => c.id === 'starts-per-check-vs-peers')!;
  t.deepEqual(
    starts.rows.filter((r) => r.shape === MODE_LABEL.after).map((r) => r.starts),
    [0, 0, 0, 0],
  );
  t.is(starts.y.scale, undefined); // 0 has no place on a log axis
  for (const c of s.charts) t.regex(await renderChartSvg(c), /<svg/);
});

test('children CPU from /proc/self/stat: cutime + cstime in ticks, comm with spaces and parens', (t) => {
  // pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime
  t.is(
    parseChildCpuMs('812 (node (x) y) S 1 812 812 0 -1 4194560 10 0 0 0 345 67 30 12 20 0'),
    420,
  );
  t.throws(() => parseChildCpuMs('garbage'), { message: /not a \/proc/ });
});

test('plan: several runs, fewer checks for the costly before shape', (t) => {
  const full = plan(false);
  t.true(full.runs >= 3);
  t.true(full.checks.before < full.checks.after);
  t.true(plan(true).runs >= 2);
});

test("V8 worker threads' share per check, 1 and 100 peers, when samples carry it (they are part of CPU, often its noise)", (t) => {
  const withWorkers = samples(2, 0).map((s) => ({
    ...s,
    workersMs: s.peers === 100 ? 3 * s.checks : s.checks,
  }));
  const sec = section(withWorkers);
  t.is(fig(sec, 'idle-workers-ms-after-1').stat.median, 1);
  t.is(fig(sec, 'idle-workers-ms-after-100').stat.median, 3);
  t.false(section(samples(2, 0)).figures.some((f) => f.id.startsWith('idle-workers')));
});
