/**
 * When a lab is ready: every cluster's gateway holds exactly the peers the manifests make
 * active and reports each of them answering (a handshake, and in-tunnel probes answered
 * in the latest health check: status up, or degraded by some loss; docs/gateway.md).
 * Not "down": on a loaded machine a probe lost now and then makes a link "degraded" for
 * one check, and thousands of links are never all "up" in the same instant. Read from each gateway's GetState, so "ready" is what the
 * data plane says, not the daemons having started (issue 18: a 32-cluster lab was called
 * ready while its last-started clusters were still converging).
 */
import type { GatewayApi, GatewayStateView } from '../gateway/client.js';
import { peeringVerdict } from './expectations.js';
import type { LabPlan } from './plan.js';

/** Each cluster's expected peers (sorted ids): those its active peerings name. */
export function expectedPeers(plan: LabPlan): Map<string, string[]> {
  const out = new Map(plan.clusters.map((c) => [c.id, [] as string[]]));
  const cs = plan.clusters;
  for (let i = 0; i < cs.length; i++)
    for (let j = i + 1; j < cs.length; j++) {
      if (!peeringVerdict(cs[i]!, cs[j]!).active) continue;
      out.get(cs[i]!.id)!.push(cs[j]!.id);
      out.get(cs[j]!.id)!.push(cs[i]!.id);
    }
  for (const peers of out.values()) peers.sort();
  return out;
}

/** One gateway against its expected peers. */
export interface GatewayConvergence {
  readonly cluster: string;
  readonly ok: boolean;
  /** Expected peers the gateway reports answering. */
  readonly up: number;
  readonly expected: number;
  /** What keeps it from ok, one short phrase each ("c3 down: no handshake yet…"). */
  readonly waiting: readonly string[];
}

/**
 * Judges one gateway's state (or the error reading it). OK when a config was applied,
 * the latest health check lists exactly the expected peers, and none is "down". A
 * cluster with no expected peer is OK once its gateway has a config.
 */
export function judgeGateway(
  cluster: string,
  expected: readonly string[],
  view: GatewayStateView | Error,
): GatewayConvergence {
  const not = (waiting: string[], up = 0) => ({
    cluster,
    ok: false,
    up,
    expected: expected.length,
    waiting,
  });
  if (view instanceof Error) return not([`gateway not answering: ${view.message}`]);
  if (!view.report) return not(['no config applied yet']);
  const peers = view.health?.peers ?? [];
  if (expected.length > 0 && !view.health) return not(['no health check yet']);
  const byName = new Map(peers.map((p) => [p.name, p]));
  const want = new Set(expected);
  const waiting: string[] = [];
  let up = 0;
  for (const id of expected) {
    const p = byName.get(id);
    if (!p) waiting.push(`${id} not configured`);
    else if (p.status === 'down')
      waiting.push(`${id} ${p.status}${p.reason ? `: ${p.reason}` : ''}`);
    else up++;
  }
  for (const p of peers) if (!want.has(p.name)) waiting.push(`${p.name} configured, not expected`);
  return waiting.length ? not(waiting, up) : { ...not([], up), ok: true };
}

export interface ConvergenceResult {
  readonly converged: boolean;
  /** From the call until converged (or given up), ms. */
  readonly ms: number;
  /** The gateways not converged (empty when converged). */
  readonly pending: readonly GatewayConvergence[];
}

export interface ConvergenceOptions {
  /** Between two reads of every gateway, ms (default 2000: the lab's health interval). */
  readonly pollMs?: number;
  /** Give up after this long with no more peers answering than ever before, ms (default 180 s). */
  readonly stallMs?: number;
  /** A progress line at least this often while waiting, ms (default 30 s). */
  readonly progressMs?: number;
  readonly onProgress?: (line: string) => void;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** "c5: c31 down: no handshake; c9: no health check yet" for at most `max` gateways. */
export function describePending(pending: readonly GatewayConvergence[], max = 3): string {
  const shown = pending
    .slice(0, max)
    .map(
      (g) =>
        `${g.cluster}: ${g.waiting.slice(0, 2).join(', ')}${g.waiting.length > 2 ? ` (+${g.waiting.length - 2})` : ''}`,
    );
  const more = pending.length > max ? `; ${pending.length - max} more` : '';
  return `${shown.join('; ')}${more}`;
}

/**
 * Reads every gateway (GetState) every `pollMs` until each one is OK (judgeGateway), or
 * until `stallMs` passed without more expected peers answering than at any earlier read: a
 * large lab converges slowly but steadily, so the bound is on stalling, not on the total.
 * Never throws for a gateway that does not answer (it is "not answering" and is read
 * again).
 */
export async function waitForConvergence(
  plan: LabPlan,
  gateways: ReadonlyMap<string, GatewayApi>,
  opts: ConvergenceOptions = {},
): Promise<ConvergenceResult> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const pollMs = opts.pollMs ?? 2000;
  const stallMs = opts.stallMs ?? 180_000;
  const progressMs = opts.progressMs ?? 30_000;
  const say = opts.onProgress ?? (() => undefined);
  const expected = expectedPeers(plan);
  const links = [...expected.values()].reduce((n, p) => n + p.length, 0);
  const start = now();
  let best = -1;
  let lastBetter = start;
  let lastLine = start;
  let lastOk = -1;
  for (;;) {
    const states = await Promise.all(
      plan.clusters.map(async (c) => {
        const gw = gateways.get(c.id);
        const view = gw
          ? await gw.getState().catch((err: unknown) => toError(err))
          : new Error('no gateway address');
        return judgeGateway(c.id, expected.get(c.id) ?? [], view);
      }),
    );
    const pending = states.filter((s) => !s.ok);
    const t = now();
    if (pending.length === 0) return { converged: true, ms: t - start, pending: [] };
    const ok = states.length - pending.length;
    const up = states.reduce((n, s) => n + s.up, 0);
    // OK gateways count too: one with no expected peer adds nothing to `up`.
    const score = up + ok;
    if (score > best) {
      best = score;
      lastBetter = t;
    }
    if (t - lastBetter >= stallMs) return { converged: false, ms: t - start, pending };
    if (ok !== lastOk || t - lastLine >= progressMs) {
      say(
        `converging: ${ok}/${states.length} gateways hold every expected peer, answering (${up}/${links} peer links answer, ${((t - start) / 1000).toFixed(0)} s); waiting for ${describePending(pending)}`,
      );
      lastOk = ok;
      lastLine = t;
    }
    await sleep(pollMs);
  }
}

const toError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)));
