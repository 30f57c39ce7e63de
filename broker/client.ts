/**
 * Agent-side helper for the v1 protocol: typed requests and the watch on the
 * cluster's own peer map. Used by the cluster-agent, the tests and the benchmark.
 * Holds no state besides the connection; every method may be called concurrently.
 */
import { nuid, type KV, type KvEntry, type Msg, type NatsConnection } from 'nats';
import { inboxPrefix } from './auth-config.js';
import {
  PEER_MAP_HEADERS,
  peerMapSubject,
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
   * Watches the cluster's own peer map: yields the current value (when there is one),
   * then each change as the broker publishes it on `l2fed.peermap.<id>` (operation
   * DEL/PURGE when deleted), each revision once and in increasing order. Needs no
   * JetStream consumer, so the cluster's credentials need no consumer grant. Ends (or
   * throws) when the connection closes or the subscription is refused; the caller
   * re-opens it. Stop it with `watch.stop()`.
   */
  async watchPeerMap(): Promise<PeerMapWatch> {
    const id = this.clusterId;
    // Subscribe before reading, so no change between the read and the first update is lost.
    const sub = this.nc.subscribe(peerMapSubject(id));
    let first: KvEntry | null;
    try {
      await this.nc.flush();
      first = await (await this.kv()).get(id);
    } catch (err) {
      sub.unsubscribe();
      throw err;
    }
    async function* entries(): AsyncGenerator<KvEntry> {
      let last = 0;
      if (first) {
        last = first.revision;
        yield first;
      }
      for await (const m of sub) {
        const e = forwardedEntry(id, m);
        if (!e || e.revision <= last) continue; // a duplicate from another replica, or older
        last = e.revision;
        yield e;
      }
    }
    const it = entries();
    return { [Symbol.asyncIterator]: () => it, stop: () => sub.unsubscribe() };
  }

  private kv(): Promise<KV> {
    // bindOnly: no stream-info call, which cluster credentials are not allowed.
    this.kvPromise ??= this.nc
      .jetstream()
      .views.kv(BUCKETS.peerMaps, { bindOnly: true, allow_direct: true });
    return this.kvPromise;
  }
}

/** A watch on the own peer map (see BrokerClient.watchPeerMap). */
export interface PeerMapWatch extends AsyncIterable<KvEntry> {
  stop(): void;
}

/** A peer map the broker forwarded (peer-map-forwarder.ts) as a KV entry; undefined if malformed. */
function forwardedEntry(clusterId: string, m: Msg): KvEntry | undefined {
  const revision = Number(m.headers?.get(PEER_MAP_HEADERS.revision));
  const op = m.headers?.get(PEER_MAP_HEADERS.operation);
  if (!Number.isSafeInteger(revision) || revision <= 0) return undefined;
  if (op !== 'PUT' && op !== 'DEL' && op !== 'PURGE') return undefined;
  const value = m.data;
  return {
    bucket: BUCKETS.peerMaps,
    key: clusterId,
    value,
    created: new Date(),
    revision,
    operation: op,
    length: value.length,
    string: () => new TextDecoder().decode(value),
    json: <T>() => JSON.parse(new TextDecoder().decode(value)) as T,
  };
}

/** Parses a peer-map KV entry. */
export function decodePeerMap(e: KvEntry): PeerMap | undefined {
  if (e.operation !== 'PUT') return undefined;
  return JSON.parse(new TextDecoder().decode(e.value)) as PeerMap;
}
