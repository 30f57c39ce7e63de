/**
 * Read access to the broker's KV buckets for one admin call, bounded by the call's
 * deadline: the JetStream context is made with `timeout` = time left, so every NATS
 * request the call makes gives up when the gRPC caller would (deadlines honoured end to
 * end). Holds no cache; one instance per call.
 */
import type { JetStreamClient, KV, NatsConnection } from 'nats';
import { DeadlineError } from './errors.js';
import { StoreUnavailableError } from '../errors.js';

/** What a NATS timeout is when the caller set no deadline. */
export const DEFAULT_NATS_TIMEOUT_MS = 10_000;
/** Below this much time left, a call is refused instead of started. */
const MIN_TIME_LEFT_MS = 20;

/** A live KV value with its key and revision (stream sequence). */
export interface KvItem<T> {
  readonly key: string;
  readonly value: T;
  readonly revision: number;
}

/** Milliseconds left before `deadline` (a gRPC Deadline: Date or epoch ms; Infinity = none). */
export function timeLeftMs(deadline: Date | number | undefined, now = Date.now()): number {
  if (deadline === undefined) return Infinity;
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return at - now;
}

function isWrongLastSequence(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: unknown };
  return e?.api_error?.err_code === 10071 || /wrong last sequence/i.test(String(e?.message));
}

function isStreamMissing(err: unknown): boolean {
  const e = err as { api_error?: { err_code?: number }; message?: unknown };
  return e?.api_error?.err_code === 10059 || /stream not found/i.test(String(e?.message));
}

/** What the actions (release.ts) need of AdminKv; kv-fake.ts has one over a broker Store. */
export type AdminKvOps = Pick<AdminKv, 'get' | 'list' | 'cas' | 'delete'>;

export class AdminKv {
  private readonly views = new Map<string, Promise<KV>>();

  private constructor(
    private readonly nc: NatsConnection,
    private readonly js: JetStreamClient,
    /** NATS timeout of every request this call makes. */
    readonly timeoutMs: number,
  ) {}

  /** A reader whose NATS requests time out with the call's deadline. */
  static forDeadline(
    nc: NatsConnection,
    deadline: Date | number | undefined,
    natsUp: () => boolean = () => !nc.isClosed(),
  ): AdminKv {
    // While NATS reconnects, requests would queue until their timeout; say so at once.
    if (!natsUp())
      throw new StoreUnavailableError('connect', new Error('the broker is disconnected from NATS'));
    const left = timeLeftMs(deadline);
    if (left < MIN_TIME_LEFT_MS)
      throw new DeadlineError(
        `the call deadline leaves ${Math.max(0, Math.round(left))} ms; give the call more time (e.g. --timeout 10s)`,
      );
    // Keep a margin so a NATS timeout still reaches the caller as UNAVAILABLE with a
    // hint, rather than as the caller's own DEADLINE_EXCEEDED.
    const timeoutMs = Number.isFinite(left)
      ? Math.max(MIN_TIME_LEFT_MS, Math.floor(left - Math.min(500, left / 10)))
      : DEFAULT_NATS_TIMEOUT_MS;
    return new AdminKv(nc, nc.jetstream({ timeout: timeoutMs }), timeoutMs);
  }

  /** The bucket, bound without a stream-info call (it may not exist yet). */
  kv(bucket: string): Promise<KV> {
    let v = this.views.get(bucket);
    if (!v) {
      v = this.js.views.kv(bucket, { bindOnly: true, allow_direct: true });
      this.views.set(bucket, v);
    }
    return v;
  }

  /** Live value of one key, or undefined (absent, deleted, or bucket missing when optional). */
  async get<T>(bucket: string, key: string): Promise<KvItem<T> | undefined> {
    try {
      const e = await (await this.kv(bucket)).get(key);
      if (!e || e.operation !== 'PUT') return undefined;
      return {
        key,
        value: JSON.parse(new TextDecoder().decode(e.value)) as T,
        revision: e.revision,
      };
    } catch (err) {
      throw new StoreUnavailableError(`read ${bucket}/${key}`, err);
    }
  }

  /**
   * Every live value under a key filter, sorted by key. With `optional`, a bucket that
   * does not exist (yet) reads as empty instead of failing.
   */
  async list<T>(bucket: string, filter = '>', optional = false): Promise<KvItem<T>[]> {
    let keys: string[];
    try {
      keys = [];
      for await (const k of await (await this.kv(bucket)).keys(filter)) keys.push(k);
    } catch (err) {
      if (optional && isStreamMissing(err)) return [];
      throw new StoreUnavailableError(`list ${bucket}/${filter}`, err);
    }
    keys.sort();
    const items = await Promise.all(keys.map((k) => this.get<T>(bucket, k)));
    return items.filter((i): i is KvItem<T> => i !== undefined);
  }

  /** Writes only if the key is still at `revision` (0 = absent). False on a lost race. */
  async cas(bucket: string, key: string, value: unknown, revision: number): Promise<boolean> {
    try {
      await (await this.kv(bucket)).put(key, JSON.stringify(value), { previousSeq: revision });
      return true;
    } catch (err) {
      if (isWrongLastSequence(err)) return false;
      throw new StoreUnavailableError(`write ${bucket}/${key}`, err);
    }
  }

  /** Unconditional write (audit records: unique keys, one writer each). */
  async put(bucket: string, key: string, value: unknown): Promise<number> {
    try {
      return await (await this.kv(bucket)).put(key, JSON.stringify(value));
    } catch (err) {
      throw new StoreUnavailableError(`write ${bucket}/${key}`, err);
    }
  }

  /** Deletes only if the key is still at `revision`. False on a lost race. */
  async delete(bucket: string, key: string, revision: number): Promise<boolean> {
    try {
      await (await this.kv(bucket)).delete(key, { previousSeq: revision });
      return true;
    } catch (err) {
      if (isWrongLastSequence(err)) return false;
      throw new StoreUnavailableError(`delete ${bucket}/${key}`, err);
    }
  }
}
