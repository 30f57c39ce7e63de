/**
 * Admin API settings of `broker/main.ts run`: a config-file section `admin:` that
 * command-line flags override. Turns them into the listen address and AdminAuth,
 * refusing a half-configured or unauthenticated setup with a message that says
 * which flags to add.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { exposureProblem, isLoopbackAddress, type AdminAuth } from './auth.js';
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

const MTLS =
  'give --admin-ca, --admin-cert and --admin-key (mTLS; make them with "l2fed pki init")';
/** What to add when no auth is configured: only the modes the address allows. */
const how = (address: string) =>
  isLoopbackAddress(address)
    ? `${MTLS}, --admin-token-file (bearer token; "l2fed pki token"), or --insecure-admin (no auth, testing only)`
    : `${MTLS}, or --admin-token-file with --admin-cert and --admin-key (bearer token over TLS; ` +
      `"l2fed pki token"); without TLS, or with --insecure-admin, listen on a loopback address`;

/** Each auth option as the operator wrote it: flag and config-file key. */
const OPT = {
  ca: '--admin-ca (admin.ca)',
  cert: '--admin-cert (admin.cert)',
  key: '--admin-key (admin.key)',
  tokenFile: '--admin-token-file (admin.tokenFile)',
  insecure: '--insecure-admin (admin.insecure)',
  writers: '--admin-writers (admin.writers)',
} as const;

/** What each auth mode calls its callers (identity.ts), for checking writers. */
const IDENTITY_OF: Record<AdminAuth['type'], { re: RegExp; shape: string }> = {
  mtls: { re: /^cn:\S+$/, shape: '"cn:<certificate CN>"' },
  token: {
    re: /^token:[0-9a-f]{12}$/,
    shape: '"token:<id>" (12 hex digits; "l2fed pki token" prints it)',
  },
  insecure: { re: /^insecure$/, shape: '"insecure"' },
};

/** Refuses option sets that contradict each other instead of silently picking one. */
function refuseConflicts(c: AdminFileConfig): void {
  const conflict = (a: string, b: string, why: string) =>
    new BrokerConfigError(`${a} and ${b} conflict: ${why}`);
  if (c.insecure) {
    const other = (['tokenFile', 'ca', 'cert', 'key'] as const).find((k) => c[k]);
    if (other) {
      throw conflict(
        OPT.insecure,
        OPT[other],
        `insecure turns authentication off. Drop ${OPT.insecure.split(' ')[0]} to authenticate, ` +
          `or drop the credential options to run without authentication (loopback only)`,
      );
    }
  }
  if (c.tokenFile && c.ca) {
    throw conflict(
      OPT.tokenFile,
      OPT.ca,
      'the admin API authenticates callers one way, by bearer token or by client ' +
        'certificate (mTLS). To use tokens over server TLS, drop --admin-ca and keep ' +
        '--admin-cert and --admin-key; to use mTLS, drop --admin-token-file',
    );
  }
  if (c.cert && !c.key)
    throw new BrokerConfigError(`${OPT.cert} needs ${OPT.key} (its private key)`);
  if (c.key && !c.cert)
    throw new BrokerConfigError(`${OPT.key} needs ${OPT.cert} (its certificate)`);
  if (c.ca && !(c.cert && c.key))
    throw new BrokerConfigError(`admin mTLS needs all of --admin-ca, --admin-cert and --admin-key`);
}

/** Every writers entry must be an identity the configured auth mode can produce. */
function checkWriters(writers: readonly string[], auth: AdminAuth['type']): void {
  const any = Object.values(IDENTITY_OF);
  for (const w of writers) {
    if (!any.some((i) => i.re.test(w))) {
      throw new BrokerConfigError(
        `${OPT.writers} entry ${JSON.stringify(w)} is not a caller identity: use ` +
          `${IDENTITY_OF.mtls.shape} under mTLS or ${IDENTITY_OF.token.shape} under tokens`,
        'writers',
      );
    }
    if (!IDENTITY_OF[auth].re.test(w)) {
      throw new BrokerConfigError(
        `${OPT.writers} entry ${JSON.stringify(w)} can never match: the admin API uses ` +
          `${auth} auth, whose callers are ${IDENTITY_OF[auth].shape}`,
        'writers',
      );
    }
  }
}

/**
 * Resolves file + flags; undefined when the admin API is not configured at all.
 * Throws BrokerConfigError (naming the options and what to do) for conflicting options
 * (a token with --admin-ca, insecure with any credential, half a cert/key pair), for
 * no authentication or clear-text tokens on a non-loopback address, and for writers
 * entries the auth mode can never produce.
 */
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
  if (!anyAuth)
    throw new BrokerConfigError(
      `admin API on ${address} has no authentication configured: ${how(address)}`,
    );
  refuseConflicts(c);
  let auth: AdminAuth;
  if (c.tokenFile) {
    const tokens = (await readFile(c.tokenFile, 'utf8'))
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean);
    const tls =
      c.cert && c.key ? { cert: await readFile(c.cert), key: await readFile(c.key) } : undefined;
    auth = { type: 'token', tokens, ...(tls ? { tls } : {}) };
  } else if (c.ca && c.cert && c.key) {
    auth = {
      type: 'mtls',
      caCert: await readFile(c.ca),
      cert: await readFile(c.cert),
      key: await readFile(c.key),
    };
  } else if (c.insecure) {
    auth = { type: 'insecure' };
  } else {
    // Only --admin-cert/--admin-key: server TLS alone authenticates nobody.
    throw new BrokerConfigError(
      `admin API on ${address}: --admin-cert and --admin-key alone authenticate no caller; ` +
        `add --admin-ca (mTLS) or --admin-token-file (bearer tokens over TLS)`,
    );
  }
  const exposed = exposureProblem(auth, address);
  if (exposed) throw new BrokerConfigError(exposed);
  if (c.writers) checkWriters(c.writers, auth.type);
  return {
    address,
    auth,
    ...(c.writers ? { writers: c.writers } : {}),
    ...(staleAfterMs !== undefined ? { staleAfterMs } : {}),
  };
}
