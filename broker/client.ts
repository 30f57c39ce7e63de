/**
 * Agent-side helper for the v1 protocol: typed requests and the watch on the
 * cluster's own peer map. Used by the cluster-agent, the tests and the benchmark.
 * Holds no state besides the connection; every method may be called concurrently.
 */
import { nuid, type KV, type KvEntry, type NatsConnection, type QueuedIterator } from 'nats';
import { inboxPrefix } from './auth-config.js';
import {
  requestSubject,
  type Reply,
  type RequestBody,
  type Results,
  type Verb,
} from './protocol.js';
import { BUCKETS, type PeerMap } from './records.js';
import { BrokerReplyError } from './errors.js';

export interface BrokerClientOptions {
  /** Per-request timeout; default 10 s (allocations under contention take a while). */
  readonly timeoutMs?: number;
}

export class BrokerClient {
  private kvPromise: Promise<KV> | undefined;

  constructor(
    readonly nc: NatsConnection,
    readonly clusterId: string,
    private readonly opts: BrokerClientOptions = {},
  ) {}

  /** Sends a request and returns the parsed reply (ok or structured error). */
  async call<V extends Verb>(
    verb: V,
    body?: RequestBody<V> | string | Uint8Array,
  ): Promise<Reply<Results[V]>> {
    const payload =
      body === undefined
        ? '{}'
        : typeof body === 'string' || body instanceof Uint8Array
          ? body
          : JSON.stringify(body);
    // The reply always goes to this cluster's own inbox, whatever the connection's
    // inboxPrefix: the broker answers nowhere else (and one connection may serve many
    // simulated clusters in tests and the benchmark).
    const msg = await this.nc.request(requestSubject(this.clusterId, verb), payload, {
      timeout: this.opts.timeoutMs ?? 10_000,
      noMux: true,
      reply: `${inboxPrefix(this.clusterId)}.${nuid.next()}`,
    });
    return JSON.parse(new TextDecoder().decode(msg.data)) as Reply<Results[V]>;
  }

  /** Like call, but returns the result or throws BrokerReplyError. */
  async request<V extends Verb>(verb: V, body?: RequestBody<V>): Promise<Results[V]> {
    const reply = await this.call(verb, body);
    if (!reply.ok) throw new BrokerReplyError(requestSubject(this.clusterId, verb), reply.error);
    return reply.result;
  }

  /**
   * Reads the cluster's own peer map. Uses the direct-get subject that names the
   * key, which is what the generated NATS permissions allow.
   */
  async peerMap(): Promise<PeerMap | undefined> {
    const e = await (await this.kv()).get(this.clusterId);
    return e && e.operation === 'PUT' ? decodePeerMap(e) : undefined;
  }

  /**
   * Watches the cluster's own peer map: yields the current value, then each change
   * (undefined when deleted). Stop it with `iterator.stop()`.
   */
  async watchPeerMap(): Promise<QueuedIterator<KvEntry>> {
    return (await this.kv()).watch({ key: this.clusterId });
  }

  private kv(): Promise<KV> {
    // bindOnly: no stream-info call, which cluster credentials are not allowed.
    this.kvPromise ??= this.nc
      .jetstream()
      .views.kv(BUCKETS.peerMaps, { bindOnly: true, allow_direct: true });
    return this.kvPromise;
  }
}

/** Parses a peer-map KV entry. */
export function decodePeerMap(e: KvEntry): PeerMap | undefined {
  if (e.operation !== 'PUT') return undefined;
  return JSON.parse(new TextDecoder().decode(e.value)) as PeerMap;
}
