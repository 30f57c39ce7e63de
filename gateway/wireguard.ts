/**
 * WireGuard configuration through `wg`, shared by the kernel and wireguard-go tunnel
 * backends (both speak the same configuration protocol; only device creation differs).
 */
import { ParseError } from './errors.js';
import { change, read, type Host } from './host.js';
import type { DesiredPeer, ObservedPeer } from './model.js';

/** What `wg show IF dump` reports (keys, port, peers), without the link-level parts. */
export interface WgDump {
  readonly privateKey: string | undefined;
  readonly publicKey: string | undefined;
  readonly listenPort: number;
  readonly peers: readonly ObservedPeer[];
}

const none = (s: string | undefined) => (s === undefined || s === '(none)' ? undefined : s);

/** Parses `wg show IF dump` (tab-separated; first line is the interface). Pure. */
export function parseWgDump(text: string): WgDump {
  const lines = text.split('\n').filter((l) => l.trim());
  const head = lines[0]?.split('\t');
  if (!head || head.length < 4)
    throw new ParseError('wg show dump', `bad first line "${lines[0]}"`);
  const peers = lines.slice(1).map((l): ObservedPeer => {
    const f = l.split('\t');
    if (f.length < 8) throw new ParseError('wg show dump', `bad peer line "${l}"`);
    const allowed = none(f[3]);
    return {
      publicKey: f[0]!,
      endpoint: none(f[2]),
      allowedIps: allowed ? allowed.split(',') : [],
      latestHandshake: Number(f[4]),
      rxBytes: Number(f[5]),
      txBytes: Number(f[6]),
      persistentKeepalive: f[7] === 'off' ? 0 : Number(f[7]),
    };
  });
  return {
    privateKey: none(head[0]),
    publicKey: none(head[1]),
    listenPort: Number(head[2]),
    peers,
  };
}

/** Reads the WireGuard config of ifname; undefined when there is no such device. */
export async function readWg(host: Host, ifname: string): Promise<WgDump | undefined> {
  const r = await read(host, ['wg', 'show', ifname, 'dump'], { allowFailure: true });
  if (r.exitCode !== 0) return undefined;
  return parseWgDump(r.stdout);
}

/** Sets the private key from a file (the key never appears on a command line). */
export async function wgSetKey(host: Host, ifname: string, file: string): Promise<void> {
  await change(host, ['wg', 'set', ifname, 'private-key', file]);
}

export async function wgSetPort(host: Host, ifname: string, port: number): Promise<void> {
  await change(host, ['wg', 'set', ifname, 'listen-port', String(port)]);
}

/** Creates or updates a peer; allowed-ips replaces the peer's whole list. */
export async function wgSetPeer(host: Host, ifname: string, p: DesiredPeer): Promise<void> {
  await change(host, [
    'wg',
    'set',
    ifname,
    'peer',
    p.publicKey,
    'endpoint',
    p.endpoint,
    'persistent-keepalive',
    p.persistentKeepalive === 0 ? 'off' : String(p.persistentKeepalive),
    'allowed-ips',
    p.allowedIps.join(','),
  ]);
}

/** Moves an existing peer to another endpoint; keys, allowed-ips and keepalive stay. */
export async function wgSetEndpoint(
  host: Host,
  ifname: string,
  publicKey: string,
  endpoint: string,
): Promise<void> {
  await change(host, ['wg', 'set', ifname, 'peer', publicKey, 'endpoint', endpoint]);
}

export async function wgRemovePeer(host: Host, ifname: string, publicKey: string): Promise<void> {
  await change(host, ['wg', 'set', ifname, 'peer', publicKey, 'remove']);
}
