/**
 * Turns the gateway's health check into the broker's `health` request and into the
 * per-peer tunnel view the status uses. Pure.
 */
import type { HealthRequest } from '../broker/protocol.js';
import type { HealthReport } from '../gateway/client.js';
import type { TunnelDetail } from './status-sink.js';
import { CONDITION_TYPES, type ConditionInput } from './conditions.js';

const MAX_REASON = 1024;

/** One peer's tunnel as the agent reports it; 'unknown' until the gateway checked it. */
export function tunnelDetail(health: HealthReport | undefined, peer: string): TunnelDetail {
  const p = health?.peers.find((x) => x.name === peer);
  if (!p) return { state: 'unknown', reason: 'not checked yet' };
  const state =
    p.status === 'up' || p.status === 'degraded' || p.status === 'down' ? p.status : 'unknown';
  return {
    state,
    ...(p.reason ? { reason: p.reason.slice(0, MAX_REASON) } : {}),
    ...(p.rttMs === undefined ? {} : { rttMs: round(p.rttMs) }),
    ...(p.probeSent > 0 ? { lossPct: round(p.probeLoss * 100) } : {}),
    ...(p.handshakeAgeSeconds === undefined ? {} : { lastHandshakeAgeSec: p.handshakeAgeSeconds }),
  };
}

/**
 * The ClusterPeering PathMTU condition: one False condition while the gateway's last
 * check found the path to `peer` too small for some of its networks, else none.
 */
export function pathMtuConditions(
  health: HealthReport | undefined,
  peer: string,
): ConditionInput[] {
  const p = health?.peers.find((x) => x.name === peer);
  if (!p || p.pathMtu === undefined || p.pathMtu >= p.pathMtuNeeded) return [];
  const nets = p.pathMtuShortNetworks.join(', ') || 'its networks';
  return [
    {
      type: CONDITION_TYPES.ClusterPeering.PathMTU,
      status: 'False',
      reason: 'PathMTUTooSmall',
      message: `path MTU to ${peer} is ${p.pathMtu} B inside the tunnel, ${p.pathMtuNeeded} B needed: full-size frames of ${nets} are lost; raise the underlay MTU on the path or lower the network MTU to ${p.pathMtu - 50} B or less`,
    },
  ];
}

/** The network data-path state in the broker's vocabulary. */
function networkState(status: string): HealthRequest['networks'][number]['state'] {
  switch (status) {
    case 'ok':
      return 'up';
    case 'degraded':
    case 'not-receiving':
      return 'degraded';
    case 'down':
      return 'down';
    default:
      return 'unknown';
  }
}

/** The `health` request body for one gateway health check. */
export function healthRequestFrom(health: HealthReport): HealthRequest {
  return {
    reportedAt: health.at,
    peers: health.peers.map((p) => ({ cluster: p.name, ...tunnelDetail(health, p.name) })),
    networks: health.networks.map((n) => ({
      name: n.name,
      vni: n.vni,
      state: networkState(n.status),
      ...(n.reason ? { reason: n.reason.slice(0, MAX_REASON) } : {}),
    })),
  };
}

const round = (x: number) => Math.round(x * 1000) / 1000;
