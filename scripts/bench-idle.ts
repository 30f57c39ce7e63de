/**
 * Benchmark (not a test), issue 18: the idle cost of one gateway's health check as a
 * function of its peer count, with the peer counts and check counts of your choice. The
 * same measurement as the `gateway-idle` section of `npm run bench` (bench/gateway-idle.ts,
 * which says how it is measured), one run, printed as a table.
 * Run as root:  npx tsx scripts/bench-idle.ts [--peers 1,10,50,100] [--checks 20] [--json]
 */
import { parseArgs } from 'node:util';
import { measureIdle } from '../bench/gateway-idle.js';
import { shortId } from '../lib/short-id.js';

const { values } = parseArgs({
  options: {
    peers: { type: 'string', default: '1,10,50,100' },
    checks: { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
  },
});
const PEERS = values.peers.split(',').map(Number);
if (PEERS.length === 0 || PEERS.some((n) => !Number.isInteger(n) || n < 1 || n > 200)) {
  throw new Error('--peers: comma-separated counts, each 1..200 (the first is the baseline)');
}
const CHECKS = Math.min(200, Math.max(3, Number(values.checks) || 20));

const { samples } = await measureIdle({
  prefix: `l2fed-bi${shortId()}`,
  peers: PEERS,
  runs: 1,
  checks: { before: CHECKS, after: CHECKS },
  log: () => undefined,
});
const base = (mode: string) => samples.find((r) => r.mode === mode && r.peers === PEERS[0])!;
const rows = samples.map((s) => {
  const b = base(s.mode);
  return {
    mode: s.mode === 'before' ? 'ping' : 'helper',
    peers: s.peers,
    startsPerCheck: s.starts / s.checks,
    startsRatio: s.starts / s.checks / (b.starts / b.checks),
    cpuMsPerCheck: s.cpuMs / s.checks,
    cpuRatio: s.cpuMs / s.checks / (b.cpuMs / b.checks),
    helperMsPerCheck: s.helperMs / s.checks,
    msPerCheck: s.wallMs / s.checks,
    peersNotUp: s.notUp,
  };
});
if (values.json) console.log(JSON.stringify(rows, null, 2));
else {
  console.log(`${CHECKS} checks per row; ratios to ${PEERS[0]} peer(s) in the same mode`);
  console.log(
    'mode    peers  starts/check  ratio   CPU ms/check  ratio  (helper)  wall ms/check  not up',
  );
  for (const r of rows) {
    console.log(
      `${r.mode.padEnd(7)} ${String(r.peers).padStart(5)}  ${r.startsPerCheck.toFixed(1).padStart(12)}  ${r.startsRatio.toFixed(2).padStart(5)}  ${r.cpuMsPerCheck.toFixed(1).padStart(12)}  ${r.cpuRatio.toFixed(2).padStart(5)}  ${r.helperMsPerCheck.toFixed(1).padStart(8)}  ${r.msPerCheck.toFixed(0).padStart(13)}  ${String(r.peersNotUp).padStart(6)}`,
    );
  }
}
