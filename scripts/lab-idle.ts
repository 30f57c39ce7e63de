/**
 * Idle profile of a running lab (issue 18; not a test): over a window, CPU (% of one core,
 * each process's own time plus its reaped children's), resident memory and process starts
 * (the sched_process_fork tracepoint through `perf`, counted by the parent's kind) of
 * every process of one lab: those whose command line names the lab dir or prefix, and
 * their descendants (probe helpers, wireguard-go). Run as root beside the lab:
 *
 *   L2FED_LAB_DIR=/tmp/l2fed-x-lab L2FED_LAB_PREFIX=l2fed-x l2fed lab up --clusters 32 …
 *   npx tsx scripts/lab-idle.ts --dir /tmp/l2fed-x-lab --prefix l2fed-x [--seconds 60]
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    dir: { type: 'string' },
    prefix: { type: 'string' },
    seconds: { type: 'string', default: '60' },
  },
});
if (!values.dir?.includes('l2fed-') || !values.prefix?.includes('l2fed-')) {
  throw new Error('--dir and --prefix: the lab dir and prefix (both contain "l2fed-")');
}
const DIR = values.dir;
const PREFIX = values.prefix;
const SECONDS = Math.min(600, Math.max(5, Number(values.seconds)));
const HZ = 100; // USER_HZ
const PERF_DATA = `/tmp/l2fed-lab-idle-${process.pid}.perf`;

const read = (path: string) => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
};
const cmdline = (pid: number) => read(`/proc/${pid}/cmdline`).replaceAll('\0', ' ').trim();
/** Fields after "(comm) ": index 0 is field 3 (state). */
const statFields = (pid: number) => read(`/proc/${pid}/stat`).split(') ')[1]?.split(' ') ?? [];

function kindOf(c: string): string {
  if (/ lab (run|up)\b/.test(c)) return 'lab runner';
  const daemon = / (gateway|agent|broker) run\b/.exec(c);
  if (daemon) return daemon[1]!;
  if (c.includes('nats-server')) return 'nats-server';
  if (c.includes('wireguard-go')) return 'wireguard-go';
  if (c.includes('python3')) return 'probe helper';
  return `other: ${c.split(' ')[0]?.split('/').at(-1)}`;
}

/** The lab's processes: named by dir or prefix, and every descendant of those. */
function labProcesses(): Map<number, string> {
  const all = readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .map(Number);
  const parent = new Map(all.map((p) => [p, Number(statFields(p)[1] ?? 0)]));
  // Detached daemons (wireguard-go) are nobody's children: found by their namespace.
  const named = (() => {
    try {
      return readdirSync('/run/netns');
    } catch {
      return [];
    }
  })();
  const netns = new Set(
    named
      .filter((n) => n.startsWith(PREFIX))
      .map((n) => `net:[${statSync(`/run/netns/${n}`).ino}]`),
  );
  const nsOf = (p: number) => {
    try {
      return readlinkSync(`/proc/${p}/ns/net`);
    } catch {
      return '';
    }
  };
  const found = new Map<number, string>();
  for (const p of all) {
    const c = cmdline(p);
    if (/lab-idle|perf record/.test(c)) continue; // this script and its callers
    if (c && (c.includes(DIR) || c.includes(PREFIX) || netns.has(nsOf(p)))) found.set(p, kindOf(c));
  }
  for (let grew = true; grew;) {
    grew = false;
    for (const p of all) {
      if (found.has(p) || !found.has(parent.get(p) ?? 0)) continue;
      const c = cmdline(p);
      if (!c) continue;
      found.set(p, kindOf(c));
      grew = true;
    }
  }
  return found;
}

/** utime+stime and cutime+cstime, in ticks. */
function ticks(pid: number): number | undefined {
  const f = statFields(pid);
  if (f.length < 15) return undefined;
  return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
}
const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(read(`/proc/${pid}/status`))?.[1] ?? 0);
const tgid = (pid: number) => Number(/Tgid:\s+(\d+)/.exec(read(`/proc/${pid}/status`))?.[1] ?? pid);

const procs = labProcesses();
if (procs.size === 0) throw new Error(`no process names ${DIR} or ${PREFIX}: is the lab up?`);
const t0 = new Map([...procs.keys()].map((p) => [p, ticks(p)]));
const load0 = read('/proc/loadavg').split(' ').slice(0, 3).join(' ');
const started = Date.now();
const perf = spawn(
  'perf',
  [
    'record',
    '-q',
    '-e',
    'sched:sched_process_fork',
    '-a',
    '-o',
    PERF_DATA,
    '--',
    'sleep',
    `${SECONDS}`,
  ],
  { stdio: 'ignore' },
);
await new Promise((r) => perf.on('exit', r));
const elapsed = (Date.now() - started) / 1000;
const load1 = read('/proc/loadavg').split(' ').slice(0, 3).join(' ');

type Row = { procs: number; ticks: number; rssKb: number; forks: number };
const rows = new Map<string, Row>();
const row = (k: string) => {
  let r = rows.get(k);
  if (!r) rows.set(k, (r = { procs: 0, ticks: 0, rssKb: 0, forks: 0 }));
  return r;
};
for (const [pid, kind] of procs) {
  const r = row(kind);
  r.procs++;
  const a = t0.get(pid);
  const b = ticks(pid);
  if (a !== undefined && b !== undefined) r.ticks += b - a;
  r.rssKb += rssKb(pid);
}
const script = execFileSync('perf', ['script', '-i', PERF_DATA, '-F', 'pid,trace'], {
  encoding: 'utf8',
  maxBuffer: 256 << 20,
});
rmSync(PERF_DATA, { force: true });
for (const line of script.split('\n')) {
  const m = /^\s*(\d+)\s.*child_pid=\d+/.exec(line);
  if (!m) continue;
  const kind = procs.get(tgid(Number(m[1]))) ?? procs.get(Number(m[1]));
  if (kind) row(kind).forks++;
}

const pct = (t: number) => ((t / HZ / elapsed) * 100).toFixed(1);
console.log(`window ${elapsed.toFixed(0)} s; load average ${load0} -> ${load1}`);
console.log(
  'kind'.padEnd(16),
  'procs'.padStart(5),
  'cpu %'.padStart(7),
  'RSS MB'.padStart(7),
  'starts/s'.padStart(9),
);
const sorted = [...rows].sort((a, b) => b[1].ticks - a[1].ticks);
let total: Row = { procs: 0, ticks: 0, rssKb: 0, forks: 0 };
for (const [k, r] of sorted) {
  console.log(
    k.padEnd(16),
    String(r.procs).padStart(5),
    pct(r.ticks).padStart(7),
    (r.rssKb / 1024).toFixed(0).padStart(7),
    (r.forks / elapsed).toFixed(2).padStart(9),
  );
  total = {
    procs: total.procs + r.procs,
    ticks: total.ticks + r.ticks,
    rssKb: total.rssKb + r.rssKb,
    forks: total.forks + r.forks,
  };
}
console.log(
  'total'.padEnd(16),
  String(total.procs).padStart(5),
  pct(total.ticks).padStart(7),
  (total.rssKb / 1024).toFixed(0).padStart(7),
  (total.forks / elapsed).toFixed(2).padStart(9),
);
