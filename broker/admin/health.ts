/**
 * Tunnel health per cluster pair, from the reports cluster agents write to KV bucket
 * `l2fed_health` (key = reporting cluster). Pure: combines both sides' views of a
 * pair, marks reports older than the staleness threshold, and names the worst part.
 * A missing bucket or report is not an error: the pair is then UNKNOWN, with a reason.
 */
import type { FederationSnapshot, ClusterHealthRecord, TunnelStateName } from './snapshot.js';
import {
  TunnelState,
  type HealthSummary,
  type TunnelHealth,
  type TunnelView,
} from '../../proto/gen/l2fed/admin/v1/federation.js';

/** Default age after which a health report counts as stale. */
export const DEFAULT_STALE_AFTER_MS = 60_000;

const STATES = {
  up: TunnelState.TUNNEL_STATE_UP,
  degraded: TunnelState.TUNNEL_STATE_DEGRADED,
  down: TunnelState.TUNNEL_STATE_DOWN,
  unknown: TunnelState.TUNNEL_STATE_UNKNOWN,
} as const satisfies Record<TunnelStateName, TunnelState>;

/** Worse states sort higher; the pair shows the worst view. */
const SEVERITY: Record<number, number> = {
  [TunnelState.TUNNEL_STATE_UP]: 0,
  [TunnelState.TUNNEL_STATE_UNKNOWN]: 1,
  [TunnelState.TUNNEL_STATE_DEGRADED]: 2,
  [TunnelState.TUNNEL_STATE_DOWN]: 3,
};

export interface HealthOptions {
  readonly now: number;
  readonly staleAfterMs: number;
}

/** Whether a report is older than the threshold (an unparsable time counts as stale). */
export function isStale(report: ClusterHealthRecord, o: HealthOptions): boolean {
  const at = Date.parse(report.reportedAt);
  return !Number.isFinite(at) || o.now - at > o.staleAfterMs;
}

/** The summary shown with a cluster. */
export function healthSummary(
  report: ClusterHealthRecord | undefined,
  o: HealthOptions,
): HealthSummary {
  if (!report)
    return {
      reported: false,
      reportedAt: undefined,
      stale: false,
      peersUp: 0,
      peersTotal: 0,
      networks: [],
    };
  const peers = report.peers ?? [];
  const at = new Date(report.reportedAt);
  return {
    reported: true,
    reportedAt: Number.isNaN(at.getTime()) ? undefined : at,
    stale: isStale(report, o),
    peersUp: peers.filter((p) => p.state === 'up').length,
    peersTotal: peers.length,
    networks: (report.networks ?? []).map((n) => ({
      name: n.name,
      vni: n.vni,
      state: STATES[n.state] ?? TunnelState.TUNNEL_STATE_UNKNOWN,
      reason: n.reason ?? '',
    })),
  };
}

function viewOf(
  s: FederationSnapshot,
  from: string,
  to: string,
  o: HealthOptions,
): { view: TunnelView; problem: string | undefined } {
  const report = s.health.get(from);
  const peer = report?.peers?.find((p) => p.cluster === to);
  const stale = report ? isStale(report, o) : false;
  const at = report ? new Date(report.reportedAt) : undefined;
  const view: TunnelView = {
    cluster: from,
    reported: peer !== undefined,
    state: peer
      ? (STATES[peer.state] ?? TunnelState.TUNNEL_STATE_UNKNOWN)
      : TunnelState.TUNNEL_STATE_UNKNOWN,
    rttMs: peer?.rttMs ?? 0,
    lossPct: peer?.lossPct ?? 0,
    lastHandshakeAgeSec: peer?.lastHandshakeAgeSec ?? -1,
    reason: peer?.reason ?? '',
    reportedAt: at && !Number.isNaN(at.getTime()) ? at : undefined,
    stale,
  };
  let problem: string | undefined;
  if (!report) problem = `${from} has sent no health report`;
  else if (stale) {
    const age = Math.round((o.now - Date.parse(report.reportedAt)) / 1000);
    problem = `${from}'s health report is stale (${Number.isFinite(age) ? `${age} s old` : 'bad time'}, limit ${o.staleAfterMs / 1000} s): is its agent running?`;
    view.state = TunnelState.TUNNEL_STATE_UNKNOWN;
  } else if (!peer) problem = `${from} does not report a tunnel to ${to}`;
  else if (peer.state !== 'up')
    problem = `${from} sees the tunnel to ${to} ${peer.state}${peer.reason ? `: ${peer.reason}` : ''}`;
  return { view, problem };
}

/** Health of the pair (a, b); `expected` tells whether both peer maps list the other. */
export function tunnelHealthOf(
  s: FederationSnapshot,
  x: string,
  y: string,
  o: HealthOptions,
): TunnelHealth {
  const [a, b] = x < y ? [x, y] : [y, x];
  const va = viewOf(s, a, b, o);
  const vb = viewOf(s, b, a, o);
  const worst = [va.view.state, vb.view.state].reduce((w, st) =>
    (SEVERITY[st] ?? 1) > (SEVERITY[w] ?? 1) ? st : w,
  );
  const expected =
    (s.peerMaps.get(a)?.peers.some((p) => p.cluster === b) ?? false) &&
    (s.peerMaps.get(b)?.peers.some((p) => p.cluster === a) ?? false);
  const problems = [va.problem, vb.problem].filter((p): p is string => p !== undefined);
  if (!expected) problems.unshift(`${a} and ${b} are not peered (not in each other's peer map)`);
  return {
    clusterA: a,
    clusterB: b,
    state: worst,
    reason: problems.join('; '),
    viewA: va.view,
    viewB: vb.view,
    expected,
  };
}

/**
 * Every pair that should have a tunnel (in the peer maps) or that some agent reports
 * on, sorted by "a:b".
 */
export function allTunnelHealth(s: FederationSnapshot, o: HealthOptions): TunnelHealth[] {
  const pairs = new Set<string>();
  const add = (x: string, y: string) => {
    if (x !== y) pairs.add(x < y ? `${x}:${y}` : `${y}:${x}`);
  };
  for (const [id, map] of s.peerMaps) for (const p of map.peers) add(id, p.cluster);
  for (const [id, r] of s.health) for (const p of r.peers ?? []) add(id, p.cluster);
  return [...pairs].sort().map((n) => {
    const [a, b] = n.split(':') as [string, string];
    return tunnelHealthOf(s, a, b, o);
  });
}
