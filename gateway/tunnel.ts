/**
 * The tunnel backend: one WireGuard interface. Kernel WireGuard where the kernel has it,
 * else wireguard-go in userspace; chosen once at start (detectTunnelKind) and reported.
 * Both are configured with `wg`; they differ only in how the device comes to exist.
 */
import { access } from 'node:fs/promises';
import type { DesiredPeer, ObservedPeer } from './model.js';

/** What `wg show IF dump` reports (keys, port, peers), without the link-level parts. */
export interface WgDump {
  readonly privateKey: string | undefined;
  readonly publicKey: string | undefined;
  readonly listenPort: number;
  readonly peers: readonly ObservedPeer[];
}

export const TUNNEL_KINDS = ['kernel', 'wireguard-go', 'fake'] as const;
export type TunnelKind = (typeof TUNNEL_KINDS)[number];

/**
 * Operations on one WireGuard interface. Every method is idempotent on its own terms
 * (create of an existing device adopts it). Calls for one interface must not overlap;
 * the gateway serialises them.
 */
export interface TunnelBackend {
  readonly kind: TunnelKind;
  /** WireGuard config of the device, or undefined when it does not exist. A read. */
  read(ifname: string): Promise<WgDump | undefined>;
  /**
   * Only the peers' last handshakes, cheaply (wireguard-go: its control socket, no
   * process); undefined when unavailable. Optional: callers fall back to read().
   */
  handshakes?(
    ifname: string,
  ): Promise<readonly { publicKey: string; latestHandshake: number }[] | undefined>;
  /** Makes the device exist (and its daemon run, for userspace). */
  create(ifname: string): Promise<void>;
  /** Removes the device (and stops its daemon). Missing device is not an error. */
  destroy(ifname: string): Promise<void>;
  setKey(ifname: string, privateKeyFile: string): Promise<void>;
  setPort(ifname: string, port: number): Promise<void>;
  setPeer(ifname: string, peer: DesiredPeer): Promise<void>;
  removePeer(ifname: string, publicKey: string): Promise<void>;
  /**
   * Points an existing peer at another endpoint, nothing else (endpoint fail-over).
   * Like `wg set`, it would create a missing peer: callers check that it exists.
   */
  setPeerEndpoint(ifname: string, publicKey: string, endpoint: string): Promise<void>;
  /**
   * Removes the peer and adds it again as `peer`, which makes WireGuard send a handshake
   * initiation at once: a new entry is not bound by the one-initiation-per-5-s limit,
   * and turning persistent keepalive on sends one now (kept on only if `peer` has it).
   * The peer's session and counters are lost (there is none when this is called).
   */
  renewPeer(ifname: string, peer: DesiredPeer): Promise<void>;
}

/**
 * Kernel WireGuard when the module is loaded or loadable (its sysfs dir exists),
 * else wireguard-go. Reads only the filesystem.
 */
export async function detectTunnelKind(): Promise<Exclude<TunnelKind, 'fake'>> {
  try {
    await access('/sys/module/wireguard');
    return 'kernel';
  } catch {
    return 'wireguard-go';
  }
}
