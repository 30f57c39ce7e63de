/**
 * WireGuard configuration through `wg`, shared by the kernel and wireguard-go tunnel
 * backends (both speak the same configuration protocol; only device creation differs).
 */
import { ParseError } from './errors.js';
import { change, read, type Host } from './host.js';
import type { DesiredPeer, ObservedPeer } from './model.js';
import type { TunnelBackend, TunnelKind, WgDump } from './tunnel.js';

const none = (s: string | undefined) => (s === undefined || s === '(none)' ? undefined : s);

/**
 * Says what is wrong with a dump line without quoting it: the first line holds the
 * private key and a peer line its preshared key, and errors end up in logs and gRPC
 * answers.
 */
function badLine(index: number, what: string, fields: number, want: number): ParseError {
  return new ParseError(
    'wg show dump',
    `line ${index + 1} (${what}) has ${fields} tab-separated fields, expected at least ${want} (line not shown: it holds key material)`,
  );
}

/**
 * Parses `wg show IF dump` (tab-separated; first line is the interface). Pure.
 * @throws ParseError naming the line and its field count, never its content.
 */
export function parseWgDump(text: string): WgDump {
  const lines = text.split('\n').filter((l) => l.trim());
  const head = lines[0]?.split('\t');
  if (!head || head.length < 4) throw badLine(0, 'interface', head?.length ?? 0, 4);
  const peers = lines.slice(1).map((l, i): ObservedPeer => {
    const f = l.split('\t');
    if (f.length < 8) throw badLine(i + 1, 'peer', f.length, 8);
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

/**
 * The `wg` half of a tunnel backend, the same for kernel WireGuard and wireguard-go:
 * subclasses say only how the device comes to exist and goes away.
 */
export abstract class WgTunnel implements TunnelBackend {
  abstract readonly kind: TunnelKind;
  constructor(protected readonly host: Host) {}

  abstract create(ifname: string): Promise<void>;
  abstract destroy(ifname: string): Promise<void>;

  /** The WireGuard config of ifname; undefined when there is no such device. */
  async read(ifname: string): Promise<WgDump | undefined> {
    const r = await read(this.host, ['wg', 'show', ifname, 'dump'], { allowFailure: true });
    if (r.exitCode !== 0) return undefined;
    return parseWgDump(r.stdout);
  }

  /** Sets the private key from a file (the key never appears on a command line). */
  async setKey(ifname: string, file: string): Promise<void> {
    await change(this.host, ['wg', 'set', ifname, 'private-key', file]);
  }

  async setPort(ifname: string, port: number): Promise<void> {
    await change(this.host, ['wg', 'set', ifname, 'listen-port', String(port)]);
  }

  /** Creates or updates a peer; allowed-ips replaces the peer's whole list. */
  async setPeer(ifname: string, p: DesiredPeer): Promise<void> {
    await change(this.host, [
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
  async setPeerEndpoint(ifname: string, publicKey: string, endpoint: string): Promise<void> {
    await change(this.host, ['wg', 'set', ifname, 'peer', publicKey, 'endpoint', endpoint]);
  }

  async renewPeer(ifname: string, p: DesiredPeer): Promise<void> {
    await this.removePeer(ifname, p.publicKey);
    // Both kernel WireGuard and wireguard-go send a keepalive when keepalive turns on.
    await this.setPeer(ifname, { ...p, persistentKeepalive: p.persistentKeepalive || 1 });
    if (p.persistentKeepalive === 0) {
      await change(this.host, [
        'wg',
        'set',
        ifname,
        'peer',
        p.publicKey,
        'persistent-keepalive',
        'off',
      ]);
    }
  }

  async removePeer(ifname: string, publicKey: string): Promise<void> {
    await change(this.host, ['wg', 'set', ifname, 'peer', publicKey, 'remove']);
  }

  /** Deletes the device if it exists (a missing device is not an error). */
  protected async deleteLink(ifname: string): Promise<void> {
    const r = await read(this.host, ['ip', 'link', 'show', ifname], { allowFailure: true });
    if (r.exitCode === 0) await change(this.host, ['ip', 'link', 'del', ifname]);
  }
}
