/** Tunnel backend on kernel WireGuard: `ip link add IF type wireguard`, then `wg`. */
import { change, read, type Host } from './host.js';
import type { DesiredPeer } from './model.js';
import type { TunnelBackend } from './tunnel.js';
import {
  readWg,
  wgRemovePeer,
  wgSetEndpoint,
  wgSetKey,
  wgSetPeer,
  wgSetPort,
  type WgDump,
} from './wireguard.js';

/** Kernel WireGuard. Stateless; safe to share between gateways of different netns. */
export class KernelTunnel implements TunnelBackend {
  readonly kind = 'kernel' as const;
  constructor(private readonly host: Host) {}

  read(ifname: string): Promise<WgDump | undefined> {
    return readWg(this.host, ifname);
  }

  async create(ifname: string): Promise<void> {
    await change(this.host, ['ip', 'link', 'add', ifname, 'type', 'wireguard']);
  }

  async destroy(ifname: string): Promise<void> {
    const r = await read(this.host, ['ip', 'link', 'show', ifname], { allowFailure: true });
    if (r.exitCode === 0) await change(this.host, ['ip', 'link', 'del', ifname]);
  }

  setKey(ifname: string, file: string): Promise<void> {
    return wgSetKey(this.host, ifname, file);
  }
  setPort(ifname: string, port: number): Promise<void> {
    return wgSetPort(this.host, ifname, port);
  }
  setPeer(ifname: string, peer: DesiredPeer): Promise<void> {
    return wgSetPeer(this.host, ifname, peer);
  }
  removePeer(ifname: string, publicKey: string): Promise<void> {
    return wgRemovePeer(this.host, ifname, publicKey);
  }
  setPeerEndpoint(ifname: string, publicKey: string, endpoint: string): Promise<void> {
    return wgSetEndpoint(this.host, ifname, publicKey, endpoint);
  }
}
