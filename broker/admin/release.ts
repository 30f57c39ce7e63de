/**
 * The state changes behind the admin actions, each a compare-and-set loop over the
 * broker's KV (so they are safe next to broker replicas handling agent requests) that
 * ends by refreshing every peer map the change can affect.
 */
import { claimIsFresh } from '../claim-age.js';
import { casLoop, done, retry } from '../retry.js';
import { FailedPreconditionError, NotFoundError } from './errors.js';
import {
  BUCKETS,
  KEYS,
  type ClusterRecord,
  type CordonRecord,
  type ExportsRecord,
  type NetworkRecord,
  type PeeringsRecord,
  type TransitClaim,
  type VniClaim,
} from '../records.js';
import type { AdminKvOps } from './kv.js';
import type { AdminContext } from './context.js';
import { transitHeld } from '../transit-allocator.js';

const CAS_ATTEMPTS = 40;

/** What the releases of allocations need of the context: the clock and the claim grace. */
type ClaimClock = Pick<AdminContext, 'now' | 'claimGraceMs'>;

/** Clusters whose peer maps a change of `id` can affect: itself and those it declares. */
export async function affectedBy(kv: AdminKvOps, id: string): Promise<string[]> {
  const decl = await kv.get<PeeringsRecord>(BUCKETS.peerings, id);
  return [id, ...(decl?.value.peerings ?? []).map((p) => p.remoteCluster)];
}

/**
 * Sets (or with undefined, clears) the cordon of a registered cluster and refreshes
 * the affected peer maps. Mutual consent means only the cluster's own declared peers
 * can list it, so refreshing those is enough.
 */
export async function setCordon(
  ctx: AdminContext,
  kv: AdminKvOps,
  id: string,
  cordon: CordonRecord | undefined,
): Promise<void> {
  await casLoop(`cluster ${id}`, CAS_ATTEMPTS, async () => {
    const cur = await kv.get<ClusterRecord>(BUCKETS.clusters, id);
    if (!cur) throw new NotFoundError(`cluster "${id}" was deregistered meanwhile`);
    const { cordon: _old, ...rest } = cur.value;
    const next: ClusterRecord = cordon ? { ...rest, cordon } : rest;
    return (await kv.cas(BUCKETS.clusters, id, next, cur.revision)) ? done(undefined) : retry;
  });
  await ctx.federation.peerMaps.refreshAll(await affectedBy(kv, id));
}

/**
 * Unbinds network `name` and quarantines its VNI. Without `force` it refuses while
 * any cluster exports the name; with `force` it first removes the name from those
 * clusters' exports (an agent that still exports it gets a new VNI on its next sync).
 */
export async function releaseNetwork(
  ctx: AdminContext,
  kv: AdminKvOps,
  name: string,
  force: boolean,
): Promise<{ vni: number; removedMembers: string[] }> {
  const net = await kv.get<NetworkRecord>(BUCKETS.networks, KEYS.network(name));
  if (!net)
    throw new NotFoundError(
      `network "${name}" has no VNI bound; list networks with "l2fed get networks"`,
    );
  const members = (await kv.list(BUCKETS.networks, KEYS.membersOf(name))).map(
    (m) => m.key.split('.')[2]!,
  );
  if (members.length > 0 && !force)
    throw new FailedPreconditionError(
      `network "${name}" (VNI ${net.value.vni}) is still exported by ${members.join(', ')}; ` +
        `remove it from their FederatedNetwork manifests first, or pass force (--force)`,
    );
  for (const m of members) {
    await casLoop(`exports ${m}`, CAS_ATTEMPTS, async () => {
      const e = await kv.get<ExportsRecord>(BUCKETS.exports, m);
      if (!e) return done(undefined);
      const next: ExportsRecord = { networks: e.value.networks.filter((n) => n.name !== name) };
      return (await kv.cas(BUCKETS.exports, m, next, e.revision)) ? done(undefined) : retry;
    });
    // leave() deletes the member key and, after the last one, unbinds and quarantines.
    await ctx.federation.vnis.leave(name, m);
  }
  if (members.length === 0) {
    // Nobody exports it: unbind at the revision read (a joiner's bump makes this fail).
    await casLoop(KEYS.network(name), CAS_ATTEMPTS, async () => {
      const cur = await kv.get<NetworkRecord>(BUCKETS.networks, KEYS.network(name));
      if (!cur) return done(undefined);
      if ((await kv.list(BUCKETS.networks, KEYS.membersOf(name))).length > 0)
        throw new FailedPreconditionError(
          `network "${name}" got a new member meanwhile; not released`,
        );
      if (!(await kv.delete(BUCKETS.networks, KEYS.network(name), cur.revision))) return retry;
      const claim = await kv.get<VniClaim>(BUCKETS.networks, KEYS.vni(cur.value.vni));
      if (claim?.value.network === name) {
        const q: VniClaim = {
          state: 'quarantined',
          network: name,
          releasedAt: new Date().toISOString(),
        };
        await kv.cas(BUCKETS.networks, KEYS.vni(cur.value.vni), q, claim.revision);
      }
      return done(undefined);
    });
  }
  const affected = (await Promise.all(members.map((m) => affectedBy(kv, m)))).flat();
  await ctx.federation.peerMaps.refreshAll(affected);
  return { vni: net.value.vni, removedMembers: members };
}

/**
 * Refuses to release an unbound claim younger than claimGraceMs. The allocators write
 * the claim first and its binding (`net.<name>`, the cluster record) second, and the
 * claim's revision does not change in between, so "nothing points at it" may only mean
 * "not yet": deleting it then leaves a binding without a claim, and the next allocation
 * hands the same VNI or address out twice. The allocators' reapers wait as long.
 */
function refuseIfFresh(ctx: ClaimClock, claimedAt: string, what: string, check: string): void {
  const now = ctx.now();
  if (!claimIsFresh(claimedAt, now, ctx.claimGraceMs)) return;
  const born = Date.parse(claimedAt);
  const free = new Date(born + ctx.claimGraceMs);
  throw new FailedPreconditionError(
    `${what} is ${Math.max(0, Math.floor((now - born) / 1000))} s old: a bind may be in ` +
      `progress (unbound claims younger than ${ctx.claimGraceMs / 1000} s are left alone); ` +
      `retry after ${free.toISOString()} (in ${Math.ceil((free.getTime() - now) / 1000)} s), ` +
      `or check whether it got bound: ${check}`,
  );
}

/**
 * Deletes the claim on VNI `vni` so the number is free at once (skipping quarantine).
 * Refuses while a network is bound to it, and for an active claim younger than
 * claimGraceMs (a bind may be in progress); a quarantined claim is free at once.
 * Safe next to the allocators: the delete is a CAS on the claim's revision.
 */
export async function releaseVni(ctx: ClaimClock, kv: AdminKvOps, vni: number): Promise<string> {
  const claim = await kv.get<VniClaim>(BUCKETS.networks, KEYS.vni(vni));
  if (!claim) throw new NotFoundError(`VNI ${vni} is not claimed; nothing to release`);
  const net = await kv.get<NetworkRecord>(BUCKETS.networks, KEYS.network(claim.value.network));
  if (net?.value.vni === vni)
    throw new FailedPreconditionError(
      `VNI ${vni} is bound to network "${claim.value.network}"; release the network instead ` +
        `(l2fed release network ${claim.value.network} --reason …)`,
    );
  // Same test as VniAllocator.reapOrphan: unbound and older than the grace.
  if (claim.value.state === 'active')
    refuseIfFresh(
      ctx,
      claim.value.claimedAt,
      `VNI ${vni}'s claim for network "${claim.value.network}"`,
      `l2fed describe network ${claim.value.network}`,
    );
  if (!(await kv.delete(BUCKETS.networks, KEYS.vni(vni), claim.revision)))
    throw new FailedPreconditionError(`VNI ${vni} changed while releasing it; check it and retry`);
  return `released ${claim.value.state} claim of VNI ${vni} (was ${claim.value.network})`;
}

/**
 * Deletes a transit address claim that no registered cluster holds and that is older
 * than claimGraceMs: the allocator's own test for an abandoned claim (transitHeld), so
 * the admin API frees only what the allocator would reclaim itself.
 */
export async function releaseTransit(
  ctx: ClaimClock,
  kv: AdminKvOps,
  address: string,
): Promise<string> {
  const claim = await kv.get<TransitClaim>(BUCKETS.transit, KEYS.transit(address));
  if (!claim)
    throw new NotFoundError(`transit address ${address} is not claimed; nothing to release`);
  const id = claim.value.cluster;
  const owner = await kv.get<ClusterRecord>(BUCKETS.clusters, id);
  if (owner && transitHeld(address, claim.value, owner.value))
    throw new FailedPreconditionError(
      owner.value.transitAddress === address
        ? `transit address ${address} belongs to registered cluster "${id}"; ` +
            `evict the cluster instead (l2fed evict ${id} --reason …)`
        : `transit address ${address} is held by the registration of cluster "${id}" ` +
            `(its record has the claim's nonce, though it names ${owner.value.transitAddress}): ` +
            `a lease that registration left behind, kept while it lives; once ${id} is ` +
            `deregistered (l2fed evict ${id} --reason …) it can be released here`,
    );
  refuseIfFresh(
    ctx,
    claim.value.claimedAt,
    `transit address ${address}'s claim for cluster "${id}"`,
    `l2fed describe cluster ${id}`,
  );
  if (!(await kv.delete(BUCKETS.transit, KEYS.transit(address), claim.revision)))
    throw new FailedPreconditionError(
      `transit address ${address} changed while releasing it; retry`,
    );
  return `released transit address ${address} (was claimed by ${id})`;
}
