/**
 * VNI allocation for federated network names, race-free across broker replicas.
 *
 * Two kinds of keys in l2fed_networks make it work:
 *  - `vni.<n>` claims a number (kv.create: exactly one claimer wins a number);
 *  - `net.<name>` binds a name to its number (kv.create: exactly one binding wins).
 * A name's VNI is whatever `net.<name>` says, so concurrent first exports of one name
 * all return the winner's number, and a loser deletes its spare claim. Since a number
 * can only be claimed once, two names never share one.
 *
 * Release: `member.<name>.<cluster>` keys record who exports a name. A leaver deletes
 * its member key, reads `net.<name>` (revision r), lists members and, if none remain,
 * deletes `net.<name>` only if it is still at r. A joiner writes its member key first
 * and then bumps `net.<name>` (CAS), so a release that read r before the join fails
 * its CAS and re-checks members. The freed number is marked quarantined, not deleted.
 */
import { claimIsFresh } from './claim-age.js';
import type { Store } from './kv-store.js';
import {
  KEYS,
  type MemberRecord,
  type NetworkRecord,
  type QuotaRecord,
  type VniClaim,
} from './records.js';
import { PoolExhaustedError, QuotaExceededError } from './errors.js';
import { casLoop, done, nonce, retry } from './retry.js';
import { fnv1a } from './ipv4.js';
import type { BrokerConfig } from './config.js';

/** `net` with `clusterId` among its members (a binding without the list keeps none). */
function withMember(net: NetworkRecord, clusterId: string): NetworkRecord {
  if (!net.members || net.members.includes(clusterId)) return net;
  return { ...net, members: [...net.members, clusterId].sort() };
}

/** Names whose last written binding a replica keeps (VniAllocator.latest): ~1 KiB each. */
const LATEST_MAX = 4096;

/** One join waiting for its turn on `net.<name>` (see joinWith). */
interface Joiner {
  readonly clusterId: string;
  readonly edit: (net: NetworkRecord, fresh: boolean) => Promise<NetworkRecord>;
  readonly known?: { readonly value: NetworkRecord; readonly revision: number } | undefined;
  resolve(r: Joined): void;
  reject(err: unknown): void;
}

/**
 * What one join did: `record` as written (with every join of its batch), `before` and
 * `after` the binding around this join's own step (`before` undefined: bound by it).
 */
export interface Joined {
  readonly record: NetworkRecord;
  readonly before: NetworkRecord | undefined;
  readonly after: NetworkRecord;
}

type Claim =
  | { readonly type: 'claimed'; readonly vni: number; readonly revision: number }
  | { readonly type: 'busy' };

export class VniAllocator {
  /** Per name, the tail of this replica's queue of CAS loops on `net.<name>`. */
  private readonly queues = new Map<string, Promise<unknown>>();
  /**
   * Per name, the binding this replica last wrote (at most LATEST_MAX names, oldest
   * dropped): the next join CASes on it, or on what its request read if newer, without
   * reading first (a stale one only loses its CAS). Kept after the queue ends: a request
   * reads the binding a few round trips before its join, and this replica's own joins
   * in between would otherwise make that read lose.
   */
  private readonly latest = new Map<string, { value: NetworkRecord; revision: number }>();
  /** Per name, the joins queued behind the running CAS loop, not started: one batch. */
  private readonly waiting = new Map<string, Joiner[]>();

  constructor(
    private readonly store: Store,
    private readonly config: BrokerConfig,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Records `clusterId` as an exporter of `name` and returns the name's VNI,
   * allocating one on the first export. Idempotent; safe under any concurrency.
   */
  async join(name: string, clusterId: string): Promise<number> {
    return (await this.joinWith(name, clusterId)).record.vni;
  }

  /**
   * join, returning the binding as written (`record`) and around this join's own step
   * (`before`, undefined when this call bound it, and `after`): joins of one name that
   * wait in this replica while its CAS on `net.<name>` is in flight are written together
   * by the next one, each edit applied to the record the previous left. `memberWritten`:
   * the caller already wrote the member key. `edit` derives the record to write from the
   * current one (the MTU agreement, network-mtu.ts); it runs inside the CAS, again on each
   * retry, with `fresh` true when this call creates the binding. `known`: the binding as
   * the caller read it (bindings()); the first CAS uses it, or what this replica wrote
   * since, instead of reading again. A failed CAS loop fails every join of its batch.
   */
  async joinWith(
    name: string,
    clusterId: string,
    opts: {
      readonly memberWritten?: boolean;
      readonly edit?: (net: NetworkRecord, fresh: boolean) => Promise<NetworkRecord>;
      readonly known?: { readonly value: NetworkRecord; readonly revision: number };
    } = {},
  ): Promise<Joined> {
    if (!opts.memberWritten) {
      const member: MemberRecord = { since: new Date(this.now()).toISOString() };
      // Existing member key is fine (re-export); it may also be ours from a call whose
      // reply was lost, which is why the bump below is unconditional.
      await this.store.create('networks', KEYS.member(name, clusterId), member);
    }
    return new Promise<Joined>((resolve, reject) => {
      const joiner: Joiner = {
        clusterId,
        edit: opts.edit ?? ((net: NetworkRecord) => Promise.resolve(net)),
        known: opts.known,
        resolve,
        reject,
      };
      // Joins arriving while this replica's CAS on net.<name> is in flight wait in one
      // batch, written by one CAS: fewer writes of a hot binding, fewer lost to the
      // other replicas.
      const batch = this.waiting.get(name);
      if (batch) {
        batch.push(joiner);
        return;
      }
      const joiners = [joiner];
      this.waiting.set(name, joiners);
      void this.inTurn(name, () => {
        if (this.waiting.get(name) === joiners) this.waiting.delete(name);
        return this.joinAll(name, joiners);
      }).then(
        (results) => joiners.forEach((j, i) => j.resolve(results[i]!)),
        (err: unknown) => joiners.forEach((j) => j.reject(err)),
      );
    });
  }

  /**
   * One CAS loop on `net.<name>` for `joiners` (each one's member key already written):
   * each edit runs on the record as the previous one left it, and the last is written.
   */
  private async joinAll(name: string, joiners: readonly Joiner[]): Promise<Joined[]> {
    const myNonce = nonce();
    const apply = async (start: NetworkRecord, fresh: boolean) => {
      const steps: { before: NetworkRecord | undefined; after: NetworkRecord }[] = [];
      let rec = start;
      for (const [i, j] of joiners.entries()) {
        const first = fresh && i === 0;
        const after = withMember(await j.edit(rec, first), j.clusterId);
        steps.push({ before: first ? undefined : rec, after });
        rec = after;
      }
      return { record: rec, joined: steps.map((st) => ({ ...st, record: rec })) };
    };
    const known = joiners
      .map((j) => j.known)
      .reduce((a, b) => (b && (!a || b.revision > a.revision) ? b : a), undefined);
    return casLoop<Joined[]>(KEYS.network(name), this.config.casAttempts, async (n) => {
      // A CAS checks the revision, so where the binding came from does not matter.
      const net =
        (n === 0 ? this.freshest(name, known) : undefined) ??
        (await this.store.get<NetworkRecord>('networks', KEYS.network(name)));
      if (net) {
        // Invalidate any release that read this binding before our member keys existed.
        const { record, joined } = await apply(net.value, false);
        const r = await this.store.cas('networks', KEYS.network(name), record, net.revision);
        if (r.type !== 'ok') {
          this.latest.delete(name);
          return retry;
        }
        this.remember(name, record, r.revision);
        return done(joined);
      }
      const claim = await this.claim(name, myNonce);
      if (claim.type === 'busy') return retry;
      const { record, joined } = await apply(
        {
          name,
          vni: claim.vni,
          createdAt: new Date(this.now()).toISOString(),
          nonce: myNonce,
          members: [],
        },
        true,
      );
      const bound = await this.store.create('networks', KEYS.network(name), record);
      if (bound.type === 'ok') {
        this.remember(name, record, bound.revision);
        return done(joined);
      }
      const winner = await this.store.get<NetworkRecord>('networks', KEYS.network(name));
      // Our own write may have landed although the call failed (timeout on failover).
      if (winner?.value.nonce === myNonce) return done(joined);
      await this.store.delete('networks', KEYS.vni(claim.vni), claim.revision);
      return retry;
    });
  }

  /**
   * Removes `clusterId` from the exporters of `name`; when none remain, unbinds the
   * name and quarantines its VNI. Idempotent; safe under any concurrency. With `edit`,
   * a binding that stays is rewritten (CAS) with what edit derives from it and the
   * members left; returns the binding before and after (after undefined: unbound).
   */
  async leave(
    name: string,
    clusterId: string,
    edit?: (net: NetworkRecord, members: readonly string[]) => Promise<NetworkRecord>,
  ): Promise<{ before?: NetworkRecord; after?: NetworkRecord; members: readonly string[] }> {
    await this.store.delete('networks', KEYS.member(name, clusterId));
    type Left = { before?: NetworkRecord; after?: NetworkRecord; members: readonly string[] };
    return this.inTurn(name, () =>
      casLoop<Left>(KEYS.network(name), this.config.casAttempts, async () => {
        const net = await this.store.get<NetworkRecord>('networks', KEYS.network(name));
        if (!net) return done({ members: [] });
        const members = (await this.store.keys('networks', KEYS.membersOf(name))).map((k) =>
          k.slice(KEYS.member(name, '').length),
        );
        if (members.length > 0) {
          if (!edit) return done({ before: net.value, after: net.value, members });
          // Always written: a recompute that counted us must lose its CAS (network-mtu.ts).
          const edited = await edit(net.value, members);
          const next: NetworkRecord = {
            ...edited,
            members: (net.value.members ?? members).filter((m) => m !== clusterId),
          };
          const r = await this.store.cas('networks', KEYS.network(name), next, net.revision);
          if (r.type !== 'ok') return retry;
          this.remember(name, next, r.revision);
          return done({ before: net.value, after: next, members });
        }
        this.latest.delete(name);
        if (!(await this.store.delete('networks', KEYS.network(name), net.revision))) return retry;
        await this.quarantine(net.value.vni, name);
        return done({ before: net.value, members });
      }),
    );
  }

  /**
   * Runs `fn` after this replica's earlier CAS loops on `net.<name>` have ended: joins of
   * one name in one replica then never lose a CAS to each other (each one still bumps
   * the binding; other replicas are handled by the CAS itself).
   */
  private inTurn<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(name) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.queues.set(name, tail);
    void tail.then(() => {
      if (this.queues.get(name) !== tail) return;
      this.queues.delete(name);
    });
    return run;
  }

  /** Notes the binding of `name` as this replica wrote it. */
  private remember(name: string, value: NetworkRecord, revision: number): void {
    this.latest.delete(name); // re-inserted last: the map's order is oldest first
    this.latest.set(name, { value, revision });
    if (this.latest.size > LATEST_MAX) this.latest.delete(this.latest.keys().next().value!);
  }

  /** Of what this replica wrote and what the caller read, the newer binding (if any). */
  private freshest(
    name: string,
    known: { readonly value: NetworkRecord; readonly revision: number } | undefined,
  ): { value: NetworkRecord; revision: number } | undefined {
    const mine = this.latest.get(name);
    if (!mine) return known;
    return known && known.revision > mine.revision ? known : mine;
  }

  /** The binding of each name now (absent: unbound), as read. */
  async bindings(
    names: readonly string[],
  ): Promise<Map<string, { value: NetworkRecord; revision: number } | undefined>> {
    const bound = await Promise.all(
      names.map((n) => this.store.get<NetworkRecord>('networks', KEYS.network(n))),
    );
    return new Map(names.map((n, i) => [n, bound[i]]));
  }

  /**
   * Charges `clusterId` for `count` new VNIs before any of them is allocated: its
   * allocations within the last vniQuarantineMs (entries older than that are pruned)
   * plus `count` must stay within maxVniAllocationsPerCluster, else QuotaExceededError
   * and nothing is written. CAS on the cluster's quota record, so concurrent requests of
   * one cluster cannot overshoot. A charge is never refunded (a rival binding the same
   * name first, or a failed export, errs on the safe side).
   */
  async charge(
    clusterId: string,
    count: number,
    /** Names to add to (`add`) and remove from (`drop`) QuotaRecord.pending in the same CAS. */
    pending: { readonly add?: readonly string[]; readonly drop?: readonly string[] } = {},
    /** The quota record as the caller read it (quota()): the first CAS uses it. */
    known?: { readonly value: QuotaRecord | undefined; readonly revision: number },
  ): Promise<void> {
    const add = pending.add ?? [];
    const drop = new Set(pending.drop ?? []);
    if (count === 0 && add.length === 0 && drop.size === 0) return;
    const max = this.config.maxVniAllocationsPerCluster;
    const window = this.config.vniQuarantineMs;
    await casLoop(`quota ${clusterId}`, this.config.casAttempts, async (n) => {
      const cur =
        n === 0 && known ? known : await this.store.read<QuotaRecord>('quotas', clusterId);
      const now = this.now();
      const recent = (cur.value?.allocations ?? []).filter((at) => now - Date.parse(at) < window);
      if (recent.length + count > max)
        throw new QuotaExceededError(
          clusterId,
          'maxVniAllocationsPerCluster',
          max,
          `exporting these networks would allocate ${count} new VNIs, and ${recent.length} ` +
            `were allocated in the last ${Math.round(window / 1000)} s; export fewer new ` +
            `networks, or wait for older allocations to leave the window`,
          'networks',
        );
      const was = cur.value?.pending ?? [];
      const names = [...new Set([...was, ...add])].filter((n) => !drop.has(n)).sort();
      // Nothing to allocate and the pending names as they are: nothing to write.
      if (count === 0 && names.join() === [...was].sort().join()) return done(undefined);
      const at = new Date(now).toISOString();
      const next: QuotaRecord = {
        allocations: [...recent, ...Array<string>(count).fill(at)],
        ...(names.length > 0 ? { pending: names } : {}),
      };
      const r = await this.store.cas('quotas', clusterId, next, cur.revision);
      return r.type === 'ok' ? done(undefined) : retry;
    });
  }

  /**
   * `clusterId`'s quota record and revision (0: none): its `pending` names are those it
   * may hold member keys of beyond its exports; charge() takes it as `known`.
   */
  async quota(clusterId: string): Promise<{ value: QuotaRecord | undefined; revision: number }> {
    return this.store.read<QuotaRecord>('quotas', clusterId);
  }

  /** Of `names`, those not bound to a VNI now (their first export allocates one). */
  async unbound(names: readonly string[]): Promise<string[]> {
    const bound = await this.bindings(names);
    return names.filter((n) => bound.get(n) === undefined);
  }

  private async quarantine(vni: number, name: string): Promise<void> {
    const claim = await this.store.get<VniClaim>('networks', KEYS.vni(vni));
    if (!claim || claim.value.network !== name) return;
    const q: VniClaim = {
      state: 'quarantined',
      network: name,
      releasedAt: new Date(this.now()).toISOString(),
    };
    // A lost CAS means someone else already moved this claim on; nothing to do.
    await this.store.cas('networks', KEYS.vni(vni), q, claim.revision);
  }

  /**
   * An old active claim whose name is not bound to it was left by a replica that
   * died between claim and bind, or between unbind and quarantine. Quarantine it
   * (CAS on the revision we read) so it becomes reusable after the quarantine.
   */
  private async reapOrphan(vni: number, c: VniClaim, revision: number): Promise<void> {
    const net = await this.store.get<NetworkRecord>('networks', KEYS.network(c.network));
    if (net?.value.vni === vni) return;
    const q: VniClaim = {
      state: 'quarantined',
      network: c.network,
      releasedAt: new Date(this.now()).toISOString(),
    };
    await this.store.cas('networks', KEYS.vni(vni), q, revision);
  }

  /** True when a claim may be taken over by a new allocation. */
  private reusable(c: VniClaim): boolean {
    if (c.state === 'quarantined')
      return this.now() - Date.parse(c.releasedAt) >= this.config.vniQuarantineMs;
    return false;
  }

  /**
   * Claims a free number, probing from a hash of the name. Returns busy when the
   * probe meets a fresh claim for the same name (a rival is binding it right now).
   */
  private async claim(name: string, myNonce: string): Promise<Claim> {
    const { first, last } = this.config.vniRange;
    const size = last - first + 1;
    const start = fnv1a(name) % size;
    const probes = Math.min(size, this.config.maxProbes);
    const value: VniClaim = {
      state: 'active',
      network: name,
      claimedAt: new Date(this.now()).toISOString(),
      nonce: myNonce,
    };
    for (let i = 0; i < probes; i++) {
      const vni = first + ((start + i) % size);
      const key = KEYS.vni(vni);
      const cur = await this.store.read<VniClaim>('networks', key);
      if (cur.value === undefined || this.reusable(cur.value)) {
        const r = await this.store.cas('networks', key, value, cur.revision);
        if (r.type === 'ok') return { type: 'claimed', vni, revision: r.revision };
        const again = await this.store.get<VniClaim>('networks', key);
        if (again?.value.state === 'active' && again.value.nonce === myNonce)
          return { type: 'claimed', vni, revision: again.revision };
        continue;
      }
      const c = cur.value;
      if (c.state !== 'active') continue;
      // Ours from an earlier attempt whose reply was lost (e.g. a leader failover).
      if (c.nonce === myNonce) return { type: 'claimed', vni, revision: cur.revision };
      const fresh = claimIsFresh(c.claimedAt, this.now(), this.config.claimGraceMs);
      if (fresh && c.network === name) return { type: 'busy' };
      if (!fresh) await this.reapOrphan(vni, c, cur.revision);
    }
    throw new PoolExhaustedError('vni', probes);
  }
}
