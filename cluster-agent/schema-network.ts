/** zod schema of FederatedNetwork, mirroring deploy/crds/federatednetworks.l2fed.io.yaml. */
import { z } from 'zod';
import { API_GROUP_VERSION, CEL, EFFECTIVE_MTU, MAX_MEMBERS, MTU, VLAN, VNI } from './constants.js';
import {
  apiVersionLiteral,
  clusterObjectMeta,
  conditions,
  dnsLabel,
  ifName,
  setOf,
} from './schema-common.js';

/** spec.segment as written: exactly one of the three keys (CEL rules in the CRD). */
export const segmentSpec = z
  .strictObject({
    ovsBridge: ifName.optional(),
    vlan: z.number().int().min(VLAN.min).max(VLAN.max).optional(),
    linuxBridge: ifName.optional(),
    l2smNetwork: dnsLabel.optional(),
  })
  .superRefine((s, ctx) => {
    const set = [s.ovsBridge, s.linuxBridge, s.l2smNetwork].filter((v) => v !== undefined);
    if (set.length !== 1) ctx.addIssue({ code: 'custom', message: CEL.segmentExactlyOne.message });
    if (s.vlan !== undefined && s.ovsBridge === undefined) {
      ctx.addIssue({ code: 'custom', path: ['vlan'], message: CEL.vlanNeedsOvs.message });
    }
  });

/** mtu: 'auto' or an integer in range; defaults to 'auto' as the CRD does. */
export const mtuSpec = z
  .union(
    [
      z.literal(MTU.auto),
      z
        .number()
        .int({ error: CEL.mtuRange.message })
        .min(MTU.min, { error: CEL.mtuRange.message })
        .max(MTU.max, { error: CEL.mtuRange.message }),
    ],
    { error: CEL.mtuRange.message },
  )
  .default(MTU.auto);

/** spec: the local segment to export and the MTU. */
export const federatedNetworkSpec = z.strictObject({
  segment: segmentSpec,
  mtu: mtuSpec,
});

/** status, written by the agent: the VNI, effective MTU, members and conditions. */
export const federatedNetworkStatus = z.strictObject({
  observedGeneration: z.number().int().min(0).optional(),
  vni: z.number().int().min(VNI.min).max(VNI.max).optional(),
  effectiveMTU: z.number().int().min(EFFECTIVE_MTU.min).max(EFFECTIVE_MTU.max).optional(),
  /** The member whose request or underlay set the network's one MTU (issue 12). */
  mtuSetBy: dnsLabel.optional(),
  members: setOf(dnsLabel).max(MAX_MEMBERS).optional(),
  conditions: conditions.optional(),
});
/** A FederatedNetwork's status (see federatedNetworkStatus). */
export type FederatedNetworkStatus = z.infer<typeof federatedNetworkStatus>;

/** A whole FederatedNetwork object as read from a manifest or the API server. */
export const federatedNetwork = z.strictObject({
  apiVersion: apiVersionLiteral(API_GROUP_VERSION),
  kind: z.literal('FederatedNetwork'),
  metadata: clusterObjectMeta,
  spec: federatedNetworkSpec,
  status: federatedNetworkStatus.optional(),
});
/** A validated FederatedNetwork (see federatedNetwork). */
export type FederatedNetwork = z.infer<typeof federatedNetwork>;

/** The exported segment, as a discriminated union the gateway config can switch on. */
export type Segment =
  | { readonly type: 'ovsBridge'; readonly bridge: string; readonly vlan?: number }
  | { readonly type: 'linuxBridge'; readonly bridge: string }
  | { readonly type: 'l2smNetwork'; readonly network: string };

/** Reads the validated segment spec as a {@link Segment}. Pure. */
export function segmentOf(spec: z.infer<typeof segmentSpec>): Segment {
  if (spec.ovsBridge !== undefined) {
    return spec.vlan === undefined
      ? { type: 'ovsBridge', bridge: spec.ovsBridge }
      : { type: 'ovsBridge', bridge: spec.ovsBridge, vlan: spec.vlan };
  }
  if (spec.linuxBridge !== undefined) return { type: 'linuxBridge', bridge: spec.linuxBridge };
  if (spec.l2smNetwork !== undefined) return { type: 'l2smNetwork', network: spec.l2smNetwork };
  // Unreachable for validated input: the schema requires exactly one.
  throw new TypeError('segment has none of ovsBridge, linuxBridge, l2smNetwork');
}
