/**
 * What every admin service implementation needs: the NATS connection to read KV
 * with, the Federation to change it through, the auth mode (for caller identity) and
 * the operator-facing knobs. Shared by the service files; holds no federation state.
 */
import type { NatsConnection } from 'nats';
import type { Federation } from '../federation.js';
import type { AdminAuth } from './auth.js';
import type { Logger } from '../../lib/log.js';

export interface AdminContext {
  readonly nc: NatsConnection;
  readonly federation: Federation;
  /** KV replicas for buckets the admin API creates (l2fed_audit); as the broker's. */
  readonly replicas: number;
  readonly storage: 'file' | 'memory';
  readonly authType: AdminAuth['type'];
  /** Identities allowed to run actions (e.g. "cn:alice"); undefined = every caller. */
  readonly writers?: readonly string[];
  /** Health reports older than this are shown as stale. */
  readonly staleAfterMs: number;
  readonly log?: Logger;
  /** False while the NATS connection is down (reconnecting); calls then fail fast. */
  readonly natsUp: () => boolean;
  /**
   * The broker's claimGraceMs: an unbound claim younger than this may be between its
   * claim and its binding write, so the allocators leave it alone and so do the actions.
   */
  readonly claimGraceMs: number;
  /** Epoch ms now (Date.now in the broker; a fake clock in unit tests). */
  readonly now: () => number;
}
