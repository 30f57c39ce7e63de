/**
 * The link backend: network devices, addresses and the VXLAN flood list, as `ip` and
 * `bridge` see them. One real implementation (links-ip.ts) and a fake (links-fake.ts).
 */

export interface VxlanInfo {
  readonly vni: number;
  readonly local: string | undefined;
  readonly dstport: number;
  readonly learning: boolean;
}

/** One device as the kernel reports it. */
export interface LinkInfo {
  readonly name: string;
  /** linkinfo kind: "vxlan", "bridge", "tun", "wireguard", "veth" …; undefined for plain. */
  readonly kind: string | undefined;
  readonly mtu: number;
  readonly up: boolean;
  /** IPv4/IPv6 addresses as CIDRs. */
  readonly addresses: readonly string[];
  /** Kernel master device (Linux bridge), if any. */
  readonly master: string | undefined;
  readonly vxlan: VxlanInfo | undefined;
  /** UDP port of a vxlan or geneve device. */
  readonly udpPort?: number;
  /** NOARP flag: the kernel neither answers nor sends ARP on the device. */
  readonly noarp?: boolean;
}

/**
 * Device-level operations. Reads are side-effect free. Mutations are single commands
 * that fail if the precondition does not hold (the planner only emits them when needed).
 */
export interface LinkBackend {
  list(): Promise<LinkInfo[]>;
  /** Destinations of the all-zero FDB entries of a VXLAN device, sorted. */
  floodList(dev: string): Promise<string[]>;
  createVxlan(name: string, vni: number, local: string, dstport: number): Promise<void>;
  deleteLink(name: string): Promise<void>;
  setMtu(name: string, mtu: number): Promise<void>;
  setUp(name: string): Promise<void>;
  /** Sets NOARP (`ip link set X arp off`). */
  setNoArp(name: string): Promise<void>;
  addAddress(name: string, cidr: string): Promise<void>;
  delAddress(name: string, cidr: string): Promise<void>;
  floodAppend(dev: string, dst: string): Promise<void>;
  floodDelete(dev: string, dst: string): Promise<void>;
}

/** The all-zero MAC: FDB entries with it are the head-end replication list. */
export const ZERO_MAC = '00:00:00:00:00:00';
