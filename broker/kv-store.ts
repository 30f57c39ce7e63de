/**
 * Thin typed layer over the JetStream KV buckets. It turns the three outcomes the
 * allocation code cares about into values: ok (with revision), conflict (a CAS lost)
 * and missing; anything else (timeouts, no responders during a restart or leader
 * election) becomes a StoreUnavailableError, which callers report as retryable.
 *
 * Revision 0 means "no live value": a CAS write with revision 0 succeeds only if the
 * key never existed, which is how create and update share one code path.
 */
import { headers, StorageType, type JetStreamClient, type KV, type KvEntry } from 'nats';
import { BUCKETS, type BucketId } from './records.js';
import { StoreUnavailableError } from './errors.js';

/** A live value and the revision it was read at. */
export interface Versioned<T> {
  readonly value: T;
  readonly revision: number;
}

export type CasResult =
  { readonly type: 'ok'; readonly revision: number } | { readonly type: 'conflict' };

export interface StoreOptions {
  readonly replicas: number;
  readonly storage: 'file' | 'memory';
}

/** One decoder for every read (a TextDecoder per read showed in the broker's CPU profile). */
const utf8 = new TextDecoder();

function isWrongLastSequence(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: unknown };
  return e?.api_error?.err_code === 10071 || /wrong last sequence/i.test(String(e?.message));
}

/** What the allocators need from a store; the real one is KvStore, tests use a fake. */
export type Store = Pick<KvStore, 'get' | 'read' | 'cas' | 'create' | 'put' | 'delete' | 'keys'>;

/**
 * All broker buckets. Safe to share between concurrent requests; every method is a
 * single KV operation and keeps no cache, so N replicas see the same state.
 */
export class KvStore {
  private constructor(
    private readonly js: JetStreamClient,
    private readonly kvs: Record<BucketId, KV>,
  ) {}

  /**
   * Opens (creating when absent) every bucket. Idempotent and safe when several
   * replicas start at once: JetStream accepts identical stream creates.
   */
  static async open(js: JetStreamClient, opts: StoreOptions): Promise<KvStore> {
    const storage = opts.storage === 'file' ? StorageType.File : StorageType.Memory;
    const entries = await Promise.all(
      (Object.keys(BUCKETS) as BucketId[]).map(async (id) => {
        const kv = await js.views.kv(BUCKETS[id], {
          history: 1,
          replicas: opts.replicas,
          storage,
          allow_direct: true,
        });
        return [id, kv] as const;
      }),
    );
    return new KvStore(js, Object.fromEntries(entries) as Record<BucketId, KV>);
  }

  /** Live value and revision, or undefined (absent or deleted). */
  async get<T>(bucket: BucketId, key: string): Promise<Versioned<T> | undefined> {
    const e = await this.entry(bucket, key);
    return e === undefined || e.operation !== 'PUT' ? undefined : this.decode<T>(e);
  }

  /** Like get, but also returns the revision of a tombstone (0 when never written). */
  async read<T>(
    bucket: BucketId,
    key: string,
  ): Promise<{ value: T | undefined; revision: number }> {
    const e = await this.entry(bucket, key);
    if (e === undefined) return { value: undefined, revision: 0 };
    if (e.operation !== 'PUT') return { value: undefined, revision: e.revision };
    return this.decode<T>(e);
  }

  /**
   * Writes value only if the key is still at `revision` (0 = absent / deleted at
   * that tombstone). Exactly one of several racing writers gets 'ok'.
   */
  async cas(bucket: BucketId, key: string, value: unknown, revision: number): Promise<CasResult> {
    try {
      // put with previousSeq (not update): update() refuses revision 0.
      const rev = await this.kvs[bucket].put(key, JSON.stringify(value), {
        previousSeq: revision,
      });
      return { type: 'ok', revision: rev };
    } catch (err) {
      if (isWrongLastSequence(err)) return { type: 'conflict' };
      throw new StoreUnavailableError(`write ${BUCKETS[bucket]}/${key}`, err);
    }
  }

  /** Creates the key if it has no live value (handles tombstones). */
  async create(bucket: BucketId, key: string, value: unknown): Promise<CasResult> {
    try {
      const rev = await this.kvs[bucket].create(key, JSON.stringify(value));
      return { type: 'ok', revision: rev };
    } catch (err) {
      if (isWrongLastSequence(err)) return { type: 'conflict' };
      throw new StoreUnavailableError(`create ${BUCKETS[bucket]}/${key}`, err);
    }
  }

  /** Unconditional write; for values only their owner writes. */
  async put(bucket: BucketId, key: string, value: unknown): Promise<number> {
    try {
      return await this.kvs[bucket].put(key, JSON.stringify(value));
    } catch (err) {
      throw new StoreUnavailableError(`put ${BUCKETS[bucket]}/${key}`, err);
    }
  }

  /** Deletes; with `revision`, only if still at that revision. False on a lost CAS. */
  async delete(bucket: BucketId, key: string, revision?: number): Promise<boolean> {
    try {
      if (revision === 0) {
        // nats.js drops a previousSeq of 0 (the delete becomes unconditional), so the
        // marker is published here with the expected-sequence header it would send.
        const h = headers();
        h.set('KV-Operation', 'DEL');
        h.set('Nats-Expected-Last-Subject-Sequence', '0');
        await this.js.publish(`$KV.${BUCKETS[bucket]}.${key}`, undefined, { headers: h });
        return true;
      }
      await this.kvs[bucket].delete(
        key,
        revision === undefined ? undefined : { previousSeq: revision },
      );
      return true;
    } catch (err) {
      if (isWrongLastSequence(err)) return false;
      throw new StoreUnavailableError(`delete ${BUCKETS[bucket]}/${key}`, err);
    }
  }

  /** Live keys matching a subject filter (for example `member.cdn.*`). */
  async keys(bucket: BucketId, filter: string): Promise<string[]> {
    try {
      const out: string[] = [];
      for await (const k of await this.kvs[bucket].keys(filter)) out.push(k);
      return out;
    } catch (err) {
      throw new StoreUnavailableError(`list ${BUCKETS[bucket]}/${filter}`, err);
    }
  }

  private async entry(bucket: BucketId, key: string): Promise<KvEntry | undefined> {
    try {
      return (await this.kvs[bucket].get(key)) ?? undefined;
    } catch (err) {
      throw new StoreUnavailableError(`read ${BUCKETS[bucket]}/${key}`, err);
    }
  }

  private decode<T>(e: KvEntry): Versioned<T> {
    return { value: JSON.parse(utf8.decode(e.value)) as T, revision: e.revision };
  }
}

/**
 * `store` with concurrent reads of one key merged: a read that finds another read of
 * the same key in flight waits for it and then shares the one read issued right after
 * it with every other caller that arrived meanwhile. That read starts after each of its
 * callers did, so each still sees every write that finished before its call (what the
 * CAS protocols rely on: a map's revision is read before its inputs), and a burst of N
 * reads of a hot key (a network record read by each member's map, a cluster's inputs
 * read by each peer's map) costs two round trips, not N. Callers share the value
 * returned: it must not be mutated. Writes and listings pass through.
 */
export function coalesceReads(store: Store): Store {
  interface Slot {
    inFlight: boolean;
    next?: { run: () => void; result: Promise<{ value: unknown; revision: number }> };
  }
  const slots = new Map<string, Slot>();
  const read = (bucket: BucketId, key: string): Promise<{ value: unknown; revision: number }> => {
    const id = `${bucket}/${key}`;
    let slot = slots.get(id);
    if (!slot) {
      slot = { inFlight: false };
      slots.set(id, slot);
    }
    const s = slot;
    const issue = (): Promise<{ value: unknown; revision: number }> => {
      s.inFlight = true;
      const p = store.read<unknown>(bucket, key);
      void p
        .catch(() => undefined)
        .then(() => {
          s.inFlight = false;
          const next = s.next;
          s.next = undefined;
          if (next) next.run();
          else if (slots.get(id) === s) slots.delete(id);
        });
      return p;
    };
    if (!s.inFlight) return issue();
    if (!s.next) {
      let run!: () => void;
      const result = new Promise<{ value: unknown; revision: number }>((resolve, reject) => {
        run = () => void issue().then(resolve, reject);
      });
      s.next = { run, result };
    }
    return s.next.result;
  };
  return {
    read: read as Store['read'],
    get: (async (bucket: BucketId, key: string) => {
      const r = await read(bucket, key);
      return r.value === undefined ? undefined : { value: r.value, revision: r.revision };
    }) as Store['get'],
    cas: (...a) => store.cas(...a),
    create: (...a) => store.create(...a),
    put: (...a) => store.put(...a),
    delete: (...a) => store.delete(...a),
    keys: (...a) => store.keys(...a),
  };
}
