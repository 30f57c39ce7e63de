/**
 * Delivers peer maps to clusters without giving clusters any JetStream consumer: each
 * broker replica watches `l2fed_peermaps` (one ordered consumer, its own) and publishes
 * every change of key `<id>` on `l2fed.peermap.<id>` (`peerMapSubject`), the one
 * subject cluster `<id>`'s credentials may subscribe to besides its inbox. The body is
 * the stored value; headers carry the KV revision and operation, so a client can drop
 * the duplicates several replicas send and anything older than its direct get.
 * Core NATS delivery is at most once: the client re-reads its map on (re)connect, and
 * the agent also polls it.
 */
import {
  headers,
  KvWatchInclude,
  type KvEntry,
  type NatsConnection,
  type QueuedIterator,
} from 'nats';
import type { Logger } from 'pino';
import { setTimeout as sleep } from 'node:timers/promises';
import { BUCKETS } from './records.js';
import { PEER_MAP_HEADERS, peerMapSubject } from './protocol.js';

export class PeerMapForwarder {
  private watch: QueuedIterator<KvEntry> | undefined;
  private stopped = false;
  private lastRevision = 0;
  private readonly loop: Promise<void>;
  forwarded = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly log: Logger,
  ) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        const kv = await this.nc
          .jetstream()
          .views.kv(BUCKETS.peerMaps, { bindOnly: true, allow_direct: true });
        // Resume after the last forwarded revision, so a restarted watch loses nothing.
        this.watch = await kv.watch({
          key: '>',
          ...(this.lastRevision > 0
            ? { resumeFromRevision: this.lastRevision + 1 }
            : { include: KvWatchInclude.UpdatesOnly }),
        });
        if (this.stopped) this.watch.stop();
        attempt = 0;
        for await (const e of this.watch) this.forward(e);
      } catch (err) {
        if (!this.stopped)
          this.log.warn({ err: String(err), attempt }, 'peer-map forwarder watch failed; retrying');
      }
      if (!this.stopped) await sleep(Math.min(2000, 100 * 2 ** attempt));
    }
  }

  private forward(e: KvEntry): void {
    this.lastRevision = e.revision;
    const h = headers();
    h.set(PEER_MAP_HEADERS.revision, String(e.revision));
    h.set(PEER_MAP_HEADERS.operation, e.operation);
    try {
      this.nc.publish(peerMapSubject(e.key), e.value, { headers: h });
      this.forwarded++;
    } catch (err) {
      this.log.warn({ err: String(err), cluster: e.key }, 'could not forward a peer map');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watch?.stop();
    await this.loop;
  }
}
