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
 * The entry of `remoteId` in the map of `self`, or undefined when it has none: both
 * must declare each other (mutual consent), both be registered and neither cordoned.
 * It carries the networks that both declare and both export. Pure.
 */
export function peerEntry(
  self: ClusterInputs & { readonly cluster: ClusterRecord },
  remoteId: string,
  remote: ClusterInputs | undefined,
): PeerEntry | undefined {
  // A cordoned cluster keeps its registration and VNIs but tunnels to nobody, and
  // nobody tunnels to it (admin CordonCluster).
  if (self.cluster.cordon || remoteId === self.cluster.id) return undefined;
  const decl = self.peerings.find((p) => p.remoteCluster === remoteId);
  if (!decl || !remote?.cluster || remote.cluster.cordon) return undefined;
  const back = remote.peerings.find((p) => p.remoteCluster === self.cluster.id);
  if (!back) return undefined;
  const mine = offered(decl, self.networks);
  const theirs = offered(back, remote.networks);
  const remoteExports = new Set(remote.networks.map((n) => n.name));
  const networks = self.networks
    .filter((n) => mine.has(n.name) && theirs.has(n.name) && remoteExports.has(n.name))
    .map((n) => ({ name: n.name, vni: n.vni }))
    .sort(byName);
  return {
    cluster: remote.cluster.id,
    endpoints: [...remote.cluster.endpoints],
    publicKey: remote.cluster.publicKey,
    ...(remote.cluster.nextKey ? { nextPublicKey: remote.cluster.nextKey.publicKey } : {}),
    transitAddress: remote.cluster.transitAddress,
    networks,
  };
}

const byCluster = (a: PeerEntry, b: PeerEntry) =>
  a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0;

/** The map of `self` with these peers and own networks (sorted; acks filtered). */
function assemble(
  self: ClusterRecord,
  networks: readonly NetworkRef[],
  peers: PeerEntry[],
): PeerMap {
  peers.sort(byCluster);
  const next = self.nextKey;
  const current = new Set(peers.map((p) => p.cluster));
  return {
    cluster: self.id,
    transitAddress: self.transitAddress,
    networks,
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

/**
 * The peer map of `self`. A remote appears only when both sides declare each other
 * and both are registered (mutual consent) and neither is cordoned; it carries the
 * networks that both declare and both export (see peerEntry). Own networks carry their
 * agreed MTU from `mtus` (network-mtu.ts), when there is one. Deterministic output
 * (sorted, no timestamps).
 */
export function computePeerMap(
  self: ClusterInputs & { readonly cluster: ClusterRecord },
  remotes: ReadonlyMap<string, ClusterInputs>,
  mtus: ReadonlyMap<string, AgreedMtu | undefined> = new Map(),
): PeerMap {
  const peers: PeerEntry[] = [];
  for (const id of new Set(self.peerings.map((p) => p.remoteCluster))) {
    const entry = peerEntry(self, id, remotes.get(id));
    if (entry) peers.push(entry);
  }
  const networks = self.networks
    .map((n) => {
      const mtu = mtus.get(n.name);
      return mtu ? { name: n.name, vni: n.vni, mtu } : { name: n.name, vni: n.vni };
    })
    .sort(byName);
  return assemble(self.cluster, networks, peers);
}

/**
 * `map` with only the entry of `remoteId` recomputed from fresh inputs of both sides;
 * every other part is carried over (each has its own refresher, see
 * PeerMapPublisher.refreshAround). Pure.
 */
export function withPeer(
  map: PeerMap,
  self: ClusterInputs & { readonly cluster: ClusterRecord },
  remoteId: string,
  remote: ClusterInputs | undefined,
): PeerMap {
  const entry = peerEntry(self, remoteId, remote);
  const peers = self.cluster.cordon ? [] : map.peers.filter((p) => p.cluster !== remoteId);
  if (entry) peers.push(entry);
  return assemble(self.cluster, map.networks, peers);
}

/** `map` with the agreed MTU of the named networks replaced (absent: removed). Pure. */
export function withMtus(map: PeerMap, mtus: ReadonlyMap<string, AgreedMtu | undefined>): PeerMap {
  return {
    ...map,
    networks: map.networks.map((n) => {
      if (!mtus.has(n.name)) return n;
      const mtu = mtus.get(n.name);
      return mtu ? { name: n.name, vni: n.vni, mtu } : { name: n.name, vni: n.vni };
    }),
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
      const remotes = await this.inputsOf(self.peerings.map((p) => p.remoteCluster));
      const r = await this.writeFull(clusterId, cur, self, remotes);
      return r.ok ? done(r.map) : retry;
    });
  }

  /** Refreshes several maps; each one independently (no ordering between them). */
  async refreshAll(clusterIds: Iterable<string>): Promise<void> {
    await Promise.all([...new Set(clusterIds)].map((id) => this.refresh(id)));
  }

  /**
   * After a change of `center`'s own inputs (record, exports, declared peerings):
   * recomputes `center`'s whole map and, in each of `targets`, only the entry of
   * `center` — the only part of their maps that a change of `center` can alter. Reads
   * every input once: all map revisions first, then the inputs of `center` and of its
   * declared peers and targets, then one CAS per map; a lost CAS redoes that one map
   * alone with fresh reads. Cost: O(peers of `center` + networks of `center`), never the
   * targets' own peers.
   *
   * Why carrying the rest of a target's map over is safe: every part of a map has its
   * own refresher that runs after each change of that part's inputs and reads the map's
   * revision before those inputs (own networks, MTUs and record: the cluster's own
   * requests refresh its whole map; the entry of a peer: that peer's requests; MTUs:
   * refreshMtus). A write carries the parts of the revision it replaces, so any part a
   * stale writer got wrong is redone by the refresher whose CAS that write made fail.
   */
  async refreshAround(center: string, targets: Iterable<string>): Promise<void> {
    const others = [...new Set(targets)].filter((id) => id !== center);
    // Revisions first: every input below is read after them (see refresh()).
    const [cur, ...curs] = await Promise.all(
      [center, ...others].map((id) => this.store.read<PeerMap>('peerMaps', id)),
    );
    const self = await this.inputs(center);
    const remotes = await this.inputsOf([...self.peerings.map((p) => p.remoteCluster), ...others]);
    await Promise.all([
      this.writeFull(center, cur!, self, remotes).then((r) =>
        r.ok ? undefined : this.refresh(center),
      ),
      ...others.map((id, i) =>
        this.writePeer(id, curs[i]!, remotes.get(id)!, center, self).then((ok) =>
          ok ? undefined : this.refreshPeer(id, center),
        ),
      ),
    ]);
  }

  /** The entry of `center` in `clusterId`'s map, redone with fresh reads until its CAS wins. */
  private async refreshPeer(clusterId: string, center: string): Promise<void> {
    await casLoop(`peermap ${clusterId}`, this.casAttempts, async () => {
      const cur = await this.store.read<PeerMap>('peerMaps', clusterId);
      const [self, remote] = await Promise.all([this.inputs(clusterId), this.inputs(center)]);
      return (await this.writePeer(clusterId, cur, self, center, remote)) ? done(undefined) : retry;
    });
  }

  /**
   * After the agreed MTU of some networks changed: in each cluster's map, replaces the
   * MTU of the networks listed for it (`names` per cluster id). Reads the map and those
   * network records, nothing else; always writes (CAS), so a concurrent refresh that
   * read an older agreement loses and redoes its map.
   */
  async refreshMtus(names: ReadonlyMap<string, readonly string[]>): Promise<void> {
    await Promise.all(
      [...names].map(([id, nets]) =>
        casLoop(`peermap ${id}`, this.casAttempts, async () => {
          const cur = await this.store.read<PeerMap>('peerMaps', id);
          // No map yet (its first refresh is under way) or a tombstone: a full refresh.
          if (cur.value === undefined) return done(await this.refresh(id));
          const recs = await Promise.all(
            nets.map((n) => this.store.get<NetworkRecord>('networks', KEYS.network(n))),
          );
          const map = withMtus(cur.value, new Map(nets.map((n, i) => [n, recs[i]?.value.mtu])));
          const r = await this.store.cas('peerMaps', id, map, cur.revision);
          return r.type === 'ok' ? done(map) : retry;
        }),
      ),
    );
  }

  private async inputsOf(ids: readonly string[]): Promise<Map<string, ClusterInputs>> {
    const unique = [...new Set(ids)];
    return new Map(
      await Promise.all(unique.map(async (id) => [id, await this.inputs(id)] as const)),
    );
  }

  /** One CAS of the whole map of `id` (or its delete when unregistered). */
  private async writeFull(
    id: string,
    cur: { value: PeerMap | undefined; revision: number },
    self: ClusterInputs,
    remotes: ReadonlyMap<string, ClusterInputs>,
  ): Promise<{ ok: boolean; map?: PeerMap }> {
    if (!self.cluster) {
      if (cur.value === undefined) return { ok: true };
      return { ok: await this.store.delete('peerMaps', id, cur.revision) };
    }
    const nets = await Promise.all(
      self.networks.map((n) => this.store.get<NetworkRecord>('networks', KEYS.network(n.name))),
    );
    const mtus = new Map(self.networks.map((n, i) => [n.name, nets[i]?.value.mtu]));
    const map = computePeerMap({ ...self, cluster: self.cluster }, remotes, mtus);
    const r = await this.store.cas('peerMaps', id, map, cur.revision);
    return r.type === 'ok' ? { ok: true, map } : { ok: false };
  }

  /**
   * One CAS of `id`'s map with the entry of `center` recomputed (see refreshAround); a
   * map not written yet gets a full refresh instead.
   */
  private async writePeer(
    id: string,
    cur: { value: PeerMap | undefined; revision: number },
    self: ClusterInputs,
    center: string,
    remote: ClusterInputs,
  ): Promise<boolean> {
    if (!self.cluster) {
      if (cur.value === undefined) return true;
      return this.store.delete('peerMaps', id, cur.revision);
    }
    if (cur.value === undefined) {
      await this.refresh(id);
      return true;
    }
    const map = withPeer(cur.value, { ...self, cluster: self.cluster }, center, remote);
    return (await this.store.cas('peerMaps', id, map, cur.revision)).type === 'ok';
  }
}
