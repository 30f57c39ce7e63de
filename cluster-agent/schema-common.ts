/**
 * zod building blocks shared by the API-object schemas. Every bound comes from
 * constants.ts, the same numbers the CRDs in deploy/crds/ use.
 */
import { z } from 'zod';
import {
  CONDITION,
  DNS1123_LABEL_MAX,
  DNS1123_LABEL_PATTERN,
  DURATION_PATTERN,
  IFNAME_MAX,
  IFNAME_PATTERN,
  MAX_CONDITIONS,
} from './constants.js';

const DNS1123_LABEL_RE = new RegExp(DNS1123_LABEL_PATTERN);

/** A DNS-1123 label: what Kubernetes accepts as a name, and what l2fed uses for ids. */
export const dnsLabel = z
  .string()
  .max(DNS1123_LABEL_MAX, { error: `must be at most ${DNS1123_LABEL_MAX} characters` })
  .regex(DNS1123_LABEL_RE, {
    error:
      "must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit",
  });

/** A Linux interface name (bridges are netdevs). */
export const ifName = z
  .string()
  .min(1, { error: 'must not be empty' })
  .max(IFNAME_MAX, { error: `must be at most ${IFNAME_MAX} characters (Linux IFNAMSIZ)` })
  .regex(new RegExp(IFNAME_PATTERN), {
    error:
      "must be a Linux interface name: letters, digits, '_', '.', '-', not starting with a symbol",
  });

/** RFC 3339 date-time, as `format: date-time` in the CRD. */
export const dateTime = z.iso.datetime({
  offset: true,
  error: 'must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z',
});

export const duration = z.string().regex(new RegExp(DURATION_PATTERN), {
  error: 'must be a duration such as 850us, 12.5ms or 1.2s',
});

/** A list with set semantics (x-kubernetes-list-type: set): duplicates are rejected. */
export function setOf<T extends z.ZodType>(item: T) {
  return z.array(item).superRefine((list, ctx) => {
    const seen = new Set<unknown>();
    list.forEach((value, i) => {
      if (seen.has(value)) {
        ctx.addIssue({
          code: 'custom',
          path: [i],
          message: `duplicate entry ${JSON.stringify(value)}: this list is a set`,
        });
      }
      seen.add(value);
    });
  });
}

const labels = z.record(z.string(), z.string({ error: 'label and annotation values are strings' }));

/**
 * ObjectMeta of a cluster-scoped object. Users write name, labels and annotations; the API
 * server adds the rest, which we accept and ignore so that objects read from Kubernetes
 * validate with the same schema. Anything else is an unknown field, as on the server.
 */
export const clusterObjectMeta = z.strictObject({
  name: dnsLabel,
  labels: labels.optional(),
  annotations: labels.optional(),
  uid: z.string().optional(),
  resourceVersion: z.string().optional(),
  generation: z.number().int().optional(),
  creationTimestamp: z.string().optional(),
  deletionTimestamp: z.string().optional(),
  deletionGracePeriodSeconds: z.number().int().optional(),
  finalizers: z.array(z.string()).optional(),
  ownerReferences: z.array(z.unknown()).optional(),
  managedFields: z.array(z.unknown()).optional(),
  selfLink: z.string().optional(),
});
export type ClusterObjectMeta = z.infer<typeof clusterObjectMeta>;

/** A CamelCase reason, as in conditions and ClusterPeering.status.reason. */
export const CONDITION_REASON = z
  .string()
  .min(1)
  .max(CONDITION.reasonMax)
  .regex(new RegExp(CONDITION.reasonPattern), { error: 'must be a CamelCase reason' });

/** metav1.Condition, the standard status condition. */
export const condition = z.strictObject({
  type: z
    .string()
    .max(CONDITION.typeMax)
    .regex(new RegExp(CONDITION.typePattern), { error: 'must be a condition type such as Ready' }),
  status: z.enum(CONDITION.statuses),
  observedGeneration: z.number().int().min(0).optional(),
  lastTransitionTime: dateTime,
  reason: CONDITION_REASON,
  message: z.string().max(CONDITION.messageMax),
});
export type Condition = z.infer<typeof condition>;

/** conditions[] as a list-map keyed by type (x-kubernetes-list-map-keys: [type]). */
export const conditions = z
  .array(condition)
  .max(MAX_CONDITIONS)
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((c, i) => {
      if (seen.has(c.type)) {
        ctx.addIssue({
          code: 'custom',
          path: [i, 'type'],
          message: `duplicate condition ${c.type}`,
        });
      }
      seen.add(c.type);
    });
  });

/** The apiVersion literal, with a message that says which value is expected. */
export function apiVersionLiteral<V extends string>(value: V) {
  return z.literal(value, { error: `must be ${value}` });
}
