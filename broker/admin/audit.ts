/**
 * The audit log of admin actions: KV bucket `l2fed_audit`, one key per record
 * (`<UTC time>-<random>`, so keys sort by time and never collide across replicas).
 * Written after an action succeeded; read by ListAuditRecords and `l2fed get audit`.
 */
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from 'nats';
import { StorageType } from 'nats';
import type { AdminKv } from './kv.js';
import type { AuditRecord } from '../../proto/gen/l2fed/admin/v1/actions.js';

export const AUDIT_BUCKET = 'l2fed_audit';

/** The JSON stored per record. */
export interface AuditEntry {
  readonly id: string;
  readonly actor: string;
  readonly action: string;
  readonly target: string;
  readonly reason: string;
  readonly forced: boolean;
  readonly time: string;
  readonly outcome: string;
}

/**
 * Creates the audit bucket when absent. Idempotent and safe on several replicas at
 * once (identical stream creates are accepted).
 */
export async function ensureAuditBucket(
  nc: NatsConnection,
  opts: { replicas: number; storage: 'file' | 'memory' },
): Promise<void> {
  await nc.jetstream().views.kv(AUDIT_BUCKET, {
    history: 1,
    replicas: opts.replicas,
    storage: opts.storage === 'file' ? StorageType.File : StorageType.Memory,
    allow_direct: true,
  });
}

/** A new sortable record id for `now`. */
export function auditId(now = new Date()): string {
  return `${now.toISOString().replace(/[-:.]/g, '')}-${randomBytes(4).toString('hex')}`;
}

/** Writes one record and returns it in API form. */
export async function writeAudit(
  kv: AdminKv,
  e: Omit<AuditEntry, 'id' | 'time'>,
): Promise<AuditRecord> {
  const now = new Date();
  const entry: AuditEntry = { ...e, id: auditId(now), time: now.toISOString() };
  await kv.put(AUDIT_BUCKET, entry.id, entry);
  return toAuditRecord(entry);
}

export function toAuditRecord(e: AuditEntry): AuditRecord {
  return { ...e, time: new Date(e.time) };
}

/** Every record, oldest first; an absent bucket reads as empty. */
export async function readAudit(kv: AdminKv): Promise<AuditRecord[]> {
  return (await kv.list<AuditEntry>(AUDIT_BUCKET, '>', true)).map((i) => toAuditRecord(i.value));
}
