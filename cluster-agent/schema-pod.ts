/**
 * Plain `Pod` manifests in a manifest folder. The lab turns each into a pod namespace with
 * one interface per network named in the Multus annotation. Only metadata and the
 * annotation are interpreted; spec is accepted as-is (it is the Kubernetes Pod spec, which
 * the lab does not run).
 */
import { z } from 'zod';
import { MULTUS_NETWORKS_ANNOTATION } from './constants.js';
import { dnsLabel } from './schema-common.js';
import { parseNetworkSelections, type NetworkSelection } from './multus.js';

const labels = z.record(z.string(), z.string());

export const podManifest = z
  .strictObject({
    apiVersion: z.literal('v1', { error: 'must be v1' }),
    kind: z.literal('Pod'),
    metadata: z.strictObject({
      // A label, not a subdomain: the lab uses the name in a network namespace name.
      name: dnsLabel,
      namespace: dnsLabel.optional(),
      labels: labels.optional(),
      annotations: labels.optional(),
    }),
    spec: z.record(z.string(), z.unknown()).optional(),
  })
  .transform((pod, ctx) => {
    const value = pod.metadata.annotations?.[MULTUS_NETWORKS_ANNOTATION];
    let networks: readonly NetworkSelection[] = [];
    if (value !== undefined) {
      const parsed = parseNetworkSelections(value);
      if (!parsed.ok) {
        for (const issue of parsed.issues) {
          ctx.addIssue({
            code: 'custom',
            path: ['metadata', 'annotations', MULTUS_NETWORKS_ANNOTATION, ...issue.path],
            message: issue.message,
          });
        }
        return z.NEVER;
      }
      networks = parsed.selections;
    }
    return { ...pod, networks };
  });
export type PodManifest = z.output<typeof podManifest>;
