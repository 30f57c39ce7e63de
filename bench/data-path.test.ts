import test from 'ava';
import { sectionSchema, renderChartSvg } from './report.js';
import {
  dataPathSection,
  fanOutFigures,
  parseCpuTicks,
  parseMachineTicks,
  parsePingTimes,
  percentile,
  segmentFigures,
  type PathSample,
  type Transfer,
} from './data-path.js';

const cpu = { wireguard: 1000, ovs: 500, iperf: 500, machineBusy: 4000, softirq: 200 };
const sample = (mbps: number, rttMs: number[]): PathSample => ({
  mbps,
  bytes: 64 * 2 ** 20,
  seconds: 2,
  wallMs: 2000,
  cpu,
  rttMs,
});

test('ping round trips are read per reply', (t) => {
  const out = `PING 198.19.42.12 (198.19.42.12) 56(84) bytes of data.
64 bytes from 198.19.42.12: icmp_seq=1 ttl=64 time=2.31 ms
64 bytes from 198.19.42.12: icmp_seq=2 ttl=64 time=0.912 ms

--- 198.19.42.12 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 20ms
rtt min/avg/max/mdev = 0.912/1.611/2.310/0.699 ms`;
  t.deepEqual(parsePingTimes(out), [2.31, 0.912]);
});

test('CPU ticks: utime + stime of a /proc/<pid>/stat line, comm with spaces', (t) => {
  // Fields after comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
  t.is(parseCpuTicks('812 (wireguard-go x) S 1 812 812 0 -1 4194560 10 0 0 0 345 67 0 0 20'), 412);
  const m = parseMachineTicks('cpu  100 5 50 1000 30 7 11 2 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n');
  t.deepEqual(m, { busy: 100 + 5 + 50 + 7 + 11 + 2, softirq: 11 });
  t.throws(() => parseMachineTicks('intr 1 2'), { message: /unexpected first line/ });
});

test('percentiles are nearest-rank', (t) => {
  const xs = Array.from({ length: 100 }, (_, i) => i + 1);
  t.is(percentile(xs, 50), 50);
  t.is(percentile(xs, 99), 99);
  t.is(percentile([3, 1, 2], 50), 2);
});

test('segment figures are per-round ratios to the tunnel, with the issue targets', (t) => {
  const figs = segmentFigures({
    segment: 'ovs/system',
    kind: 'ovs',
    tunnel: [sample(200, [1, 1, 2]), sample(100, [1, 2, 4])],
    path: [sample(150, [2, 3, 4]), sample(90, [2, 2, 8])],
  });
  const by = new Map(figs.map((f) => [f.id, f]));
  const tcp = by.get('tcp-ratio-ovs')!;
  t.deepEqual([tcp.stat.min, tcp.stat.max, tcp.stat.n, tcp.stat.unit], [0.75, 0.9, 2, 'ratio']);
  t.deepEqual(tcp.target, { op: '>=', value: 0.8, met: true }); // median 0.825
  // p50 ratios: 3/1 and 2/2; p99 ratios 4/2 and 8/4.
  t.deepEqual(
    [by.get('rtt-p50-ratio-ovs')!.stat.min, by.get('rtt-p50-ratio-ovs')!.stat.max],
    [1, 3],
  );
  t.is(by.get('rtt-p99-ratio-ovs')!.stat.median, 2);
  // All pod pings pooled: 2 2 2 3 4 8.
  t.deepEqual(by.get('rtt-pod-ovs')!.stat.percentiles, { p50: 2, p90: 8, p99: 8 });
  // (1000 + 500 + 500) ms over 64 MiB.
  t.is(by.get('cpu-pod-ovs')!.stat.median, 2000 / 64);
  const lb = segmentFigures({
    segment: 'linux-bridge',
    kind: 'linux-bridge',
    tunnel: [sample(200, [1])],
    path: [sample(170, [1])],
  }).find((f) => f.id === 'tcp-ratio-linux-bridge')!;
  t.deepEqual(lb.target, { op: '>=', value: 0.9, met: false }); // 0.85
});

test('fan-out figures: each size against the 2-site pair of the same round', (t) => {
  const tr = (mbps: number): Transfer => ({
    mbps,
    bytes: 1_000_000,
    seconds: 2,
    wallMs: 2000,
    cpu,
  });
  const figs = fanOutFigures({
    bySites: new Map([
      [2, [tr(100), tr(200)]],
      [3, [tr(95), tr(150)]],
      [5, [tr(100), tr(190)]],
    ]),
    bystanderBytes: new Map([
      [2, [0, 0]],
      [3, [2000, 1000]],
      [5, [30_000, 9000]],
    ]),
  });
  const by = new Map(figs.map((f) => [f.id, f]));
  t.deepEqual(
    [...by.keys()],
    ['fanout-ratio-3', 'fanout-bystander-3', 'fanout-ratio-5', 'fanout-bystander-5'],
  );
  t.deepEqual(
    [by.get('fanout-ratio-3')!.stat.min, by.get('fanout-ratio-3')!.stat.max],
    [0.75, 0.95],
  );
  t.deepEqual(by.get('fanout-ratio-3')!.target, { op: '>=', value: 0.9, met: false }); // median 0.85
  t.deepEqual(by.get('fanout-ratio-5')!.target, { op: '>=', value: 0.9, met: true }); // 0.975
  t.is(by.get('fanout-bystander-5')!.stat.max, 0.03 * 2 ** 20); // 30,000 B of 1,000,000
  t.throws(() => fanOutFigures({ bySites: new Map([[3, [tr(1)]]]), bystanderBytes: new Map() }), {
    message: /2-site lab as its baseline/,
  });
});

test('the whole section from fake measurements passes the results schema and draws', async (t) => {
  const tr = (mbps: number, busy: number): Transfer => ({
    mbps,
    bytes: 2 ** 20 * 40,
    seconds: 2,
    wallMs: 2000,
    cpu: { ...cpu, machineBusy: busy },
  });
  const section = dataPathSection({
    o: { runs: 2, seconds: 2, pings: 3 },
    sizes: [2, 3],
    segs: [
      {
        segment: 'linux-bridge',
        kind: 'linux-bridge',
        tunnel: [sample(200, [1, 1, 2]), sample(190, [1, 2, 2])],
        path: [
          { ...sample(180, [2, 2, 3]), cpu: { ...cpu, machineBusy: 3900 } },
          { ...sample(170, [2, 3, 3]), cpu: { ...cpu, machineBusy: 3700 } },
        ],
      },
    ],
    fan: {
      bySites: new Map([
        [2, [tr(100, 1), tr(100, 1)]],
        [3, [tr(95, 1), tr(99, 1)]],
      ]),
      bystanderBytes: new Map([
        [2, [0, 0]],
        [3, [500, 700]],
      ]),
    },
    perf: 'not-supported',
    tookMs: 1234,
  });
  t.true(sectionSchema.safeParse(section).success);
  t.deepEqual(
    section.charts.map((c) => [c.id, c.rows.length]),
    [
      ['tcp-ratio', 2],
      ['rtt-cdf', 12],
      ['fanout-ratio', 4],
    ],
  );
  // 3.9 and 3.7 s of machine CPU over 2 s transfers: median 1.9 cores busy, so CPU-bound.
  t.regex(section.notes![0]!, /^Bound: CPU\. The machine was 1\.9 of 2 cores busy/);
  t.regex(section.notes!.at(-1)!, /no hardware counters/);
  for (const c of section.charts) t.regex(await renderChartSvg(c), /<svg /);
});
