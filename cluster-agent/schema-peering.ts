/** zod schema of ClusterPeering, mirroring deploy/crds/clusterpeerings.l2fed.io.yaml. */
import { z } from 'zod';
import { API_GROUP_VERSION, MAX_NETWORKS_PER_PEERING } from './constants.js';
import {
  apiVersionLiteral,
  clusterObjectMeta,
  CONDITION_REASON,
  conditions,
  dateTime,
  dnsLabel,
  duration,
  setOf,
} from './schema-common.js';

export const clusterPeeringSpec = z.strictObject({
  remoteCluster: dnsLabel,
  networks: setOf(dnsLabel)
    .min(1, { error: 'must list at least one network; omit networks to offer every export' })
    .max(MAX_NETWORKS_PER_PEERING)
    .optional(),
});

export const clusterPeeringStatus = z.strictObject({
  observedGeneration: z.number().int().min(0).optional(),
  active: z.boolean().optional(),
  reason: CONDITION_REASON.optional(),
  activeNetworks: setOf(dnsLabel).max(MAX_NETWORKS_PER_PEERING).optional(),
  rtt: duration.optional(),
  lastHandshake: dateTime.optional(),
  conditions: conditions.optional(),
});
export type ClusterPeeringStatus = z.infer<typeof clusterPeeringStatus>;

export const clusterPeering = z.strictObject({
  apiVersion: apiVersionLiteral(API_GROUP_VERSION),
  kind: z.literal('ClusterPeering'),
  metadata: clusterObjectMeta,
  spec: clusterPeeringSpec,
  status: clusterPeeringStatus.optional(),
});
export type ClusterPeering = z.infer<typeof clusterPeering>;
