/**
 * Peer maps: the per-cluster view derived from registrations, exports and declared
 * peerings. `computePeerMap` is pure; `PeerMapPublisher` reads inputs from KV and
 * writes the result with compare-and-set so concurrent replicas converge.
 */
import type { Store, Versioned } from './kv-store.js';
import { KEYS, type BucketId } from './records.js';
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
  WithheldPeer,
} from './records.js';
import { casLoop, done, retry, type Attempt } from './retry.js';

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
 * Whether two registered clusters' VXLAN ports are known and differ. Each gateway's
 * VXLAN devices send to the port they listen on (one `dstport` per device), so frames
 * between two such clusters would reach no VXLAN socket: the tunnel would be up and
 * nothing carried. Unknown (an older agent that does not send it) is not a mismatch.
 */
export function vxlanPortsDiffer(a: ClusterRecord, b: ClusterRecord): boolean {
  return a.vxlanPort !== undefined && b.vxlanPort !== undefined && a.vxlanPort !== b.vxlanPort;
}

/** The message of a VXLAN port mismatch, `self` first (peer maps and the admin view). */
export function vxlanPortMessage(self: ClusterRecord, remote: ClusterRecord): string {
  return (
    `VXLAN ports differ: ${self.id} uses ${self.vxlanPort}, ${remote.id} uses ` +
    `${remote.vxlanPort}, and frames sent to one port reach no VXLAN device listening on ` +
    `the other; set the same vxlanPort in both agents' config (every cluster of a ` +
    `federation uses one port)`
  );
}

/**
 * Why the broker leaves `remoteId` out of the map of `self` although both declare each
 * other, both are registered and neither is cordoned; undefined when it does not (or
 * when consent is missing: the agent says that itself). Pure.
 */
export function withheldPeer(
  self: ClusterInputs & { readonly cluster: ClusterRecord },
  remoteId: string,
  remote: ClusterInputs | undefined,
): WithheldPeer | undefined {
  if (self.cluster.cordon || !remote?.cluster || remote.cluster.cordon) return undefined;
  if (!self.peerings.some((p) => p.remoteCluster === remoteId)) return undefined;
  if (!remote.peerings.some((p) => p.remoteCluster === self.cluster.id)) return undefined;
  if (!vxlanPortsDiffer(self.cluster, remote.cluster)) return undefined;
  return {
    cluster: remoteId,
    reason: 'VxlanPortMismatch',
    message: vxlanPortMessage(self.cluster, remote.cluster),
  };
}

/**
 * The entry of `remoteId` in the map of `self`, or undefined when it has none: both
 * must declare each other (mutual consent), both be registered, neither cordoned, and
 * their VXLAN ports not differ (vxlanPortsDiffer). It carries the networks that both
 * declare and both export. Pure.
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
  if (!back || vxlanPortsDiffer(self.cluster, remote.cluster)) return undefined;
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

const byCluster = (a: { readonly cluster: string }, b: { readonly cluster: string }) =>
  a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0;

/** The map of `self` with these peers and own networks (sorted; acks filtered). */
function assemble(
  self: ClusterRecord,
  networks: readonly NetworkRef[],
  peers: PeerEntry[],
  withheld: WithheldPeer[],
): PeerMap {
  peers.sort(byCluster);
  withheld.sort(byCluster);
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
    ...(withheld.length ? { withheld } : {}),
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
  const withheld: WithheldPeer[] = [];
  for (const id of new Set(self.peerings.map((p) => p.remoteCluster))) {
    const entry = peerEntry(self, id, remotes.get(id));
    if (entry) peers.push(entry);
    const w = withheldPeer(self, id, remotes.get(id));
    if (w) withheld.push(w);
  }
  const networks = self.networks
    .map((n) => {
      const mtu = mtus.get(n.name);
      return mtu ? { name: n.name, vni: n.vni, mtu } : { name: n.name, vni: n.vni };
    })
    .sort(byName);
  return assemble(self.cluster, networks, peers, withheld);
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
  const withheld = self.cluster.cordon
    ? []
    : (map.withheld ?? []).filter((w) => w.cluster !== remoteId);
  const w = withheldPeer(self, remoteId, remote);
  if (w) withheld.push(w);
  return assemble(self.cluster, map.networks, peers, withheld);
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

/** What one queued refresh of a map must redo; several requests merge into one. */
interface Job {
  /** The whole map (its own inputs changed, or no map yet). */
  full: boolean;
  /** Entries of these peers (their inputs changed). */
  readonly peers: Set<string>;
  /**
   * The entries in `peers` are there because this cluster's own declarations changed
   * (not only the peers' inputs): the job may not end early when it declares none of them.
   */
  own: boolean;
  /** Agreed MTU of these own networks. */
  readonly mtus: Set<string>;
  readonly done: Promise<void>;
  resolve(): void;
  reject(err: unknown): void;
}

function newJob(): Job {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const done = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  // A job nobody awaits any more (its requester failed on another) must not be unhandled.
  done.catch(() => undefined);
  return { full: false, peers: new Set(), own: false, mtus: new Set(), done, resolve, reject };
}

/**
 * Reads and publishes peer maps. Holds no federation state: only, per map, the refresh
 * running in this replica and at most one queued behind it, into which later requests
 * merge. Requests in one replica thus never race each other's CAS on a map, and a busy
 * map is recomputed once for many changes, not once per change.
 */
export class PeerMapPublisher {
  private readonly lanes = new Map<string, { queued: Job | undefined }>();
  /**
   * Input reads of running jobs, for other jobs to share: `tick` orders this replica's
   * events; a read stamped after a job read its map's revision is as good as the job's
   * own read (it started later), so a job uses it instead of reading again.
   */
  private tick = 0;
  private readonly shared = new Map<string, { stamp: number; value: Promise<unknown> }>();
  /** `since` of each running job attempt, to drop reads nobody can share. */
  private readonly running = new Set<number>();

  constructor(
    private readonly store: Store,
    private readonly casAttempts: number,
  ) {}

  /** Current inputs of one cluster, straight from KV. */
  async inputs(clusterId: string): Promise<ClusterInputs> {
    return this.inputsSince(clusterId, Infinity);
  }

  /** Inputs of one cluster as read after `since` (a tick): shared reads or new ones. */
  private async inputsSince(clusterId: string, since: number): Promise<ClusterInputs> {
    const [cluster, exp, peer] = await Promise.all([
      this.readSince<ClusterRecord>('clusters', clusterId, since),
      this.readSince<ExportsRecord>('exports', clusterId, since),
      this.readSince<PeeringsRecord>('peerings', clusterId, since),
    ]);
    return {
      cluster: cluster?.value,
      networks: exp?.value.networks ?? [],
      peerings: peer?.value.peerings ?? [],
    };
  }

  /**
   * `store.get`, or a get of the same key that another job started after `since`
   * (Infinity: never shared). Values are shared, so never mutated.
   */
  private readSince<T>(
    bucket: BucketId,
    key: string,
    since: number,
  ): Promise<Versioned<T> | undefined> {
    const id = `${bucket}/${key}`;
    const hit = this.shared.get(id);
    if (hit && hit.stamp > since) return hit.value as Promise<Versioned<T> | undefined>;
    const value = this.store.get<T>(bucket, key);
    if (since !== Infinity) {
      this.shared.set(id, { stamp: ++this.tick, value });
      if (this.shared.size > this.pruneAt) this.prune();
    }
    return value;
  }

  /** Size of `shared` that triggers the next prune (doubles past what a prune kept). */
  private pruneAt = 4096;

  /** Drops shared reads that no running job may use (stamped before every `since`). */
  private prune(): void {
    let oldest = Infinity;
    for (const since of this.running) oldest = Math.min(oldest, since);
    for (const [id, e] of this.shared) if (e.stamp <= oldest) this.shared.delete(id);
    this.pruneAt = Math.max(4096, 2 * this.shared.size);
  }

  /** Runs one attempt of a job with its `since` registered (see `shared`). */
  private async attempt<T>(fn: (since: () => number) => Promise<T>): Promise<T> {
    const marks: number[] = [];
    const mark = () => {
      const since = ++this.tick;
      this.running.add(since);
      marks.push(since);
      return since;
    };
    try {
      return await fn(mark);
    } finally {
      for (const since of marks) this.running.delete(since);
      if (this.running.size === 0) this.shared.clear();
    }
  }

  /**
   * Recomputes and writes the peer map of `clusterId` (deletes it when the cluster
   * is not registered). Convergent under concurrency: the map's revision is read
   * before the inputs and the write is a CAS on it, so a write based on inputs
   * older than the previous write always loses and is redone with fresh inputs.
   * The write happens even when the map is unchanged, for the same reason.
   * Resolves once a refresh that started after this call has written.
   */
  async refresh(clusterId: string): Promise<void> {
    await this.enqueue(clusterId, (j) => (j.full = true));
  }

  /** Refreshes several maps; each one independently (no ordering between them). */
  async refreshAll(clusterIds: Iterable<string>): Promise<void> {
    await Promise.all([...new Set(clusterIds)].map((id) => this.refresh(id)));
  }

  /**
   * After a change of `center`'s own inputs (record, exports, declared peerings):
   * recomputes `center`'s whole map and, in each of `targets`, only the entry of
   * `center` — the only part of their maps that a change of `center` can alter. Cost:
   * O(peers of `center` + its networks) reads for its map, a few per target; never the
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
    await Promise.all([
      this.refresh(center),
      ...others.map((id) => this.enqueue(id, (j) => j.peers.add(center))),
    ]);
  }

  /**
   * After `center` changed its declared peerings toward `changed` (the remotes whose
   * declaration it added, removed or edited): in `center`'s map only the entries of
   * `changed`, in each of theirs only the entry of `center` (refreshAround's reasoning).
   * `center`'s networks, record and other entries have their own refreshers, so a
   * peerings request reads no network record. A map whose cluster declares none of
   * the peers asked about is left unread (see once()). With nothing changed (the same
   * request again, perhaps after a replica died before refreshing), `center`'s whole map.
   */
  async refreshPeerings(center: string, changed: Iterable<string>): Promise<void> {
    const others = [...new Set(changed)].filter((id) => id !== center);
    if (others.length === 0) return this.refresh(center);
    await Promise.all([
      this.enqueue(center, (j) => {
        j.own = true;
        others.forEach((id) => j.peers.add(id));
      }),
      ...others.map((id) => this.enqueue(id, (j) => j.peers.add(center))),
    ]);
  }

  /**
   * After the agreed MTU of some networks changed: in each cluster's map, replaces the
   * MTU of the networks listed for it (`names` per cluster id). Reads the map and those
   * network records, nothing else; always writes (CAS), so a concurrent refresh that
   * read an older agreement loses and redoes its map.
   */
  async refreshMtus(names: ReadonlyMap<string, readonly string[]>): Promise<void> {
    await Promise.all(
      [...names].map(([id, nets]) => this.enqueue(id, (j) => nets.forEach((n) => j.mtus.add(n)))),
    );
  }

  /**
   * Adds work to the job queued for `id` (a new one if none is queued; the running one
   * started before this call, so it may have read older inputs) and starts the lane.
   */
  private enqueue(id: string, add: (job: Job) => void): Promise<void> {
    let lane = this.lanes.get(id);
    if (!lane) {
      lane = { queued: undefined };
      this.lanes.set(id, lane);
      const l = lane;
      void Promise.resolve().then(() => this.drain(id, l));
    }
    lane.queued ??= newJob();
    add(lane.queued);
    return lane.queued.done;
  }

  private async drain(id: string, lane: { queued: Job | undefined }): Promise<void> {
    for (let job = lane.queued; job; job = lane.queued) {
      lane.queued = undefined;
      try {
        await this.execute(id, job);
        job.resolve();
      } catch (err) {
        job.reject(err);
      }
    }
    this.lanes.delete(id);
  }

  /** One job: read the map's revision, then the inputs it needs, then CAS; retried. */
  private async execute(id: string, job: Job): Promise<void> {
    await casLoop(`peermap ${id}`, this.casAttempts, () =>
      this.attempt((mark) => this.once(id, job, mark)),
    );
  }

  /** One attempt of a job; `mark()` right after the map's revision is read gives its `since`. */
  private async once(id: string, job: Job, mark: () => number): Promise<Attempt<undefined>> {
    const cur = await this.store.read<PeerMap>('peerMaps', id);
    // Every input read from here on is newer than the revision: shared ones too.
    const since = mark();
    if (!job.full && !job.own && job.mtus.size === 0 && cur.value !== undefined) {
      // Only entries of peers whose inputs changed, and an entry exists only while this
      // cluster declares that peer. Its declarations are read after the peer's change was
      // written; it writes its own before refreshing its own map, which reads the peer's
      // inputs after: if it declares none of them now, its own refresh removes or adds
      // their entries. Nothing to write here (nor its record and exports to read).
      const decl = await this.readSince<PeeringsRecord>('peerings', id, since);
      const declared = new Set(decl?.value.peerings.map((p) => p.remoteCluster));
      if (![...job.peers].some((p) => declared.has(p))) return done(undefined);
    }
    // Only MTUs to replace in a map that exists: the map and those networks suffice.
    const mtusOnly = !job.full && job.peers.size === 0 && cur.value !== undefined;
    const self = mtusOnly ? undefined : await this.inputsSince(id, since);
    if (self && !self.cluster) {
      if (cur.value === undefined) return done(undefined);
      return (await this.store.delete('peerMaps', id, cur.revision)) ? done(undefined) : retry;
    }
    let map: PeerMap;
    if (job.full || cur.value === undefined) {
      const s = { ...self!, cluster: self!.cluster! };
      const remotes = await this.inputsOf(
        id,
        s.peerings.map((p) => p.remoteCluster),
        since,
      );
      const nets = await Promise.all(
        s.networks.map((n) =>
          this.readSince<NetworkRecord>('networks', KEYS.network(n.name), since),
        ),
      );
      const mtus = new Map(s.networks.map((n, i) => [n.name, nets[i]?.value.mtu]));
      map = computePeerMap(s, remotes, mtus);
    } else {
      map = cur.value;
      if (job.peers.size > 0) {
        const s = { ...self!, cluster: self!.cluster! };
        const remotes = await this.inputsOf(id, [...job.peers], since);
        for (const [peer, remote] of remotes) map = withPeer(map, s, peer, remote);
      }
      if (job.mtus.size > 0) {
        const names = [...job.mtus];
        const recs = await Promise.all(
          names.map((n) => this.readSince<NetworkRecord>('networks', KEYS.network(n), since)),
        );
        map = withMtus(map, new Map(names.map((n, i) => [n, recs[i]?.value.mtu])));
      }
    }
    const r = await this.store.cas('peerMaps', id, map, cur.revision);
    return r.type === 'ok' ? done(undefined) : retry;
  }

  /**
   * Inputs of the remotes `ids` as far as the map of `self` needs them: a remote's record
   * and exports only when it declares `self` back (else it has no entry, see peerEntry).
   */
  private async inputsOf(
    self: string,
    ids: readonly string[],
    since: number,
  ): Promise<Map<string, ClusterInputs>> {
    const unique = [...new Set(ids)];
    const remote = async (id: string): Promise<ClusterInputs> => {
      const decl = await this.readSince<PeeringsRecord>('peerings', id, since);
      const peerings = decl?.value.peerings ?? [];
      if (!peerings.some((p) => p.remoteCluster === self))
        return { cluster: undefined, networks: [], peerings };
      const [cluster, exp] = await Promise.all([
        this.readSince<ClusterRecord>('clusters', id, since),
        this.readSince<ExportsRecord>('exports', id, since),
      ]);
      return { cluster: cluster?.value, networks: exp?.value.networks ?? [], peerings };
    };
    return new Map(await Promise.all(unique.map(async (id) => [id, await remote(id)] as const)));
  }
}
