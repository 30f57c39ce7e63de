/**
 * Standby keys: how a gateway takes part in a peer's key rotation without its agent.
 *
 * While a peer rotates, the config names the peer's announced next key (`nextPublicKey`).
 * The gateway holds it as a second WireGuard entry for that peer with no allowed IPs and
 * no keepalive: it routes nothing and never initiates, so it cannot race the peer's own
 * handshake (handshake-watch.ts). Only the peer's gateway holds the private half, and it
 * uses it only after it switched, so a handshake on the standby entry proves the switch.
 * The gateway then promotes the entry by itself (the next key takes the peer's allowed IPs
 * and keepalive, the old entry goes): this cluster's agent may be down at that moment.
 * Pure; the gateway polls and runs the steps (gateway.ts).
 */
import type { GatewayConfig } from './config.js';
import type { DesiredPeer, ObservedPeer } from './model.js';
import type { Step } from './plan.js';

/** The peers of a tunnel as read (ObservedTunnel or WgDump). */
type Peers = { readonly peers: readonly ObservedPeer[] };
/** Enough to tell a handshake (also the control socket's cheap answer). */
type Handshakes = {
  readonly peers: readonly Pick<ObservedPeer, 'publicKey' | 'latestHandshake'>[];
};

/**
 * `config` with every peer whose next key has handshaked on `tunnel` switched to it (its
 * `publicKey` becomes the next key, `nextPublicKey` goes). The same object when none did.
 */
export function promoteStandby(
  config: GatewayConfig,
  tunnel: Handshakes | undefined,
): GatewayConfig {
  const shook = new Set(
    (tunnel?.peers ?? []).filter((p) => p.latestHandshake > 0).map((p) => p.publicKey),
  );
  if (!config.peers.some((p) => p.nextPublicKey && shook.has(p.nextPublicKey))) return config;
  return {
    ...config,
    peers: config.peers.map(({ nextPublicKey, ...p }) =>
      nextPublicKey && shook.has(nextPublicKey)
        ? { ...p, publicKey: nextPublicKey }
        : { ...p, ...(nextPublicKey ? { nextPublicKey } : {}) },
    ),
  };
}

/** The next keys `config` holds as standby entries (not promoted yet). */
export function standbyKeys(config: GatewayConfig | undefined): string[] {
  return (config?.peers ?? []).flatMap((p) => (p.nextPublicKey ? [p.nextPublicKey] : []));
}

/**
 * The steps that promote, on the live tunnel, the peers `after` switched from `before`
 * (promoteStandby): each next key's entry takes the peer's allowed IPs and keepalive,
 * keeping the endpoint its handshake came from, then the old entry goes. `wanted` are the
 * desired peers of `after`.
 */
export function promotionSteps(
  ifname: string,
  before: GatewayConfig,
  after: GatewayConfig,
  wanted: readonly DesiredPeer[],
  tunnel: Peers,
): Step[] {
  return before.peers.flatMap((p, i): Step[] => {
    const now = after.peers[i];
    if (!p.nextPublicKey || now?.publicKey !== p.nextPublicKey) return [];
    const want = wanted.find((w) => w.publicKey === p.nextPublicKey && !w.standby);
    if (!want) return [];
    const have = tunnel.peers.find((h) => h.publicKey === want.publicKey);
    return [
      {
        kind: 'tunnel-set-peer',
        ifname,
        peer: { ...want, endpoint: have?.endpoint ?? want.endpoint },
      },
      { kind: 'tunnel-remove-peer', ifname, publicKey: p.publicKey },
    ];
  });
}
