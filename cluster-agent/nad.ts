/**
 * NetworkAttachmentDefinitions for exported networks: what pods name in their Multus
 * annotation to join the local segment. Pure generators; the agent does not apply them
 * (deploy/rbac/cluster-agent-nad.yaml grants the rights when it will). Rules:
 * - ovsBridge → ovs-cni (`"type":"ovs"`, bridge, vlan);
 * - linuxBridge → the reference `bridge` plugin;
 * - l2smNetwork → none: L2S-M creates its own NAD named after the L2Network; pods use
 *   that one, and the agent maps the L2Network to its OVS bridge (agent config).
 * `mtu` is the network's one MTU across all its members (issue 12), as the agent reports it
 * in status.effectiveMTU (the default here), so pods never send frames the tunnel, or
 * any other member, cannot carry; without a status, a fixed spec.mtu. IPAM is `static`: addresses come from the pod annotation.
 */
import { segmentOf, type FederatedNetwork } from './schema-network.js';

export interface NetworkAttachmentDefinition {
  readonly apiVersion: 'k8s.cni.cncf.io/v1';
  readonly kind: 'NetworkAttachmentDefinition';
  readonly metadata: { readonly name: string; readonly namespace?: string };
  readonly spec: { readonly config: string };
}

export type NadResult =
  | { readonly type: 'nad'; readonly nad: NetworkAttachmentDefinition }
  | { readonly type: 'external'; readonly reason: string };

/** The NAD for one network in one namespace. Pure and deterministic. */
export function nadFor(
  net: FederatedNetwork,
  opts: { readonly namespace?: string; readonly mtu?: number } = {},
): NadResult {
  const s = segmentOf(net.spec.segment);
  const mtu =
    opts.mtu ?? net.status?.effectiveMTU ?? (net.spec.mtu === 'auto' ? undefined : net.spec.mtu);
  let cni: Record<string, unknown>;
  switch (s.type) {
    case 'ovsBridge':
      cni = { type: 'ovs', bridge: s.bridge, ...(s.vlan === undefined ? {} : { vlan: s.vlan }) };
      break;
    case 'linuxBridge':
      cni = { type: 'bridge', bridge: s.bridge };
      break;
    case 'l2smNetwork':
      return {
        type: 'external',
        reason: `L2S-M provides the NAD for L2Network ${s.network}; pods name it in their annotation`,
      };
  }
  const config = JSON.stringify({
    cniVersion: '0.4.0',
    name: net.metadata.name,
    ...cni,
    ...(mtu === undefined ? {} : { mtu }),
    ipam: { type: 'static' },
  });
  return {
    type: 'nad',
    nad: {
      apiVersion: 'k8s.cni.cncf.io/v1',
      kind: 'NetworkAttachmentDefinition',
      metadata: {
        name: net.metadata.name,
        ...(opts.namespace === undefined ? {} : { namespace: opts.namespace }),
      },
      spec: { config },
    },
  };
}
