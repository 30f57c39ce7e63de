/**
 * Benchmark section "gateway-idle" (issue 18): the idle cost of one gateway's health check
 * as a function of its peer count (1, 10, 50, 100). Simulated peers: the gateway's
 * namespace reaches 100 transit addresses behind a TUN device whose reader answers ICMP
 * echo (tun-echo-responder.ts), and one device in the gateway's namespace takes the probe
 * frames. The
 * tunnel state comes from the fakes (no WireGuard), so what is measured is what a check
 * itself does: echoes, counter reads, probe frames.
 *
 * Three shapes of the same HealthMonitor (MODE_LABEL; `measure` and idleSection's method
 * say how each is set up):
 *   after   the long-lived probe helper and the probe schedule, idle peers sending
 *   silent  the same, but no peer sends: every peer probed every check (the worst case)
 *   before  `helper: false`: a `ping` per echo, a python3 run per check for the probe
 *           frames, an `ip -s -j link show` per check (the probing before issue 18)
 * Per (shape, peers) and run: process starts, peers probed and CPU per check (this
 * process, its reaped children and every process in the gateway's namespace, i.e. the
 * helper). Each run ends with a second 1-peer "after" sample: two measurements of the
 * same thing, whose difference is the noise the flatness is judged against.
 *
 * After the "after" runs, in the same namespace, the loop monitor's part of the idle cost
 * (loop-idle.ts): a loop check reading the counter sets against one reading the whole table.
 *
 * Runs alone: `npx tsx bench/gateway-idle.ts [--quick]` (root) prints the section.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FakeDataPlane } from '../gateway/dataplane-fake.js';
import { Gateway } from '../gateway/gateway.js';
import type { HealthReport } from '../gateway/health.js';
import { DEFAULT_PROBE_COUNT, HealthMonitor } from '../gateway/health-monitor.js';
import { HelperProber } from '../gateway/prober.js';
import { NetnsSet } from '../lib/netns.js';
import { ExecaRunner, RecordingRunner, type SpawnedProcess } from '../lib/runner.js';
import { shortId } from '../lib/short-id.js';
import { keyRunner } from '../test/fixtures/gateway-over-fakes.js';
import { figure, stat, type BenchSection, type Chart, type Figure } from './result.js';
import {
  collectGarbage,
  cpuOfPid,
  cpuOfSelf,
  settleWorkers,
  workerThreadsCpu,
} from './process-cpu.js';
import {
  benchGatewayInput,
  loopFigures,
  measureLoopIdle,
  pidsIn,
  type LoopSample,
} from './loop-idle.js';
import { startTunEchoResponder } from './tun-echo-responder.js';

export { parseChildCpuMs } from './process-cpu.js';
import type { SectionOptions } from './result.js';

export type Mode = 'before' | 'after';
/**
 * The measured shapes: the two modes, and "silent": the helper, but no peer sends
 * through the tunnel between checks, so the tunnel vouches for none and every peer is
 * probed every check (the worst case; what "after" was before probe-schedule.ts).
 */
export type Shape = Mode | 'silent';

export const MODE_LABEL: Readonly<Record<Shape, string>> = {
  before: 'before: a ping per echo (helper: false)',
  after: 'after: probe helper, idle peers sending',
  silent: 'after, peers silent: every peer probed',
};

/**
 * Between two of a gateway's checks, the share of its idle peers whose own check (and
 * so their probe frames) fell outside the window: with every check 0.75–1 interval after
 * the last (jitteredDelay), a window of mean length 0.875 misses all of a peer's checks
 * with probability ∫(1−x)/0.25 dx over [0.875, 1] / 0.875 ≈ 3.6 %. The bench rounds it
 * to 1 in 25 peers per check (4 %), rotating, and those are probed as not vouched for.
 */
const SILENT_SHARE = 25;

/** Uncounted checks of every helper rig before its first sample (see measureIdle). */
const WARM_UP_CHECKS = 150;

/** Uncounted checks of a helper sample after its forced GC (see measure). */
const WARM_CHECKS = 2;

/** Peer counts, the first is the baseline of every ratio. */
export const PEERS: readonly number[] = [1, 10, 50, 100];

/** Its budget in bench/sections.ts, for a run on its own. */
export const DEFAULT_BUDGET_MS = 175_000;
/**
 * Kept back per run for its "silent" and "before" samples, all taken after the "after"
 * ones (~8 s and ~4 s per run at load ~2).
 */
const LATER_PHASES_MS = 14_000;
/** Kept back from the budget for the last run's teardown and the report. */
const TEARDOWN_RESERVE_MS = 10_000;
/** Kept back for the loop phase (loop-idle.ts; ~1–3 s per peer count at load ~1). */
const LOOP_PHASE_MS = 15_000;
/** Loop phase: runs and checks per sample (checks run back to back: ms each). */
const LOOP_PLAN = { quick: { runs: 2, checks: 10 }, full: { runs: 2, checks: 30 } };

/**
 * Runs (as many as the budget allows) and measured checks per sample. A check is bound by
 * wall time, not CPU: 3 echoes 0.2 s apart per peer make an "after" check ~0.42 s, and
 * "before" at 100 peers (a `ping` each) took ~4 s on a 2-core box (2026-11-30). A run is
 * then ~25 s at load 28; "before" costs 0.1–1 s of CPU per check, so one check is well
 * above the 10 ms tick of the children's CPU count.
 */
export function plan(quick: boolean): { runs: number; checks: Record<Shape, number> } {
  return quick
    ? { runs: 2, checks: { before: 1, after: 3, silent: 2 } }
    : { runs: 4, checks: { before: 1, after: 12, silent: 2 } };
}

/** `checks` health checks of one gateway with `peers` peers, in one run. */
export interface IdleSample {
  readonly run: number;
  readonly mode: Shape;
  readonly peers: number;
  readonly checks: number;
  /** Processes started over the checks (runs and spawns through the monitor's runner). */
  readonly starts: number;
  /** CPU over the checks, ms: this process, its reaped children, the helper. */
  readonly cpuMs: number;
  /** The helper's share of cpuMs (processes in the gateway's namespace). */
  readonly helperMs: number;
  /** V8's worker threads' share of cpuMs (concurrent GC and compilation). */
  readonly workersMs?: number;
  readonly wallMs: number;
  /** Peer results other than `up` over the checks (0: every echo was answered). */
  readonly notUp: number;
  /** Echo requests to the helper over the checks (one per probed peer while its path is
   * unchanged); absent in older results and for "before". */
  readonly probed?: number;
  /** The run's second 1-peer "after" sample, taken last: for the noise estimate only. */
  readonly repeat?: boolean;
}

const median = (xs: readonly number[]) => stat(xs, '').median;

/**
 * The section from the samples of complete runs: figures are counts and ratios against
 * the 1-peer case of the same shape in the same run; "flat within noise" is judged
 * against how far two 1-peer "after" measurements differ (each run's first and its
 * repeat, all runs).
 */
export function idleSection(
  samples: readonly IdleSample[],
  o: {
    readonly peers: readonly number[];
    readonly runs: number;
    readonly checks: Readonly<Record<Mode, number>> & { readonly silent?: number };
    readonly tookMs: number;
    readonly notes?: readonly string[];
  },
): BenchSection {
  const base = o.peers[0]!;
  const top = o.peers[o.peers.length - 1]!;
  const modes: Mode[] = ['after', 'before'];
  const at = (mode: Shape, peers: number, run: number) =>
    samples.find((s) => !s.repeat && s.mode === mode && s.peers === peers && s.run === run);
  const runs = [...new Set(samples.map((s) => s.run))]
    .filter((r) => modes.every((m) => o.peers.every((p) => at(m, p, r))))
    .sort((a, b) => a - b);
  if (runs.length === 0)
    throw new Error('gateway-idle: no complete run (every shape at every peer count)');
  const per = (mode: Shape, peers: number, f: (s: IdleSample) => number) =>
    runs.map((r) => {
      const s = at(mode, peers, r)!;
      return f(s) / s.checks;
    });
  const cpu = (mode: Shape, peers: number) => per(mode, peers, (s) => s.cpuMs);
  const starts = (mode: Shape, peers: number) => per(mode, peers, (s) => s.starts);
  // "silent" is reported when every complete run has it (older results have none).
  const shapes: Shape[] = runs.every((r) => o.peers.every((p) => at('silent', p, r)))
    ? ['after', 'silent', 'before']
    : modes;
  const paired = (a: number[], b: number[], f: (x: number, y: number) => number) =>
    a.map((x, i) => f(x, b[i]!));
  const slope = (mode: Mode) =>
    paired(cpu(mode, top), cpu(mode, base), (x, y) => (x - y) / (top - base));

  // Every ordered pair of 1-peer "after" samples: how far the same measurement spreads.
  const baseCpu = samples
    .filter((s) => s.mode === 'after' && s.peers === base && runs.includes(s.run))
    .map((s) => s.cpuMs / s.checks);
  const pairs = baseCpu.flatMap((x, i) => baseCpu.flatMap((y, j) => (i === j ? [] : [x / y])));
  const noise = pairs.length ? stat(pairs, 'ratio') : undefined;
  const notes: string[] = [...(o.notes ?? [])];
  if (!noise)
    notes.push('One 1-peer sample only: no noise estimate, so the flatness target is not judged.');

  const figures: Figure[] = [];
  for (const mode of shapes) {
    const after = mode === 'after';
    figures.push(
      figure({
        id: `idle-starts-per-check-${mode}-${top}`,
        label: `${MODE_LABEL[mode]}: process starts per check, ${top} peers`,
        stat: stat(starts(mode, top), 'process starts'),
      }),
      figure({
        id: `idle-starts-growth-${mode}`,
        label: `${MODE_LABEL[mode]}: process starts per check, ${top} peers − ${base} peer`,
        stat: stat(
          paired(starts(mode, top), starts(mode, base), (x, y) => x - y),
          'process starts',
        ),
        baseline: `${base} peer, same shape, same run`,
        ...(after ? { target: { op: '<=' as const, value: 0 } } : {}),
      }),
    );
    if (mode !== 'before' && samples.some((s) => s.mode === mode && s.probed !== undefined)) {
      figures.push(
        figure({
          id: `idle-probed-per-check-${mode}-${top}`,
          label: `${MODE_LABEL[mode]}: peers probed per check (echo requests to the helper, 3 packets each), ${top} peers`,
          stat: stat(
            per(mode, top, (s) => s.probed ?? 0),
            'peers',
          ),
          baseline: `${base} peer: ${round2(median(per(mode, base, (s) => s.probed ?? 0)))}`,
        }),
      );
    }
    for (const p of o.peers.slice(1)) {
      figures.push(
        figure({
          id: `idle-cpu-ratio-${mode}-${p}`,
          label: `${MODE_LABEL[mode]}: CPU per check, ${p} peers / ${base} peer`,
          stat: stat(
            paired(cpu(mode, p), cpu(mode, base), (x, y) => x / y),
            'ratio',
          ),
          baseline: `${base} peer, same shape, same run`,
          ...(after && noise ? { target: { op: '<=' as const, value: noise.max } } : {}),
        }),
      );
    }
  }
  if (noise) {
    figures.push(
      figure({
        id: 'idle-cpu-noise',
        label: `${MODE_LABEL.after}, ${base} peer: CPU per check of one sample / of another (each run's first and last, every pair): the noise`,
        stat: noise,
        baseline: 'its max is the target of the CPU ratios above',
      }),
    );
  }
  figures.push(
    figure({
      id: `idle-cpu-ms-after-${base}`,
      label: `${MODE_LABEL.after}: CPU per check, ${base} peer (context: absolute)`,
      stat: stat(cpu('after', base), 'ms'),
    }),
    figure({
      id: `idle-cpu-ms-after-${top}`,
      label: `${MODE_LABEL.after}: CPU per check, ${top} peers (context: absolute)`,
      stat: stat(cpu('after', top), 'ms'),
    }),
    figure({
      id: `idle-helper-ms-after-${top}`,
      label: `${MODE_LABEL.after}: the helper's share of CPU per check, ${top} peers`,
      stat: stat(
        per('after', top, (s) => s.helperMs),
        'ms',
      ),
    }),
    ...(samples.some((s) => s.workersMs !== undefined)
      ? [base, top].map((p) =>
          figure({
            id: `idle-workers-ms-after-${p}`,
            label: `${MODE_LABEL.after}: V8 worker threads' share of CPU per check (GC, compilation), ${p} peer${p > 1 ? 's' : ''}`,
            stat: stat(
              per('after', p, (s) => s.workersMs ?? 0),
              'ms',
            ),
          }),
        )
      : []),
    figure({
      id: 'idle-cpu-per-peer-after',
      label: `${MODE_LABEL.after}: CPU per check added per peer ((${top} peers − ${base}) / ${top - base})`,
      stat: stat(slope('after'), 'ms'),
    }),
    figure({
      id: 'idle-cpu-per-peer-after-over-before',
      label: 'CPU per check added per peer: after / before',
      stat: stat(
        paired(slope('after'), slope('before'), (x, y) => x / y),
        'ratio',
      ),
      baseline: 'before (helper: false), same run',
    }),
    figure({
      id: `idle-cpu-after-over-before-${top}`,
      label: `CPU per check, ${top} peers: after / before`,
      stat: stat(
        paired(cpu('after', top), cpu('before', top), (x, y) => x / y),
        'ratio',
      ),
      baseline: 'before (helper: false), same peers, same run',
    }),
    figure({
      id: 'idle-peers-not-up',
      label: 'peer results other than up, all checks of a run (both shapes, every peer count)',
      stat: stat(
        runs.map((r) => samples.filter((s) => s.run === r).reduce((n, s) => n + s.notUp, 0)),
        'peer results',
      ),
      target: { op: '<=', value: 0 },
    }),
  );

  const rows = (f: (m: Shape, p: number) => number[], field: string) =>
    shapes.flatMap((m) =>
      o.peers.map((p) => ({ peers: p, [field]: round2(median(f(m, p))), shape: MODE_LABEL[m] })),
    );
  const cpuRows = rows(cpu, 'cpuMs');
  const charts: Chart[] = [
    {
      id: 'cpu-per-check-vs-peers',
      title: 'CPU per health check vs peers (median of runs)',
      kind: 'line',
      x: { field: 'peers', title: 'peers' },
      y: {
        field: 'cpuMs',
        title: 'CPU ms per check (log scale)',
        ...(cpuRows.every((r) => Number(r.cpuMs) > 0) ? { scale: 'log' as const } : {}),
      },
      series: 'shape',
      rows: cpuRows,
    },
    {
      id: 'starts-per-check-vs-peers',
      title: 'Process starts per health check vs peers (median of runs)',
      kind: 'line',
      x: { field: 'peers', title: 'peers' },
      y: { field: 'starts', title: 'process starts per check' },
      series: 'shape',
      rows: rows(starts, 'starts'),
    },
  ];

  return {
    id: 'gateway-idle',
    title: 'Gateway idle: health check cost vs peers',
    method: [
      'One gateway (`HealthMonitor` over `gateway/*-fake.ts` backends: no WireGuard) in a',
      `network namespace that reaches ${o.peers.join(', ')} simulated peers: transit addresses behind`,
      "a TUN device whose reader answers ICMP echo (as wireguard-go reads a gateway's echoes);",
      "a veth end in the gateway's namespace takes the probe frames. Three shapes of the check:",
      '**after** (the long-lived probe helper and the probe schedule of gateway/probe-schedule.ts;',
      "between checks every simulated peer's WireGuard receive counter moves, as an idle peer's",
      'probe frames move it, except 1 peer in 25 per check, rotating: the share whose own check',
      'falls outside the window under 0.75–1 interval jitter, ~3.6 %), **after, peers silent**',
      '(the same, no peer sends: every peer probed every check, the worst case) and **before**',
      '(`helper: false`: a `ping` per echo, a `python3` per check for the probe frames,',
      '`ip -s -j link show` per check — the probing before issue 18). Endpoint fail-over is on,',
      'as shipped. For the helper shapes one gateway and monitor per shape and peer count lives',
      'through all its samples, as on a node (a fresh one per sample paid for its own setup and',
      'for V8\'s recompiling); "before" has nothing long-lived and gets a fresh one per sample.',
      `First, every helper rig runs ${WARM_UP_CHECKS} uncounted checks (1 echo per peer, so they are quick)`,
      'on the very monitor measured after: they let V8 optimise the per-peer code, which it',
      'otherwise did inside measured samples (10–20 ms of TurboFan per function on a worker',
      'thread); warm-up monitors of their own left code V8 threw away once the measured ones',
      'ran. The simulated traffic is a plain loop (a callback made per check was recompiled',
      "again and again, on the measured process's worker threads). Then each",
      'phase runs one shape: every run\'s "after" samples, then "silent", then "before"',
      '(interleaved, a "silent" sample left V8 compiling for its shape inside the next "after"',
      'one, and a "before" sample\'s garbage, ~100 processes per check, was collected there). A',
      'sample is a full GC, 2 uncounted checks (the major GC V8 runs ~1 s after a forced one',
      'falls there), a minor GC, then the measured checks and a minor GC of their garbage.',
      `${runs.length} run${runs.length > 1 ? 's' : ''} of ${o.checks.after} checks (after), ${o.checks.silent ?? 0} (silent) and ${o.checks.before} (before) per peer count;`,
      'each run ends with a second 1-peer "after" sample. Per check: process',
      "starts through the monitor's runner, peers probed (echo requests to the helper), and CPU: this",
      'process (`process.cpuUsage`), its reaped children (`cutime`/`cstime`), every process in',
      "the gateway namespace (the helper, `schedstat`); V8's worker threads (GC, compiler) are",
      'included and also a figure of their own. Figures are ratios to the 1-peer case of the same',
      'shape in the same run; "flat within noise" means a CPU ratio no larger than two 1-peer',
      '"after" measurements differ (`idle-cpu-noise`, its max).',
    ].join(' '),
    figures,
    charts,
    notes: [
      'What a check costs per peer "after": the peers the tunnel does not vouch for (here the ' +
        '1 in 25 silent ones) and 8 others in turn (probeRefreshPeers) get 3 echoes each, in one ' +
        'request to the helper; every peer gets its entry in the report (Node: 103 KiB of ' +
        'garbage per check at 100 peers over fakes, 2026-12-01, an inspector sampling heap ' +
        "profile; the largest parts the report entries, ~22 KiB, and the probed peers' " +
        'promises and requests). "After, peers silent" probes every peer (3 ' +
        'echoes each), as every check did before probe-schedule.ts. "Before" starts one ' +
        '`ping -c 3` per peer per check.',
      "The simulated peers' far ends are a TUN device whose reader (tun-echo-responder.ts, " +
        'not counted) answers the echoes, as wireguard-go reads them on a node. Until ' +
        "2026-12-01 a veth to a second namespace answered, and its kernel's reply ran inside " +
        "the helper's sendto, so it was counted as the gateway's: by hand (2026-11-30, the " +
        'helper alone, 100 vs 1 peer) ~35 µs per peer per check with replies, ~20 µs with ' +
        'the far side not replying (icmp_echo_ignore_all).',
      'Before is the same code forced onto the fallback path, so it is a lower bound of the ' +
        'pre-issue-18 cost: that code also read links, `wg`, nft, one FDB per network and ' +
        'the segments through ~8 `ip netns exec` per check (observe()), which the fakes ' +
        'here leave out; the old code itself was measured only lab-wide (a 16-cluster lab ' +
        'at 100 % CPU idle, docs/gateway.md). The same measurement earlier ' +
        '(`scripts/bench-idle.ts` as of e635150, docs/status.md row of 26173f5, load 7–20): ' +
        'before 3 / 12 / 52 / 102 process starts per check at 1 / 10 / 50 / 100 peers and ' +
        '102–116 → 730–773 ms CPU; after 1 / 1 / 1 / 1 starts and 11–14 → 14–17 ms.',
      'Absolute CPU is per check on a 2-core machine shared with other work; the ratios ' +
        'pair samples of the same run, taken back to back.',
      ...notes,
    ],
    tookMs: o.tookMs,
  };
}

const round2 = (x: number) => Math.round(x * 100) / 100;

interface Testbed {
  readonly exec: ExecaRunner;
  readonly netns: NetnsSet;
  readonly gw: string;
  /** Transit addresses the TUN echo responder answers, one per simulated peer. */
  readonly addrs: readonly string[];
  readonly dir: string;
  /** The TUN echo responder, ended and waited for before the namespace goes. */
  readonly responder: SpawnedProcess;
}

/**
 * A namespace with `maxPeers` answering transit addresses behind a TUN device (the
 * simulated peers' far ends, tun-echo-responder.ts, outside the measured processes),
 * named with `prefix`.
 */
async function testbed(prefix: string, maxPeers: number): Promise<Testbed> {
  const exec = new ExecaRunner();
  const netns = new NetnsSet(exec, `${prefix}-gi`);
  const dir = await mkdtemp(join(tmpdir(), `${prefix}-gi-`));
  try {
    const gw = await netns.add('gw');
    // Started before any rig, so no rig counts it among the helper's processes.
    const responder = await startTunEchoResponder(exec, gw, 'tun0');
    await exec.run(['ip', '-n', gw, 'link', 'set', 'tun0', 'up'], { mutates: true });
    // On-link on a TUN device: every transit address of the /24 goes to the responder.
    await netns.addr(gw, 'tun0', '198.19.255.1/24');
    const addrs = Array.from({ length: maxPeers }, (_, i) => `198.19.255.${i + 2}`);
    // The network's device (a veth end: no dummy module needed) takes the probe frames.
    await netns.veth({ ns: gw, ifname: 'l2fv100' }, { ns: gw, ifname: 'l2fv100p' });
    return { exec, netns, gw, addrs, dir, responder };
  } catch (err) {
    await netns.dispose();
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * One gateway and its monitor with `peers` simulated peers, kept for the whole section:
 * a gateway measured is one that has run for a while, as on a node. A fresh monitor per
 * sample made each sample pay for its own setup (new objects, a helper start, their
 * garbage) and V8 recompile code the last sample's inputs had deoptimised.
 */
interface Rig {
  readonly mode: Shape;
  readonly peers: number;
  /** One health check, with the simulated peers' traffic before it (mode "after"). */
  check(): Promise<HealthReport | undefined>;
  /** Echo requests to the helper so far (one per probed peer while its path is unchanged). */
  echoes(): number;
  /** Process starts through the monitor's runner since the last clear. */
  readonly runner: RecordingRunner;
  /** The helper's pids (none for "before"): its CPU, not other rigs' idle helpers. */
  readonly pids: readonly number[];
  /**
   * WARM_UP_CHECKS uncounted checks of this very monitor, with 1 echo per peer (so they
   * are quick), then back to the measured probeCount.
   */
  warmUp(): Promise<void>;
  close(): Promise<void>;
}

/** A rig (see Rig); its first check starts the helper and must find every peer up. */
async function rig(bed: Testbed, mode: Shape, peers: number): Promise<Rig> {
  const addrs = bed.addrs.slice(0, peers);
  const plane = new FakeDataPlane({ linuxBridge: ['br-cdn'] });
  const gateway = new Gateway({ runner: keyRunner(), backends: () => plane.backends() });
  const config = benchGatewayInput(bed.gw, addrs, join(bed.dir, 'k'));
  await gateway.apply(config);
  const runner = new RecordingRunner(bed.exec);
  // The helper, wrapped to count echo requests (one per probed peer, 3 packets each).
  const helper = new HelperProber(runner);
  let echoes = 0;
  const echo = helper.echo.bind(helper);
  helper.echo = (req, netns) => {
    echoes++;
    return echo(req, netns);
  };
  // Endpoint fail-over as shipped (on): each check decides for every peer. No liveness
  // echoes: the peers have one endpoint each, and only start() would run them.
  // The warm-up changes probeCount on these very options (the monitor reads it per probe).
  const options = {
    gateway,
    runner,
    helper: mode === 'before' ? (false as const) : helper,
    probeCount: DEFAULT_PROBE_COUNT,
  };
  const monitor = new HealthMonitor(options);
  let n = 0;
  let shaken = 0;
  const check = () => {
    n++;
    // Handshakes stay fresh, as WireGuard's re-keying (every 2 min) keeps them.
    const now = Math.floor(Date.now() / 1000);
    if (now - shaken >= 60) {
      shaken = now;
      for (const p of config.peers) plane.tunnel.handshake('l2fa', p.publicKey, now);
    }
    if (mode === 'after') {
      // Idle peers' probe frames come through the tunnel between checks (98 B each, a
      // probe frame in VXLAN in WireGuard), but 1 in SILENT_SHARE's check fell outside.
      // A loop, not forEach: a callback made per check was compiled again and again by
      // V8 (--trace-opt), on the measured process's worker threads.
      for (let j = 0; j < config.peers.length; j++) {
        if ((j + n) % SILENT_SHARE !== 0)
          plane.tunnel.received('l2fa', config.peers[j]!.publicKey, 98);
      }
    }
    return monitor.check();
  };
  const netnsPids = () => pidsIn(bed.exec, bed.gw);
  try {
    const before = new Set(await netnsPids());
    if (mode !== 'before') {
      // Starts the helper; "before" has nothing to start (and notUp shows a peer not up).
      const first = await check();
      const up = first?.peers.filter((p) => p.status === 'up').length;
      if (up !== peers)
        throw new Error(`${mode}, ${peers} peers: ${up} of ${peers} peers up in the warm-up check`);
    }
    const pids = (await netnsPids()).filter((pid) => !before.has(pid));
    return {
      mode,
      peers,
      check,
      echoes: () => echoes,
      runner,
      pids,
      warmUp: async () => {
        options.probeCount = 1;
        try {
          for (let i = 0; i < WARM_UP_CHECKS; i++) await check();
        } finally {
          options.probeCount = DEFAULT_PROBE_COUNT;
        }
      },
      close: async () => {
        await monitor.stop();
        // Waited for: a helper killed with the namespace was a zombie for a moment,
        // which the runner's leftover check saw (2026-12-01).
        await helper.close();
      },
    };
  } catch (err) {
    await monitor.stop();
    throw err;
  }
}

/**
 * One sample: `checks` checks of `r` measured (and a minor GC of their garbage), after a
 * full GC, WARM_CHECKS more checks and a minor GC.
 */
async function measure(r: Rig, run: number, checks: number): Promise<IdleSample> {
  if (r.mode !== 'before') {
    // The last sample's garbage is collected now, and the major GC V8 runs ~0.7–1 s after
    // a forced one (--trace-gc: "finalize incremental marking … GC in old space
    // requested" after every "testing" one) falls in uncounted checks, not as a ~10 ms
    // lump in a measured one.
    collectGarbage();
    for (let i = 0; i < WARM_CHECKS; i++) await r.check();
    collectGarbage('minor');
  } else collectGarbage();
  const helperCpu = async () =>
    (await Promise.all(r.pids.map(cpuOfPid))).reduce((a, b) => a + b, 0);
  r.runner.clear();
  await settleWorkers();
  const h0 = await helperCpu();
  const w0 = await workerThreadsCpu();
  const c0 = await cpuOfSelf();
  const t0 = performance.now();
  let notUp = 0;
  const echoes0 = r.echoes();
  for (let i = 0; i < checks; i++) {
    const h = await r.check();
    notUp += h ? h.peers.filter((p) => p.status !== 'up').length : r.peers;
  }
  // Counted: the young garbage these checks made is collected within the sample, as the
  // one before the window was (else a sample's own garbage fell to the next sample).
  collectGarbage('minor');
  const wallMs = performance.now() - t0;
  const c1 = await cpuOfSelf();
  const w1 = await workerThreadsCpu();
  const h1 = await helperCpu();
  return {
    run,
    mode: r.mode,
    peers: r.peers,
    checks,
    starts: r.runner.calls.length,
    cpuMs: c1 - c0 + (h1 - h0),
    helperMs: h1 - h0,
    workersMs: w1 - w0,
    wallMs,
    notUp,
    probed: r.echoes() - echoes0,
  };
}

function logSample(log: (line: string) => void, r: number, runs: number, s: IdleSample): void {
  log(
    `gateway-idle: run ${r + 1}/${runs}, ${s.mode}, ${s.peers} peers: ` +
      `${(s.starts / s.checks).toFixed(1)} starts, ${(s.cpuMs / s.checks).toFixed(1)} CPU ms ` +
      `(helper ${(s.helperMs / s.checks).toFixed(1)}, V8 workers ${((s.workersMs ?? 0) / s.checks).toFixed(1)}), ` +
      `${(s.wallMs / s.checks).toFixed(0)} ms wall per check`,
  );
}

/**
 * Measures `runs` runs of every shape at every peer count (one testbed, named with
 * `prefix`, removed before it returns or throws). Stops starting runs when the next would
 * end after `stopBy` (epoch ms); the notes say so.
 */
export async function measureIdle(o: {
  readonly prefix: string;
  readonly peers: readonly number[];
  readonly runs: number;
  readonly checks: Readonly<Record<Mode, number>> & { readonly silent?: number };
  readonly stopBy?: number;
  /** The loop phase, after the health checks; none when absent. */
  readonly loop?: { readonly runs: number; readonly checks: number; readonly stopBy?: number };
  readonly log: (line: string) => void;
}): Promise<{ samples: IdleSample[]; loop: LoopSample[]; notes: string[] }> {
  const samples: IdleSample[] = [];
  let loop: LoopSample[] = [];
  const notes: string[] = [];
  const bed = await testbed(o.prefix, Math.max(...o.peers));
  const rigs: Rig[] = [];
  try {
    const after = new Map<number, Rig>();
    for (const peers of o.peers) {
      const r = await rig(bed, 'after', peers);
      rigs.push(r);
      after.set(peers, r);
    }
    // Uncounted: V8 optimises a function only once it has run enough, and a check calls
    // its per-peer functions once each, so in a fresh process they were first optimised
    // inside measured samples: a TurboFan compile of 10–20 ms on a worker thread each
    // (`--trace-opt`: peerReports and networkReports in the first and second run's
    // 100-peer samples). So every rig runs WARM_UP_CHECKS quick checks first, on the
    // monitors measured after: warmed-up monitors of their own (with other option
    // objects, then dropped) left code that V8 threw away ("wrong map") once the measured
    // ones ran, and recompiled inside their samples (--trace-deopt, 2026-12-01).
    for (const r of after.values()) await r.warmUp();
    // And one sample of each as measured, uncounted: the warm-up's garbage was still
    // being collected (V8 workers 3.6 ms per check) in the first 1-peer sample.
    for (const r of after.values()) await measure(r, -1, 3);
    let lastRunMs = 0;
    let done = 0;
    for (let r = 0; r < o.runs; r++) {
      // The later phases' samples of every run so far come at the end: reserve their time.
      const reserve = (r + 1) * LATER_PHASES_MS;
      if (r > 0 && o.stopBy !== undefined && Date.now() + lastRunMs + reserve > o.stopBy) {
        notes.push(`${r} of ${o.runs} runs: the next would not have ended within the budget.`);
        break;
      }
      const t0 = Date.now();
      // "after" only, in this phase: a "silent" sample between two of them left V8
      // compiling for its shape (every peer probed) inside the next "after" sample (V8
      // workers 1.6–2.8 ms per check at 1 and 50 peers right after one, 0.1–0.7 otherwise).
      for (const peers of o.peers) {
        const s = await measure(after.get(peers)!, r, o.checks.after);
        samples.push(s);
        logSample(o.log, r, o.runs, s);
      }
      const again = await measure(after.get(o.peers[0]!)!, r, o.checks.after);
      samples.push({ ...again, repeat: true });
      o.log(
        `gateway-idle: run ${r + 1}/${o.runs}, after, ${o.peers[0]} peer again: ` +
          `${(again.cpuMs / again.checks).toFixed(1)} CPU ms per check`,
      );
      lastRunMs = Date.now() - t0;
      done = r + 1;
    }
    await Promise.all(rigs.splice(0).map((r) => r.close()));
    // The loop phase next, in the time kept for it; "silent" and "before" are context.
    if (o.loop) {
      loop = await measureLoopIdle({
        exec: bed.exec,
        netns: bed.gw,
        addrs: bed.addrs,
        peers: o.peers,
        runs: o.loop.runs,
        checks: o.loop.checks,
        ...(o.loop.stopBy === undefined ? {} : { stopBy: o.loop.stopBy - done * LATER_PHASES_MS }),
        log: o.log,
      });
    }
    // "silent" next, for the runs done: context for the schedule (every peer probed).
    const silentChecks = o.checks.silent;
    if (silentChecks !== undefined) {
      for (const peers of o.peers) {
        const r = await rig(bed, 'silent', peers);
        rigs.push(r);
        await r.warmUp();
        for (let run = 0; run < done; run++) {
          const s = await measure(r, run, silentChecks);
          samples.push(s);
          logSample(o.log, run, o.runs, s);
        }
      }
      await Promise.all(rigs.splice(0).map((r) => r.close()));
    }
    // "before" last: its ~100 execa runs per check leave garbage whose collection landed
    // in the helper samples that followed (V8 worker threads: 5 ms per check at 1 peer).
    for (let run = 0; run < done; run++) {
      for (const peers of o.peers) {
        const r = await rig(bed, 'before', peers);
        try {
          const s = await measure(r, run, o.checks.before);
          samples.push(s);
          logSample(o.log, run, o.runs, s);
        } finally {
          await r.close();
        }
      }
    }
  } finally {
    await Promise.all(rigs.map((r) => r.close()));
    bed.responder.kill();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([bed.responder.exited, new Promise((r) => (timer = setTimeout(r, 5000)))]);
    clearTimeout(timer);
    await bed.netns.dispose();
    await rm(bed.dir, { recursive: true, force: true });
  }
  return { samples, loop, notes };
}

export async function run(opts: SectionOptions): Promise<BenchSection> {
  const started = Date.now();
  const { runs, checks } = plan(opts.quick);
  const end = started + (opts.budgetMs ?? DEFAULT_BUDGET_MS) - TEARDOWN_RESERVE_MS;
  const { samples, loop, notes } = await measureIdle({
    prefix: opts.prefix ?? `l2fed-b${shortId(4)}`,
    peers: PEERS,
    runs,
    checks,
    stopBy: end - LOOP_PHASE_MS,
    loop: { ...LOOP_PLAN[opts.quick ? 'quick' : 'full'], stopBy: end },
    log: opts.log,
  });
  const section = idleSection(samples, {
    peers: PEERS,
    runs,
    checks,
    tookMs: Date.now() - started,
    notes,
  });
  const loopRuns = new Set(loop.map((s) => s.run)).size;
  return {
    ...section,
    title: 'Gateway idle: health and loop check cost vs peers',
    method: [
      section.method,
      'Between the "after" runs and the "silent" ones, the **loop check** (bench/loop-idle.ts),',
      'in the same namespace: the loop monitor of',
      'a gateway with the same peers on one network (as many paths in `inet l2fed_l2`), its',
      'probe helper sending the beacons and reading the table, checks back to back with no',
      'settle time, every counter set holding an element per path (as if every path had dropped',
      'something; nothing drops here), in two modes of one monitor alternating on one table and',
      'helper, each first in turn:',
      '**sets** (as shipped: the five counter sets per check, the whole table only when the',
      "namespace's nftables generation moved) and **whole** (the generation hidden, so every",
      'check reads the whole table, as before). Per peer count 20 uncounted checks of each mode,',
      `then ${loopRuns} run${loopRuns === 1 ? '' : 's'} of a sample per mode; CPU of this process and the helper.`,
    ].join(' '),
    figures: [...section.figures, ...loopFigures(loop, PEERS)],
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  run({
    quick: process.argv.includes('--quick'),
    log: (l) => process.stderr.write(`${l}\n`),
    prefix: `l2fed-b${shortId(4)}`,
  }).then(
    (s) => process.stdout.write(`${JSON.stringify(s, null, 2)}\n`),
    (err: unknown) => {
      process.stderr.write(`gateway-idle: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
