/**
 * Generates the NATS server authorization for a federation: one account with
 * JetStream, one user per cluster and one for the broker. Cluster users are confined
 * by subject permissions to
 *   - requests on their own subjects `l2fed.v1.<id>.>` (the id the broker trusts);
 *   - reading their own peer-map key only: the direct-get subject that carries the
 *     key (`$KV.l2fed_peermaps.<id>`) in the subject itself (nats-server >= 2.9, used
 *     by nats.js 2.29), and subscribing to `l2fed.peermap.<id>`, where the broker
 *     publishes its changes (no JetStream consumer of their own);
 *   - their own reply inbox prefix `_INBOX_<id>`, so they cannot read others' replies.
 * Everything else (other KV buckets, stream/message get APIs that take the subject
 * in the body, consumers, other clusters' subjects) is denied by omission.
 *
 * Credentials are nkeys by default (the server config holds only public keys), or
 * random user/password pairs.
 */
import { randomBytes } from 'node:crypto';
import {
  nkeyAuthenticator,
  nkeys,
  usernamePasswordAuthenticator,
  type ConnectionOptions,
} from 'nats';
import { BUCKETS } from './records.js';
import { peerMapSubject, SUBJECT_PREFIX } from './protocol.js';
import { z } from 'zod';
import { isDns1123Label } from './names.js';
import { BrokerConfigError } from './errors.js';

export type Credential =
  | {
      readonly type: 'nkey';
      readonly user: string;
      readonly publicKey: string;
      readonly seed: string;
    }
  | { readonly type: 'password'; readonly user: string; readonly password: string };

/** The credentials file `gen-auth` writes, validated on read (broker and agents). */
export const credentialSchema = z.discriminatedUnion('type', [
  z.strictObject({
    type: z.literal('nkey'),
    user: z.string(),
    publicKey: z.string(),
    seed: z.string(),
  }),
  z.strictObject({ type: z.literal('password'), user: z.string(), password: z.string() }),
]);

export interface TlsSettings {
  readonly certFile: string;
  readonly keyFile: string;
  /** CA for client certificates; with `verify` clients must present one. */
  readonly caFile?: string;
  readonly verify?: boolean;
}

export interface FederationAuthOptions {
  readonly clusters: readonly string[];
  readonly mode?: Credential['type'];
  /** NATS account that holds the federation; default L2FED. */
  readonly account?: string;
  readonly tls?: TlsSettings;
}

export interface FederationAuth {
  /** nats-server config text to include (accounts block, optional tls block). */
  readonly serverConfig: string;
  readonly broker: Credential;
  readonly clusters: Readonly<Record<string, Credential>>;
}

interface Permissions {
  publish: { allow: string[] };
  subscribe: { allow: string[] };
}

/** Reply inbox prefix a cluster must use (`inboxPrefix` connect option). */
export function inboxPrefix(clusterId: string): string {
  return `_INBOX_${clusterId}`;
}

/**
 * Subject permissions of a cluster user. Pure. No JetStream consumer grant: the
 * broker publishes the map's changes on `l2fed.peermap.<id>` (peer-map-forwarder.ts),
 * so a cluster cannot create (durable) consumers on the broker's streams.
 */
export function clusterPermissions(clusterId: string): Permissions {
  const stream = `KV_${BUCKETS.peerMaps}`;
  const ownKey = `$KV.${BUCKETS.peerMaps}.${clusterId}`;
  return {
    publish: {
      allow: [
        `${SUBJECT_PREFIX}.${clusterId}.>`,
        // JetStream account info (checked by jetstreamManager); reveals usage only.
        '$JS.API.INFO',
        `$JS.API.DIRECT.GET.${stream}.${ownKey}`,
      ],
    },
    subscribe: { allow: [`${inboxPrefix(clusterId)}.>`, peerMapSubject(clusterId)] },
  };
}

/**
 * The admin API's audit bucket (AUDIT_BUCKET in admin/audit.ts; a test keeps the two
 * equal). Named here so the agent, which imports this file, does not load the admin API.
 */
export const ADMIN_AUDIT_BUCKET = 'l2fed_audit';

/**
 * Buckets the broker user works on: its own (records.ts) and the admin API's audit log
 * (the admin API runs inside the broker, on its connection).
 */
export const BROKER_BUCKETS: readonly string[] = [...Object.values(BUCKETS), ADMIN_AUDIT_BUCKET];

/**
 * Subject permissions of the broker user: exactly what the broker and its admin API use
 * at run time, per bucket. Create/inspect its own streams (idempotent, at start); read
 * keys (direct get, or message get on a stream without allow_direct); list/watch them
 * (ordered consumers: create, flow control, delete); write/delete keys
 * (`$KV.<bucket>.>`). No purge, stream delete/update or message delete, no other
 * stream, no `$JS.API.>`. Pure.
 */
export function brokerPermissions(clusterIds: readonly string[]): Permissions {
  const perBucket = BROKER_BUCKETS.flatMap((b) => {
    const stream = `KV_${b}`;
    return [
      `$JS.API.STREAM.INFO.${stream}`,
      `$JS.API.STREAM.CREATE.${stream}`,
      `$JS.API.DIRECT.GET.${stream}`,
      `$JS.API.DIRECT.GET.${stream}.>`,
      // Reads of a bucket created without allow_direct (older deployments) use this.
      `$JS.API.STREAM.MSG.GET.${stream}`,
      `$JS.API.CONSUMER.CREATE.${stream}`,
      `$JS.API.CONSUMER.CREATE.${stream}.>`,
      `$JS.API.CONSUMER.DELETE.${stream}.*`,
      `$JS.FC.${stream}.>`,
      `$KV.${b}.>`,
    ];
  });
  return {
    publish: {
      allow: [
        '$JS.API.INFO',
        ...perBucket,
        // The forwarder (peer-map-forwarder.ts) publishes each cluster's map changes.
        peerMapSubject('*'),
        // Replies: only into each cluster's private inbox. Not `allow_responses`, which
        // would let the broker answer any reply subject a requester names (a JetStream
        // purge, another cluster's key); broker.ts (isOwnInbox) checks the same first.
        ...clusterIds.map((id) => `${inboxPrefix(id)}.>`),
      ],
    },
    subscribe: {
      allow: [`${SUBJECT_PREFIX}.>`, '_INBOX.>'],
    },
  };
}

interface NkeyPair {
  getPublicKey(): string;
  getSeed(): Uint8Array;
}

function newCredential(mode: Credential['type'], user: string): Credential {
  if (mode === 'password')
    return { type: 'password', user, password: randomBytes(24).toString('base64url') };
  // nats re-exports nkeys.js, whose types do not resolve under NodeNext: type the bit we use.
  const kp = (nkeys as unknown as { createUser(): NkeyPair }).createUser();
  return {
    type: 'nkey',
    user,
    publicKey: kp.getPublicKey(),
    seed: new TextDecoder().decode(kp.getSeed()),
  };
}

function userEntry(c: Credential, permissions: Permissions): Record<string, unknown> {
  return c.type === 'nkey'
    ? { nkey: c.publicKey, permissions }
    : { user: c.user, password: c.password, permissions };
}

function checkClusterIds(ids: readonly string[], taken: ReadonlySet<string> = new Set()): void {
  const seen = new Set<string>();
  for (const id of ids) {
    if (!isDns1123Label(id))
      throw new BrokerConfigError(`cluster id "${id}" is not a DNS-1123 label`, 'clusters');
    if (seen.has(id)) throw new BrokerConfigError(`cluster id "${id}" is listed twice`, 'clusters');
    if (taken.has(id))
      throw new BrokerConfigError(`cluster "${id}" already has credentials`, 'clusters');
    seen.add(id);
  }
}

/**
 * Creates fresh credentials for the broker and every cluster and the server config
 * that admits them. Not idempotent by design: each call mints new secrets.
 */
export function generateFederationAuth(opts: FederationAuthOptions): FederationAuth {
  const mode = opts.mode ?? 'nkey';
  checkClusterIds(opts.clusters);
  const clusters: Record<string, Credential> = {};
  for (const id of opts.clusters) clusters[id] = newCredential(mode, `cluster-${id}`);
  return renderFederationAuth({
    broker: newCredential(mode, 'l2fed-broker'),
    clusters,
    ...(opts.account ? { account: opts.account } : {}),
    ...(opts.tls ? { tls: opts.tls } : {}),
  });
}

/** Credentials that exist already, and the server-config settings to keep. */
export interface ExistingAuth {
  readonly broker: Credential;
  readonly clusters: Readonly<Record<string, Credential>>;
  readonly account?: string;
  readonly tls?: TlsSettings;
}

/**
 * The server config that admits exactly these credentials (the broker's permissions name
 * every cluster's inbox). Pure: no secret is minted.
 */
export function renderFederationAuth(a: ExistingAuth): FederationAuth {
  const account = a.account ?? 'L2FED';
  const ids = Object.keys(a.clusters).sort();
  const users = [userEntry(a.broker, brokerPermissions(ids))];
  for (const id of ids) users.push(userEntry(a.clusters[id]!, clusterPermissions(id)));
  // NATS config accepts JSON syntax; quoted strings are not variable-expanded, so
  // "$JS.API..." subjects are safe.
  const accounts = { [account]: { jetstream: 'enabled', users } };
  const lines = [
    '# Generated by l2fed (broker/auth-config.ts). Holds no secrets in nkey mode.',
    // No no_auth_user: a connection without credentials is refused.
    `accounts: ${JSON.stringify(accounts, null, 2)}`,
  ];
  if (a.tls) {
    const t = a.tls;
    const tls: Record<string, unknown> = { cert_file: t.certFile, key_file: t.keyFile };
    if (t.caFile) tls.ca_file = t.caFile;
    if (t.verify) tls.verify = true;
    lines.push(`tls: ${JSON.stringify(tls, null, 2)}`);
  }
  return {
    serverConfig: lines.join('\n') + '\n',
    broker: a.broker,
    clusters: Object.fromEntries(ids.map((id) => [id, a.clusters[id]!])),
  };
}

/**
 * Adds clusters to existing credentials: mints theirs (in the mode the broker's
 * credential uses) and renders the server config anew; every other credential stays as
 * it is, so no other cluster's Secret changes. Throws BrokerConfigError for a bad or
 * already present id.
 */
export function addClusters(a: ExistingAuth, ids: readonly string[]): FederationAuth {
  checkClusterIds(ids, new Set(Object.keys(a.clusters)));
  const clusters = { ...a.clusters };
  for (const id of ids) clusters[id] = newCredential(a.broker.type, `cluster-${id}`);
  return renderFederationAuth({ ...a, clusters });
}

/** Removes clusters (their users leave the server config); throws for an unknown id. */
export function removeClusters(a: ExistingAuth, ids: readonly string[]): FederationAuth {
  const clusters = { ...a.clusters };
  for (const id of ids) {
    if (!(id in clusters))
      throw new BrokerConfigError(`cluster "${id}" has no credentials to remove`, 'clusters');
    delete clusters[id];
  }
  return renderFederationAuth({ ...a, clusters });
}

/**
 * The settings of a server config renderFederationAuth wrote (account name, TLS block),
 * so an edit keeps them. Throws BrokerConfigError for text it did not write.
 */
export function parseServerConfig(text: string): { account: string; tls?: TlsSettings } {
  const block = (name: string): unknown => {
    const m = new RegExp(`^${name}: (\\{[\\s\\S]*?^\\})`, 'm').exec(text);
    if (!m) return undefined;
    try {
      return JSON.parse(m[1]!) as unknown;
    } catch {
      return undefined;
    }
  };
  const accounts = block('accounts');
  const names = accounts && typeof accounts === 'object' ? Object.keys(accounts) : [];
  if (names.length !== 1)
    throw new BrokerConfigError(
      'nats-auth.conf is not one gen-auth wrote (no single accounts block); regenerate it with gen-auth --clusters',
    );
  const t = block('tls') as
    { cert_file?: string; key_file?: string; ca_file?: string; verify?: boolean } | undefined;
  if (t && (typeof t.cert_file !== 'string' || typeof t.key_file !== 'string'))
    throw new BrokerConfigError('nats-auth.conf has a tls block without cert_file and key_file');
  return {
    account: names[0]!,
    ...(t
      ? {
          tls: {
            certFile: t.cert_file!,
            keyFile: t.key_file!,
            ...(t.ca_file ? { caFile: t.ca_file } : {}),
            ...(t.verify ? { verify: true } : {}),
          },
        }
      : {}),
  };
}

/** nats.js connect options for a credential (cluster users also need their inbox prefix). */
export function connectOptionsFor(c: Credential, clusterId?: string): ConnectionOptions {
  const authenticator =
    c.type === 'nkey'
      ? nkeyAuthenticator(new TextEncoder().encode(c.seed))
      : usernamePasswordAuthenticator(c.user, c.password);
  return clusterId === undefined
    ? { authenticator }
    : { authenticator, inboxPrefix: inboxPrefix(clusterId) };
}
