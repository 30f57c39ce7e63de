/**
 * Who is calling: the client certificate's CN under mTLS, a short id of the bearer
 * token (never the token), or "insecure". Recorded in audit records and checked
 * against the optional list of identities allowed to run admin actions.
 */
import { createHash } from 'node:crypto';
import type { Metadata } from '@grpc/grpc-js';
import type { AdminAuth } from './auth.js';
import { PermissionDeniedError } from './errors.js';

/** The part of a server call identity needs. */
export interface CallLike {
  readonly metadata: Metadata;
  getAuthContext(): {
    readonly sslPeerCertificate?: { readonly subject?: { readonly CN?: string | string[] } };
  };
}

/** "token:" + the first 12 hex digits of sha256(token): stable, safe to log. */
export function tokenId(token: string): string {
  return `token:${createHash('sha256').update(token).digest('hex').slice(0, 12)}`;
}

/** The caller's identity under the server's auth mode. */
export function callerIdentity(call: CallLike, auth: AdminAuth['type']): string {
  switch (auth) {
    case 'mtls': {
      const raw = call.getAuthContext().sslPeerCertificate?.subject?.CN;
      const cn = Array.isArray(raw) ? raw[0] : raw;
      return `cn:${cn || 'unknown'}`;
    }
    case 'token': {
      const m = /^Bearer\s+(\S+)$/i.exec(String(call.metadata.get('authorization')[0] ?? ''));
      return m ? tokenId(m[1]!) : 'token:none';
    }
    case 'insecure':
      return 'insecure';
  }
}

/**
 * Refuses an action when `writers` is set and does not list the caller. Without a
 * list every authenticated caller may act (the default, as before this option).
 */
export function requireWriter(identity: string, writers: readonly string[] | undefined): void {
  if (writers === undefined || writers.includes(identity)) return;
  throw new PermissionDeniedError(
    `"${identity}" may read but not run admin actions; ask an operator to add it to the ` +
      `broker's --admin-writers list`,
  );
}
