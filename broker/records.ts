/**
 * KV layout: bucket names, key shapes and the JSON records stored under them. All
 * broker state lives here (JetStream KV), never in broker memory.
 *
 *   l2fed_clusters  <clusterId>                ClusterRecord
 *   l2fed_exports   <clusterId>                ExportsRecord (declared exports + VNIs)
 *   l2fed_peerings  <clusterId>                PeeringsRecord (declared peerings)
 *   l2fed_networks  net.<name>                 NetworkRecord (name -> VNI binding)
 *                   vni.<vni>                  VniClaim (VNI -> name; quarantine)
 *                   member.<name>.<clusterId>  MemberRecord (who exports a name, its MTU ask)
 *   l2fed_transit   <a-b-c-d>                  TransitClaim (address -> cluster)
 *   l2fed_peermaps  <clusterId>                PeerMap (derived; what agents watch)
 *   l2fed_health    <clusterId>                HealthRecord (last tunnel health report)
 *   l2fed_pubkeys   <hex of the WireGuard key> KeyClaim (key -> cluster; keys are unique)
 *   l2fed_quotas    <clusterId>                QuotaRecord (the cluster's recent VNI allocations)
 */

export const BUCKETS = {
  clusters: 'l2fed_clusters',
  exports: 'l2fed_exports',
  peerings: 'l2fed_peerings',
  networks: 'l2fed_networks',
  transit: 'l2fed_transit',
  peerMaps: 'l2fed_peermaps',
  health: 'l2fed_health',
  publicKeys: 'l2fed_pubkeys',
  quotas: 'l2fed_quotas',
} as const;
export type BucketId = keyof typeof BUCKETS;

export const KEYS = {
  network: (name: string) => `net.${name}`,
  vni: (vni: number) => `vni.${vni}`,
  member: (name: string, clusterId: string) => `member.${name}.${clusterId}`,
  membersOf: (name: string) => `member.${name}.*`,
  membershipsOf: (clusterId: string) => `member.*.${clusterId}`,
  transit: (address: string) => address.replaceAll('.', '-'),
  /** Hex of the 32 key bytes: base64 has '+', which KV keys may not hold. */
  publicKey: (publicKey: string) => Buffer.from(publicKey, 'base64').toString('hex'),
} as const;

export interface ClusterRecord {
  readonly id: string;
  readonly publicKey: string;
  readonly endpoints: readonly string[];
  readonly capabilities: readonly string[];
  /**
   * The UDP port of the cluster's VXLAN devices (agent config `vxlanPort`), as it
   * registered; absent for an agent that does not send it (older). Two clusters whose
   * ports differ cannot carry L2 to each other: their pair is left out of peer maps.
   */
  readonly vxlanPort?: number;
  readonly transitAddress: string;
  readonly registeredAt: string;
  /** Random per registration attempt: tells our own timed-out write from a rival's. */
  readonly nonce: string;
  /** Set by the admin API's CordonCluster: the cluster is left out of every peer map. */
  readonly cordon?: CordonRecord;
  /** When `publicKey` was set by a rotation or a rejoin (broker clock); absent = registeredAt. */
  readonly keySince?: string;
  /**
   * A gateway with another key asks to register (a replaced node) while the registered
   * key's gateway was heard from less than rejoinAfterMs ago; cleared when a key is accepted.
   */
  readonly rejoin?: RejoinRecord;
  /** A rotation in progress: the key the cluster switches to (key-rotation.ts). */
  readonly nextKey?: NextKeyRecord;
}

/**
 * An announced next key: peers' gateways install it as a standby entry and acknowledge
 * (ack-key); the cluster switches once every peer holds it, then commits (rotate-key).
 */
export interface NextKeyRecord {
  readonly publicKey: string;
  /** Clusters that acknowledged that their gateway holds `publicKey`, sorted. */
  readonly heldBy: readonly string[];
  /** When it was announced (broker clock, ISO-8601). */
  readonly since: string;
}

/** A pending rejoin: the key a replacement gateway asks to register with, since when. */
export interface RejoinRecord {
  readonly publicKey: string;
  /** First refused request with this key (broker clock, ISO-8601). */
  readonly since: string;
}

/** Who cordoned a cluster, when and why (admin API; see docs/admin-api.md). */
export interface CordonRecord {
  readonly by: string;
  readonly reason: string;
  readonly at: string;
}

export interface NetworkRef {
  readonly name: string;
  readonly vni: number;
  /**
   * The network's one MTU across all its members (network-mtu.ts). Absent while no
   * member has sent an MTU ask (agents older than the MTU agreement).
   */
  readonly mtu?: AgreedMtu;
}

/**
 * What a member asks of a network's MTU (exports request `mtu`): bytes of the inner
 * Ethernet payload, as a pod interface's MTU. `requested` absent = 'auto' (as much as
 * `capacity`); `capacity` is the most this member's underlay carries (underlay MTU minus
 * WireGuard 80 and VXLAN 50).
 */
export interface MtuAsk {
  readonly requested?: number;
  readonly capacity: number;
}

/**
 * A network's agreed MTU: the smallest `requested` or `capacity` of any member that sent
 * an ask, and who set it (ties: `requested` before `capacity`, then the smaller cluster
 * id). `silent` lists members that sent no ask (older agents): nobody knows whether they
 * carry `value`.
 */
export interface AgreedMtu {
  readonly value: number;
  readonly setBy: string;
  readonly limit: 'requested' | 'capacity';
  readonly silent?: readonly string[];
}

export interface ExportsRecord {
  readonly networks: readonly NetworkRef[];
}

export interface PeeringDecl {
  readonly remoteCluster: string;
  readonly networks?: readonly string[];
}

export interface PeeringsRecord {
  readonly peerings: readonly PeeringDecl[];
}

export interface NetworkRecord {
  readonly name: string;
  readonly vni: number;
  readonly createdAt: string;
  readonly nonce: string;
  /** Recomputed from the member records after every export change (network-mtu.ts). */
  readonly mtu?: AgreedMtu;
  /**
   * Clusters whose join of this binding went through (sorted): each join and leave
   * edits it in its CAS on the binding. Tells whom an agreement change reaches without
   * listing member keys (a listing scans the whole bucket). Absent on bindings written
   * before it existed until their next join or leave; member keys stay the source of
   * truth for release.
   */
  readonly members?: readonly string[];
}

/** A VNI claim. `quarantined` claims become free once `releasedAt + quarantine` passes. */
export type VniClaim =
  | {
      readonly state: 'active';
      readonly network: string;
      readonly claimedAt: string;
      readonly nonce: string;
    }
  | {
      readonly state: 'quarantined';
      readonly network: string;
      readonly releasedAt: string;
    };

export interface MemberRecord {
  readonly since: string;
  /** Absent: the member's agent sent no MTU ask (older than the MTU agreement). */
  readonly mtu?: MtuAsk;
}

/**
 * When the cluster's exports last allocated new VNIs (one entry per VNI, ISO-8601),
 * pruned to the quarantine window: a released VNI stays unusable that long, so these
 * are the VNIs the cluster can keep from others besides the ones it exports.
 */
export interface QuotaRecord {
  readonly allocations: readonly string[];
  /**
   * Names this cluster may hold member keys of besides its exports record's networks:
   * written (with the charge, one CAS) before an exports request joins a new name,
   * dropped once the name is exported or left. With the exports record it bounds the
   * cluster's memberships, so a request needs no key listing (one scans the whole
   * networks bucket on the server). Here, not in the exports record, so that record
   * (and its admin events) only ever names what the cluster exports.
   */
  readonly pending?: readonly string[];
}

/** Who holds a WireGuard public key (l2fed_pubkeys); see key-registry.ts. */
export interface KeyClaim {
  readonly cluster: string;
  readonly claimedAt: string;
  /**
   * The nonce of the cluster record (registration) the key was claimed for; release
   * deletes only a claim with its record's nonce. Absent on claims written before it.
   */
  readonly nonce?: string;
}

export interface TransitClaim {
  readonly cluster: string;
  readonly claimedAt: string;
  readonly nonce: string;
}

/** One peer of a cluster: where to tunnel and which VNIs to carry. */
export interface PeerEntry {
  readonly cluster: string;
  readonly endpoints: readonly string[];
  readonly publicKey: string;
  /** The peer's announced next key (a rotation in progress): install it as a standby entry. */
  readonly nextPublicKey?: string;
  readonly transitAddress: string;
  readonly networks: readonly NetworkRef[];
}

/**
 * The derived view a cluster follows. Deterministic: equal inputs give byte-equal
 * JSON (sorted lists, no timestamps), so agents can skip no-op updates.
 */
export interface PeerMap {
  readonly cluster: string;
  readonly transitAddress: string;
  readonly networks: readonly NetworkRef[];
  readonly peers: readonly PeerEntry[];
  /** This cluster's own rotation in progress: its next key and which peers hold it. */
  readonly nextKey?: { readonly publicKey: string; readonly heldBy: readonly string[] };
  /**
   * Peers both sides declare that the broker leaves out all the same, with why (sorted;
   * absent when none, so such maps stay byte-equal to older ones). For the agent's
   * ClusterPeering status; an older agent drops the field.
   */
  readonly withheld?: readonly WithheldPeer[];
}

/** A mutually declared peer left out of a peer map, and why. */
export interface WithheldPeer {
  readonly cluster: string;
  /** CamelCase, as the agent's condition reasons: VxlanPortMismatch. */
  readonly reason: string;
  /** What is wrong and what to do, for people. */
  readonly message: string;
}

/**
 * The last health report of a cluster (verb `health`), as sent plus the broker's receive
 * time. Written only by that cluster's requests (last writer wins); read by the admin API
 * and `l2fed status`. A reader calls it stale when `reportedAt` is older than a few
 * report intervals: the agent reports after every gateway health check (default 10 s).
 */
export interface HealthRecord {
  /** When the cluster measured it (its clock). */
  readonly reportedAt: string;
  readonly peers: readonly {
    readonly cluster: string;
    readonly state: 'up' | 'degraded' | 'down' | 'unknown';
    readonly rttMs?: number;
    readonly lossPct?: number;
    readonly lastHandshakeAgeSec?: number;
    readonly reason?: string;
  }[];
  readonly networks: readonly {
    readonly name: string;
    readonly vni: number;
    readonly state: 'up' | 'degraded' | 'down' | 'unknown';
    readonly reason?: string;
  }[];
  /** When the broker stored it (broker clock, ISO-8601). */
  readonly storedAt: string;
}
