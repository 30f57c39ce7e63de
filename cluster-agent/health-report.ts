/**
 * Turns the gateway's health check into the broker's `health` request and into the
 * per-peer tunnel view the status uses. Pure.
 */
import type { HealthRequest } from '../broker/protocol.js';
import type { HealthReport } from '../gateway/client.js';
import type { TunnelDetail } from './status-sink.js';

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
