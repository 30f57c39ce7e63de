/**
 * Benchmark section `data-path` (root): what the gateway path costs a pod's traffic.
 *
 * 1. For each segment backend (Linux bridge, OVS netdev), a two-site testbed
 *    (test/fixtures/gateway-testbed.ts); alternately, iperf3 TCP and a ping train over
 *    the raw WireGuard tunnel between the two gateway namespaces (transit addresses) and
 *    pod to pod through the whole path (pod → segment → VXLAN → WireGuard → … → pod).
 *    Figures are per-run ratios pod/tunnel, so both sides see the same machine load.
 *    While the tunnel is measured the sites' ovs-vswitchd are frozen (SIGSTOP): the
 *    tunnel does not cross OVS, and OVS's idle polling must not slow the baseline.
 * 2. Fan-out: 2-, 3- and 5-site testbeds on one network (Linux bridge), all up at once;
 *    alternately, iperf3 between the pods of sites 0 and 1 in each. Figures: the 3- and
 *    5-site throughput as a ratio to the 2-site one of the same round (≥ 0.9: known
 *    unicast is learned, not flooded; docs/gateway.md, Known unicast), and the bytes the
 *    bystander sites' WireGuard interfaces received per byte transferred.
 *
 * CPU: the time (user + system, /proc/<pid>/stat) wireguard-go and ovs-vswitchd of
 * both sites, and iperf3 (its own JSON), spent per MiB transferred, and the machine's busy
 * cores over the run (/proc/stat; includes whatever else runs). perf is used to say
 * whether hardware counters exist (cycles per byte); where they do not, CPU time it is.
 *
 * `scripts/bench-gateway.ts` runs part 1 alone with more knobs (OVS port mode, TSO).
 */
import { readFile } from 'node:fs/promises';
import { ExecaRunner } from '../lib/runner.js';
import {
  GatewayLab,
  type LabNetwork,
  type LabPod,
  type LabSite,
  type OvsPortMode,
  type SegmentKind,
} from '../test/fixtures/gateway-testbed.js';
import {
  figure,
  stat,
  type BenchSection,
  type Chart,
  type Figure,
  type SectionOptions,
} from './result.js';

const NET: LabNetwork = { name: 'bench', vni: 4242, subnet: 42 };

export interface DataPathOptions {
  /** Alternating rounds (each: tunnel then pod path, or one transfer per fan-out lab). */
  readonly runs: number;
  /** Seconds of each iperf3 transfer. */
  readonly seconds: number;
  /** Pings per ping train (every 20 ms). */
  readonly pings: number;
  /** Prefix of namespaces and temp dirs (`l2fed-…`). */
  readonly prefix?: string;
  readonly ovsPorts?: OvsPortMode;
  /** OVS with userspace TSO and pods' TX offload on (system ports only). */
  readonly ovsTso?: boolean;
  readonly log?: (line: string) => void;
}

/** CPU time spent during one transfer, ms. */
export interface CpuSpent {
  readonly wireguard: number;
  readonly ovs: number;
  readonly iperf: number;
  /** Every process on the machine (including other work), and of that softirq. */
  readonly machineBusy: number;
  readonly softirq: number;
}

export interface Transfer {
  readonly mbps: number;
  readonly bytes: number;
  readonly seconds: number;
  /** Wall time over which `cpu` was counted (the iperf3 client's whole run), ms. */
  readonly wallMs: number;
  readonly cpu: CpuSpent;
}

export interface PathSample extends Transfer {
  /** Individual ping round trips, ms. */
  readonly rttMs: readonly number[];
}

export interface SegmentResult {
  /** `linux-bridge`, `ovs/system`, `ovs/afxdp` or `ovs/system+tso`. */
  readonly segment: string;
  readonly kind: SegmentKind;
  readonly tunnel: readonly PathSample[];
  readonly path: readonly PathSample[];
}

export interface FanOutResult {
  /** Sites in the lab → one transfer per round between the pods of sites 0 and 1. */
  readonly bySites: ReadonlyMap<number, readonly Transfer[]>;
  /** Bytes the bystander sites' WireGuard interfaces received per round, by lab size. */
  readonly bystanderBytes: ReadonlyMap<number, readonly number[]>;
}

const runner = new ExecaRunner();

/** Percentile p (0–100) of samples, nearest rank. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) throw new Error('percentile: no samples');
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

/** Round trips of `ping` output lines ("… time=0.123 ms"), ms. */
export function parsePingTimes(stdout: string): number[] {
  return [...stdout.matchAll(/time=([\d.]+) ms/g)].map((m) => Number(m[1]));
}

/** utime + stime of a /proc/<pid>/stat line, in clock ticks. */
export function parseCpuTicks(line: string): number {
  const f = line.slice(line.lastIndexOf(')') + 2).split(' ');
  // After "pid (comm) ": state(0) ppid pgrp session tty tpgid flags minflt cminflt majflt
  // cmajflt utime(11) stime(12)
  return Number(f[11]) + Number(f[12]);
}

/** busy and softirq ticks from /proc/stat's first line ("cpu  user nice system idle …"). */
export function parseMachineTicks(procStat: string): { busy: number; softirq: number } {
  const line = procStat.split('\n')[0] ?? '';
  if (!line.startsWith('cpu ')) throw new Error(`/proc/stat: unexpected first line "${line}"`);
  // user nice system idle iowait irq softirq steal …; busy is all but idle and iowait.
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return { busy: user + nice + system + irq + softirq + steal, softirq };
}

let clockTicks: number | undefined;
async function msPerTick(): Promise<number> {
  clockTicks ??= Number((await runner.run(['getconf', 'CLK_TCK'])).stdout.trim()) || 100;
  return 1000 / clockTicks;
}

async function ticksOf(pids: readonly (number | undefined)[]): Promise<number> {
  let sum = 0;
  for (const pid of pids) {
    if (pid === undefined) continue;
    try {
      sum += parseCpuTicks(await readFile(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      // gone: counts nothing
    }
  }
  return sum;
}

interface CpuMark {
  wg: number;
  ovs: number;
  machine: { busy: number; softirq: number };
}

function wgPids(lab: GatewayLab): (number | undefined)[] {
  return lab.sites.map((s) => lab.launcher.get(`wireguard-go:${s.ifname}`)?.pid);
}
function ovsPids(lab: GatewayLab): (number | undefined)[] {
  return lab.sites.map((s) => s.ovs?.pids[1]);
}

async function cpuMark(lab: GatewayLab): Promise<CpuMark> {
  return {
    wg: await ticksOf(wgPids(lab)),
    ovs: await ticksOf(ovsPids(lab)),
    machine: parseMachineTicks(await readFile('/proc/stat', 'utf8')),
  };
}

interface IperfJson {
  end: {
    sum_received: { bits_per_second: number; bytes: number; seconds: number };
    cpu_utilization_percent?: { host_total?: number; remote_total?: number };
  };
}

/** One iperf3 TCP transfer from fromNs to ip (served in toNs), with the CPU it cost. */
async function transfer(
  lab: GatewayLab,
  fromNs: string,
  toNs: string,
  ip: string,
  seconds: number,
): Promise<Transfer> {
  const server = await lab.spawn(
    'iperf3',
    toNs,
    ['iperf3', '-s', '-1', '--forceflush', '-B', ip],
    /Server listening/,
  );
  const tick = await msPerTick();
  const before = await cpuMark(lab);
  const t0 = performance.now();
  const r = await lab.runner.run(['iperf3', '-c', ip, '-t', String(seconds), '-J'], {
    netns: fromNs,
    timeoutMs: (seconds + 20) * 1000,
  });
  const wallMs = performance.now() - t0;
  const after = await cpuMark(lab);
  await server.exited;
  const end = (JSON.parse(r.stdout) as IperfJson).end;
  const sec = end.sum_received.seconds;
  const util = end.cpu_utilization_percent;
  return {
    mbps: end.sum_received.bits_per_second / 1e6,
    bytes: end.sum_received.bytes,
    seconds: sec,
    wallMs,
    cpu: {
      wireguard: (after.wg - before.wg) * tick,
      ovs: (after.ovs - before.ovs) * tick,
      iperf: (((util?.host_total ?? 0) + (util?.remote_total ?? 0)) / 100) * sec * 1000,
      machineBusy: (after.machine.busy - before.machine.busy) * tick,
      softirq: (after.machine.softirq - before.machine.softirq) * tick,
    },
  };
}

async function pingTrain(lab: GatewayLab, fromNs: string, ip: string, n: number) {
  const r = await lab.runner.run(['ping', '-c', String(n), '-i', '0.02', '-W', '2', ip], {
    netns: fromNs,
    timeoutMs: 20_000 + n * 100,
    allowFailure: true,
  });
  const times = parsePingTimes(r.stdout);
  if (times.length < n / 2) throw new Error(`ping ${ip}: ${times.length} of ${n} answered`);
  return times;
}

async function sample(
  lab: GatewayLab,
  fromNs: string,
  toNs: string,
  ip: string,
  o: DataPathOptions,
): Promise<PathSample> {
  const t = await transfer(lab, fromNs, toNs, ip, o.seconds);
  return { ...t, rttMs: await pingTrain(lab, fromNs, ip, o.pings) };
}

/** Applies one network on every site of the lab and plugs a pod into sites 0 and 1. */
async function setUp(lab: GatewayLab): Promise<[LabPod, LabPod]> {
  const pods: LabPod[] = [];
  for (const site of lab.sites) {
    await lab.addSegment(site, NET);
    const r = await site.gateway.apply(lab.config(site, [NET]));
    if (site.index < 2)
      pods.push(await lab.addPod(site, NET, 11 + site.index, r.report.networks[0]!.mtu));
  }
  const [a, b] = pods as [LabPod, LabPod];
  if (!(await lab.reaches(a.ns, b.ip))) {
    throw new Error(`pod ${a.ip} does not reach ${b.ip} across ${lab.sites.length} sites`);
  }
  return [a, b];
}

/**
 * Pod path vs raw tunnel on one segment backend: `runs` alternating rounds on one
 * two-site testbed, removed afterwards (also on failure).
 */
export async function measureSegment(
  kind: SegmentKind,
  o: DataPathOptions,
): Promise<SegmentResult> {
  const tso = kind === 'ovs' && !!o.ovsTso;
  const ports: OvsPortMode = tso ? 'system' : (o.ovsPorts ?? 'system'); // OVS 3.1 AF_XDP has no TSO
  const lab = await GatewayLab.create(2, kind, {
    prefix: o.prefix,
    ovsOtherConfig: tso ? { 'userspace-tso-enable': 'true' } : undefined,
    keepPodTxOffload: tso,
    ovsPorts: ports,
  });
  const freezeOvs = (frozen: boolean) => {
    for (const s of lab.sites) s.ovs?.pause(frozen);
  };
  try {
    const [a, b] = await setUp(lab);
    const [g0, g1] = lab.sites as [LabSite, LabSite];
    const tunnel: PathSample[] = [];
    const path: PathSample[] = [];
    const viaTunnel = async () => {
      freezeOvs(true);
      try {
        tunnel.push(await sample(lab, g0.ns, g1.ns, g1.transitAddress, o));
      } finally {
        freezeOvs(false);
      }
    };
    const viaPods = async () => void path.push(await sample(lab, a.ns, b.ns, b.ip, o));
    for (let i = 0; i < o.runs; i++) {
      // Alternate which goes first, so neither always meets a warmer (or busier) machine.
      for (const step of i % 2 ? [viaPods, viaTunnel] : [viaTunnel, viaPods]) await step();
      o.log?.(
        `${kind} round ${i + 1}/${o.runs}: tunnel ${tunnel.at(-1)!.mbps.toFixed(0)} Mbit/s, pod ${path.at(-1)!.mbps.toFixed(0)} Mbit/s`,
      );
    }
    const segment = kind === 'ovs' ? (tso ? 'ovs/system+tso' : `ovs/${ports}`) : kind;
    return { segment, kind, tunnel, path };
  } finally {
    await lab.dispose();
  }
}

async function rxBytes(ns: string, dev: string): Promise<number> {
  const r = await runner.run(['ip', '-s', '-j', 'link', 'show', 'dev', dev], { netns: ns });
  const [link] = JSON.parse(r.stdout) as { stats64?: { rx?: { bytes?: number } } }[];
  const n = link?.stats64?.rx?.bytes;
  if (typeof n !== 'number') throw new Error(`no rx byte counter for ${dev} in ${ns}`);
  return n;
}

/**
 * One pair's throughput in labs of each size (all up at once, measured in alternating
 * rounds), and what reached the bystanders meanwhile. Linux bridge segments.
 */
export async function measureFanOut(
  sizes: readonly number[],
  o: DataPathOptions,
): Promise<FanOutResult> {
  const created: GatewayLab[] = [];
  const labs: { n: number; lab: GatewayLab; pods: [LabPod, LabPod] }[] = [];
  try {
    for (const n of sizes) {
      const lab = await GatewayLab.create(n, 'linux-bridge', { prefix: o.prefix });
      created.push(lab);
      labs.push({ n, lab, pods: await setUp(lab) });
      o.log?.(`fan-out: ${n}-site lab up`);
    }
    const bySites = new Map<number, Transfer[]>(sizes.map((n) => [n, []]));
    const bystanderBytes = new Map<number, number[]>(sizes.map((n) => [n, []]));
    for (let i = 0; i < o.runs; i++) {
      // Alternate the order, so no lab size always runs first.
      for (const { n, lab, pods } of i % 2 ? [...labs].reverse() : labs) {
        const bystanders = lab.sites.slice(2);
        const before = await Promise.all(bystanders.map((s) => rxBytes(s.ns, s.ifname)));
        const t = await transfer(lab, pods[0].ns, pods[1].ns, pods[1].ip, o.seconds);
        const after = await Promise.all(bystanders.map((s) => rxBytes(s.ns, s.ifname)));
        bySites.get(n)!.push(t);
        bystanderBytes.get(n)!.push(after.reduce((s, x, k) => s + x - before[k]!, 0));
      }
      o.log?.(
        `fan-out round ${i + 1}/${o.runs}: ${sizes.map((n) => `${n} sites ${bySites.get(n)!.at(-1)!.mbps.toFixed(0)} Mbit/s`).join(', ')}`,
      );
    }
    return { bySites, bystanderBytes };
  } finally {
    for (const lab of created) await lab.dispose();
  }
}

/** Whether perf can count cycles here (a VM often exposes no hardware counters). */
async function perfCycles(): Promise<PerfSupport> {
  const r = await runner
    .run(['perf', 'stat', '-e', 'cycles', '--', 'true'], { allowFailure: true })
    .catch(() => undefined);
  if (!r || /not found|No such file/i.test(r.stderr) || r.exitCode === 127) return 'no-perf';
  return /<not supported>|not supported|<not counted>/i.test(r.stderr) || r.exitCode !== 0
    ? 'not-supported'
    : 'supported';
}

const MIB = 2 ** 20;
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const median = (xs: readonly number[]) => stat(xs, '').median;

/** CPU ms per MiB transferred, per sample: wireguard-go + ovs-vswitchd + iperf3. */
const cpuPerMiB = (t: Transfer) => (t.cpu.wireguard + t.cpu.ovs + t.cpu.iperf) / (t.bytes / MIB);
/** Cores busy on average over a transfer (CPU ms over the wall time it was counted in). */
const cores = (ms: number, t: Transfer) => ms / t.wallMs;

export function segmentFigures(r: SegmentResult): Figure[] {
  const seg = r.kind;
  const label = r.kind === 'ovs' ? `OVS userspace, ${r.segment.slice(4)} ports` : 'Linux bridge';
  const ratios = r.path.map((p, i) => p.mbps / r.tunnel[i]!.mbps);
  const rttRatio = (p: number) =>
    r.path.map((s, i) => percentile(s.rttMs, p) / percentile(r.tunnel[i]!.rttMs, p));
  const allRtt = (xs: readonly PathSample[]) => xs.flatMap((s) => s.rttMs);
  const baseline = 'raw WireGuard tunnel between the same two gateway namespaces, same round';
  return [
    figure({
      id: `tcp-ratio-${seg}`,
      label: `pod-to-pod TCP / raw tunnel, ${label}`,
      stat: stat(ratios, 'ratio'),
      baseline,
      target: { op: '>=', value: seg === 'ovs' ? 0.8 : 0.9 },
    }),
    figure({
      id: `tcp-tunnel-${seg}`,
      label: `raw tunnel TCP (${label} testbed)`,
      stat: stat(
        r.tunnel.map((s) => s.mbps),
        'Mbit/s',
      ),
    }),
    figure({
      id: `tcp-pod-${seg}`,
      label: `pod-to-pod TCP, ${label}`,
      stat: stat(
        r.path.map((s) => s.mbps),
        'Mbit/s',
      ),
    }),
    figure({
      id: `rtt-p50-ratio-${seg}`,
      label: `pod RTT p50 / tunnel RTT p50, ${label}`,
      stat: stat(rttRatio(50), 'ratio'),
      baseline,
    }),
    figure({
      id: `rtt-p99-ratio-${seg}`,
      label: `pod RTT p99 / tunnel RTT p99, ${label}`,
      stat: stat(rttRatio(99), 'ratio'),
      baseline,
    }),
    figure({
      id: `rtt-tunnel-${seg}`,
      label: `raw tunnel RTT, all pings (${label} testbed)`,
      stat: stat(allRtt(r.tunnel), 'ms', [50, 90, 99]),
    }),
    figure({
      id: `rtt-pod-${seg}`,
      label: `pod-to-pod RTT, all pings, ${label}`,
      stat: stat(allRtt(r.path), 'ms', [50, 90, 99]),
    }),
    figure({
      id: `cpu-tunnel-${seg}`,
      label: `CPU per MiB over the raw tunnel (wireguard-go + iperf3), ${label} testbed`,
      stat: stat(r.tunnel.map(cpuPerMiB), 'ms/MiB'),
    }),
    figure({
      id: `cpu-pod-${seg}`,
      label: `CPU per MiB pod to pod (wireguard-go + ${seg === 'ovs' ? 'ovs-vswitchd + ' : ''}iperf3), ${label}`,
      stat: stat(r.path.map(cpuPerMiB), 'ms/MiB'),
    }),
  ];
}

/** Where the CPU went during the transfers of one kind, in cores (medians). */
function cpuNote(what: string, ts: readonly Transfer[], withOvs: boolean): string {
  const c = (f: (t: Transfer) => number) => round(median(ts.map(f)), 2);
  return (
    `${what}: wireguard-go (both sites) ${c((t) => cores(t.cpu.wireguard, t))} cores` +
    (withOvs ? `, ovs-vswitchd ${c((t) => cores(t.cpu.ovs, t))}` : '') +
    `, iperf3 ${c((t) => cores(t.cpu.iperf, t))}; the whole machine ${c((t) => cores(t.cpu.machineBusy, t))} of 2 busy (softirq ${c((t) => cores(t.cpu.softirq, t))})`
  );
}

export function fanOutFigures(f: FanOutResult): Figure[] {
  const base = f.bySites.get(2);
  if (!base) throw new Error('fan-out needs the 2-site lab as its baseline');
  const out: Figure[] = [];
  for (const [n, ts] of f.bySites) {
    if (n === 2) continue;
    out.push(
      figure({
        id: `fanout-ratio-${n}`,
        label: `one pair's TCP with ${n} sites on the network / with 2`,
        stat: stat(
          ts.map((t, i) => t.mbps / base[i]!.mbps),
          'ratio',
        ),
        baseline: 'the same pair in a 2-site testbed, same round',
        target: { op: '>=', value: 0.9 },
      }),
      figure({
        id: `fanout-bystander-${n}`,
        label: `bytes reaching the ${n - 2} bystander site${n > 3 ? 's' : ''} (their WireGuard interfaces) per MiB transferred, ${n} sites`,
        stat: stat(
          f.bystanderBytes.get(n)!.map((b, i) => b / (ts[i]!.bytes / MIB)),
          'B/MiB',
        ),
        baseline: 'before learning (issue 11) every bystander received a full copy: 1 MiB each',
      }),
    );
  }
  return out;
}

function charts(segs: readonly SegmentResult[], f: FanOutResult | undefined): Chart[] {
  const out: Chart[] = [
    {
      id: 'tcp-ratio',
      title: 'Pod-to-pod TCP as a ratio to the raw WireGuard tunnel',
      kind: 'bar',
      x: { field: 'segment', title: 'segment backend' },
      y: { field: 'ratio', title: 'pod / tunnel throughput' },
      series: 'round',
      rows: segs.flatMap((s) =>
        s.path.map((p, i) => ({
          segment: s.segment,
          round: `round ${i + 1}`,
          ratio: round(p.mbps / s.tunnel[i]!.mbps, 3),
        })),
      ),
    },
    {
      id: 'rtt-cdf',
      title: 'Round-trip time, every ping',
      kind: 'cdf',
      x: { field: 'ms', title: 'RTT (ms)' },
      y: { field: 'fraction', title: 'fraction of pings ≤ RTT' },
      series: 'path',
      rows: segs.flatMap((s) => [
        ...s.tunnel.flatMap((p) =>
          p.rttMs.map((ms) => ({ path: `tunnel (${s.segment} testbed)`, ms })),
        ),
        ...s.path.flatMap((p) => p.rttMs.map((ms) => ({ path: `pod, ${s.segment}`, ms }))),
      ]),
    },
  ];
  if (f) {
    const base = f.bySites.get(2)!;
    out.push({
      id: 'fanout-ratio',
      title: "One pair's TCP by sites sharing the network, ratio to 2 sites",
      kind: 'bar',
      x: { field: 'sites', title: 'sites on the network' },
      y: { field: 'ratio', title: 'throughput / 2-site throughput' },
      series: 'round',
      rows: [...f.bySites].flatMap(([n, ts]) =>
        ts.map((t, i) => ({
          sites: `${n} sites`,
          round: `round ${i + 1}`,
          ratio: round(t.mbps / base[i]!.mbps, 3),
        })),
      ),
    });
  }
  return out;
}

export type PerfSupport = 'supported' | 'not-supported' | 'no-perf';

/** What one run of the section measured, with the settings it used. */
export interface DataPathMeasurements {
  readonly o: DataPathOptions;
  readonly sizes: readonly number[];
  readonly segs: readonly SegmentResult[];
  readonly fan: FanOutResult;
  readonly perf: PerfSupport;
  readonly tookMs: number;
}

const PERF_NOTE: Record<PerfSupport, string> = {
  supported: 'perf counts cycles here, but CPU is given as time: the same unit for every process.',
  'not-supported':
    'perf is installed, but this VM exposes no hardware counters (`perf stat -e cycles`: not supported), so CPU per byte is CPU time (user + system from /proc/<pid>/stat, what perf task-clock counts), not cycles.',
  'no-perf':
    'perf is not installed, so CPU per byte is CPU time from /proc/<pid>/stat, not cycles.',
};

/** Median cores the whole machine was busy over the transfers. */
const machineCores = (ts: readonly Transfer[]) =>
  median(ts.map((t) => cores(t.cpu.machineBusy, t)));

/** The section's figures, charts and notes from its measurements. */
export function dataPathSection(m: DataPathMeasurements): BenchSection {
  const { o, sizes, segs, fan } = m;
  const lb = segs.find((s) => s.kind === 'linux-bridge');
  const ovs = segs.find((s) => s.kind === 'ovs');
  const paths = segs.flatMap((s) => s.path);
  const busy = round(machineCores(paths), 2);
  const bound =
    busy >= 1.8
      ? `Bound: CPU. The machine was ${busy} of 2 cores busy (median) during the pod-path transfers: both sites, both iperf3 ends and every daemon share the 2 cores of one VM, with other engineers' tests running, and wireguard-go encrypts in userspace.`
      : `The machine was ${busy} of 2 cores busy (median) during the pod-path transfers, so not saturated: one TCP stream through userspace wireguard-go (its queues and the crossings into and out of the TUN device) bounds it, with other engineers' tests sharing the same 2 cores.`;
  const cpu = [
    cpuNote(
      'Raw tunnel',
      segs.flatMap((s) => s.tunnel),
      false,
    ),
    ...(lb ? [cpuNote('Pod path, Linux bridge', lb.path, false)] : []),
    ...(ovs ? [cpuNote('Pod path, OVS', ovs.path, true)] : []),
  ];
  return {
    id: 'data-path',
    title: 'Data path',
    method:
      `Two gateway namespaces on one underlay bridge (test/fixtures/gateway-testbed.ts), WireGuard by wireguard-go (userspace), one network (VXLAN in WireGuard) with a pod namespace at each site. ` +
      `${o.runs} rounds per segment backend, each ${o.seconds} s of iperf3 TCP (one stream) and ${o.pings} pings (every 20 ms) over the raw tunnel between the gateways' transit addresses (ovs-vswitchd frozen meanwhile) and the same pod to pod, which goes first alternating; each ratio is pod / tunnel of the same round. ` +
      `Fan-out: ${sizes.join(', ')}-site testbeds on one Linux-bridge network, all up at once; each round runs ${o.seconds} s of iperf3 between the pods of sites 0 and 1 in each, and reads the bystanders' WireGuard byte counters. ` +
      `CPU: wireguard-go and ovs-vswitchd time from /proc/<pid>/stat over each transfer, iperf3's from its JSON, the machine's from /proc/stat.`,
    figures: [...segs.flatMap(segmentFigures), ...fanOutFigures(fan)],
    charts: charts(segs, fan),
    notes: [
      `${bound} ${cpu.join('. ')}.`,
      "OVS runs the userspace datapath (netdev; no openvswitch kernel module on these machines), reading its ports with AF_PACKET in the vswitchd main thread: every frame crosses into userspace once more than on the Linux bridge, and the pods' TX checksum offload is off (OVS netdev does not fill it in). On a node with the kernel datapath OVS switches in the kernel like the bridge does.",
      "On a real node each site has its own cores and kernel WireGuard (no userspace crossing): the tunnel baseline is then much faster, and the pod path's extra cost (bridge + VXLAN encapsulation, 50 bytes a frame) is a smaller share; the ratios here describe this shared 2-core box, not a node.",
      "Fan-out: known unicast is learned by the VXLAN devices (docs/gateway.md, Known unicast), so after the first ARP a pair's transfer is sent to one peer only; the bystander figure shows what still reaches the others (WireGuard keepalives and handshakes count too).",
      PERF_NOTE[m.perf],
    ],
    tookMs: m.tookMs,
  };
}

/** The `data-path` section (bench/sections.ts). */
export async function run(opts: SectionOptions): Promise<BenchSection> {
  const started = performance.now();
  const o: DataPathOptions = {
    // Sized for its budget in bench/sections.ts: ~100 s at load average 30 on 2 cores.
    runs: opts.quick ? 1 : 3,
    seconds: opts.quick ? 1 : 2,
    pings: opts.quick ? 20 : 40,
    prefix: opts.prefix ?? 'l2fed-bdp',
    log: opts.log,
  };
  const sizes = opts.quick ? [2, 3] : [2, 3, 5];
  const perf = await perfCycles();
  const segs: SegmentResult[] = [];
  for (const kind of ['linux-bridge', 'ovs'] as const) segs.push(await measureSegment(kind, o));
  const fan = await measureFanOut(sizes, o);
  return dataPathSection({
    o,
    sizes,
    segs,
    fan,
    perf,
    tookMs: Math.round(performance.now() - started),
  });
}
