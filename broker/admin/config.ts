/**
 * Admin API settings of `broker/main.ts run`: a config-file section `admin:` that
 * command-line flags override. Turns them into the listen address and AdminAuth,
 * refusing a half-configured or unauthenticated setup with a message that says
 * which flags to add.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import type { AdminAuth } from './auth.js';
import { BrokerConfigError } from '../errors.js';

export const DEFAULT_ADMIN_LISTEN = '127.0.0.1:7443';

export const adminFileSchema = z.strictObject({
  /** host:port of the admin gRPC API. */
  listen: z.string().optional(),
  /** mTLS: CA that signs client certs, and the server's cert and key (PEM files). */
  ca: z.string().optional(),
  cert: z.string().optional(),
  key: z.string().optional(),
  /** Bearer tokens, one per line (made by `l2fed pki token`). */
  tokenFile: z.string().optional(),
  /** No authentication at all; logged as a warning. Never in production. */
  insecure: z.boolean().optional(),
  /** Identities allowed to run admin actions, e.g. ["cn:alice", "token:1a2b3c4d5e6f"]. */
  writers: z.array(z.string()).optional(),
  /** Health reports older than this many seconds are shown as stale. */
  staleAfterSeconds: z.int().min(1).optional(),
});
export type AdminFileConfig = z.infer<typeof adminFileSchema>;

/** The admin flags of `run` (undefined = not given). */
export interface AdminFlags {
  readonly 'admin-listen'?: string;
  readonly 'admin-ca'?: string;
  readonly 'admin-cert'?: string;
  readonly 'admin-key'?: string;
  readonly 'admin-token-file'?: string;
  readonly 'insecure-admin'?: boolean;
  readonly 'admin-writers'?: string;
  readonly 'admin-stale-after'?: string;
}

export interface ResolvedAdmin {
  readonly address: string;
  readonly auth: AdminAuth;
  readonly writers?: readonly string[];
  readonly staleAfterMs?: number;
}

const HOW =
  'give --admin-ca, --admin-cert and --admin-key (mTLS; make them with "l2fed pki init"), ' +
  '--admin-token-file (bearer token; "l2fed pki token"), or --insecure-admin (no auth, testing only)';

/** Resolves file + flags; undefined when the admin API is not configured at all. */
export async function resolveAdmin(
  file: AdminFileConfig | undefined,
  flags: AdminFlags,
): Promise<ResolvedAdmin | undefined> {
  const c: AdminFileConfig = {
    ...file,
    ...(flags['admin-listen'] ? { listen: flags['admin-listen'] } : {}),
    ...(flags['admin-ca'] ? { ca: flags['admin-ca'] } : {}),
    ...(flags['admin-cert'] ? { cert: flags['admin-cert'] } : {}),
    ...(flags['admin-key'] ? { key: flags['admin-key'] } : {}),
    ...(flags['admin-token-file'] ? { tokenFile: flags['admin-token-file'] } : {}),
    ...(flags['insecure-admin'] ? { insecure: true } : {}),
    ...(flags['admin-writers']
      ? { writers: flags['admin-writers'].split(',').filter(Boolean) }
      : {}),
  };
  const stale = flags['admin-stale-after'] ?? c.staleAfterSeconds;
  const staleAfterMs = stale === undefined ? undefined : Number(stale) * 1000;
  if (staleAfterMs !== undefined && !(staleAfterMs >= 1000))
    throw new BrokerConfigError('--admin-stale-after must be a number of seconds >= 1');
  const anyAuth = c.ca || c.cert || c.key || c.tokenFile || c.insecure;
  if (!c.listen && !anyAuth) return undefined;
  const address = c.listen ?? DEFAULT_ADMIN_LISTEN;
  const extra = {
    ...(c.writers ? { writers: c.writers } : {}),
    ...(staleAfterMs !== undefined ? { staleAfterMs } : {}),
  };
  if (c.tokenFile) {
    const tokens = (await readFile(c.tokenFile, 'utf8'))
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    const tls =
      c.cert && c.key ? { cert: await readFile(c.cert), key: await readFile(c.key) } : undefined;
    return { address, auth: { type: 'token', tokens, ...(tls ? { tls } : {}) }, ...extra };
  }
  if (c.ca || c.cert || c.key) {
    if (!(c.ca && c.cert && c.key))
      throw new BrokerConfigError(
        `admin mTLS needs all of --admin-ca, --admin-cert and --admin-key`,
      );
    return {
      address,
      auth: {
        type: 'mtls',
        caCert: await readFile(c.ca),
        cert: await readFile(c.cert),
        key: await readFile(c.key),
      },
      ...extra,
    };
  }
  if (c.insecure) return { address, auth: { type: 'insecure' }, ...extra };
  throw new BrokerConfigError(`admin API on ${address} has no authentication configured: ${HOW}`);
}
