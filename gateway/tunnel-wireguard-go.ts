/**
 * Tunnel backend on wireguard-go (userspace), for kernels without WireGuard. The daemon
 * runs in the foreground (`-f`) under a DaemonLauncher, inside the data-plane namespace so
 * its TUN device and UDP socket live there. Its control socket
 * /var/run/wireguard/IF.sock is machine-wide, which is why interface names must be
 * unique on the machine.
 */
import { mkdir } from 'node:fs/promises';
import { ProcessStartError } from '../lib/errors.js';
import type { DaemonLauncher } from './daemons.js';
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

const READY_TIMEOUT_MS = 5000;
/** wireguard-go's control sockets (machine-wide, shared by every namespace). */
const WG_SOCKET_DIR = '/var/run/wireguard';

export class WireguardGoTunnel implements TunnelBackend {
  readonly kind = 'wireguard-go' as const;
  constructor(
    private readonly host: Host,
    private readonly launcher: DaemonLauncher,
  ) {}

  private key(ifname: string): string {
    return `wireguard-go:${ifname}`;
  }

  read(ifname: string): Promise<WgDump | undefined> {
    return readWg(this.host, ifname);
  }

  /**
   * Starts wireguard-go for ifname and waits until its control socket answers.
   * Not a runner command (the daemon is long-lived), so it is not in mutatingCommands().
   */
  async create(ifname: string): Promise<void> {
    try {
      await this.start(ifname);
    } catch (err) {
      // Seen once under heavy parallel load: wireguard-go could not bind its control
      // socket ("no such file or directory"). Make sure the folder exists and retry once.
      if (!(err instanceof ProcessStartError) || !/uapi socket/.test(err.output)) throw err;
      await mkdir(WG_SOCKET_DIR, { recursive: true, mode: 0o755 });
      await this.start(ifname);
    }
  }

  private async start(ifname: string): Promise<void> {
    await mkdir(WG_SOCKET_DIR, { recursive: true, mode: 0o755 });
    const handle = await this.launcher.start({
      key: this.key(ifname),
      argv: ['wireguard-go', '-f', ifname],
      netns: this.host.netns,
    });
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (await this.read(ifname)) return;
      if (!handle.running) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await handle.stop();
    throw new ProcessStartError(
      `wireguard-go ${ifname}`,
      handle.running ? `control socket not ready in ${READY_TIMEOUT_MS} ms` : 'exited early',
      handle.output(),
    );
  }

  /** Stops the daemon; a device adopted from an earlier process is deleted instead. */
  async destroy(ifname: string): Promise<void> {
    const handle = this.launcher.get(this.key(ifname));
    if (handle) {
      await handle.stop();
      return;
    }
    const r = await read(this.host, ['ip', 'link', 'show', ifname], { allowFailure: true });
    // Deleting the TUN device makes wireguard-go exit and remove its socket.
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
