/**
 * The agent <-> broker protocol, version 1. Requests are NATS request/reply on
 * `l2fed.v1.<clusterId>.<verb>`; the cluster id in the subject is the caller's
 * identity, which NATS subject permissions bind to that cluster's credentials
 * (see auth-config.ts). A cluster reads its peer map from the KV bucket
 * `l2fed_peermaps`, key `<clusterId>` (direct get), and follows its changes on
 * `l2fed.peermap.<clusterId>`, where the broker publishes them. Every body is JSON validated by the
 * strict schemas below: unknown fields are rejected, never ignored.
 */
import { z } from 'zod';
import {
  dns1123Label,
  endpoint,
  isDns1123Label,
  uniqueList,
  VNI_MAX,
  VNI_MIN,
  wireguardPublicKey,
} from './names.js';
import type { ErrorBody } from './errors.js';
import type { ClusterRecord, HealthRecord, NetworkRef, PeerMap, PeeringDecl } from './records.js';

export const PROTOCOL_VERSION = 'v1' as const;
/** Every request subject starts with this. */
export const SUBJECT_PREFIX = `l2fed.${PROTOCOL_VERSION}` as const;
/** Queue group shared by all broker replicas: each request reaches exactly one. */
export const BROKER_QUEUE_GROUP = 'l2fed-broker';

export const VERBS = [
  'register',
  'rotate-key',
  'deregister',
  'exports',
  'peerings',
  'get',
  'health',
  'announce-key',
  'ack-key',
] as const;
export type Verb = (typeof VERBS)[number];

/** Limits that bound each request; also documented in docs/broker.md. */
export const LIMITS = {
  endpoints: 8,
  capabilities: 32,
  networks: 256,
  peerings: 1024,
} as const;

/**
 * Where the broker publishes cluster `clusterId`'s peer map on every change (see
 * peer-map-forwarder.ts); only that cluster's credentials may subscribe to it.
 */
export function peerMapSubject(clusterId: string): string {
  return `l2fed.peermap.${clusterId}`;
}

/** Headers of a forwarded peer map: the KV revision and operation (PUT, DEL, PURGE). */
export const PEER_MAP_HEADERS = {
  revision: 'L2fed-Revision',
  operation: 'L2fed-Operation',
} as const;

/** The request subject for a cluster and verb. */
export function requestSubject(clusterId: string, verb: Verb): string {
  return `${SUBJECT_PREFIX}.${clusterId}.${verb}`;
}

export type ParsedSubject =
  | { readonly type: 'ok'; readonly clusterId: string; readonly verb: Verb }
  | { readonly type: 'error'; readonly message: string; readonly field?: string };

/** Splits a request subject; explains what is wrong with one that does not parse. */
export function parseRequestSubject(subject: string): ParsedSubject {
  const parts = subject.split('.');
  if (parts.length !== 4 || `${parts[0]}.${parts[1]}` !== SUBJECT_PREFIX) {
    return {
      type: 'error',
      message: `subject must be ${SUBJECT_PREFIX}.<clusterId>.<verb>, got "${subject}"`,
    };
  }
  const [, , clusterId, verb] = parts as [string, string, string, string];
  if (!isDns1123Label(clusterId)) {
    return {
      type: 'error',
      message: `cluster id "${clusterId}" in the subject is not a DNS-1123 label`,
      field: 'clusterId',
    };
  }
  if (!(VERBS as readonly string[]).includes(verb)) {
    return {
      type: 'error',
      message: `unknown verb "${verb}"; use one of ${VERBS.join(', ')}`,
      field: 'verb',
    };
  }
  return { type: 'ok', clusterId, verb: verb as Verb };
}

export const registerRequest = z.strictObject({
  publicKey: wireguardPublicKey,
  endpoints: uniqueList(endpoint, LIMITS.endpoints, 'endpoints').min(
    1,
    'give at least one gateway endpoint host:port',
  ),
  capabilities: uniqueList(dns1123Label, LIMITS.capabilities, 'capabilities').default([]),
  /** The UDP port of the cluster's VXLAN devices; optional (older agents send none). */
  vxlanPort: z
    .int('vxlanPort must be a whole number (a UDP port)')
    .min(1, 'vxlanPort must be a UDP port, 1..65535')
    .max(65_535, 'vxlanPort must be a UDP port, 1..65535')
    .optional(),
});
export type RegisterRequest = z.infer<typeof registerRequest>;

/**
 * Replaces the cluster's WireGuard public key. `previousKey` must be the key the broker
 * holds (or `publicKey` already is), so a stale gateway cannot take the id back.
 */
export const rotateKeyRequest = z
  .strictObject({
    previousKey: wireguardPublicKey,
    publicKey: wireguardPublicKey,
  })
  .refine((r) => r.previousKey !== r.publicKey, {
    message: 'publicKey must differ from previousKey; send the new key',
    path: ['publicKey'],
  });
export type RotateKeyRequest = z.infer<typeof rotateKeyRequest>;

/**
 * Announces the key the cluster's gateway will switch to (step 1 of a rotation, see
 * docs/broker.md): peers install it beside the current one and acknowledge with ack-key.
 * `publicKey` must be the registered key; `nextKey` is reserved like a registered key.
 */
export const announceKeyRequest = z
  .strictObject({
    publicKey: wireguardPublicKey,
    nextKey: wireguardPublicKey,
  })
  .refine((r) => r.publicKey !== r.nextKey, {
    message: 'nextKey must differ from publicKey; send the new key',
    path: ['nextKey'],
  });
export type AnnounceKeyRequest = z.infer<typeof announceKeyRequest>;

/**
 * The requesting cluster's gateway holds `cluster`'s announced next key `nextKey` (a
 * standby WireGuard peer entry). A cluster acknowledges only for itself (the subject).
 */
export const ackKeyRequest = z.strictObject({
  cluster: dns1123Label,
  nextKey: wireguardPublicKey,
});
export type AckKeyRequest = z.infer<typeof ackKeyRequest>;

export const emptyRequest = z.strictObject({});

/**
 * A network MTU as a member may send it: an integer number of bytes. The floor (1280)
 * is checked by the broker, which names the cluster (network-mtu.ts checkMtuAsks).
 */
const mtuBytes = (field: string) =>
  z
    .int(`${field} must be an integer number of bytes`)
    .min(0, `${field} must be an integer number of bytes`)
    .max(MTU_MAX, `${field} must be at most ${MTU_MAX} (the largest MTU an interface can have)`);

/** The largest MTU a Linux interface can have. */
export const MTU_MAX = 65535;

/**
 * One member's MTU ask for one network it exports: `requested` (absent = auto: as much
 * as it carries) and `capacity` (the most its underlay carries after WireGuard and VXLAN).
 */
export const networkMtuAsk = z.strictObject({
  network: dns1123Label,
  requested: mtuBytes('requested').optional(),
  capacity: mtuBytes('capacity'),
});

export const exportsRequest = z.strictObject({
  networks: uniqueList(dns1123Label, LIMITS.networks, 'networks'),
  /** Absent: an agent older than the MTU agreement (a silent member). */
  mtu: z
    .array(networkMtuAsk)
    .max(LIMITS.networks, `at most ${LIMITS.networks} MTU asks`)
    .optional(),
});
export type ExportsRequest = z.infer<typeof exportsRequest>;

export const peeringDecl = z.strictObject({
  remoteCluster: dns1123Label,
  /** Omitted = every network this cluster exports. */
  networks: uniqueList(dns1123Label, LIMITS.networks, 'networks').optional(),
});

export const peeringsRequest = z.strictObject({
  peerings: z
    .array(peeringDecl)
    .max(LIMITS.peerings, `at most ${LIMITS.peerings} peerings per request`)
    .superRefine((list, ctx) => {
      const seen = new Set<string>();
      list.forEach((p, i) => {
        if (seen.has(p.remoteCluster))
          ctx.addIssue({
            code: 'custom',
            message: `duplicate peering with "${p.remoteCluster}"; declare each remote once`,
            path: [i, 'remoteCluster'],
          });
        seen.add(p.remoteCluster);
      });
    }),
});
export type PeeringsRequest = z.infer<typeof peeringsRequest>;

/** Tunnel or network state as a cluster reports it; 'unknown' = not checked yet. */
export const HEALTH_STATES = ['up', 'degraded', 'down', 'unknown'] as const;
export type HealthState = (typeof HEALTH_STATES)[number];

const healthReason = z.string().max(1024, 'reason: at most 1024 characters');

/** No two entries of a list may share a name. */
function uniqueBy<T>(key: (t: T) => string, what: string) {
  return (list: readonly T[], ctx: z.RefinementCtx) => {
    const seen = new Set<string>();
    list.forEach((item, i) => {
      if (seen.has(key(item)))
        ctx.addIssue({ code: 'custom', message: `duplicate ${what} "${key(item)}"`, path: [i] });
      seen.add(key(item));
    });
  };
}

/** Per-peer tunnel health and per-network data-path state, measured by the cluster. */
export const healthRequest = z.strictObject({
  /** When the cluster measured this (ISO-8601 with offset); readers judge staleness by it. */
  reportedAt: z.iso.datetime({ offset: true, error: 'reportedAt must be an ISO-8601 time' }),
  peers: z
    .array(
      z.strictObject({
        cluster: dns1123Label,
        state: z.enum(HEALTH_STATES),
        rttMs: z.number().min(0).max(600_000).optional(),
        lossPct: z.number().min(0).max(100).optional(),
        lastHandshakeAgeSec: z.int().min(0).optional(),
        reason: healthReason.optional(),
      }),
    )
    .max(LIMITS.peerings, `at most ${LIMITS.peerings} peers`)
    .superRefine(uniqueBy((p) => p.cluster, 'peer')),
  networks: z
    .array(
      z.strictObject({
        name: dns1123Label,
        vni: z.int().min(VNI_MIN).max(VNI_MAX),
        state: z.enum(HEALTH_STATES),
        reason: healthReason.optional(),
      }),
    )
    .max(LIMITS.networks, `at most ${LIMITS.networks} networks`)
    .superRefine(uniqueBy((n) => n.name, 'network')),
});
export type HealthRequest = z.infer<typeof healthRequest>;

/** Request schema per verb. */
export const REQUEST_SCHEMAS = {
  register: registerRequest,
  'rotate-key': rotateKeyRequest,
  deregister: emptyRequest,
  exports: exportsRequest,
  peerings: peeringsRequest,
  get: emptyRequest,
  health: healthRequest,
  'announce-key': announceKeyRequest,
  'ack-key': ackKeyRequest,
} as const satisfies Record<Verb, z.ZodType>;

/** Result per verb (the `result` member of a successful reply). */
export interface Results {
  register: { cluster: ClusterRecord; created: boolean };
  'rotate-key': { cluster: ClusterRecord; rotated: boolean };
  deregister: { deregistered: boolean };
  exports: { networks: NetworkRef[] };
  peerings: { peerings: PeeringDecl[] };
  get: {
    cluster: ClusterRecord | null;
    networks: NetworkRef[];
    peerings: PeeringDecl[];
    peerMap: PeerMap | null;
  };
  health: { record: HealthRecord };
  'announce-key': { cluster: ClusterRecord; announced: boolean };
  'ack-key': { acknowledged: boolean };
}

export type RequestBody<V extends Verb> = z.input<(typeof REQUEST_SCHEMAS)[V]>;

/** Every reply is one of these two shapes. */
export type Reply<T> =
  { readonly ok: true; readonly result: T } | { readonly ok: false; readonly error: ErrorBody };
