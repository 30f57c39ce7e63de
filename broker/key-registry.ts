/**
 * WireGuard public keys are unique across the federation: two clusters with one key
 * would be one WireGuard peer to everybody else, and a gateway refuses such a config.
 *
 * A cluster holds its registered key and, during a rotation, its announced next key.
 * A claim is the key `<hex of the public key>` in l2fed_pubkeys, written with create
 * (or CAS over a stale claim), so of any number of racing registrations exactly one
 * cluster holds a key. The cluster record is written after the claim; a claim whose
 * holder's record does not carry that key (its registrar or rotator died in between,
 * or a deregistration died before releasing it) is stale once older than
 * claimGraceMs: the next claimer takes it over, and reconcile sweeps it.
 *
 * A claim carries the nonce of the registration (cluster record) it was made for, so a
 * release on behalf of a deleted record never frees the claim of a registration of the
 * same cluster made since (deregister deletes the record first, then releases). Claims
 * written before the nonce existed have none: the first claim of the cluster takes
 * them over (writing its nonce), any release by the cluster deletes them, and held or
 * stale is decided by the record's keys, as for every claim.
 */
import { claimIsFresh } from './claim-age.js';
import type { Store } from './kv-store.js';
import { KEYS, type ClusterRecord, type KeyClaim } from './records.js';
import { KeyInUseError } from './errors.js';
import { casLoop, done, retry } from './retry.js';
import type { BrokerConfig } from './config.js';

/** The keys a cluster record holds: its key and an announced next key. */
function keysOf(rec: ClusterRecord): string[] {
  return rec.nextKey ? [rec.publicKey, rec.nextKey.publicKey] : [rec.publicKey];
}

export class KeyRegistry {
  constructor(
    private readonly store: Store,
    private readonly config: BrokerConfig,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Claims `publicKey` for `clusterId`'s registration `nonce` (its record's). Idempotent
   * (already claimed with that nonce: nothing written). A claim of the same cluster with
   * another nonce or none (an earlier registration, deleted or never written) is taken
   * over at once: only that cluster's own requests get here.
   * Throws KeyInUseError when another cluster holds it; writes nothing then.
   */
  async claim(clusterId: string, publicKey: string, nonce: string): Promise<void> {
    const key = KEYS.publicKey(publicKey);
    await casLoop(`public key ${key}`, this.config.casAttempts, async () => {
      const cur = await this.store.read<KeyClaim>('publicKeys', key);
      if (cur.value?.cluster === clusterId && cur.value.nonce === nonce) return done(undefined);
      if (
        cur.value !== undefined &&
        cur.value.cluster !== clusterId &&
        !(await this.stale(cur.value, publicKey))
      )
        throw new KeyInUseError(clusterId, cur.value.cluster);
      const value: KeyClaim = {
        cluster: clusterId,
        claimedAt: new Date(this.now()).toISOString(),
        nonce,
      };
      const r = await this.store.cas('publicKeys', key, value, cur.revision);
      return r.type === 'ok' ? done(undefined) : retry;
    });
  }

  /**
   * Frees `publicKey` if `clusterId`'s registration `nonce` still holds it (or the claim
   * has no nonce: written before nonces, by this cluster). Idempotent. By nonce, not by
   * cluster id alone: the cluster may have registered again since the record that held
   * the key was deleted, and taken the claim over; that claim must stay.
   */
  async release(clusterId: string, publicKey: string, nonce: string): Promise<void> {
    const key = KEYS.publicKey(publicKey);
    const cur = await this.store.get<KeyClaim>('publicKeys', key);
    if (cur?.value.cluster !== clusterId) return;
    if (cur.value.nonce !== undefined && cur.value.nonce !== nonce) return;
    await this.store.delete('publicKeys', key, cur.revision);
  }

  /**
   * Reconcile: claims the key of every cluster record that has none (records written
   * before this index existed) and deletes stale claims. Returns what it changed.
   */
  async sweep(): Promise<{ backfilled: number; reaped: number }> {
    let backfilled = 0;
    let reaped = 0;
    // Listed first, so only missing claims cost a create (it runs on every replica).
    const claimed = await this.store.keys('publicKeys', '>');
    const hasClaim = new Set(claimed);
    const holders = new Map<string, string>();
    for (const id of await this.store.keys('clusters', '>')) {
      const rec = await this.store.get<ClusterRecord>('clusters', id);
      if (!rec) continue;
      const key = KEYS.publicKey(rec.value.publicKey);
      holders.set(key, id);
      // An announced next key is held too (key-rotation.ts); never backfilled.
      if (rec.value.nextKey) holders.set(KEYS.publicKey(rec.value.nextKey.publicKey), id);
      if (hasClaim.has(key)) continue;
      const claim: KeyClaim = {
        cluster: id,
        claimedAt: new Date(this.now()).toISOString(),
        nonce: rec.value.nonce,
      };
      const r = await this.store.create('publicKeys', key, claim);
      if (r.type === 'ok') backfilled++;
    }
    // Claims made after the listing are younger than claimGraceMs: the next sweep sees them.
    for (const key of claimed) {
      if (holders.has(key)) continue;
      const cur = await this.store.get<KeyClaim>('publicKeys', key);
      if (!cur || claimIsFresh(cur.value.claimedAt, this.now(), this.config.claimGraceMs)) continue;
      // Re-check the holder right before the CAS delete: it may have just written its record.
      const holder = await this.store.get<ClusterRecord>('clusters', cur.value.cluster);
      if (holder && keysOf(holder.value).some((k) => KEYS.publicKey(k) === key)) continue;
      if (await this.store.delete('publicKeys', key, cur.revision)) reaped++;
    }
    return { backfilled, reaped };
  }

  private async stale(c: KeyClaim, publicKey: string): Promise<boolean> {
    if (claimIsFresh(c.claimedAt, this.now(), this.config.claimGraceMs)) return false;
    const holder = await this.store.get<ClusterRecord>('clusters', c.cluster);
    return !holder || !keysOf(holder.value).includes(publicKey);
  }
}
