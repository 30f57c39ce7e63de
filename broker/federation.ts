/**
 * The broker's operations, one method per protocol verb. Each reads what it needs
 * from KV, changes it with create/CAS, then refreshes every peer map the change can
 * affect. Methods are idempotent (sending the same request twice changes no state the
 * second time; peer maps are rewritten with equal content) and safe to run
 * concurrently on any number of replicas. Requests of one cluster are expected one at
 * a time (see docs/broker.md, limits).
 */
import { coalesceReads, type Store } from './kv-store.js';
import type { BrokerConfig } from './config.js';
import type {
  AckKeyRequest,
  AnnounceKeyRequest,
  HealthRequest,
  RegisterRequest,
  Results,
  RotateKeyRequest,
} from './protocol.js';
import {
  KEYS,
  type ClusterRecord,
  type ExportsRecord,
  type HealthRecord,
  type NetworkRecord,
  type NetworkRef,
  type PeeringDecl,
  type PeeringsRecord,
  type PeerMap,
} from './records.js';
import { VniAllocator } from './vni-allocator.js';
import { checkMtuAsks, NetworkMtu, type NetworkMtuAsk } from './network-mtu.js';
import { TransitAllocator } from './transit-allocator.js';
import { PeerMapPublisher } from './peer-map.js';
import { KeyRegistry } from './key-registry.js';
import { KeyRotation } from './key-rotation.js';
import {
  ClusterTakeoverError,
  InvalidRequestError,
  KeyMismatchError,
  NotRegisteredError,
  QuotaExceededError,
} from './errors.js';
import { casLoop, done, nonce, retry, type Attempt } from './retry.js';

const sameList = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((x, i) => x === b[i]);

const sameMtu = (a: NetworkRecord | undefined, b: NetworkRecord | undefined) =>
  JSON.stringify(a?.mtu ?? null) === JSON.stringify(b?.mtu ?? null);

/**
 * Which networks' agreed MTU to rewrite in which members' maps, from the bindings
 * before and after a change of `self` (whose own map is refreshed whole anyway).
 */
interface MtuChange {
  readonly name: string;
  readonly before?: NetworkRecord | undefined;
  readonly after?: NetworkRecord | undefined;
  /** Members of the network now (absent: not listed yet). */
  readonly members?: readonly string[];
}

function mtuChanges(self: string, changes: readonly MtuChange[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const c of changes) {
    if (sameMtu(c.before, c.after)) continue;
    for (const m of c.members ?? []) if (m !== self) out.set(m, [...(out.get(m) ?? []), c.name]);
  }
  return out;
}

/**
 * `rec` with the VXLAN port the agent sent, or without one when it sent none (an older
 * agent): the record says what the cluster's gateways use now (peer-map.ts pairs only
 * equal ports).
 */
function withVxlanPort(rec: ClusterRecord, port: number | undefined): ClusterRecord {
  const { vxlanPort: _old, ...rest } = rec;
  return port === undefined ? rest : { ...rest, vxlanPort: port };
}

/** What one registration did; `replacedKey` is the old key a rejoin replaced. */
interface Registered {
  readonly cluster: ClusterRecord;
  readonly created: boolean;
  readonly changed: boolean;
  readonly replacedKey?: string;
}

export class Federation {
  readonly vnis: VniAllocator;
  readonly transit: TransitAllocator;
  readonly peerMaps: PeerMapPublisher;
  readonly keys: KeyRegistry;
  readonly rotation: KeyRotation;
  readonly mtus: NetworkMtu;

  private readonly store: Store;

  constructor(
    store: Store,
    private readonly config: BrokerConfig,
    private readonly now: () => number = Date.now,
  ) {
    // Many requests in flight read the same hot keys at once (coalesceReads).
    store = coalesceReads(store);
    this.store = store;
    this.vnis = new VniAllocator(store, config, now);
    this.transit = new TransitAllocator(store, config, now);
    this.peerMaps = new PeerMapPublisher(store, config.casAttempts);
    this.keys = new KeyRegistry(store, config, now);
    this.rotation = new KeyRotation(store, config, this.keys, now);
    this.mtus = new NetworkMtu(store, config.casAttempts, now);
  }

  /**
   * Registers a cluster or updates its endpoints/capabilities. The first
   * registration of an id binds it to its WireGuard public key; a key another cluster
   * holds is refused (KeyInUseError, nothing written). A later registration with
   * another key is a rejoin (the gateway's node was replaced and its key is gone): it
   * is accepted, replacing the key for every peer, once the registered key's gateway
   * has been silent for rejoinAfterMs; before that it is refused (ClusterTakeoverError,
   * naming the wait and the remedy) and noted in the record's `rejoin` for status.
   * Only the cluster's own credentials reach this verb, so the rejoin needs no more
   * proof than a rotation (whose previousKey is public). Idempotent.
   */
  async register(id: string, req: RegisterRequest): Promise<Results['register']> {
    const myNonce = nonce();
    const result = await casLoop<Registered>(`cluster ${id}`, this.config.casAttempts, async () => {
      const cur = await this.store.get<ClusterRecord>('clusters', id);
      if (cur) {
        if (cur.value.publicKey !== req.publicKey) return this.rejoin(id, req, cur);
        if (
          sameList(cur.value.endpoints, req.endpoints) &&
          sameList(cur.value.capabilities, req.capabilities) &&
          cur.value.vxlanPort === req.vxlanPort
        )
          return done({ cluster: cur.value, created: false, changed: false });
        const next = withVxlanPort(
          { ...cur.value, endpoints: req.endpoints, capabilities: req.capabilities },
          req.vxlanPort,
        );
        const r = await this.store.cas('clusters', id, next, cur.revision);
        return r.type === 'ok' ? done({ cluster: next, created: false, changed: true }) : retry;
      }
      // Claim the key before anything else: a refused key leaves no trace. A claim
      // orphaned by a lost race below is stale to others after claimGraceMs.
      await this.keys.claim(id, req.publicKey, myNonce);
      const lease = await this.transit.claim(id, myNonce);
      const rec = withVxlanPort(
        {
          id,
          publicKey: req.publicKey,
          endpoints: req.endpoints,
          capabilities: req.capabilities,
          transitAddress: lease.address,
          registeredAt: new Date(this.now()).toISOString(),
          nonce: myNonce,
        },
        req.vxlanPort,
      );
      const r = await this.store.create('clusters', id, rec);
      if (r.type === 'ok') return done({ cluster: rec, created: true, changed: true });
      const winner = await this.store.get<ClusterRecord>('clusters', id);
      if (winner?.value.nonce === myNonce)
        return done({ cluster: rec, created: true, changed: true });
      await this.transit.releaseLease(lease);
      return retry;
    });
    if (result.replacedKey !== undefined) {
      await this.keys.release(id, result.replacedKey, result.cluster.nonce);
      // The old gateway's last report says nothing about the new one.
      await this.store.delete('health', id);
    }
    // A new cluster declares nobody yet (deregister deletes the declarations before the
    // record), so its own map is all there is to refresh.
    if (result.created) await this.peerMaps.refresh(id);
    else if (result.changed) await this.refreshAround(id);
    return { cluster: result.cluster, created: result.created };
  }

  /**
   * One CAS attempt of a registration with another key than the registered one: accept
   * it (the old key's gateway is silent) or note it and refuse. See register().
   */
  private async rejoin(
    id: string,
    req: RegisterRequest,
    cur: { value: ClusterRecord; revision: number },
  ): Promise<Attempt<Registered>> {
    const health = await this.store.get<HealthRecord>('health', id);
    const heardAt = Math.max(
      Date.parse(cur.value.keySince ?? cur.value.registeredAt),
      health ? Date.parse(health.value.storedAt) : 0,
    );
    const silentMs = Math.max(0, this.now() - heardAt);
    const at = new Date(this.now()).toISOString();
    if (silentMs < this.config.rejoinAfterMs) {
      if (cur.value.rejoin?.publicKey !== req.publicKey) {
        // Noted once per new key (not per retry), so a waiting agent writes nothing more.
        const noted: ClusterRecord = {
          ...cur.value,
          rejoin: { publicKey: req.publicKey, since: at },
        };
        const r = await this.store.cas('clusters', id, noted, cur.revision);
        if (r.type !== 'ok') return retry;
      }
      throw new ClusterTakeoverError(id, {
        silentMs,
        waitMs: this.config.rejoinAfterMs - silentMs,
      });
    }
    // Claim first: a key another cluster holds is refused with nothing written. The
    // record keeps its nonce (one registration), so the claim is bound to it.
    await this.keys.claim(id, req.publicKey, cur.value.nonce);
    // The old gateway's announced next key goes with it: nobody will switch to it.
    const { rejoin: _pending, nextKey: abandoned, ...rest } = cur.value;
    const next = withVxlanPort(
      {
        ...rest,
        publicKey: req.publicKey,
        endpoints: req.endpoints,
        capabilities: req.capabilities,
        keySince: at,
      },
      req.vxlanPort,
    );
    const r = await this.store.cas('clusters', id, next, cur.revision);
    if (r.type !== 'ok') return retry;
    if (abandoned && abandoned.publicKey !== req.publicKey)
      await this.keys.release(id, abandoned.publicKey, cur.value.nonce);
    return done({ cluster: next, created: false, changed: true, replacedKey: cur.value.publicKey });
  }

  /**
   * Replaces the cluster's public key (a gateway key rotation) and rewrites the peer
   * maps of the cluster and its peers, so every peer's agent gets the new key at once.
   * Idempotent: the new key already registered reports rotated=false and changes nothing.
   */
  async rotateKey(id: string, req: RotateKeyRequest): Promise<Results['rotate-key']> {
    let unused: string | undefined; // an announced next key this rotation did not use
    const result = await casLoop(`cluster ${id}`, this.config.casAttempts, async () => {
      const cur = await this.store.get<ClusterRecord>('clusters', id);
      if (!cur) throw new NotRegisteredError(id);
      if (cur.value.publicKey === req.publicKey)
        return done({ cluster: cur.value, rotated: false });
      if (cur.value.publicKey !== req.previousKey) throw new KeyMismatchError(id);
      await this.keys.claim(id, req.publicKey, cur.value.nonce);
      // The commit of an announced rotation drops its next key (now the key).
      const { rejoin: _pending, nextKey, ...rest } = cur.value;
      const next: ClusterRecord = {
        ...rest,
        publicKey: req.publicKey,
        keySince: new Date(this.now()).toISOString(),
      };
      const r = await this.store.cas('clusters', id, next, cur.revision);
      if (r.type !== 'ok') return retry;
      unused = nextKey?.publicKey !== req.publicKey ? nextKey?.publicKey : undefined;
      return done({ cluster: next, rotated: true });
    });
    // With the record's nonce: a registration made since may hold these keys again.
    const held = result.cluster.nonce;
    if (result.rotated) await this.keys.release(id, req.previousKey, held);
    if (unused !== undefined) await this.keys.release(id, unused, held);
    // Also on a repeat: a broker that died between the CAS and the refresh catches up.
    await this.refreshAround(id);
    return result;
  }

  /**
   * Announces the cluster's next gateway key (key-rotation.ts); refreshes the maps of the
   * cluster and its peers, so peers' gateways install it beside the key in use.
   */
  async announceKey(id: string, req: AnnounceKeyRequest): Promise<Results['announce-key']> {
    const r = await this.rotation.announce(id, req);
    await this.refreshAround(id); // also on a repeat, as rotateKey
    return r;
  }

  /** `id`'s gateway holds `req.cluster`'s next key (key-rotation.ts); refreshes that map. */
  async ackKey(id: string, req: AckKeyRequest): Promise<Results['ack-key']> {
    const r = await this.rotation.ack(id, req);
    await this.peerMaps.refresh(req.cluster);
    return r;
  }

  /**
   * Removes a cluster: its exports (releasing VNIs nobody else exports), its
   * peerings, its transit address and its peer map; refreshes its peers' maps.
   * Idempotent: deregistering an unknown cluster reports deregistered=false.
   */
  async deregister(id: string): Promise<Results['deregister']> {
    const decl = await this.store.get<PeeringsRecord>('peerings', id);
    const memberships = await this.memberships(id);
    const left = await Promise.all(
      memberships.map((name) =>
        this.vnis.leave(name, id, (net, members) => this.mtus.afterLeave(net, id, members)),
      ),
    );
    await this.store.delete('exports', id);
    await this.store.delete('peerings', id);
    await this.store.delete('health', id);
    // CAS delete: a concurrent update of the record must not leave it alive while
    // its transit address is released.
    const removed = await casLoop(`cluster ${id}`, this.config.casAttempts, async () => {
      const cur = await this.store.get<ClusterRecord>('clusters', id);
      if (!cur) return done(undefined);
      return (await this.store.delete('clusters', id, cur.revision)) ? done(cur.value) : retry;
    });
    if (removed) {
      await this.transit.release(removed.transitAddress, id, removed.nonce);
      // By the deleted record's nonce: a re-registration since then keeps its claims.
      await this.keys.release(id, removed.publicKey, removed.nonce);
      if (removed.nextKey) await this.keys.release(id, removed.nextKey.publicKey, removed.nonce);
    }
    await Promise.all([
      this.peerMaps.refreshAround(
        id,
        (decl?.value.peerings ?? []).map((p) => p.remoteCluster),
      ),
      this.peerMaps.refreshMtus(
        mtuChanges(
          id,
          left.map((l, i) => ({ name: memberships[i]!, ...l })),
        ),
      ),
    ]);
    return { deregistered: removed !== undefined };
  }

  /**
   * Replaces the set of networks the cluster exports; returns each with its VNI and
   * agreed MTU. `mtu` holds the cluster's MTU ask per network (network-mtu.ts); without
   * it (an older agent) the cluster is a silent member. An ask below 1280, or for a
   * network not listed, is refused (InvalidRequestError naming cluster and field) with
   * nothing written. Joins new names before dropping old ones so a VNI is never released
   * while the cluster still exports the name. Idempotent.
   */
  async setExports(
    id: string,
    networks: readonly string[],
    mtu?: readonly NetworkMtuAsk[],
  ): Promise<Results['exports']> {
    const maxExports = this.config.maxExportsPerCluster;
    if (networks.length > maxExports)
      throw new QuotaExceededError(
        id,
        'maxExportsPerCluster',
        maxExports,
        `a cluster may export at most ${maxExports} networks, the request lists ${networks.length}`,
        'networks',
      );
    checkMtuAsks(id, networks, mtu ?? []);
    // Read at once (one round trip, not four); registration is checked first.
    const [registered, previous, quota, bindings] = await Promise.all([
      this.store.get<ClusterRecord>('clusters', id),
      this.store.get<ExportsRecord>('exports', id),
      this.vnis.quota(id),
      this.vnis.bindings(networks),
    ]);
    const pending = [...(quota.value?.pending ?? [])];
    if (!registered) throw new NotRegisteredError(id);
    // Every name this cluster may be a member of (QuotaRecord.pending): no key listing.
    const exported = (previous?.value.networks ?? []).map((n) => n.name);
    const current = new Set([...exported, ...pending]);
    // Charge new VNIs up front, so a refusal leaves nothing half-joined; new names become
    // pending in the same write, before any member key of them exists, so a request that
    // fails midway leaves no membership the next one cannot see. The bindings read for
    // it also start each join's CAS (joinWith `known`).
    const added = networks.filter((n) => !current.has(n));
    await this.vnis.charge(id, added.filter((n) => !bindings.get(n)).length, { add: added }, quota);
    // The ask goes into the member record before the join, so no recompute sees this
    // member without it; the join's CAS on net.<name> then moves the agreement by this
    // one member (network-mtu.ts), reading no other member's record.
    const askOf = new Map(mtu?.map(({ network, ...ask }) => [network, ask]));
    await Promise.all(
      networks.map((name) => this.mtus.recordAsk(name, id, askOf.get(name), !current.has(name))),
    );
    const sorted = [...networks].sort();
    const joined = await Promise.all(
      sorted.map((name) =>
        this.vnis.joinWith(name, id, {
          memberWritten: true,
          known: bindings.get(name),
          edit: (net, fresh) => this.mtus.afterJoin(net, id, askOf.get(name), fresh),
        }),
      ),
    );
    const refs: NetworkRef[] = joined.map(({ record }) => ({ name: record.name, vni: record.vni }));
    // Memberships read above: the joins only added kept names, and this cluster's
    // requests come one at a time, so nothing else changed them.
    const keep = new Set(networks);
    const dropped = [...current].filter((n) => !keep.has(n)).sort();
    // Only this cluster's requests write its exports record: last writer wins. Names
    // still to leave stay pending until they are left.
    const record: ExportsRecord = { networks: refs };
    await this.store.put('exports', id, record);
    // Its own map needs nothing below (dropped names are not in the record any more).
    const own = this.refreshAround(id);
    own.catch(() => undefined); // awaited below; not unhandled if a leave fails first
    const left = await Promise.all(
      dropped.map((name) =>
        this.vnis.leave(name, id, (net, members) => this.mtus.afterLeave(net, id, members)),
      ),
    );
    // Pending names now exported or left are pending no more (kept: a cheap no-op).
    const settled = [...current, ...added].filter((n) => keep.has(n) || dropped.includes(n));
    if (dropped.length > 0 || pending.length > 0) await this.vnis.charge(id, 0, { drop: settled });
    // A changed agreement reaches every member of the network, peered with us or not.
    const changed: MtuChange[] = [
      // Each join tells the members as of its own step; later joins of its batch
      // refresh their own maps whole.
      ...joined.map((j) => ({ name: j.record.name, before: j.before, after: j.after })),
      ...left.map((l, i) => ({ name: dropped[i]!, ...l })),
    ];
    // Members of a network whose agreement moved (a leave listed them already; a join
    // wrote them into the binding, listed only for a binding older than that list).
    const withMembers = await Promise.all(
      changed.map(async (c) => ({
        ...c,
        members:
          c.members ??
          (sameMtu(c.before, c.after) ? [] : (c.after?.members ?? (await this.membersOf(c.name)))),
      })),
    );
    await Promise.all([own, this.peerMaps.refreshMtus(mtuChanges(id, withMembers))]);
    return {
      networks: joined.map(({ record: r }) =>
        r.mtu ? { name: r.name, vni: r.vni, mtu: r.mtu } : { name: r.name, vni: r.vni },
      ),
    };
  }

  /** Replaces the cluster's declared peerings. Idempotent. */
  async setPeerings(id: string, peerings: readonly PeeringDecl[]): Promise<Results['peerings']> {
    const maxPeerings = this.config.maxPeeringsPerCluster;
    if (peerings.length > maxPeerings)
      throw new QuotaExceededError(
        id,
        'maxPeeringsPerCluster',
        maxPeerings,
        `a cluster may declare at most ${maxPeerings} peerings, the request lists ${peerings.length}`,
        'peerings',
      );
    // Read with the registration check (one round trip, not two).
    const oldDecl = this.store.get<PeeringsRecord>('peerings', id);
    oldDecl.catch(() => undefined); // awaited below unless refused first
    await this.requireRegistered(id);
    peerings.forEach((p, i) => {
      if (p.remoteCluster === id)
        throw new InvalidRequestError(`a cluster cannot peer with itself ("${id}")`, {
          field: `peerings.${i}.remoteCluster`,
        });
    });
    const sorted = [...peerings]
      .map((p) =>
        p.networks === undefined
          ? { remoteCluster: p.remoteCluster }
          : { remoteCluster: p.remoteCluster, networks: [...p.networks].sort() },
      )
      .sort((a, b) => (a.remoteCluster < b.remoteCluster ? -1 : 1));
    const old = await oldDecl;
    const record: PeeringsRecord = { peerings: sorted };
    await this.store.put('peerings', id, record);
    // Only the remotes whose declaration changed can see their maps change (the entry of
    // this cluster there); every other map is untouched. No listing of every cluster.
    const before = new Map(
      (old?.value.peerings ?? []).map((p) => [p.remoteCluster, JSON.stringify(p)]),
    );
    const after = new Map(sorted.map((p) => [p.remoteCluster, JSON.stringify(p)]));
    const changed = [...new Set([...before.keys(), ...after.keys()])].filter(
      (r) => before.get(r) !== after.get(r),
    );
    await this.peerMaps.refreshPeerings(id, changed);
    return { peerings: sorted };
  }

  /**
   * Stores the cluster's latest health report under `l2fed_health/<id>` with the time it
   * was stored. Only the cluster's own requests write its key (last writer wins); touches
   * no peer map. Idempotent apart from `storedAt`.
   */
  async setHealth(id: string, report: HealthRequest): Promise<Results['health']> {
    await this.requireRegistered(id);
    const record: HealthRecord = { ...report, storedAt: new Date(this.now()).toISOString() };
    await this.store.put('health', id, record);
    return { record };
  }

  /** Everything the broker holds about one cluster. Read-only. */
  async get(id: string): Promise<Results['get']> {
    const [inputs, map] = await Promise.all([
      this.peerMaps.inputs(id),
      this.store.get<PeerMap>('peerMaps', id),
    ]);
    return {
      cluster: inputs.cluster ?? null,
      networks: [...inputs.networks],
      peerings: [...inputs.peerings],
      peerMap: map?.value ?? null,
    };
  }

  /**
   * Recomputes every network's agreed MTU and every peer map (and removes maps of
   * clusters that are gone). A safety net for a replica that died between writing
   * inputs and refreshing maps. Safe to
   * run on every replica at once: it is the same convergent CAS refresh.
   */
  async reconcile(concurrency = 16): Promise<{ refreshed: number }> {
    await this.keys.sweep();
    // Agreed MTUs first (a replica may have died between an ask and its recompute); the
    // refresh below then hands them to every map.
    const bound = await this.store.keys('networks', KEYS.network('*'));
    const names = bound.map((k) => k.slice(KEYS.network('').length));
    for (let i = 0; i < names.length; i += concurrency)
      await this.settleMtus(names.slice(i, i + concurrency));
    const ids = new Set([
      ...(await this.store.keys('clusters', '>')),
      ...(await this.store.keys('peerMaps', '>')),
    ]);
    const queue = [...ids];
    await Promise.all(
      Array.from({ length: Math.min(concurrency, queue.length) }, async () => {
        for (let id = queue.pop(); id !== undefined; id = queue.pop())
          await this.peerMaps.refresh(id);
      }),
    );
    return { refreshed: ids.size };
  }

  /** Names `id` is recorded as exporting (from member keys, the source of truth). */
  private async memberships(id: string): Promise<string[]> {
    const keys = await this.store.keys('networks', KEYS.membershipsOf(id));
    return keys.map((k) => k.split('.')[1]!);
  }

  private async requireRegistered(id: string): Promise<void> {
    if (!(await this.store.get<ClusterRecord>('clusters', id))) throw new NotRegisteredError(id);
  }

  /** Refreshes `id`'s map and its entry in the maps of the clusters it declares. */
  private async refreshAround(id: string): Promise<void> {
    const decl = await this.store.get<PeeringsRecord>('peerings', id);
    await this.peerMaps.refreshAround(
      id,
      (decl?.value.peerings ?? []).map((p) => p.remoteCluster),
    );
  }

  /** Clusters recorded as exporting `name`. */
  private async membersOf(name: string): Promise<string[]> {
    const keys = await this.store.keys('networks', KEYS.membersOf(name));
    return keys.map((k) => k.slice(KEYS.member(name, '').length));
  }

  /** Recomputes the agreed MTU of `names`; returns the members of those that changed. */
  private async settleMtus(names: readonly string[]): Promise<string[]> {
    const settled = await Promise.all(names.map((n) => this.mtus.settle(n)));
    return settled
      .filter((s) => JSON.stringify(s.before ?? null) !== JSON.stringify(s.after ?? null))
      .flatMap((s) => s.members);
  }
}
