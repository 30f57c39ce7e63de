/**
 * Pod-to-pod TCP and RTT through the gateway path as a ratio of the raw WireGuard tunnel
 * between the same two gateway namespaces: part 1 of `npm run bench`'s data-path section
 * (bench/data-path.ts, where the method is described), with the OVS knobs exposed.
 * Run as root:  npx tsx scripts/bench-gateway.ts [--runs 3] [--seconds 3] [--segment ovs]
 *                [--ovs-ports afxdp|system] [--ovs-tso] [--json]
 */
import { parseArgs } from 'node:util';
import type { OvsPortMode, SegmentKind } from '../test/fixtures/gateway-testbed.js';
import { measureSegment, percentile, type PathSample } from '../bench/data-path.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '3' },
    segment: { type: 'string', multiple: true },
    json: { type: 'boolean', default: false },
    'ovs-tso': { type: 'boolean', default: false },
    'ovs-ports': { type: 'string', default: 'system' },
  },
});
const ovsPorts = values['ovs-ports'] as OvsPortMode;
if (!['afxdp', 'system'].includes(ovsPorts)) throw new Error('--ovs-ports: afxdp or system');
const runs = Math.min(10, Math.max(1, Number(values.runs)));
const seconds = Math.min(10, Math.max(1, Number(values.seconds)));
const segments = (values.segment ?? ['linux-bridge', 'ovs']) as SegmentKind[];

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const p50 = (ss: readonly PathSample[]) =>
  percentile(
    ss.flatMap((s) => s.rttMs),
    50,
  );

const results = [];
for (const kind of segments) {
  const r = await measureSegment(kind, {
    runs,
    seconds,
    pings: 20,
    ovsPorts,
    ovsTso: values['ovs-tso'],
    log: (line) => console.error(line),
  });
  const t = median(r.tunnel.map((s) => s.mbps));
  const p = median(r.path.map((s) => s.mbps));
  results.push({
    segment: r.segment,
    runs,
    seconds,
    tunnelMbps: Math.round(t),
    podMbps: Math.round(p),
    ratio: Number(median(r.path.map((s, i) => s.mbps / r.tunnel[i]!.mbps)).toFixed(2)),
    tunnelRttMs: p50(r.tunnel),
    podRttMs: p50(r.path),
    samples: { tunnel: r.tunnel, path: r.path },
  });
}
if (values.json) {
  console.log(JSON.stringify(results, null, 2));
} else {
  console.log('segment        tunnel Mbit/s  pod Mbit/s  ratio  tunnel RTT ms  pod RTT ms');
  for (const r of results) {
    console.log(
      `${r.segment.padEnd(14)} ${String(r.tunnelMbps).padStart(13)} ${String(r.podMbps).padStart(11)}  ${r.ratio.toFixed(2).padStart(5)}  ${r.tunnelRttMs.toFixed(3).padStart(13)}  ${r.podRttMs.toFixed(3).padStart(10)}`,
    );
  }
  console.log(
    `(median of ${runs} alternating runs of ${seconds} s each; target ≥0.9 linux-bridge, ≥0.8 ovs)`,
  );
}
