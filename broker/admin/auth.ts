/**
 * How the admin API authenticates callers: mTLS (client certs signed by the
 * federation CA), a bearer token (over server TLS), or — only when asked for by
 * name — no authentication at all, which is logged as a warning.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import {
  ResponderBuilder,
  ServerCredentials,
  ServerInterceptingCall,
  ServerListenerBuilder,
  status,
  type ServerInterceptor,
} from '@grpc/grpc-js';

export type AdminAuth =
  | {
      readonly type: 'mtls';
      readonly caCert: Buffer;
      readonly cert: Buffer;
      readonly key: Buffer;
    }
  | {
      readonly type: 'token';
      /** Accepted bearer tokens (at least 32 characters each). */
      readonly tokens: readonly string[];
      /** Server TLS; without it tokens cross the wire in clear (loopback only). */
      readonly tls?: { readonly cert: Buffer; readonly key: Buffer };
    }
  | { readonly type: 'insecure' };

/** Methods any caller may use: Kubernetes probes and load balancers call them bare. */
const PUBLIC_PREFIXES = ['/grpc.health.v1.Health/'];

export const MIN_TOKEN_LENGTH = 32;

/** Throws a message that says what to fix when the auth config cannot be safe. */
export function validateAdminAuth(auth: AdminAuth): void {
  if (auth.type === 'token') {
    if (auth.tokens.length === 0)
      throw new Error('admin auth: token mode needs at least one token');
    for (const t of auth.tokens) {
      if (t.length < MIN_TOKEN_LENGTH) {
        throw new Error(
          `admin auth: tokens must be at least ${MIN_TOKEN_LENGTH} characters (make one with "l2fed pki token")`,
        );
      }
    }
  }
}

/**
 * True when a gRPC target or listen address ("host:port", "[v6]:port", "dns:…",
 * "ipv4:…", "ipv6:…", "unix:…") only reaches this machine: 127.0.0.0/8, ::1 (also
 * IPv4-mapped), the name "localhost", or a unix socket. Wildcards (0.0.0.0, ::, empty
 * host) and every other name are not loopback.
 */
export function isLoopbackAddress(address: string): boolean {
  let a = address.trim();
  if (/^unix(-abstract)?:/.test(a)) return true;
  a = a.replace(/^dns:(\/\/[^/]*\/)?/, '').replace(/^ipv[46]:/, '');
  let host: string;
  if (a.startsWith('[')) {
    const end = a.indexOf(']');
    if (end < 0) return false;
    host = a.slice(1, end);
  } else {
    const colons = a.split(':').length - 1;
    host = colons === 1 ? a.slice(0, a.indexOf(':')) : a; // several colons: a bare IPv6
  }
  host = host.toLowerCase().replace(/\.$/, '');
  if (host === 'localhost') return true;
  if (isIPv4(host)) return host.startsWith('127.');
  if (isIPv6(host)) {
    // The URL parser writes IPv6 in canonical form: ::1, and ::ffff:7fXX:… for 127/8.
    const canonical = new URL(`http://[${host}]/`).hostname;
    return canonical === '[::1]' || /^\[::ffff:7f[0-9a-f]{2}:/.test(canonical);
  }
  return false;
}

/**
 * Why serving `auth` on `address` would be unsafe, or undefined when it is fine: no
 * authentication, or bearer tokens without TLS, are allowed only on a loopback address.
 * The message names the broker flags and what to do.
 */
export function exposureProblem(auth: AdminAuth, address: string): string | undefined {
  if (isLoopbackAddress(address)) return undefined;
  if (auth.type === 'insecure') {
    return (
      `admin API on ${address}: --insecure-admin (no authentication) is allowed only on a ` +
      `loopback address; listen on one (--admin-listen 127.0.0.1:7443) or configure ` +
      `authentication: --admin-ca, --admin-cert and --admin-key (mTLS, "l2fed pki init")`
    );
  }
  if (auth.type === 'token' && !auth.tls) {
    return (
      `admin API on ${address} would take bearer tokens in clear on a non-loopback address: ` +
      `add --admin-cert and --admin-key (server TLS, "l2fed pki init"), or listen on ` +
      `127.0.0.1 (--admin-listen 127.0.0.1:7443)`
    );
  }
  return undefined;
}

export function serverCredentials(auth: AdminAuth): ServerCredentials {
  switch (auth.type) {
    case 'mtls':
      return ServerCredentials.createSsl(
        auth.caCert,
        [{ cert_chain: auth.cert, private_key: auth.key }],
        true, // require and verify a client certificate
      );
    case 'token':
      return auth.tls
        ? ServerCredentials.createSsl(null, [
            { cert_chain: auth.tls.cert, private_key: auth.tls.key },
          ])
        : ServerCredentials.createInsecure();
    case 'insecure':
      return ServerCredentials.createInsecure();
  }
}

const digest = (s: string) => createHash('sha256').update(s).digest();

/** Constant-time check of "authorization: Bearer <token>" against the accepted set. */
export function tokenMatches(header: unknown, accepted: readonly Buffer[]): boolean {
  if (typeof header !== 'string') return false;
  const m = /^Bearer\s+(\S+)$/i.exec(header);
  if (!m) return false;
  const got = digest(m[1]!);
  let ok = false;
  for (const a of accepted) ok = timingSafeEqual(got, a) || ok;
  return ok;
}

/** Server interceptors for the auth mode (token mode checks every non-public call). */
export function serverInterceptors(auth: AdminAuth): ServerInterceptor[] {
  if (auth.type !== 'token') return [];
  const accepted = auth.tokens.map(digest);
  const check: ServerInterceptor = (method, call) => {
    const isPublic = PUBLIC_PREFIXES.some((p) => method.path.startsWith(p));
    const listener = new ServerListenerBuilder()
      .withOnReceiveMetadata((metadata, next) => {
        if (isPublic || tokenMatches(metadata.get('authorization')[0], accepted)) {
          next(metadata);
        } else {
          call.sendStatus({
            code: status.UNAUTHENTICATED,
            details:
              'missing or wrong bearer token: pass "authorization: Bearer <token>" (l2fed --token-file FILE)',
          });
        }
      })
      .build();
    const responder = new ResponderBuilder().withStart((next) => next(listener)).build();
    return new ServerInterceptingCall(call, responder);
  };
  return [check];
}
