/**
 * The link backend: network devices, addresses and the VXLAN flood list, as `ip` and
 * `bridge` see them. One real implementation (links-ip.ts) and a fake (links-fake.ts).
 */

export interface VxlanInfo {
  readonly vni: number;
  readonly local: string | undefined;
  readonly dstport: number;
  readonly learning: boolean;
  /** `maxaddress`: the most FDB entries the device holds (static ones count); 0 = no bound. */
  readonly limit: number;
}

/** An FDB entry the kernel learned from a frame that came in through the tunnel. */
export interface LearnedFdbEntry {
  readonly mac: string;
  /** Transit address of the peer the frame came from. */
  readonly dst: string;
}

/** The VXLAN device's own FDB (`bridge fdb … self`), split by who wrote each entry. */
export interface VxlanFdb {
  /** Destinations of the static all-zero entries (the flood list), sorted. */
  readonly remotes: string[];
  /** Entries the kernel learned, sorted by MAC; the gateway only forgets stale ones. */
  readonly learned: LearnedFdbEntry[];
}

/** A UDP socket in the namespace and the processes that hold it (none: a kernel socket). */
export interface UdpSocketHolder {
  /** Local address:port as `ss` prints it, e.g. 0.0.0.0:51820 or [::]:51820. */
  readonly local: string;
  readonly processes: readonly { readonly name: string; readonly pid: number }[];
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
  /**
   * UDP sockets bound to `port` in the namespace (IPv4 and IPv6), with the processes
   * holding them when the system says (root: `ss -p`). A read. Optional: without it the
   * gateway does not check its listen port before using it.
   */
  udpSockets?(port: number): Promise<UdpSocketHolder[]>;
  /** The FDB of a VXLAN device: its flood list and what it learned. */
  fdb(dev: string): Promise<VxlanFdb>;
  /**
   * The FDBs of several VXLAN devices in one read (one command however many devices:
   * an apply's reads do not grow with the network count). Every device asked for is in
   * the map; one without entries has empty lists.
   */
  fdbAll(devs: readonly string[]): Promise<Map<string, VxlanFdb>>;
  /**
   * Creates a VXLAN device that learns remote MACs from the tunnel, bounded to
   * VXLAN_FDB_LIMIT entries (see docs/gateway.md, "Known unicast").
   */
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
  /** Deletes one learned entry; an entry that aged out meanwhile is no error. */
  forgetLearned(dev: string, mac: string, dst: string): Promise<void>;
}

/** The all-zero MAC: FDB entries with it are the head-end replication list. */
export const ZERO_MAC = '00:00:00:00:00:00';

/**
 * `maxaddress` of every VXLAN device: static entries plus learned MACs. It bounds the
 * memory a peer can make the kernel spend by sending from made-up MACs (about 200 bytes
 * an entry, so under 1 MiB a network). When full, new MACs are not learned and frames to
 * them are flooded, as before learning existed. The kernel cannot change it on a live
 * device, so a device with another bound is recreated.
 */
export const VXLAN_FDB_LIMIT = 4096;
