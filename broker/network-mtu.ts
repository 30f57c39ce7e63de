/**
 * One MTU per federated network (issue 12). Each member's exports request says what it
 * asks for (`requested`, absent = auto) and the most its underlay carries (`capacity`);
 * the broker keeps that ask in the member's record (`member.<name>.<cluster>`) and the
 * network's agreed MTU, the smallest of every ask, in `net.<name>`; peer maps hand it
 * to every member. A frame any member may send is then one every member can carry.
 *
 * The agreed MTU is a function of the current members only: a member that joins with a
 * smaller ask lowers it for everyone, and one that leaves raises it back (no history to
 * clear, and `reconcile` can always recompute it). Writes follow the VNI allocator's
 * rule: a member's ask is written before `net.<name>` is recomputed, and the recompute
 * is a CAS on `net.<name>`, so two members changing at once converge on both asks.
 */
import type { Store } from './kv-store.js';
import { InvalidRequestError } from './errors.js';
import {
  KEYS,
  type AgreedMtu,
  type MemberRecord,
  type MtuAsk,
  type NetworkRecord,
} from './records.js';
import { casLoop, done, retry } from './retry.js';

/** The smallest network MTU: IPv6 requires 1280 on every link, and ND crosses the federation. */
export const MIN_AGREED_MTU = 1280;

/** One member of a network and its ask (undefined: an agent that sent none). */
export interface MemberAsk {
  readonly cluster: string;
  readonly ask: MtuAsk | undefined;
}

/** One entry of an exports request's `mtu` list. */
export interface NetworkMtuAsk extends MtuAsk {
  readonly network: string;
}

/**
 * The agreed MTU of a network: the smallest `requested` or `capacity` of the members that
 * sent an ask, with the member and limit that set it (ties: `requested` first, then the
 * smaller cluster id, so every replica agrees); members without an ask are listed in
 * `silent`. Undefined when no member sent an ask. Pure.
 */
export function agreeMtu(members: readonly MemberAsk[]): AgreedMtu | undefined {
  let best: Best | undefined;
  const silent: string[] = [];
  for (const { cluster, ask } of members) {
    if (!ask) {
      silent.push(cluster);
      continue;
    }
    const m = smallest(cluster, ask);
    if (!best || precedes(m, best)) best = m;
  }
  return agreement(best, silent);
}

/** One candidate of an agreement: a member's number and which of its two it is. */
interface Best {
  readonly value: number;
  readonly setBy: string;
  readonly limit: 'requested' | 'capacity';
}

/** The order agreeMtu takes the smallest in: value, then `requested` first, then setBy. */
function precedes(a: Best, b: Best): boolean {
  if (a.value !== b.value) return a.value < b.value;
  if (a.limit !== b.limit) return a.limit === 'requested';
  return a.setBy < b.setBy;
}

/** The first of one member's candidates (its `requested`, if any, and its `capacity`). */
function smallest(cluster: string, ask: MtuAsk): Best {
  const cap: Best = { value: ask.capacity, setBy: cluster, limit: 'capacity' };
  if (ask.requested === undefined) return cap;
  const req: Best = { value: ask.requested, setBy: cluster, limit: 'requested' };
  return precedes(req, cap) ? req : cap;
}

function agreement(best: Best | undefined, silent: readonly string[]): AgreedMtu | undefined {
  if (!best) return undefined;
  const b = { value: best.value, setBy: best.setBy, limit: best.limit };
  return silent.length ? { ...b, silent: [...silent].sort() } : b;
}

/**
 * The agreement after `cluster` joins (or changes its ask to `ask`; undefined: silent),
 * from `cur`, the agreement of the members before; 'recompute' when only reading every
 * member can tell (the member that set it raised or dropped its ask, or the first ask of
 * a network whose silent members `cur` does not name). Equal to agreeMtu over the new
 * members whenever it answers. Pure.
 */
export function agreementAfterJoin(
  cur: AgreedMtu | undefined,
  cluster: string,
  ask: MtuAsk | undefined,
): AgreedMtu | undefined | 'recompute' {
  if (!cur) return ask ? 'recompute' : undefined;
  const others = (cur.silent ?? []).filter((c) => c !== cluster);
  if (!ask) return cur.setBy === cluster ? 'recompute' : agreement(cur, [...others, cluster]);
  const mine = smallest(cluster, ask);
  if (cur.setBy === cluster) return precedes(cur, mine) ? 'recompute' : agreement(mine, others);
  return agreement(precedes(mine, cur) ? mine : cur, others);
}

/** The agreement after `cluster` leaves, from `cur`; as agreementAfterJoin. Pure. */
export function agreementAfterLeave(
  cur: AgreedMtu | undefined,
  cluster: string,
): AgreedMtu | undefined | 'recompute' {
  if (!cur) return undefined;
  if (cur.setBy === cluster) return 'recompute';
  return agreement(
    cur,
    (cur.silent ?? []).filter((c) => c !== cluster),
  );
}

/** `net` with agreement `mtu` (absent: none). */
function withAgreement(net: NetworkRecord, mtu: AgreedMtu | undefined): NetworkRecord {
  const { mtu: _old, ...rest } = net;
  return mtu ? { ...rest, mtu } : rest;
}

/**
 * Checks an exports request's asks against its networks before anything is written.
 * @throws InvalidRequestError naming the cluster, the network and the field (`mtu.<i>.…`).
 */
export function checkMtuAsks(
  clusterId: string,
  networks: readonly string[],
  asks: readonly NetworkMtuAsk[],
): void {
  const exported = new Set(networks);
  const seen = new Set<string>();
  asks.forEach((a, i) => {
    const who = `cluster "${clusterId}"`;
    if (!exported.has(a.network))
      throw new InvalidRequestError(
        `${who}: mtu[${i}] is for network "${a.network}", which is not in networks; send MTU asks only for exported networks`,
        { field: `mtu.${i}.network` },
      );
    if (seen.has(a.network))
      throw new InvalidRequestError(
        `${who}: mtu lists network "${a.network}" twice; send one ask per network`,
        { field: `mtu.${i}.network` },
      );
    seen.add(a.network);
    if (a.requested !== undefined && a.requested < MIN_AGREED_MTU)
      throw new InvalidRequestError(
        `${who}: network ${a.network} requests MTU ${a.requested}; it must be at least ${MIN_AGREED_MTU} (the IPv6 minimum); raise spec.mtu or use auto`,
        { field: `mtu.${i}.requested` },
      );
    if (a.capacity < MIN_AGREED_MTU)
      throw new InvalidRequestError(
        `${who}: network ${a.network} can carry only MTU ${a.capacity}; a member must carry at least ${MIN_AGREED_MTU} (the IPv6 minimum): raise the underlay MTU to at least ${MIN_AGREED_MTU + 130}`,
        { field: `mtu.${i}.capacity` },
      );
  });
}

const sameAgreed = (a: AgreedMtu | undefined, b: AgreedMtu | undefined) =>
  JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/** What settle() found: the agreement before and after, and the members it covers. */
export interface Settled {
  readonly before: AgreedMtu | undefined;
  readonly after: AgreedMtu | undefined;
  readonly members: readonly string[];
}

/** Reads and writes MTU asks and agreements; holds no state of its own. */
export class NetworkMtu {
  constructor(
    private readonly store: Store,
    private readonly casAttempts: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Stores `clusterId`'s ask for `name` in its member record (creating the record, as a
   * join would). Only this cluster's requests write its member key; unchanged = no write.
   */
  async recordAsk(
    name: string,
    clusterId: string,
    ask: MtuAsk | undefined,
    /** Not a member yet: create the record (one write, no read); falls back if it exists. */
    joining = false,
  ): Promise<void> {
    const key = KEYS.member(name, clusterId);
    if (joining) {
      const since = new Date(this.now()).toISOString();
      const rec: MemberRecord = ask ? { since, mtu: ask } : { since };
      if ((await this.store.create('networks', key, rec)).type === 'ok') return;
    }
    const cur = await this.store.get<MemberRecord>('networks', key);
    if (cur && JSON.stringify(cur.value.mtu ?? null) === JSON.stringify(ask ?? null)) return;
    const since = cur?.value.since ?? new Date(this.now()).toISOString();
    const next: MemberRecord = ask ? { since, mtu: ask } : { since };
    await this.store.put('networks', key, next);
  }

  /**
   * `net` as the join (or new ask) of `clusterId` leaves it: the agreement moved by one
   * member (agreementAfterJoin), reading no member record unless it must recompute.
   * `fresh`: the binding is being created now; the agreement is this member's ask alone
   * (no listing): a member that wrote its ask before the binding existed joins after
   * and moves the agreement in its own CAS, like any other join. For
   * VniAllocator.join's CAS on `net.<name>`: the member record, with the ask, is written
   * before.
   */
  async afterJoin(
    net: NetworkRecord,
    clusterId: string,
    ask: MtuAsk | undefined,
    fresh: boolean,
  ): Promise<NetworkRecord> {
    const next = fresh
      ? agreeMtu([{ cluster: clusterId, ask }])
      : agreementAfterJoin(net.mtu, clusterId, ask);
    return withAgreement(net, next === 'recompute' ? await this.recompute(net.name) : next);
  }

  /**
   * `net` after `clusterId` left (its member record is gone); `members` are the ones
   * left. For VniAllocator.leave's CAS on `net.<name>`.
   */
  async afterLeave(
    net: NetworkRecord,
    clusterId: string,
    members: readonly string[],
  ): Promise<NetworkRecord> {
    const next = agreementAfterLeave(net.mtu, clusterId);
    return withAgreement(
      net,
      next === 'recompute' ? await this.recompute(net.name, members) : next,
    );
  }

  /** The agreement of `name` from every member record (listed unless given). */
  private async recompute(
    name: string,
    members?: readonly string[],
  ): Promise<AgreedMtu | undefined> {
    const ids =
      members ??
      (await this.store.keys('networks', KEYS.membersOf(name))).map((k) =>
        k.slice(KEYS.member(name, '').length),
      );
    return agreeMtu(
      await Promise.all(
        ids.map(async (cluster) => ({
          cluster,
          ask: (await this.store.get<MemberRecord>('networks', KEYS.member(name, cluster)))?.value
            .mtu,
        })),
      ),
    );
  }

  /**
   * Recomputes the agreed MTU of `name` from its member records and stores it in
   * `net.<name>` (CAS). A name no longer bound (last member left) has none.
   */
  async settle(name: string): Promise<Settled> {
    return casLoop(`mtu of ${name}`, this.casAttempts, async () => {
      const net = await this.store.get<NetworkRecord>('networks', KEYS.network(name));
      if (!net) return done({ before: undefined, after: undefined, members: [] });
      const keys = await this.store.keys('networks', KEYS.membersOf(name));
      const members = await Promise.all(
        keys.map(async (k) => ({
          cluster: k.slice(KEYS.member(name, '').length),
          ask: (await this.store.get<MemberRecord>('networks', k))?.value.mtu,
        })),
      );
      const ids = members.map((m) => m.cluster).sort();
      const before = net.value.mtu;
      const after = agreeMtu(members);
      if (sameAgreed(before, after)) return done({ before, after, members: ids });
      const { mtu: _old, ...rest } = net.value;
      const next: NetworkRecord = after ? { ...rest, mtu: after } : rest;
      const r = await this.store.cas('networks', KEYS.network(name), next, net.revision);
      return r.type === 'ok' ? done({ before, after, members: ids }) : retry;
    });
  }

  /** The agreed MTU of each name (undefined where none), as stored. */
  async agreed(names: readonly string[]): Promise<Map<string, AgreedMtu | undefined>> {
    const recs = await Promise.all(
      names.map((n) => this.store.get<NetworkRecord>('networks', KEYS.network(n))),
    );
    return new Map(names.map((n, i) => [n, recs[i]?.value.mtu]));
  }
}
