/**
 * Events of WatchEvents: which bucket each kind watches, the one-line summary of a
 * change, and the resume token (the last stream sequence seen per bucket, encoded).
 * Pure; the streaming itself is in events-service.ts.
 */
import { BUCKETS } from '../records.js';
import type {
  ClusterRecord,
  ExportsRecord,
  PeerMap,
  PeeringsRecord,
  VniClaim,
} from '../records.js';
import { HEALTH_BUCKET, type ClusterHealthRecord } from './snapshot.js';
import { AUDIT_BUCKET, type AuditEntry } from './audit.js';
import { InvalidArgumentError } from './errors.js';
import { EventKind } from '../../proto/gen/l2fed/admin/v1/events.js';

/** Bucket per event kind; `optional` buckets may not exist (yet) and are then skipped. */
export const EVENT_SOURCES = [
  { kind: EventKind.EVENT_KIND_CLUSTER, bucket: BUCKETS.clusters, optional: false },
  { kind: EventKind.EVENT_KIND_EXPORTS, bucket: BUCKETS.exports, optional: false },
  { kind: EventKind.EVENT_KIND_PEERINGS, bucket: BUCKETS.peerings, optional: false },
  { kind: EventKind.EVENT_KIND_NETWORK, bucket: BUCKETS.networks, optional: false },
  { kind: EventKind.EVENT_KIND_PEER_MAP, bucket: BUCKETS.peerMaps, optional: false },
  { kind: EventKind.EVENT_KIND_HEALTH, bucket: HEALTH_BUCKET, optional: true },
  { kind: EventKind.EVENT_KIND_AUDIT, bucket: AUDIT_BUCKET, optional: true },
] as const;
export type EventSource = (typeof EVENT_SOURCES)[number];

/** Last sequence seen per kind. */
export type Cursor = Partial<Record<number, number>>;

export function encodeCursor(c: Cursor): string {
  return Buffer.from(JSON.stringify(c)).toString('base64url');
}

/** Parses a resume token; INVALID_ARGUMENT (field resume_token) when it is not one. */
export function decodeCursor(token: string): Cursor {
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const out: Cursor = {};
      for (const [k, seq] of Object.entries(v as Record<string, unknown>)) {
        if (
          !Number.isInteger(seq) ||
          (seq as number) < 0 ||
          !EVENT_SOURCES.some((s) => String(s.kind) === k)
        )
          throw new Error('bad entry');
        out[Number(k)] = seq as number;
      }
      return out;
    }
  } catch {
    // fall through
  }
  throw InvalidArgumentError.field(
    'resume_token',
    'is not a token from a WatchEvents event; start without it (optionally with include_initial)',
  );
}

const names = (xs: readonly { name: string }[]) => xs.map((x) => x.name).join(', ') || 'nothing';

/** One line for humans about a change of `key` in the kind's bucket. */
export function summarize(kind: EventKind, key: string, value: unknown): string {
  const del = value === undefined;
  switch (kind) {
    case EventKind.EVENT_KIND_CLUSTER: {
      if (del) return `cluster ${key} deregistered`;
      const c = value as ClusterRecord;
      return c.cordon
        ? `cluster ${key} cordoned by ${c.cordon.by}: ${c.cordon.reason}`
        : `cluster ${key} registered (${c.endpoints.join(', ')}, transit ${c.transitAddress})`;
    }
    case EventKind.EVENT_KIND_EXPORTS:
      return del
        ? `${key} exports nothing`
        : `${key} exports ${names((value as ExportsRecord).networks)}`;
    case EventKind.EVENT_KIND_PEERINGS:
      return del
        ? `${key} declares no peerings`
        : `${key} declares peerings with ${(value as PeeringsRecord).peerings.map((p) => p.remoteCluster).join(', ') || 'nobody'}`;
    case EventKind.EVENT_KIND_NETWORK: {
      const [type, a, b] = key.split('.');
      if (type === 'net')
        return del
          ? `network ${a} released`
          : `network ${a} bound to VNI ${(value as { vni: number }).vni}`;
      if (type === 'member') return del ? `${b} left network ${a}` : `${b} joined network ${a}`;
      if (del) return `VNI ${a} freed`;
      const c = value as VniClaim;
      return c.state === 'active'
        ? `VNI ${a} claimed for ${c.network}`
        : `VNI ${a} quarantined (was ${c.network})`;
    }
    case EventKind.EVENT_KIND_PEER_MAP:
      return del
        ? `peer map of ${key} removed`
        : `peer map of ${key}: ${(value as PeerMap).peers.map((p) => `${p.cluster}[${names(p.networks)}]`).join(' ') || 'no peers'}`;
    case EventKind.EVENT_KIND_HEALTH: {
      if (del) return `health report of ${key} removed`;
      const peers = (value as ClusterHealthRecord).peers ?? [];
      return `${key} reports ${peers.filter((p) => p.state === 'up').length}/${peers.length} tunnels up`;
    }
    case EventKind.EVENT_KIND_AUDIT: {
      if (del) return `audit record ${key} removed`;
      const e = value as AuditEntry;
      return `${e.actor} ${e.action} ${e.target}: ${e.outcome}`;
    }
    default:
      return key;
  }
}
