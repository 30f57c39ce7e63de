/**
 * The loop monitor's part of a gateway's idle cost (issue 18), a phase of the
 * gateway-idle section in its testbed: one gateway's LoopMonitor with 1, 10, 50 or 100
 * peers on one network (so as many paths in `inet l2fed_l2`), its probe helper sending
 * the beacons and reading the table, checks back to back with no settle time.
 *
 * Every counter set holds an element per path (added before the samples, as if every path
 * had dropped something): nothing drops in the testbed, and empty sets would be the best
 * case. Two modes of the same monitor, on the same table and helper, alternating (each
 * first in turn):
 *   sets   as shipped: the counter sets each check, the whole table only when the
 *          namespace's nftables generation moved (docs/gateway.md, "What a loop check reads")
 *   whole  the generation hidden from the monitor, so every check reads the whole table:
 *          the read before (one `list table` per check)
 * Per (mode, paths) and run: CPU per check (this process and the helper) and whole-table
 * reads per check.
 */
import { parseGatewayConfig, type GatewayConfig } from '../gateway/config.js';
import { HelperLoopBeacon, type LoopBeaconSender } from '../gateway/loop-beacon.js';
import { COUNTER_SETS, type LoopReport } from '../gateway/loop-guard.js';
import { LoopMonitor } from '../gateway/loop-monitor.js';
import { requireNft } from '../gateway/firewall-nft.js';
import { HelperProber } from '../gateway/prober.js';
import { RecordingRunner, type ExecaRunner } from '../lib/runner.js';
import { collectGarbage, cpuOfPid, cpuOfSelf, settleWorkers } from './process-cpu.js';
import { figure, stat, type Figure } from './result.js';

export type LoopMode = 'sets' | 'whole';

export interface LoopSample {
  readonly run: number;
  readonly mode: LoopMode;
  readonly paths: number;
  readonly checks: number;
  /** CPU over the checks, ms: this process and the helper. */
  readonly cpuMs: number;
  readonly helperMs: number;
  /** `list table` reads over the checks. */
  readonly wholeReads: number;
  /** Processes started over the checks. */
  readonly starts: number;
}

/** Wall time of one peer count at most, ms, until one is measured (~1–3 s at load ~1). */
const LOOP_PEER_COUNT_GUESS_MS = 4000;

/** Uncounted checks of each mode before a peer count's first sample. */
const LOOP_WARM_CHECKS = 20;

/**
 * The benchmarked gateway's config input (gateway-idle and its loop phase): `addrs.length`
 * peers, all on network cdn (VNI 100, device l2fv100, a Linux bridge).
 */
export function benchGatewayInput(netns: string, addrs: readonly string[], keyFile: string) {
  return {
    identity: 'bench',
    netns,
    wireguard: { ifname: 'l2fa', listenPort: 51820, privateKeyFile: keyFile },
    transitAddress: '198.19.255.1/24',
    peers: addrs.map((a, i) => ({
      name: `p${i}`,
      publicKey: Buffer.alloc(32, i + 1).toString('base64'),
      endpoints: [`198.18.0.${i + 2}:51820`],
      transitAddress: a,
    })),
    networks: [
      {
        name: 'cdn',
        vni: 100,
        segment: { type: 'linux-bridge' as const, bridge: 'br-cdn' },
        peers: addrs.map((_, i) => `p${i}`),
      },
    ],
  };
}

function loopConfig(netns: string, addrs: readonly string[]): GatewayConfig {
  return parseGatewayConfig(benchGatewayInput(netns, addrs, '/nonexistent/k'));
}

/**
 * Measures the loop monitor at each peer count in `peers` (`runs` samples of `checks`
 * checks per mode), in namespace `netns` whose device l2fv100 takes the beacons; the
 * table is removed and the helper closed before it returns or throws. Stops starting
 * samples after `stopBy` (epoch ms).
 */
export async function measureLoopIdle(o: {
  readonly exec: ExecaRunner;
  readonly netns: string;
  readonly addrs: readonly string[];
  readonly peers: readonly number[];
  readonly runs: number;
  readonly checks: number;
  readonly stopBy?: number;
  readonly log: (line: string) => void;
}): Promise<LoopSample[]> {
  const samples: LoopSample[] = [];
  // The ends first: the growth figure needs them, should the time run out in between.
  const order = [...new Set([o.peers[0]!, o.peers.at(-1)!, ...o.peers])];
  // A peer count's time, at least a guess for the largest (measured second, after 1).
  let lastMs = LOOP_PEER_COUNT_GUESS_MS;
  for (const peers of order) {
    // Not one that would not end in time (the next is larger, or as large).
    if (o.stopBy !== undefined && Date.now() + lastMs > o.stopBy) break;
    const t0 = Date.now();
    const runner = new RecordingRunner(o.exec);
    const helper = new HelperProber(runner);
    const beacon = new HelperLoopBeacon(helper, runner);
    let mode: LoopMode = 'sets';
    let wholeReads = 0;
    // The monitor's view of the helper: the generation only in mode "sets".
    const view: LoopBeaconSender = {
      send: (identity, devices, netns) => beacon.send(identity, devices, netns),
      list: (family, table, netns, sets) => {
        if (!sets) wholeReads++;
        return beacon.list(family, table, netns, sets);
      },
      generation: (netns) =>
        mode === 'sets' ? beacon.generation(netns) : Promise.resolve(undefined),
    };
    const gateway = { config: loopConfig(o.netns, o.addrs.slice(0, peers)) };
    const monitor = new LoopMonitor({ gateway, runner, beacon: view, settleMs: 0 });
    try {
      const before = new Set(await pidsIn(o.exec, o.netns));
      await monitor.check(); // starts the helper, installs the table
      const pids = (await pidsIn(o.exec, o.netns)).filter((p) => !before.has(p));
      // Every path has dropped something of every kind, so each counter set holds an
      // element per path: the largest listing a check reads (nothing drops here).
      const elems = o.addrs
        .slice(0, peers)
        .map((a) => `${a} . 100 counter packets 1 bytes 50`)
        .join(', ');
      const script = Object.values(COUNTER_SETS)
        .map((set) => `add element inet l2fed_l2 ${set} { ${elems} }\n`)
        .join('');
      await o.exec.run([await requireNft(), '-f', '-'], {
        netns: o.netns,
        mutates: true,
        input: script,
      });
      for (const m of ['whole', 'sets'] as const) {
        mode = m;
        for (let i = 0; i < LOOP_WARM_CHECKS; i++) await monitor.check();
      }
      for (let run = 0; run < o.runs; run++) {
        if (run > 0 && o.stopBy !== undefined && Date.now() > o.stopBy) break;
        // Each mode first in turn: the one before leaves garbage the next may collect.
        for (const m of run % 2 ? (['whole', 'sets'] as const) : (['sets', 'whole'] as const)) {
          mode = m;
          await monitor.check(); // a mode's first check may read whole (the switch)
          // Minor only: a full GC's concurrent sweeping took up to 1 s to settle, per
          // sample, which the section's budget could not keep (2026-12-01).
          collectGarbage('minor');
          await settleWorkers();
          runner.clear();
          const reads0 = wholeReads;
          const helperCpu = async () =>
            (await Promise.all(pids.map(cpuOfPid))).reduce((a, b) => a + b, 0);
          const [h0, c0] = [await helperCpu(), await cpuOfSelf()];
          for (let i = 0; i < o.checks; i++) {
            const r: LoopReport | undefined = await monitor.check();
            if (!r) throw new Error('loop-idle: no loop report (no applied config)');
          }
          collectGarbage('minor');
          const [c1, h1] = [await cpuOfSelf(), await helperCpu()];
          const s: LoopSample = {
            run,
            mode: m,
            paths: peers,
            checks: o.checks,
            cpuMs: c1 - c0 + (h1 - h0),
            helperMs: h1 - h0,
            wholeReads: wholeReads - reads0,
            starts: runner.calls.length,
          };
          samples.push(s);
          o.log(
            `gateway-idle: loop run ${run + 1}/${o.runs}, ${m}, ${peers} paths: ` +
              `${(s.cpuMs / s.checks).toFixed(2)} CPU ms (helper ${(s.helperMs / s.checks).toFixed(2)}), ` +
              `${(s.wholeReads / s.checks).toFixed(2)} whole reads per check`,
          );
        }
      }
    } finally {
      await monitor.remove(o.netns).catch(() => undefined);
      await helper.close();
    }
    lastMs = Math.max(LOOP_PEER_COUNT_GUESS_MS, Date.now() - t0);
  }
  return samples;
}

/** The pids in namespace `netns`. */
export async function pidsIn(exec: ExecaRunner, netns: string): Promise<number[]> {
  return (await exec.run(['ip', 'netns', 'pids', netns])).stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
}

const perCheck = (s: LoopSample) => s.cpuMs / s.checks;

/**
 * The loop phase's figures: per peer count, the whole-table read's CPU per check against
 * the counter sets' (same run, same monitor); the counter-set check's growth from 1 to
 * the largest peer count; whole reads and process starts per steady check.
 */
export function loopFigures(samples: readonly LoopSample[], peers: readonly number[]): Figure[] {
  const figures: Figure[] = [];
  const of = (mode: LoopMode, paths: number) =>
    samples.filter((s) => s.mode === mode && s.paths === paths);
  /** perCheck(a) / perCheck(b) for every run both have. */
  const ratios = (a: readonly LoopSample[], b: readonly LoopSample[]) =>
    a.flatMap((x) => {
      const y = b.find((s) => s.run === x.run);
      return y ? [perCheck(x) / perCheck(y)] : [];
    });
  for (const p of peers) {
    const r = ratios(of('whole', p), of('sets', p));
    if (r.length === 0) continue;
    figures.push(
      figure({
        id: `loop-whole-vs-sets-${p}`,
        label: `loop check, ${p} path${p === 1 ? '' : 's'}: CPU per check reading the whole table / reading the counter sets`,
        stat: stat(r, 'ratio'),
        baseline: 'the same monitor reading the counter sets, same run',
      }),
    );
  }
  const [first, last] = [peers[0]!, peers.at(-1)!];
  for (const mode of ['sets', 'whole'] as const) {
    const r = ratios(of(mode, last), of(mode, first));
    if (r.length === 0) continue;
    figures.push(
      figure({
        id: `loop-growth-${mode}`,
        label: `loop check reading ${mode === 'sets' ? 'the counter sets (as shipped)' : 'the whole table (before)'}: CPU per check at ${last} paths / at ${first}`,
        stat: stat(r, 'ratio'),
        baseline: `the same mode at ${first} path, same run`,
      }),
    );
  }
  const steady = samples.filter((s) => s.mode === 'sets');
  if (steady.length > 0) {
    figures.push(
      figure({
        id: 'loop-whole-reads-sets',
        label: 'loop check as shipped, steady: whole-table reads per check',
        stat: stat(
          steady.map((s) => s.wholeReads / s.checks),
          'reads',
        ),
        target: { op: '<=', value: 0 },
      }),
      figure({
        id: 'loop-starts',
        label: 'loop check as shipped, steady: processes started per check',
        stat: stat(
          steady.map((s) => s.starts / s.checks),
          'starts',
        ),
        target: { op: '<=', value: 0 },
      }),
    );
  }
  return figures;
}
