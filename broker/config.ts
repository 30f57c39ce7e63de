/**
 * Broker settings, validated at start. Every replica of one federation must use the
 * same ranges: they are not stored in KV, so a mismatch would make replicas allocate
 * from different ranges (still without duplicates, since claims are keyed by value).
 */
import { z } from 'zod';
import { parseIpv4Pool, type Ipv4Pool } from './ipv4.js';
import { BrokerConfigError } from './errors.js';
import { LIMITS } from './protocol.js';
import { VNI_MAX, VNI_MIN } from './names.js';

/**
 * Settings of earlier versions, refused with what to do: a config that still sets them
 * was written for clusters holding a consumer grant, which the current credentials lack.
 */
const REMOVED: Readonly<Record<string, string>> = {
  maxWatchersPerCluster: 'the consumer guard',
  consumerSweepIntervalMs: 'the consumer guard',
};

/** The message for unknown keys naming removed settings; undefined keeps zod's own. */
function unknownKeys(keys: readonly string[]): string | undefined {
  const removed = keys.filter((k) => k in REMOVED);
  if (removed.length === 0) return undefined;
  const others = keys.filter((k) => !(k in REMOVED));
  return (
    `${removed.map((k) => `${k} was removed with ${REMOVED[k]}`).join('; ')}: clusters no ` +
    `longer get a consumer grant, so there is nothing to bound. Fix: delete it from the ` +
    `broker config, and make sure nats-server runs a nats-auth.conf from this version's ` +
    `gen-auth (docs/broker.md, Upgrading)` +
    (others.length > 0 ? `. Also unknown: ${others.join(', ')}` : '')
  );
}

export const brokerConfigSchema = z.strictObject(
  {
    /** Inclusive VNI range handed out to federated networks (VXLAN VNIs are 24 bit). */
    vniRange: z
      .strictObject({
        first: z.int().min(VNI_MIN).max(VNI_MAX),
        last: z.int().min(VNI_MIN).max(VNI_MAX),
      })
      .refine((r) => r.first <= r.last, 'vniRange.first must be <= vniRange.last')
      .default({ first: 4096, last: 65_535 }),
    /** How long a released VNI stays unused before another network may get it. */
    vniQuarantineMs: z
      .int()
      .min(0)
      .default(10 * 60_000),
    /** IPv4 CIDR of transit addresses, one per cluster gateway. */
    transitPool: z
      .string()
      .refine((s) => parseIpv4Pool(s) !== undefined, 'must be an aligned IPv4 CIDR, /8 to /30')
      .default('100.64.0.0/16'),
    /** KV bucket replicas: 1 for a single nats-server, 3 (or 5) for a NATS cluster. */
    replicas: z.union([z.literal(1), z.literal(3), z.literal(5)]).default(1),
    storage: z.enum(['file', 'memory']).default('file'),
    /** Largest accepted request body. */
    maxPayloadBytes: z
      .int()
      .min(1024)
      .max(1024 * 1024)
      .default(64 * 1024),
    /** Requests handled at once by one replica; more wait in line. */
    maxInFlight: z.int().min(1).max(1024).default(32),
    /** Compare-and-set attempts before a request fails with CONFLICT. */
    casAttempts: z.int().min(1).max(1000).default(40),
    /** A claim whose owner never bound it is considered abandoned after this long. */
    claimGraceMs: z.int().min(100).default(30_000),
    /**
     * A registration with another key than the registered one (a replaced gateway node)
     * is accepted once the registered key's gateway has been silent this long (no health
     * report, no key change); before that it is refused as a takeover.
     */
    rejoinAfterMs: z.int().min(1000).default(60_000),
    /** Every replica recomputes all peer maps this often (jittered); 0 disables. */
    reconcileIntervalMs: z
      .int()
      .min(0)
      .default(5 * 60_000),
    /** Upper bound of candidates probed per allocation. */
    maxProbes: z.int().min(1).default(4096),
    /** Networks one cluster may export at once (QUOTA_EXCEEDED beyond). */
    maxExportsPerCluster: z.int().min(1).max(LIMITS.networks).default(LIMITS.networks),
    /**
     * New VNIs one cluster's exports may allocate per vniQuarantineMs (QUOTA_EXCEEDED
     * beyond). With maxExportsPerCluster it bounds the VNIs one cluster can keep from the
     * others, exported or quarantined, however it churns its exports.
     */
    maxVniAllocationsPerCluster: z.int().min(1).default(256),
    /** Peerings one cluster may declare (QUOTA_EXCEEDED beyond); each costs a peer-map refresh. */
    maxPeeringsPerCluster: z.int().min(1).max(LIMITS.peerings).default(256),
  },
  { error: (issue) => (issue.code === 'unrecognized_keys' ? unknownKeys(issue.keys) : undefined) },
);

export type BrokerConfigInput = z.input<typeof brokerConfigSchema>;
export type BrokerConfig = z.output<typeof brokerConfigSchema> & { readonly pool: Ipv4Pool };

/** Validates settings and fills defaults; throws BrokerConfigError naming the field. */
export function resolveConfig(input: BrokerConfigInput = {}): BrokerConfig {
  const r = brokerConfigSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const field = issue.path.join('.');
    throw new BrokerConfigError(`broker config ${field || '(root)'}: ${issue.message}`, field);
  }
  return { ...r.data, pool: parseIpv4Pool(r.data.transitPool)! };
}
