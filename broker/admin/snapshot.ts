/**
 * One consistent-enough read of the federation for an admin call: every broker bucket
 * the views need, read from KV (never from broker memory). Buckets are read in
 * parallel, so a snapshot may straddle a concurrent change; views derived from it
 * say what they saw, and the next call sees the change.
 */
import { BUCKETS } from '../records.js';
import type {
  ClusterRecord,
  ExportsRecord,
  MemberRecord,
  MtuAsk,
  NetworkRecord,
  PeerMap,
  PeeringsRecord,
} from '../records.js';
import type { AdminKv } from './kv.js';

/** Written by cluster agents through the broker verb `health` (see docs/admin-api.md). */
export const HEALTH_BUCKET = 'l2fed_health';

export type TunnelStateName = 'up' | 'degraded' | 'down' | 'unknown';

/** The health record an agent reports; only the fields the admin API reads. */
export interface ClusterHealthRecord {
  readonly reportedAt: string;
  readonly peers?: readonly {
    readonly cluster: string;
    readonly state: TunnelStateName;
    readonly rttMs?: number;
    readonly lossPct?: number;
    readonly lastHandshakeAgeSec?: number;
    readonly reason?: string;
  }[];
  readonly networks?: readonly {
    readonly name: string;
    readonly vni: number;
    readonly state: TunnelStateName;
    readonly reason?: string;
  }[];
}

export interface Member {
  readonly cluster: string;
  readonly since: string;
  /** The member's MTU ask; absent from an agent older than the MTU agreement. */
  readonly mtu?: MtuAsk;
}

export interface FederationSnapshot {
  readonly clusters: ReadonlyMap<string, ClusterRecord>;
  readonly exports: ReadonlyMap<string, ExportsRecord>;
  readonly peerings: ReadonlyMap<string, PeeringsRecord>;
  /** Bound networks by name (`net.<name>`). */
  readonly networks: ReadonlyMap<string, NetworkRecord>;
  /** Exporters by network name (`member.<name>.<cluster>`), sorted by cluster. */
  readonly members: ReadonlyMap<string, readonly Member[]>;
  readonly peerMaps: ReadonlyMap<string, PeerMap>;
  readonly health: ReadonlyMap<string, ClusterHealthRecord>;
}

const toMap = <T>(items: readonly { key: string; value: T }[]) =>
  new Map(items.map((i) => [i.key, i.value] as const));

/** Reads every bucket the admin views need. The health bucket may be missing. */
export async function readSnapshot(kv: AdminKv): Promise<FederationSnapshot> {
  const [clusters, exports, peerings, nets, members, peerMaps, health] = await Promise.all([
    kv.list<ClusterRecord>(BUCKETS.clusters),
    kv.list<ExportsRecord>(BUCKETS.exports),
    kv.list<PeeringsRecord>(BUCKETS.peerings),
    kv.list<NetworkRecord>(BUCKETS.networks, 'net.*'),
    kv.list<MemberRecord>(BUCKETS.networks, 'member.*.*'),
    kv.list<PeerMap>(BUCKETS.peerMaps),
    kv.list<ClusterHealthRecord>(HEALTH_BUCKET, '>', true),
  ]);
  const byName = new Map<string, Member[]>();
  for (const m of members) {
    const [, name, cluster] = m.key.split('.') as [string, string, string];
    const list = byName.get(name) ?? [];
    list.push(
      m.value.mtu
        ? { cluster, since: m.value.since, mtu: m.value.mtu }
        : { cluster, since: m.value.since },
    );
    byName.set(name, list);
  }
  for (const list of byName.values()) list.sort((a, b) => (a.cluster < b.cluster ? -1 : 1));
  return {
    clusters: toMap(clusters),
    exports: toMap(exports),
    peerings: toMap(peerings),
    networks: new Map(nets.map((n) => [n.key.slice('net.'.length), n.value] as const)),
    members: byName,
    peerMaps: toMap(peerMaps),
    health: toMap(health),
  };
}
