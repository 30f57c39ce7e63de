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

/** Where the kernel shows its wireguard module, when loaded or built in. */
export const WIREGUARD_MODULE_DIR = '/sys/module/wireguard';

/** The tunnel backend a gateway picked, and why (logged at start). */
export interface TunnelChoice {
  readonly kind: Exclude<TunnelKind, 'fake'>;
  readonly reason: string;
}

const pathExists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * Kernel WireGuard when the wireguard module is loaded or built in (WIREGUARD_MODULE_DIR
 * exists), else wireguard-go. A module that is only installed has no sysfs dir yet, so it
 * counts as absent: the reason says how to load it. Reads only the filesystem; `exists`
 * is the seam tests replace.
 */
export async function chooseTunnel(exists = pathExists): Promise<TunnelChoice> {
  if (await exists(WIREGUARD_MODULE_DIR)) {
    return {
      kind: 'kernel',
      reason: `kernel WireGuard: the wireguard module is loaded (${WIREGUARD_MODULE_DIR} exists)`,
    };
  }
  return {
    kind: 'wireguard-go',
    reason:
      `wireguard-go (userspace): the kernel has no wireguard module loaded ` +
      `(${WIREGUARD_MODULE_DIR} is missing); \`modprobe wireguard\` on the node and a ` +
      'restart use kernel WireGuard, `tunnel: wireguard-go` keeps this choice',
  };
}

/** chooseTunnel's kind. */
export async function detectTunnelKind(): Promise<Exclude<TunnelKind, 'fake'>> {
  return (await chooseTunnel()).kind;
}
