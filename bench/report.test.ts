import test, { type ExecutionContext } from 'ava';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  BEGIN_MARKER,
  chartSpec,
  END_MARKER,
  fmtValue,
  parseBenchRun,
  renderChartSvg,
  renderReport,
  type BenchRun,
} from './report.js';

const load = [1.5, 1.25, 1] as [number, number, number];

/** A small results file: one section with both a met and a missed target, one failure. */
function fixture(): BenchRun {
  return {
    version: 1,
    date: '2026-11-30',
    quick: false,
    startedAt: '2026-11-30T15:00:00.000Z',
    machine: {
      cores: 2,
      cpu: 'Test CPU',
      kernel: '6.1.0-test',
      node: 'v20.20.2',
      memoryMiB: 7936,
      gitRev: '0123456789abcdef0123',
      gitDirty: false,
      loadBefore: load,
      loadAfter: [3, 2, 1],
    },
    sections: [
      {
        id: 'data-path',
        status: 'ok',
        startedAt: '2026-11-30T15:00:01.000Z',
        gitRev: '0123456789abcdef0123',
        budgetMs: 300_000,
        tookMs: 123_400,
        loadBefore: load,
        loadAfter: load,
        leftovers: [],
        result: {
          id: 'data-path',
          title: 'Data path',
          method: 'Two gateways, iperf3 alternating with the raw tunnel.',
          figures: [
            {
              id: 'tcp-ratio-linux-bridge',
              label: 'pod-to-pod TCP / raw WireGuard tunnel, Linux bridge',
              stat: { median: 0.934, min: 0.81, max: 1.02, n: 5, unit: 'ratio' },
              baseline: 'raw WireGuard tunnel, same gateways',
              target: { op: '>=', value: 0.9, met: true },
            },
            {
              id: 'tcp-ratio-ovs',
              label: 'pod-to-pod TCP / raw WireGuard tunnel, OVS',
              stat: { median: 0.7412, min: 0.7, max: 0.8, n: 5, unit: 'ratio' },
              target: { op: '>=', value: 0.8, met: false },
            },
            {
              id: 'rtt-pod-ovs',
              label: 'pod RTT, OVS',
              stat: {
                median: 2.345,
                min: 1.9,
                max: 14.25,
                n: 200,
                unit: 'ms',
                percentiles: { p50: 2.345, p99: 12.5 },
              },
            },
          ],
          charts: [
            {
              id: 'tcp-ratio',
              title: 'TCP throughput / raw tunnel',
              kind: 'bar',
              x: { field: 'segment', title: 'segment' },
              y: { field: 'ratio', title: 'ratio to tunnel' },
              series: 'run',
              rows: [
                { segment: 'linux-bridge', run: 1, ratio: 0.93 },
                { segment: 'ovs', run: 1, ratio: 0.74 },
              ],
            },
            {
              id: 'rtt-cdf',
              title: 'RTT distribution',
              kind: 'cdf',
              x: { field: 'ms', title: 'RTT (ms)' },
              y: { field: 'fraction', title: 'fraction of pings' },
              series: 'path',
              rows: [
                { path: 'tunnel', ms: 1.1 },
                { path: 'tunnel', ms: 1.4 },
                { path: 'pod-ovs', ms: 2.3 },
                { path: 'pod-ovs', ms: 12.5 },
              ],
            },
          ],
          notes: ['Bound by userspace OVS on 2 shared cores.'],
          tookMs: 123_000,
        },
      },
      {
        id: 'broker-scale',
        status: 'failed',
        startedAt: '2026-11-30T15:03:00.000Z',
        gitRev: '0123456789abcdef0123',
        budgetMs: 240_000,
        tookMs: 5_000,
        loadBefore: load,
        loadAfter: load,
        error: 'Error: nats-server exited before it was ready',
        leftovers: ['namespace l2fed-bx1y2-sw'],
      },
    ],
  };
}

async function tempDocs(t: ExecutionContext) {
  const dir = await mkdtemp(join(tmpdir(), 'bench-report-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return { dir, mdPath: join(dir, 'benchmarks.md'), svgDir: join(dir, 'benchmarks') };
}

test('renders figures with units, targets met and missed, failures and chart links', async (t) => {
  const { mdPath, svgDir } = await tempDocs(t);
  const hand = `# Benchmarks\n\n## Method\n\nHand-written method.\n\n${BEGIN_MARKER}\nold\n${END_MARKER}\n\n## Comparable systems\n\nHand-written comparison.\n`;
  await writeFile(mdPath, hand);
  await renderReport(fixture(), { mdPath, svgDir, source: 'bench/results/2026-11-30.json' });
  const md = await readFile(mdPath, 'utf8');
  // Hand-written text outside the markers is kept, the old generated text is gone.
  t.regex(md, /^# Benchmarks\n\n## Method\n\nHand-written method\.\n/);
  t.regex(md, /## Comparable systems\n\nHand-written comparison\.\n$/);
  t.false(md.includes('\nold\n'));
  t.regex(md, /## Results of 2026-11-30/);
  // Figures, in their units.
  t.regex(
    md,
    /\| pod-to-pod TCP \/ raw WireGuard tunnel, Linux bridge\s+\| 0\.93×\s+\| 0\.81 – 1\.02\s+\| 5 /,
  );
  t.regex(
    md,
    /\| pod RTT, OVS\s+\| 2\.35 ms\s+\| 1\.90 – 14\.3\s+\| 200 \| p50 2\.35 ms, p99 12\.5 ms/,
  );
  t.regex(md, /≥ 0\.90×: \*\*met\*\* ✅/);
  t.regex(md, /≥ 0\.80×: \*\*missed\*\* ❌/);
  t.regex(md, /\| cores\s+\| 2 \(Test CPU\)/);
  t.regex(md, /1\.50 \/ 1\.25 \/ 1\.00 → 3\.00 \/ 2\.00 \/ 1\.00/);
  // Summary: 1 of 2 targets met; the failed section and its leftover are named.
  t.regex(
    md,
    /\| \[Data path\]\(#data-path\)\s+\| ok\s+\| 123 s \(300 s\)\s+\| 1 of 2\s+\| nothing/,
  );
  t.regex(md, /\| \[broker-scale\]\(#broker-scale\)\s+\| \*\*failed\*\*/);
  t.regex(md, /Error: nats-server exited before it was ready/);
  t.regex(md, /- `namespace l2fed-bx1y2-sw`/);
  t.regex(md, /!\[TCP throughput \/ raw tunnel\]\(benchmarks\/data-path-tcp-ratio\.svg\)/);
  t.regex(md, /- Bound by userspace OVS on 2 shared cores\./);
});

test('writes one SVG per chart with its data, and removes charts no longer drawn', async (t) => {
  const { mdPath, svgDir } = await tempDocs(t);
  await renderReport(fixture(), { mdPath, svgDir, source: 'x.json' });
  await writeFile(join(svgDir, 'stale-chart.svg'), '<svg/>');
  await renderReport(fixture(), { mdPath, svgDir, source: 'x.json' });
  t.deepEqual((await readdir(svgDir)).sort(), ['data-path-rtt-cdf.svg', 'data-path-tcp-ratio.svg']);
  const bar = await readFile(join(svgDir, 'data-path-tcp-ratio.svg'), 'utf8');
  t.regex(bar, /^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.regex(bar, /TCP throughput \/ raw tunnel/);
  t.regex(bar, />linux-bridge</);
  t.regex(bar, />ovs</);
  t.regex(bar, />ratio to tunnel</);
  // Two bars (role-mark paths in the bar group).
  t.is((bar.match(/<path aria-label="segment: [^"]*"/g) ?? []).length, 2);
  const cdf = await readFile(join(svgDir, 'data-path-rtt-cdf.svg'), 'utf8');
  t.regex(cdf, /fraction of pings/);
  t.regex(cdf, />pod-ovs</);
  t.regex(cdf, />tunnel</);
});

test('a box chart and a line chart draw', async (t) => {
  const box = await renderChartSvg({
    id: 'lat',
    title: 'Peer-map delay',
    kind: 'box',
    x: { field: 'clusters', title: 'clusters' },
    y: { field: 'ms', title: 'delay (ms)' },
    rows: [
      { clusters: 100, ms: 10 },
      { clusters: 100, ms: 30 },
      { clusters: 1000, ms: 50 },
      { clusters: 1000, ms: 90 },
    ],
  });
  t.regex(box, /Peer-map delay/);
  t.regex(box, />1000</);
  const line = await renderChartSvg({
    id: 'scale',
    title: 'KV operations per added cluster',
    kind: 'line',
    x: { field: 'clusters', title: 'clusters' },
    y: { field: 'ops', title: 'KV operations' },
    rows: [
      { clusters: 100, ops: 12 },
      { clusters: 300, ops: 12 },
      { clusters: 1000, ops: 13 },
    ],
  });
  t.regex(line, /KV operations per added cluster/);
  t.regex(line, /aria-label="clusters: 300; KV operations: 12"/);
});

test('a line chart may have a log y axis, for curves of very different sizes', async (t) => {
  const c = {
    id: 'cpu',
    title: 'CPU per check',
    kind: 'line' as const,
    x: { field: 'peers', title: 'peers' },
    y: { field: 'ms', title: 'CPU ms (log scale)', scale: 'log' as const },
    series: 'mode',
    rows: [
      { peers: 1, ms: 110, mode: 'before' },
      { peers: 100, ms: 750, mode: 'before' },
      { peers: 1, ms: 12, mode: 'after' },
      { peers: 100, ms: 14, mode: 'after' },
    ],
  };
  const yScale = (spec: unknown) =>
    (spec as { encoding: { y: { scale?: unknown } } }).encoding.y.scale;
  t.deepEqual(yScale(chartSpec(c)), { type: 'log' });
  t.is(yScale(chartSpec({ ...c, y: { field: 'ms', title: 'CPU ms' } })), undefined);
  t.regex(
    await renderChartSvg(c),
    /aria-label="peers: 100; CPU ms \(log scale\): 750; mode: before"/,
  );
  // A log axis cannot show 0: refused when the results file is read.
  const run = fixture();
  const result = run.sections[0]!.result!;
  const bad = {
    ...run,
    sections: [
      {
        ...run.sections[0]!,
        result: { ...result, charts: [{ ...c, rows: [{ peers: 1, ms: 0, mode: 'after' }] }] },
      },
    ],
  };
  t.throws(() => parseBenchRun(JSON.stringify(bad), 'r.json'), { message: /log scale.*ms/s });
});

test('a Markdown file without the markers is refused and left unchanged', async (t) => {
  const { mdPath, svgDir } = await tempDocs(t);
  await writeFile(mdPath, '# Benchmarks\n\nhand-written only\n');
  const err = await t.throwsAsync(renderReport(fixture(), { mdPath, svgDir, source: 'x.json' }));
  t.regex(err.message, /no generated section .* The file was not changed/);
  t.is(await readFile(mdPath, 'utf8'), '# Benchmarks\n\nhand-written only\n');
});

test('a results file with a bad field is refused naming the field', (t) => {
  const bad = fixture() as unknown as { sections: { result?: { figures: { stat: object }[] } }[] };
  bad.sections[0]!.result!.figures[0]!.stat = { median: null, min: 0, max: 1, n: 1, unit: 'ratio' };
  const err = t.throws(() => parseBenchRun(JSON.stringify(bad), 'r.json'));
  t.regex(err.message, /^r\.json: not a bench results file/);
  t.regex(err.message, /sections\[0\]\.result\.figures\[0\]\.stat\.median/);
  t.regex(err.message, /npm run bench/);
  t.regex(t.throws(() => parseBenchRun('{', 'r.json')).message, /^r\.json: not JSON/);
});

test('values carry their units', (t) => {
  t.is(fmtValue(0.8612, 'ratio'), '0.86×');
  t.is(fmtValue(1234.4, 'commands'), '1,234 commands');
  t.is(fmtValue(12.34, 'ms'), '12.3 ms');
  t.is(fmtValue(0.0123, 'ms'), '0.012 ms');
  t.is(fmtValue(0, 'commands'), '0 commands');
});
