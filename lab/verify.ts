/**
 * Runs the expected checks against the live lab with real pings from inside pod
 * namespaces, and renders the connectivity matrix. Bounded: every ping has a count and
 * a deadline, and "reach" checks retry only until the overall deadline.
 *
 * An isolation verdict is as strong as a reach verdict: isolated pairs are pinged as often
 * as reach pairs, over the same window, and once every reach check is done (the
 * federation has converged) each also sends a stream of ISOLATION_PACKETS (any reply,
 * at any time, is a leak); and for every pair of clusters the manifests keep apart
 * neither gateway may hold a WireGuard peer for the other.
 */
import type { CommandRunner } from '../lib/runner.js';
import type { PingCheck } from './expectations.js';
import { peeringVerdict } from './expectations.js';
import type { LabCluster, LabPlan } from './plan.js';
import { pool } from './pool.js';

export interface CheckResult {
  readonly check: PingCheck;
  readonly reached: boolean;
  readonly ok: boolean;
}

/** Pings an isolation check sends, 0.2 s apart (a 2 s window); one reply is a leak. */
export const ISOLATION_PACKETS = 10;

async function pingOnce(runner: CommandRunner, c: PingCheck, count: number): Promise<boolean> {
  const argv = [
    'ping',
    c.family === 6 ? '-6' : '-4',
    '-c',
    String(count),
    '-i',
    '0.2',
    '-W',
    '1',
    '-I',
    c.fromIf,
    c.address,
  ];
  const r = await runner.run(argv, { netns: c.from.ns, allowFailure: true, timeoutMs: 10_000 });
  // iputils ping exits 0 when at least one reply came back.
  return r.exitCode === 0;
}

/** How long failed reach checks are retried after the first pass over all of them (ms). */
export const REACH_RETRY_MS = 30_000;

/**
 * Spreads `b` evenly through `a` (both kept in order), so probes of `b` span the time
 * a pool takes over `a`.
 */
function interleave<T>(a: readonly T[], b: readonly T[]): T[] {
  if (b.length === 0) return [...a];
  const out: T[] = [];
  const every = Math.max(1, Math.floor(a.length / b.length));
  let j = 0;
  a.forEach((x, i) => {
    if (i % every === 0 && j < b.length) out.push(b[j++]!);
    out.push(x);
  });
  return [...out, ...b.slice(j)];
}

/**
 * Runs checks: first every "reach" one (at most `parallel`, default 8, at once), each
 * pinged once; then the ones that did not answer, again and again, until `retryMs` after
 * that first pass ended (every failed check is retried at least once). Then every
 * "isolated" one (ISOLATION_PACKETS each, at most `isolationParallel` at once). Results
 * keep the order of `checks`.
 *
 * Isolation is also watched over the reach window itself: every isolated check is pinged
 * in the first pass (spread among the reach pings) and once in every retry round, so it
 * is tried as often, and over the same time, as a reach check (issue 17); any reply in
 * the window or in the final stream is a leak.
 *
 * The retry window starts after the first pass, not before it: with thousands of checks
 * (32 clusters) the first pass alone outlasts any fixed deadline, and the checks late in
 * the queue got a single try (issue 18). So the whole run takes the first pass (which
 * grows with the number of checks), plus at most `retryMs`, plus one last round.
 */
export async function runChecks(
  runner: CommandRunner,
  checks: readonly PingCheck[],
  opts: { retryMs?: number; parallel?: number; isolationParallel?: number } = {},
): Promise<CheckResult[]> {
  // 8: a reach ping mostly waits (0.2 s between its two packets), so more at once than
  // cores; a 32-cluster matrix has ~2,000 of them.
  const parallel = opts.parallel ?? 8;
  const results: CheckResult[] = new Array<CheckResult>(checks.length);
  const indexed = checks.map((check, i) => ({ check, i }));
  const answered = new Set<number>();
  const tryAll = (xs: readonly { check: PingCheck; i: number }[], count: number) =>
    pool(xs, parallel, async ({ check, i }) => {
      if (await pingOnce(runner, check, count)) answered.add(i);
    });
  const reach = indexed.filter((x) => x.check.expect === 'reach');
  const isolated = indexed.filter((x) => x.check.expect === 'isolated');
  await tryAll(interleave(reach, isolated), 2);
  const deadline = Date.now() + (opts.retryMs ?? REACH_RETRY_MS);
  let pending = reach.filter((x) => !answered.has(x.i));
  let rounds = 0;
  while (pending.length > 0 && (rounds === 0 || Date.now() < deadline)) {
    await new Promise((r) => setTimeout(r, 500));
    await tryAll(interleave(pending, isolated), 1);
    pending = pending.filter((x) => !answered.has(x.i));
    rounds++;
  }
  for (const { check, i } of reach) {
    const reached = answered.has(i);
    results[i] = { check, reached, ok: reached };
  }
  await pool(isolated, opts.isolationParallel ?? 16, async ({ check, i }) => {
    const reached = answered.has(i) || (await pingOnce(runner, check, ISOLATION_PACKETS));
    results[i] = { check, reached, ok: !reached };
  });
  return results;
}

/** For each pair of clusters: must their gateways hold a WireGuard peer for each other? */
export interface TunnelCheck {
  readonly a: LabCluster;
  readonly b: LabCluster;
  readonly expect: 'peer' | 'no-peer';
  readonly why: string;
}

export interface TunnelResult {
  readonly check: TunnelCheck;
  /** a holds b's key as a peer, and b holds a's. */
  readonly aHasB: boolean;
  readonly bHasA: boolean;
  readonly ok: boolean;
}

/** One check per pair of clusters, from the manifests' peering verdict. */
export function expectedTunnels(plan: LabPlan): TunnelCheck[] {
  const out: TunnelCheck[] = [];
  const cs = plan.clusters;
  for (let i = 0; i < cs.length; i++)
    for (let j = i + 1; j < cs.length; j++) {
      const v = peeringVerdict(cs[i]!, cs[j]!);
      out.push({
        a: cs[i]!,
        b: cs[j]!,
        expect: v.active ? 'peer' : 'no-peer',
        why: v.active
          ? `peering carries ${v.networks.join(', ')}`
          : `peering inactive: ${v.reason}`,
      });
    }
  return out;
}

/** A gateway's WireGuard public key and its peers' keys (none when its device is gone). */
async function wgKeys(runner: CommandRunner, c: LabCluster) {
  const show = (what: string) =>
    runner.run(['wg', 'show', c.wgIfname, what], {
      netns: c.ns,
      allowFailure: true,
      timeoutMs: 10_000,
    });
  const [own, peers] = await Promise.all([show('public-key'), show('peers')]);
  return {
    publicKey: own.exitCode === 0 ? own.stdout.trim() : undefined,
    peers: new Set(peers.exitCode === 0 ? peers.stdout.split('\n').filter(Boolean) : []),
  };
}

/** Reads every gateway's WireGuard state once and judges each pair. */
export async function runTunnelChecks(
  runner: CommandRunner,
  checks: readonly TunnelCheck[],
): Promise<TunnelResult[]> {
  const clusters = new Map(checks.flatMap((c) => [c.a, c.b]).map((c) => [c.id, c]));
  const keys = new Map(
    await Promise.all(
      [...clusters.values()].map(async (c) => [c.id, await wgKeys(runner, c)] as const),
    ),
  );
  return checks.map((check) => {
    const a = keys.get(check.a.id)!;
    const b = keys.get(check.b.id)!;
    const aHasB = b.publicKey !== undefined && a.peers.has(b.publicKey);
    const bHasA = a.publicKey !== undefined && b.peers.has(a.publicKey);
    const ok = check.expect === 'peer' ? aHasB && bHasA : !aHasB && !bHasA;
    return { check, aHasB, bHasA, ok };
  });
}

/** What verifyLab found: the ping matrix and the WireGuard peers per pair of clusters. */
export interface Verification {
  readonly pings: readonly CheckResult[];
  readonly tunnels: readonly TunnelResult[];
}

export const verificationOk = (v: Verification): boolean =>
  v.pings.every((r) => r.ok) && v.tunnels.every((r) => r.ok);

/** One line per check, failures first, then a summary line. */
export function renderMatrix(v: Verification, color = false): string {
  const paint = (code: number, s: string) => (color ? `\u001b[${code}m${s}\u001b[0m` : s);
  const mark = (ok: boolean) => (ok ? paint(32, '\u2714') : paint(31, '\u2718'));
  const pingLines = [...v.pings]
    .sort((a, b) => Number(a.ok) - Number(b.ok))
    .map((r) => {
      const c = r.check;
      const got = r.reached ? 'reaches' : 'cannot reach';
      return `${mark(r.ok)} ${c.from.cluster}/${c.from.name} ${got} ${c.to.cluster}/${c.to.name} on ${c.network}${c.toNetwork ? ` -> ${c.toNetwork}` : ''} (IPv${c.family} ${c.address}) \u2014 expected ${c.expect === 'reach' ? 'reach' : 'isolated'}: ${c.why}`;
    });
  const tunnelLines = [...v.tunnels]
    .sort((a, b) => Number(a.ok) - Number(b.ok))
    .map((r) => {
      const c = r.check;
      const got =
        r.aHasB && r.bHasA
          ? 'WireGuard peers'
          : r.aHasB || r.bHasA
            ? `one-sided WireGuard peer (${r.aHasB ? c.a.id : c.b.id} only)`
            : 'no WireGuard peer';
      return `${mark(r.ok)} ${c.a.id} <-> ${c.b.id}: ${got} \u2014 expected ${c.expect === 'peer' ? 'peers' : 'none'}: ${c.why}`;
    });
  const all = [...v.pings, ...v.tunnels];
  const bad = all.filter((r) => !r.ok).length;
  const reach = v.pings.filter((r) => r.check.expect === 'reach').length;
  const isolated = v.pings.length - reach;
  const lines = [...pingLines, ...tunnelLines];
  lines.push(
    bad === 0
      ? paint(
          32,
          `connectivity: all ${all.length} checks as declared (${reach} reach, ${isolated} isolated over ${ISOLATION_PACKETS} packets each, ${v.tunnels.length} cluster pairs' WireGuard peers)`,
        )
      : paint(31, `connectivity: ${bad} of ${all.length} checks differ from the manifests`),
  );
  return lines.join('\n');
}
