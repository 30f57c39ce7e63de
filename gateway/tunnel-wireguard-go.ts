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
import type { Host } from './host.js';
import { WgTunnel } from './wireguard.js';
import type { WgDump } from './tunnel.js';
import { readUapiDump, readUapiHandshakes, type PeerHandshake } from './uapi.js';

const READY_TIMEOUT_MS = 5000;
/** wireguard-go's control sockets (machine-wide, shared by every namespace). */
const WG_SOCKET_DIR = '/var/run/wireguard';

export class WireguardGoTunnel extends WgTunnel {
  readonly kind = 'wireguard-go' as const;
  constructor(
    host: Host,
    private readonly launcher: DaemonLauncher,
    /** Where wireguard-go's control sockets are (tests). */
    private readonly socketDir = WG_SOCKET_DIR,
  ) {
    super(host);
  }

  /**
   * The device from its control socket, as `wg show dump` would say (wg reads the same
   * socket), without starting a process: every health check and apply reads the tunnel.
   * Falls back to `wg show` when the socket does not answer (no device, daemon gone).
   */
  override async read(ifname: string): Promise<WgDump | undefined> {
    return (await readUapiDump(this.socket(ifname))) ?? super.read(ifname);
  }

  private socket(ifname: string): string {
    return `${this.socketDir}/${ifname}.sock`;
  }

  private key(ifname: string): string {
    return `wireguard-go:${ifname}`;
  }

  /**
   * The peers' last handshakes from the control socket, without starting a process;
   * undefined when the socket does not answer (callers fall back to read()).
   */
  handshakes(ifname: string): Promise<readonly PeerHandshake[] | undefined> {
    return readUapiHandshakes(this.socket(ifname));
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
    // Deleting the TUN device makes wireguard-go exit and remove its socket.
    await this.deleteLink(ifname);
  }
}
