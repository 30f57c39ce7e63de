/** Segment backend on a Linux bridge: the VXLAN device becomes a bridge port. */
import type { SegmentConfig } from './config.js';
import { change, type Host } from './host.js';
import type { LinkInfo } from './links.js';
import { VXLAN_PREFIX } from './model.js';
import type { SegmentBackend, SegmentView } from './segment.js';

export class LinuxBridgeSegment implements SegmentBackend {
  readonly type = 'linux-bridge' as const;
  constructor(private readonly host: Host) {}

  read(links: readonly LinkInfo[]): Promise<SegmentView> {
    const bridges = links.filter((l) => l.kind === 'bridge').map((l) => l.name);
    const attachments = links
      .filter((l) => l.name.startsWith(VXLAN_PREFIX) && l.master && bridges.includes(l.master))
      .map((l) => ({ port: l.name, segment: { type: this.type, bridge: l.master! } }));
    return Promise.resolve({ bridges, attachments });
  }

  async attach(port: string, segment: SegmentConfig): Promise<void> {
    await change(this.host, ['ip', 'link', 'set', port, 'master', segment.bridge]);
  }

  async detach(port: string): Promise<void> {
    await change(this.host, ['ip', 'link', 'set', port, 'nomaster']);
  }
}
