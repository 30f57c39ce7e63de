/**
 * The gateway's desired config: the whole federation state of one cluster gateway, in
 * one object, as the cluster agent sends it to `apply`. parseGatewayConfig() validates
 * everything (shape, ranges, cross-references, MTU arithmetic) before any command runs.
 */
import { z } from 'zod';
import { ConfigError, type ConfigIssue } from './errors.js';
import { isVxlanDeviceName } from './names.js';
import { MIN_NETWORK_MTU, MIN_UNDERLAY_MTU, maxNetworkMtu } from './mtu.js';

/** VXLAN network identifiers are 24 bits; 0 is reserved here as "unset". */
export const VNI_MIN = 1;
export const VNI_MAX = 16_777_215;

/**
 * The VXLAN UDP port (default of config `vxlanPort`). VXLAN travels inside the tunnel
 * only, so any port works, but the member-cluster gateway shares the node's namespace
 * with the network plugin and the guard drops the port outside the tunnel: IANA's 4789
 * is Calico's and Antrea's, 8472 Flannel's and Cilium's, 6081 Geneve's. 4797 is no
 * plugin's or multi-cluster tool's default, unassigned at IANA and below the ephemeral
 * range (docs/install.md, "The VXLAN port", has the sources). Every gateway of a
 * federation must use the same port; no other VXLAN or Geneve device in the namespace may.
 */
export const DEFAULT_VXLAN_PORT = 4797;

/**
 * The WireGuard UDP port the cluster agent asks for unless its config sets
 * `wireguard.listenPort`. Not WireGuard's customary 51820: the member-cluster gateway
 * shares the node's namespace with the network plugin, and Calico, Flannel, Antrea and
 * Kilo listen on 51820 (Calico and Flannel also 51821), Cilium on 51871, Liqo 51840.
 * 17820 is no plugin's or multi-cluster tool's default, unassigned at IANA, below the
 * ephemeral range (32768-60999) and Kubernetes' NodePort range (30000-32767);
 * docs/install.md, "The WireGuard port", has the sources. Each cluster announces its
 * own port in its endpoints, so clusters may differ.
 */
export const DEFAULT_WIREGUARD_PORT = 17820;

/** WireGuard keys are 32 bytes, base64 with one "=" of padding (44 characters). */
export const WG_KEY_RE = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

const label = (what: string) =>
  z
    .string()
    .regex(
      DNS1123_LABEL,
      `${what} must be a DNS-1123 label (lowercase letters, digits, "-"; at most 63)`,
    );

const wgKey = z
  .string()
  .regex(
    WG_KEY_RE,
    'not a WireGuard key (expected 44 characters of base64, as `wg pubkey` prints)',
  );

/**
 * A peer has 1..8 endpoints: the broker's LIMITS.endpoints, which the gateway may not
 * import (cluster-agent/gateway-config.test.ts checks the two agree).
 */
const MAX_PEER_ENDPOINTS = 8;

/** host:port, where host is an IPv4 address, [IPv6] or a DNS name. */
const endpoint = z
  .string()
  .regex(
    /^(\[[0-9a-fA-F:.]+\]|[0-9]{1,3}(\.[0-9]{1,3}){3}|[a-zA-Z0-9]([-a-zA-Z0-9.]*[a-zA-Z0-9])?):[0-9]{1,5}$/,
    'endpoint must be host:port (IPv4, [IPv6] or a DNS name)',
  )
  .refine((s) => {
    const port = Number(s.slice(s.lastIndexOf(':') + 1));
    return port >= 1 && port <= 65_535;
  }, 'endpoint port must be 1..65535');

const mtu = z.union([
  z.literal('auto'),
  z
    .int('mtu must be "auto" or an integer')
    .min(MIN_NETWORK_MTU, `MTU too small: the minimum is ${MIN_NETWORK_MTU} (IPv6 needs it)`),
]);

const ovsSegment = z.strictObject({
  type: z.literal('ovs'),
  bridge: z.string().min(1).max(15),
  vlan: z.int().min(1).max(4094).optional(),
});

const linuxBridgeSegment = z.strictObject({
  type: z.literal('linux-bridge'),
  bridge: z.string().min(1).max(15),
});

const segment = z.discriminatedUnion('type', [ovsSegment, linuxBridgeSegment], {
  error: (iss) =>
    iss.input === undefined
      ? 'segment is required: {type: "ovs", bridge} or {type: "linux-bridge", bridge}'
      : 'segment.type must be "ovs" or "linux-bridge"',
});

/**
 * The bound on broadcast and multicast frames (destination MAC
 * with the group bit) per network per peer and direction, in frames per second, with a
 * burst of `burst` frames. Enforced by loop-guard.ts on the VXLAN packets in the tunnel.
 */
export const DEFAULT_BUM_LIMIT = { packetsPerSecond: 1000, burst: 200 } as const;

const bumLimit = z.strictObject({
  packetsPerSecond: z
    .int('bumLimit.packetsPerSecond must be an integer (frames per second)')
    .min(1, 'bumLimit.packetsPerSecond must be at least 1')
    .max(1_000_000, 'bumLimit.packetsPerSecond must be at most 1000000'),
  burst: z
    .int('bumLimit.burst must be an integer (frames)')
    .min(1, 'bumLimit.burst must be at least 1')
    .max(1_000_000, 'bumLimit.burst must be at most 1000000'),
});

const peerSchema = z.strictObject({
  name: label('peer name'),
  publicKey: wgKey,
  /**
   * The peer's announced next key while it rotates: held as a standby entry and promoted
   * when it handshakes (standby-keys.ts).
   */
  nextPublicKey: wgKey.optional(),
  /** Tried in order by endpoint fail-over (endpoint-failover.ts); the broker's limit. */
  endpoints: z
    .array(endpoint)
    .min(1, 'a peer needs at least one endpoint')
    .max(MAX_PEER_ENDPOINTS, `a peer has at most ${MAX_PEER_ENDPOINTS} endpoints`),
  /** Inside-the-tunnel address of the peer gateway (no prefix length). */
  transitAddress: z.ipv4('transitAddress must be an IPv4 address without prefix length'),
  /** Seconds; keeps NAT state and makes handshake age meaningful. 0 disables. */
  persistentKeepalive: z.int().min(0).max(65_535).default(25),
});

const networkSchema = z.strictObject({
  name: label('network name'),
  vni: z
    .int('vni must be an integer')
    .min(VNI_MIN, `vni out of range: must be ${VNI_MIN}..${VNI_MAX}`)
    .max(VNI_MAX, `vni out of range: must be ${VNI_MIN}..${VNI_MAX}`),
  segment,
  mtu: mtu.default('auto'),
  /** Names of the peers this network is carried to. */
  peers: z.array(z.string()).default([]),
  /** Overrides the gateway's bumLimit for this network. */
  bumLimit: bumLimit.optional(),
});

const configSchema = z.strictObject({
  /** This cluster's id (DNS-1123 label). */
  identity: label('identity'),
  /**
   * Namespace that holds the data plane (the lab runs each gateway's state inside one);
   * the gateway process itself stays in the root namespace and passes it to the runner.
   */
  netns: z.string().min(1).optional(),
  wireguard: z.strictObject({
    ifname: z
      .string()
      .regex(
        /^l2f[a-z0-9-]{1,12}$/,
        'ifname must start with "l2f" and be at most 15 characters of [a-z0-9-] (names are machine-wide with wireguard-go)',
      )
      .refine(
        (n) => !isVxlanDeviceName(n),
        'ifname must not be "l2fv" followed by digits: those are the names of the VXLAN devices (l2fv<VNI>); pick another, e.g. l2fwg0',
      ),
    listenPort: z.int().min(1).max(65_535),
    /** Absolute path; the gateway creates the key here (mode 0600) when it is missing. */
    privateKeyFile: z.string().startsWith('/', 'privateKeyFile must be an absolute path'),
    /**
     * Keep the key the tunnel uses now although RotateKey wrote a new one (the agent,
     * while peers do not hold the new key yet); without a tunnel key it has no effect.
     */
    keepKey: z.boolean().optional(),
  }),
  /** Own inside-the-tunnel address with prefix, e.g. 10.99.0.1/24. */
  transitAddress: z.cidrv4('transitAddress must be an IPv4 CIDR like 10.99.0.1/24'),
  underlayMtu: z
    .int()
    .min(MIN_UNDERLAY_MTU, `MTU too small: underlayMtu must be at least ${MIN_UNDERLAY_MTU}`)
    .max(65_535)
    .default(1500),
  /** UDP port of the VXLAN devices (see DEFAULT_VXLAN_PORT). */
  vxlanPort: z.int().min(1).max(65_535).default(DEFAULT_VXLAN_PORT),
  /** Broadcast/multicast bound per network per peer and direction (DEFAULT_BUM_LIMIT). */
  bumLimit: bumLimit.default({ ...DEFAULT_BUM_LIMIT }),
  peers: z.array(peerSchema).default([]),
  networks: z.array(networkSchema).default([]),
});

/** A validated desired config, with defaults filled in. */
export type GatewayConfig = z.output<typeof configSchema>;
/** What a caller may pass (defaults optional). */
export type GatewayConfigInput = z.input<typeof configSchema>;
export type PeerConfig = GatewayConfig['peers'][number];
export type NetworkConfig = GatewayConfig['networks'][number];
export type SegmentConfig = NetworkConfig['segment'];

function ipv4ToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => acc * 256 + Number(o), 0);
}

/** True when ip lies inside cidr (IPv4). */
export function inSubnet(ip: string, cidr: string): boolean {
  const [base, len] = cidr.split('/') as [string, string];
  const bits = Number(len);
  const size = 2 ** (32 - bits);
  return Math.floor(ipv4ToInt(ip) / size) === Math.floor(ipv4ToInt(base) / size);
}

/**
 * The local segment a network plugs into, as a comparable key: the bridge, and for OVS
 * its VLAN. A Linux bridge and an untagged OVS bridge of one name are one device, so
 * they share a key. Two networks with one key would be one broadcast domain (refused
 * here, by the agent and by `l2fed validate`).
 */
export function segmentKey(s: { readonly bridge: string; readonly vlan?: number }): string {
  return s.vlan === undefined ? s.bridge : `${s.bridge} vlan ${s.vlan}`;
}

/** The address part of a CIDR. */
export function addressOf(cidr: string): string {
  return cidr.split('/')[0]!;
}

function duplicates<T>(items: readonly T[], key: (t: T) => string): Map<string, number[]> {
  const seen = new Map<string, number[]>();
  items.forEach((item, i) => seen.set(key(item), [...(seen.get(key(item)) ?? []), i]));
  return new Map([...seen].filter(([, idx]) => idx.length > 1));
}

/** Cross-field rules that a per-field schema cannot express. */
function crossCheck(c: GatewayConfig): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  // One namespace, one UDP port: the VXLAN socket and the tunnel's cannot share it.
  if (c.vxlanPort === c.wireguard.listenPort) {
    issues.push({
      path: 'vxlanPort',
      message: `vxlanPort ${c.vxlanPort} is also wireguard.listenPort: the VXLAN devices and the tunnel each need their own UDP port; set vxlanPort back to its default (${DEFAULT_VXLAN_PORT}) or another free port`,
    });
  }
  // Every holder of a duplicate gets an issue naming the others (by name too), so a caller
  // can tell which entries clash and drop all of them rather than guess the genuine one.
  const dup = <T extends { name: string }>(
    items: readonly T[],
    list: string,
    field: string,
    key: (t: T) => string,
  ) => {
    for (const [value, idx] of duplicates(items, key)) {
      for (const i of idx) {
        const others = idx.filter((j) => j !== i).map((j) => `${list}[${j}] ${items[j]!.name}`);
        issues.push({
          path: `${list}[${i}].${field}`,
          message: `duplicate ${field} ${value}: ${items[i]!.name} shares it with ${others.join(', ')}`,
        });
      }
    }
  };
  dup(c.peers, 'peers', 'name', (p) => p.name);
  dup(c.peers, 'peers', 'publicKey', (p) => p.publicKey);
  // WireGuard knows an entry only by its key: a next key must be nobody else's key.
  c.peers.forEach((p, i) => {
    const next = p.nextPublicKey;
    const clash = c.peers.find(
      (q, j) => q.publicKey === next || (j !== i && q.nextPublicKey === next),
    );
    if (next && clash) {
      issues.push({
        path: `peers[${i}].nextPublicKey`,
        message: `next key ${next} of ${p.name} is also a key of ${clash.name}; every entry needs its own key`,
      });
    }
  });
  dup(c.peers, 'peers', 'transitAddress', (p) => p.transitAddress);
  dup(c.networks, 'networks', 'name', (n) => n.name);
  dup(c.networks, 'networks', 'vni', (n) => String(n.vni));
  // Two networks on one segment would merge them into one broadcast domain.
  dup(c.networks, 'networks', 'segment', (n) => segmentKey(n.segment));

  const own = addressOf(c.transitAddress);
  c.peers.forEach((p, i) => {
    if (p.transitAddress === own) {
      issues.push({
        path: `peers[${i}].transitAddress`,
        message: `${p.transitAddress} is this gateway's own transit address`,
      });
    } else if (!inSubnet(p.transitAddress, c.transitAddress)) {
      issues.push({
        path: `peers[${i}].transitAddress`,
        message: `${p.transitAddress} is outside the transit subnet ${c.transitAddress}`,
      });
    }
  });

  const peerNames = new Set(c.peers.map((p) => p.name));
  const maxMtu = maxNetworkMtu(c.underlayMtu);
  c.networks.forEach((n, i) => {
    n.peers.forEach((name, j) => {
      if (!peerNames.has(name)) {
        issues.push({
          path: `networks[${i}].peers[${j}]`,
          message: `unknown peer "${name}" (known: ${[...peerNames].join(', ') || 'none'})`,
        });
      }
    });
    if (n.mtu !== 'auto' && n.mtu > maxMtu) {
      issues.push({
        path: `networks[${i}].mtu`,
        message: `MTU too large: ${n.mtu} > ${maxMtu} (underlay ${c.underlayMtu} minus WireGuard 80 and VXLAN 50)`,
      });
    }
  });
  return issues;
}

function pathOf(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i === 0 ? '' : '.'}${String(p)}`))
    .join('');
}

/**
 * Validates a desired config and fills in defaults. Pure: runs no command.
 * @throws ConfigError listing every problem with the field path that caused it.
 */
export function parseGatewayConfig(input: unknown): GatewayConfig {
  const r = configSchema.safeParse(input);
  if (!r.success) {
    throw new ConfigError(
      r.error.issues.map((i) => ({ path: pathOf(i.path), message: i.message })),
      { cause: r.error },
    );
  }
  const issues = crossCheck(r.data);
  if (issues.length) throw new ConfigError(issues);
  return r.data;
}
