/** Tunnel backend on kernel WireGuard: `ip link add IF type wireguard`, then `wg`. */
import { change } from './host.js';
import { WgTunnel } from './wireguard.js';

/** Kernel WireGuard. Stateless; safe to share between gateways of different netns. */
export class KernelTunnel extends WgTunnel {
  readonly kind = 'kernel' as const;

  async create(ifname: string): Promise<void> {
    await change(this.host, ['ip', 'link', 'add', ifname, 'type', 'wireguard']);
  }

  destroy(ifname: string): Promise<void> {
    return this.deleteLink(ifname);
  }
}
