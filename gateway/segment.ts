/**
 * The segment backend: the local L2 segment a network's VXLAN port plugs into, an OVS
 * bridge or a Linux bridge. The gateway plugs into existing segments; it never creates
 * or deletes a bridge, and it only ever touches its own (l2fv*) ports.
 */
import type { SegmentConfig } from './config.js';
import type { LinkInfo } from './links.js';
import type { ObservedAttachment } from './model.js';

export type SegmentType = SegmentConfig['type'];

export interface SegmentView {
  readonly bridges: readonly string[];
  /** Gateway-owned ports plugged into this backend's bridges. */
  readonly attachments: readonly ObservedAttachment[];
}

/**
 * One segment technology. read() is side-effect free; attach/detach are idempotent
 * (attaching an attached port or detaching a detached one ends in the same state).
 * A port carries only its network's frames: read() reports a port as attached only
 * when it is plugged so (OVS: an access port, never a trunk; see segment-ovs.ts).
 */
export interface SegmentBackend {
  readonly type: SegmentType;
  /** `links` is the device list the reconciler already read, to avoid reading it twice. */
  read(links: readonly LinkInfo[]): Promise<SegmentView>;
  attach(port: string, segment: SegmentConfig): Promise<void>;
  detach(port: string, segment: SegmentConfig): Promise<void>;
}
