/**
 * In-memory stand-in for KvStore with the same CAS semantics (per-key revisions from
 * one global sequence, tombstones, subject-style key filters). Every call yields to
 * the event loop a random number of times, so concurrent callers interleave the way
 * racing broker replicas do. One-shot failure injection mimics a lost reply.
 */
import type { CasResult, Store, Versioned } from './kv-store.js';
import type { BucketId } from './records.js';
import { StoreUnavailableError } from './errors.js';

interface Slot {
  value: string | undefined;
  revision: number;
}

/** Frozen all the way down: a caller that mutates a value read (shared by coalesceReads) throws. */
function frozen<T>(v: T): T {
  if (v && typeof v === 'object') {
    for (const x of Object.values(v)) frozen(x);
    Object.freeze(v);
  }
  return v;
}

function matches(filter: string, key: string): boolean {
  const f = filter.split('.');
  const k = key.split('.');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '>') return k.length > i;
    if (i >= k.length || (f[i] !== '*' && f[i] !== k[i])) return false;
  }
  return f.length === k.length;
}

export class FakeKvStore implements Store {
  private seq = 0;
  private readonly data = new Map<string, Slot>();
  /** Writes performed, for assertions. */
  writes = 0;
  private failNext: { key: string; applied: boolean } | undefined;

  /** The next write to `key` fails; with applied=true it lands first (lost reply). */
  failNextWrite(key: string, applied: boolean): void {
    this.failNext = { key, applied };
  }

  /** `jitter: false`: every call yields exactly once, so call order is deterministic. */
  constructor(private readonly opts: { readonly jitter?: boolean } = {}) {}

  private async jitter(): Promise<void> {
    const n = this.opts.jitter === false ? 1 : Math.floor(Math.random() * 3);
    for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
  }

  private slot(bucket: BucketId, key: string): Slot | undefined {
    return this.data.get(`${bucket}/${key}`);
  }

  private write(bucket: BucketId, key: string, value: string | undefined): number {
    const rev = ++this.seq;
    this.data.set(`${bucket}/${key}`, { value, revision: rev });
    this.writes++;
    return rev;
  }

  private injected(key: string, apply: () => void): void {
    if (this.failNext?.key !== key) return;
    const f = this.failNext;
    this.failNext = undefined;
    if (f.applied) apply();
    throw new StoreUnavailableError(`write ${key}`, new Error('injected'));
  }

  async get<T>(bucket: BucketId, key: string): Promise<Versioned<T> | undefined> {
    await this.jitter();
    const s = this.slot(bucket, key);
    return s?.value === undefined
      ? undefined
      : { value: frozen(JSON.parse(s.value) as T), revision: s.revision };
  }

  async read<T>(
    bucket: BucketId,
    key: string,
  ): Promise<{ value: T | undefined; revision: number }> {
    await this.jitter();
    const s = this.slot(bucket, key);
    if (!s) return { value: undefined, revision: 0 };
    return {
      value: s.value === undefined ? undefined : frozen(JSON.parse(s.value) as T),
      revision: s.revision,
    };
  }

  async cas(bucket: BucketId, key: string, value: unknown, revision: number): Promise<CasResult> {
    await this.jitter();
    const cur = this.slot(bucket, key)?.revision ?? 0;
    if (cur !== revision) return { type: 'conflict' };
    this.injected(key, () => this.write(bucket, key, JSON.stringify(value)));
    return { type: 'ok', revision: this.write(bucket, key, JSON.stringify(value)) };
  }

  async create(bucket: BucketId, key: string, value: unknown): Promise<CasResult> {
    await this.jitter();
    const s = this.slot(bucket, key);
    if (s?.value !== undefined) return { type: 'conflict' };
    this.injected(key, () => this.write(bucket, key, JSON.stringify(value)));
    return { type: 'ok', revision: this.write(bucket, key, JSON.stringify(value)) };
  }

  async put(bucket: BucketId, key: string, value: unknown): Promise<number> {
    await this.jitter();
    return this.write(bucket, key, JSON.stringify(value));
  }

  async delete(bucket: BucketId, key: string, revision?: number): Promise<boolean> {
    await this.jitter();
    const s = this.slot(bucket, key);
    if (revision !== undefined && (s?.revision ?? 0) !== revision) return false;
    // As JetStream: a delete marker is written even when there is no live value.
    this.write(bucket, key, undefined);
    return true;
  }

  async keys(bucket: BucketId, filter: string): Promise<string[]> {
    await this.jitter();
    const prefix = `${bucket}/`;
    return [...this.data.entries()]
      .filter(([k, s]) => k.startsWith(prefix) && s.value !== undefined)
      .map(([k]) => k.slice(prefix.length))
      .filter((k) => matches(filter, k));
  }
}
