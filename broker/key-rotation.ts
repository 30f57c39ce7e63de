/**
 * Gateway key rotation without a data-plane gap for peers whose agent is away:
 *
 *   announce-key (rotating cluster R): R's record gets `nextKey`; peers' maps carry it
 *     as `nextPublicKey`, and their gateways install it as a standby WireGuard entry.
 *   ack-key (each peer P, for itself): "my gateway holds R's next key"; R's own map lists
 *     P in `nextKey.heldBy`. R's agent switches its tunnel only once every peer holds it,
 *     and each peer's gateway promotes the standby entry when the new key handshakes.
 *   rotate-key (R): publicKey := nextKey (the commit); peer maps drop the old key.
 *
 * A next key is claimed in the key registry like a registered key (unique federation-wide).
 * Every refusal writes nothing.
 */
import type { Store } from './kv-store.js';
import type { BrokerConfig } from './config.js';
import type { AckKeyRequest, AnnounceKeyRequest } from './protocol.js';
import type { ClusterRecord, PeerMap } from './records.js';
import type { KeyRegistry } from './key-registry.js';
import { BrokerError, InvalidRequestError, NotRegisteredError } from './errors.js';
import { casLoop, done, retry } from './retry.js';

/** An ack for a key the rotating cluster does not announce (any more). Nothing changed. */
export class StaleNextKeyError extends BrokerError {
  override name = 'StaleNextKeyError';
  readonly code = 'KEY_MISMATCH';
  constructor(cluster: string, announced: string | undefined) {
    super(
      announced === undefined
        ? `"${cluster}" announces none (no rotation in progress, or it already uses that key); ` +
            `nothing to acknowledge: read your peer map again`
        : `nextKey is not the next key "${cluster}" announces (it announced another since); ` +
            `acknowledge the nextPublicKey your peer map lists for "${cluster}"`,
      { field: 'nextKey' },
    );
  }
}

/** An announcement whose publicKey is not the registered key. Nothing changed. */
export class AnnounceKeyMismatchError extends BrokerError {
  override name = 'AnnounceKeyMismatchError';
  readonly code = 'KEY_MISMATCH';
  constructor(clusterId: string) {
    super(
      `publicKey is not the key registered for cluster "${clusterId}"; read it with ` +
        `l2fed.v1.${clusterId}.get and announce the next key from it`,
      { field: 'publicKey' },
    );
  }
}

export class KeyRotation {
  constructor(
    private readonly store: Store,
    private readonly config: BrokerConfig,
    private readonly keys: KeyRegistry,
    private readonly now: () => number,
  ) {}

  /**
   * Records `req.nextKey` as the cluster's next key (claimed; a replaced earlier next key
   * is released). Idempotent: the same next key, or a cluster already using it, changes
   * nothing (announced=false).
   * @throws NotRegisteredError, AnnounceKeyMismatchError (publicKey is not the registered key),
   * KeyInUseError (another cluster holds nextKey).
   */
  async announce(
    id: string,
    req: AnnounceKeyRequest,
  ): Promise<{ cluster: ClusterRecord; announced: boolean }> {
    let replaced: string | undefined;
    const result = await casLoop(`cluster ${id}`, this.config.casAttempts, async () => {
      const cur = await this.store.get<ClusterRecord>('clusters', id);
      if (!cur) throw new NotRegisteredError(id);
      const rec = cur.value;
      if (rec.publicKey === req.nextKey || rec.nextKey?.publicKey === req.nextKey)
        return done({ cluster: rec, announced: false });
      if (rec.publicKey !== req.publicKey) throw new AnnounceKeyMismatchError(id);
      await this.keys.claim(id, req.nextKey, rec.nonce);
      const next: ClusterRecord = {
        ...rec,
        nextKey: {
          publicKey: req.nextKey,
          heldBy: [],
          since: new Date(this.now()).toISOString(),
        },
      };
      const r = await this.store.cas('clusters', id, next, cur.revision);
      if (r.type !== 'ok') return retry;
      replaced = rec.nextKey?.publicKey;
      return done({ cluster: next, announced: true });
    });
    if (replaced !== undefined) await this.keys.release(id, replaced, result.cluster.nonce);
    return result;
  }

  /**
   * Notes that `id`'s gateway holds `req.cluster`'s next key. Only a cluster whose peer map
   * lists `req.cluster` (mutual peering: it was told the key) may, only for the key
   * announced now. Idempotent (acknowledged=false on a repeat).
   * @throws NotRegisteredError, InvalidRequestError (own cluster, not a peer),
   * StaleNextKeyError (not the announced key).
   */
  async ack(id: string, req: AckKeyRequest): Promise<{ acknowledged: boolean }> {
    if (req.cluster === id)
      throw new InvalidRequestError(
        `a cluster acknowledges its peers' next keys, not its own ("${id}")`,
        { field: 'cluster' },
      );
    if (!(await this.store.get<ClusterRecord>('clusters', id))) throw new NotRegisteredError(id);
    const notPeer = () =>
      new InvalidRequestError(
        `"${req.cluster}" is not a peer of "${id}" (not in its peer map); acknowledge only ` +
          `the next keys your own peer map lists`,
        { field: 'cluster' },
      );
    const map = await this.store.get<PeerMap>('peerMaps', id);
    if (!map?.value.peers.some((p) => p.cluster === req.cluster)) throw notPeer();
    return casLoop<{ acknowledged: boolean }>(
      `cluster ${req.cluster}`,
      this.config.casAttempts,
      async () => {
        const cur = await this.store.get<ClusterRecord>('clusters', req.cluster);
        if (!cur) throw notPeer();
        const nk = cur.value.nextKey;
        if (nk?.publicKey !== req.nextKey) throw new StaleNextKeyError(req.cluster, nk?.publicKey);
        if (nk.heldBy.includes(id)) return done({ acknowledged: false });
        const next: ClusterRecord = {
          ...cur.value,
          nextKey: { ...nk, heldBy: [...nk.heldBy, id].sort() },
        };
        const r = await this.store.cas('clusters', req.cluster, next, cur.revision);
        return r.type === 'ok' ? done({ acknowledged: true }) : retry;
      },
    );
  }
}
