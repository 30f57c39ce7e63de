/**
 * Peer maps: the per-cluster view derived from registrations, exports and declared
 * peerings. `computePeerMap` is pure; `PeerMapPublisher` reads inputs from KV and
 * writes the result with compare-and-set so concurrent replicas converge.
 */
import type { Store } from './kv-store.js';
import { KEYS } from './records.js';
import type {
  AgreedMtu,
  ClusterRecord,
  ExportsRecord,
  NetworkRef,
  PeerEntry,
  PeerMap,
  PeeringDecl,
  PeeringsRecord,
  NetworkRecord,
} from './records.js';
import { casLoop, done, retry } from './retry.js';

/** What one cluster contributes to peer maps. */
export interface ClusterInputs {
  readonly cluster: ClusterRecord | undefined;
  readonly networks: readonly NetworkRef[];
  readonly peerings: readonly PeeringDecl[];
}

const byName = (a: NetworkRef, b: NetworkRef) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** Networks a declaration offers: the listed ones, or all own exports when omitted. */
function offered(decl: PeeringDecl, exports: readonly NetworkRef[]): Set<string> {
  return new Set(decl.networks ?? exports.map((n) => n.name));
}

/**
 * The peer map of `self`. A remote appears only when both sides declare each other
 * and both are registered (mutual consent) and neither is cordoned; it carries the
 * networks that both declare and both export. Own networks carry their agreed MTU from
 * `mtus` (network-mtu.ts), when there is one. Deterministic output (sorted, no timestamps).
 */
export function computePeerMap(
  self: ClusterInputs & { readonly cluster: ClusterRecord },
  remotes: ReadonlyMap<string, ClusterInputs>,
  mtus: ReadonlyMap<string, AgreedMtu | undefined> = new Map(),
): PeerMap {
  const peers: PeerEntry[] = [];
  // A cordoned cluster keeps its registration and VNIs but tunnels to nobody, and
  // nobody tunnels to it (admin CordonCluster).
  const declared = self.cluster.cordon ? [] : self.peerings;
  for (const decl of declared) {
    const remote = remotes.get(decl.remoteCluster);
    if (!remote?.cluster || remote.cluster.cordon || decl.remoteCluster === self.cluster.id)
      continue;
    const back = remote.peerings.find((p) => p.remoteCluster === self.cluster.id);
    if (!back) continue;
    const mine = offered(decl, self.networks);
    const theirs = offered(back, remote.networks);
    const remoteExports = new Set(remote.networks.map((n) => n.name));
    const networks = self.networks
      .filter((n) => mine.has(n.name) && theirs.has(n.name) && remoteExports.has(n.name))
      .map((n) => ({ name: n.name, vni: n.vni }))
      .sort(byName);
    peers.push({
      cluster: remote.cluster.id,
      endpoints: [...remote.cluster.endpoints],
      publicKey: remote.cluster.publicKey,
      ...(remote.cluster.nextKey ? { nextPublicKey: remote.cluster.nextKey.publicKey } : {}),
      transitAddress: remote.cluster.transitAddress,
      networks,
    });
  }
  peers.sort((a, b) => (a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0));
  const next = self.cluster.nextKey;
  const current = new Set(peers.map((p) => p.cluster));
  return {
    cluster: self.cluster.id,
    transitAddress: self.cluster.transitAddress,
    networks: self.networks
      .map((n) => {
        const mtu = mtus.get(n.name);
        return mtu ? { name: n.name, vni: n.vni, mtu } : { name: n.name, vni: n.vni };
      })
      .sort(byName),
    peers,
    // Acks of clusters that are no longer peers neither count nor show.
    ...(next
      ? {
          nextKey: {
            publicKey: next.publicKey,
            heldBy: next.heldBy.filter((c) => current.has(c)).sort(),
          },
        }
      : {}),
  };
}

/** Reads and publishes peer maps; holds no state of its own. */
export class PeerMapPublisher {
  constructor(
    private readonly store: Store,
    private readonly casAttempts: number,
  ) {}

  /** Current inputs of one cluster, straight from KV. */
  async inputs(clusterId: string): Promise<ClusterInputs> {
    const [cluster, exp, peer] = await Promise.all([
      this.store.get<ClusterRecord>('clusters', clusterId),
      this.store.get<ExportsRecord>('exports', clusterId),
      this.store.get<PeeringsRecord>('peerings', clusterId),
    ]);
    return {
      cluster: cluster?.value,
      networks: exp?.value.networks ?? [],
      peerings: peer?.value.peerings ?? [],
    };
  }

  /**
   * Recomputes and writes the peer map of `clusterId` (deletes it when the cluster
   * is not registered). Convergent under concurrency: the map's revision is read
   * before the inputs and the write is a CAS on it, so a write based on inputs
   * older than the previous write always loses and is redone with fresh inputs.
   * The write happens even when the map is unchanged, for the same reason.
   */
  async refresh(clusterId: string): Promise<PeerMap | undefined> {
    return casLoop(`peermap ${clusterId}`, this.casAttempts, async () => {
      const cur = await this.store.read<PeerMap>('peerMaps', clusterId);
      const self = await this.inputs(clusterId);
      if (!self.cluster) {
        if (cur.value === undefined) return done(undefined);
        return (await this.store.delete('peerMaps', clusterId, cur.revision))
          ? done(undefined)
          : retry;
      }
      const remoteIds = [...new Set(self.peerings.map((p) => p.remoteCluster))];
      const remotes = new Map<string, ClusterInputs>(
        await Promise.all(remoteIds.map(async (id) => [id, await this.inputs(id)] as const)),
      );
      const nets = await Promise.all(
        self.networks.map((n) => this.store.get<NetworkRecord>('networks', KEYS.network(n.name))),
      );
      const mtus = new Map(self.networks.map((n, i) => [n.name, nets[i]?.value.mtu]));
      const map = computePeerMap({ ...self, cluster: self.cluster }, remotes, mtus);
      const r = await this.store.cas('peerMaps', clusterId, map, cur.revision);
      return r.type === 'ok' ? done(map) : retry;
    });
  }

  /** Refreshes several maps; each one independently (no ordering between them). */
  async refreshAll(clusterIds: Iterable<string>): Promise<void> {
    await Promise.all([...new Set(clusterIds)].map((id) => this.refresh(id)));
  }
}
