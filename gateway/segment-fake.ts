/** In-memory SegmentBackend for unit tests: bridges and the ports plugged into them. */
import type { SegmentConfig } from './config.js';
import type { FakeLog } from '../lib/log-fake.js';
import type { ObservedAttachment } from './model.js';
import type { SegmentBackend, SegmentType, SegmentView } from './segment.js';

export class FakeSegment implements SegmentBackend {
  readonly bridges = new Set<string>();
  readonly ports = new Map<string, ObservedAttachment>();

  constructor(
    readonly type: SegmentType,
    private readonly log: FakeLog,
    bridges: readonly string[] = [],
  ) {
    bridges.forEach((b) => this.bridges.add(b));
  }

  read(): Promise<SegmentView> {
    return Promise.resolve({ bridges: [...this.bridges], attachments: [...this.ports.values()] });
  }

  attach(port: string, segment: SegmentConfig): Promise<void> {
    this.log.record(`segment attach ${port} ${segment.bridge}`);
    if (!this.bridges.has(segment.bridge)) throw new Error(`fake segment: no ${segment.bridge}`);
    this.ports.set(port, { port, segment });
    return Promise.resolve();
  }

  detach(port: string, segment: SegmentConfig): Promise<void> {
    this.log.record(`segment detach ${port} ${segment.bridge}`);
    this.ports.delete(port);
    return Promise.resolve();
  }
}
