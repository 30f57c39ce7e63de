/**
 * MTU arithmetic for the path pod → segment → VXLAN → WireGuard → underlay. Pure
 * functions; the reconciler pushes the results onto every device it owns and reports them.
 */

/**
 * WireGuard worst case: outer IPv6 header 40 + UDP 8 + WireGuard data header 16 +
 * Poly1305 tag 16 = 80 bytes (an IPv4 underlay needs 60; we take the worst case so a
 * peer endpoint that changes family does not break the path).
 */
export const WIREGUARD_OVERHEAD = 80;

/** VXLAN over IPv4: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14 = 50 bytes. */
export const VXLAN_OVERHEAD = 50;

/** The smallest MTU a federated network may have: IPv6 requires 1280 on every link. */
export const MIN_NETWORK_MTU = 1280;

/** The smallest underlay MTU that still leaves MIN_NETWORK_MTU for the network. */
export const MIN_UNDERLAY_MTU = MIN_NETWORK_MTU + WIREGUARD_OVERHEAD + VXLAN_OVERHEAD;

/** MTU of the WireGuard interface for a given underlay MTU. */
export function tunnelMtu(underlayMtu: number): number {
  return underlayMtu - WIREGUARD_OVERHEAD;
}

/** The largest MTU a network can have over this underlay (VXLAN device and segment). */
export function maxNetworkMtu(underlayMtu: number): number {
  return tunnelMtu(underlayMtu) - VXLAN_OVERHEAD;
}

/** The MTU a network gets: `auto` means the largest that fits the underlay. */
export function effectiveNetworkMtu(underlayMtu: number, requested: 'auto' | number): number {
  return requested === 'auto' ? maxNetworkMtu(underlayMtu) : requested;
}

/**
 * The inner IP packet a network's full-size frame becomes in the tunnel (bytes): its MTU
 * plus VXLAN_OVERHEAD. This is what the path to every peer of the network must carry.
 */
export function tunnelPacketFor(networkMtu: number): number {
  return networkMtu + VXLAN_OVERHEAD;
}

/** IP + ICMP echo headers: `ping -s` takes the packet size minus this (20 + 8, IPv6 40 + 8). */
export function echoOverhead(address: string): number {
  return address.includes(':') ? 48 : 28;
}

/** The packet `ping` sends without `-s` (56 bytes of payload), IPv4: the small probe. */
export const SMALL_PROBE_PACKET = 84;
