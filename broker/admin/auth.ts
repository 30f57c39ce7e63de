/**
 * How the admin API authenticates callers: mTLS (client certs signed by the
 * federation CA), a bearer token (over server TLS), or — only when asked for by
 * name — no authentication at all, which is logged as a warning.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
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
