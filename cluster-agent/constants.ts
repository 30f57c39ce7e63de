/**
 * The constants that define the l2fed API objects. The zod schemas (schema-*.ts) and the
 * CRDs in deploy/crds/ both follow these; crd-schema.test.ts fails when they drift apart.
 */

/** API group and version of the l2fed CRDs. */
export const API_GROUP = 'l2fed.io';
export const API_VERSION = 'v1alpha1';
export const API_GROUP_VERSION = `${API_GROUP}/${API_VERSION}`;

/** The two custom resource kinds, with their REST plurals. Both are cluster-scoped. */
export const KINDS = {
  FederatedNetwork: { kind: 'FederatedNetwork', plural: 'federatednetworks' },
  ClusterPeering: { kind: 'ClusterPeering', plural: 'clusterpeerings' },
} as const;
export type CustomKind = keyof typeof KINDS;

/** RFC 1123 label, as Kubernetes checks it (IsDNS1123Label): lower case, 1-63 chars. */
export const DNS1123_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const DNS1123_LABEL_MAX = 63;

/**
 * A Linux interface name (OVS and Linux bridges are netdevs): 1-15 bytes (IFNAMSIZ - 1),
 * no '/', ':' or whitespace. We are stricter than the kernel to keep names shell- and
 * OVSDB-friendly.
 */
export const IFNAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9_.-]*$';
export const IFNAME_MAX = 15;

/** 802.1Q VLAN ids usable on a port: 0 and 4095 are reserved. */
export const VLAN = { min: 1, max: 4094 } as const;

/**
 * MTU of a federated segment. 1280 is the IPv6 minimum (IPv6 ND crosses the federation);
 * 9000 is the common jumbo-frame ceiling. 'auto' means underlay minus WireGuard and VXLAN
 * overheads, computed by the gateway.
 */
export const MTU = { min: 1280, max: 9000, auto: 'auto' } as const;

/** An MTU the gateway reports (reality, not a request): anything an interface can have. */
export const EFFECTIVE_MTU = { min: 68, max: 65535 } as const;

/** VXLAN network identifiers are 24-bit; 0 is not used. */
export const VNI = { min: 1, max: 16_777_215 } as const;

/** Bounds on list sizes, so a CEL cost estimate and a typo'd generator both stay sane. */
export const MAX_NETWORKS_PER_PEERING = 256;
export const MAX_MEMBERS = 1024;
export const MAX_CONDITIONS = 16;

/** metav1.Condition bounds, as in k8s.io/apimachinery. */
export const CONDITION = {
  statuses: ['True', 'False', 'Unknown'],
  typePattern:
    '^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$',
  typeMax: 316,
  reasonPattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$',
  reasonMax: 1024,
  messageMax: 32768,
} as const;

/** Go-style duration as the agent writes RTTs, e.g. "850us", "12.5ms", "1.2s". */
export const DURATION_PATTERN = '^[0-9]+(\\.[0-9]+)?(ns|us|ms|s)$';

/** The Multus annotation that attaches a pod to networks (NetworkAttachmentDefinitions). */
export const MULTUS_NETWORKS_ANNOTATION = 'k8s.v1.cni.cncf.io/networks';

/**
 * CEL rules in the CRDs, with the messages kubectl shows. zod reports the same messages, so
 * `kubectl apply` and `l2fed validate` read alike; the test asserts the CRDs carry exactly these.
 */
export const CEL = {
  segmentExactlyOne: {
    rule: '(has(self.ovsBridge) ? 1 : 0) + (has(self.linuxBridge) ? 1 : 0) + (has(self.l2smNetwork) ? 1 : 0) == 1',
    message: 'set exactly one of ovsBridge, linuxBridge, l2smNetwork',
  },
  vlanNeedsOvs: {
    rule: '!has(self.vlan) || has(self.ovsBridge)',
    message: 'vlan is only valid together with ovsBridge',
    /** The field the API server names in its refusal (zod names the same one). */
    fieldPath: '.vlan',
  },
  mtuRange: {
    rule: `type(self) == string ? self == '${MTU.auto}' : (self >= ${MTU.min} && self <= ${MTU.max})`,
    message: `mtu must be '${MTU.auto}' or an integer from ${MTU.min} to ${MTU.max}`,
  },
} as const;
