/**
 * Transit addresses (one per cluster gateway) from the configured IPv4 pool. A claim
 * is the key `<a-b-c-d>` in l2fed_transit, created with kv.create, so one address
 * never goes to two clusters. The cluster record then names its address; a claim
 * that no cluster record points to (its registrar died in between) is reclaimed
 * after the claim grace period.
 */
import { claimIsFresh } from './claim-age.js';
import type { Store } from './kv-store.js';
import { KEYS, type ClusterRecord, type TransitClaim } from './records.js';
import { PoolExhaustedError } from './errors.js';
import { fnv1a, poolAddress } from './ipv4.js';
import type { BrokerConfig } from './config.js';

/**
 * Whether `owner`, the record of the cluster a claim on `address` names (undefined:
 * not registered), holds that claim: the record names the address, or was written by
 * the registration that made the claim (same nonce). The allocator reclaims, and the
 * admin API releases, only a claim nobody holds that is older than claimGraceMs (a
 * younger one may be between its claim and its record, federation.ts register). Either
 * test alone misses a case: by nonce only, an address a record names could go to a
 * second cluster; by address only, a registration's own claim could be taken from it.
 */
export function transitHeld(
  address: string,
  claim: TransitClaim,
  owner: ClusterRecord | undefined,
): boolean {
  return owner !== undefined && (owner.transitAddress === address || owner.nonce === claim.nonce);
}

export interface TransitLease {
  readonly address: string;
  readonly revision: number;
}

export class TransitAllocator {
  constructor(
    private readonly store: Store,
    private readonly config: BrokerConfig,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Claims a free address for `clusterId`, probing from a hash of the id. Each call
   * claims a new address; the caller binds it or releases it. Concurrency-safe.
   */
  async claim(clusterId: string, myNonce: string): Promise<TransitLease> {
    const pool = this.config.pool;
    const start = fnv1a(clusterId) % pool.size;
    const probes = Math.min(pool.size, this.config.maxProbes);
    const value: TransitClaim = {
      cluster: clusterId,
      claimedAt: new Date(this.now()).toISOString(),
      nonce: myNonce,
    };
    for (let i = 0; i < probes; i++) {
      const address = poolAddress(pool, start + i);
      const key = KEYS.transit(address);
      const cur = await this.store.read<TransitClaim>('transit', key);
      if (cur.value !== undefined && !(await this.abandoned(address, cur.value))) continue;
      const r = await this.store.cas('transit', key, value, cur.revision);
      if (r.type === 'ok') return { address, revision: r.revision };
      const again = await this.store.get<TransitClaim>('transit', key);
      if (again?.value.nonce === myNonce) return { address, revision: again.revision };
    }
    throw new PoolExhaustedError('transit', probes);
  }

  /**
   * Frees an address if it is still claimed by `clusterId`'s registration `nonce` (its
   * record's). Idempotent. By nonce, not by cluster id: the cluster may have registered
   * again since its record was deleted and taken the (then orphaned) claim over; that
   * new claim is bound to the new record and must stay.
   */
  async release(address: string, clusterId: string, nonce: string): Promise<void> {
    const key = KEYS.transit(address);
    const cur = await this.store.get<TransitClaim>('transit', key);
    if (cur?.value.cluster === clusterId && cur.value.nonce === nonce)
      await this.store.delete('transit', key, cur.revision);
  }

  /** Frees exactly the lease we claimed (CAS on its revision). */
  async releaseLease(lease: TransitLease): Promise<void> {
    await this.store.delete('transit', KEYS.transit(lease.address), lease.revision);
  }

  /** A claim older than claimGraceMs that its cluster's record does not hold (transitHeld). */
  private async abandoned(address: string, c: TransitClaim): Promise<boolean> {
    if (claimIsFresh(c.claimedAt, this.now(), this.config.claimGraceMs)) return false;
    const owner = await this.store.get<ClusterRecord>('clusters', c.cluster);
    return !transitHeld(address, c, owner?.value);
  }
}
