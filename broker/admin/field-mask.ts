/**
 * Read masks (google.protobuf.FieldMask) for Cluster: a client that only needs ids and
 * endpoints gets small responses. Paths are the proto (snake_case) names of top-level
 * fields; "id" is always returned. An unknown path is an INVALID_ARGUMENT naming it.
 */
import { InvalidArgumentError } from './errors.js';
import { Cluster } from '../../proto/gen/l2fed/admin/v1/federation.js';

const CLUSTER_FIELDS = {
  id: 'id',
  public_key: 'publicKey',
  endpoints: 'endpoints',
  capabilities: 'capabilities',
  transit_address: 'transitAddress',
  registered_at: 'registeredAt',
  exports: 'exports',
  declared_peers: 'declaredPeers',
  active_peers: 'activePeers',
  cordon: 'cordon',
  health: 'health',
  key_since: 'keySince',
  rejoin: 'rejoin',
  vxlan_port: 'vxlanPort',
} as const satisfies Record<string, keyof Cluster>;

/** Throws INVALID_ARGUMENT naming the first unknown path (field `<name>.paths[i]`). */
export function checkClusterMask(paths: readonly string[] | undefined, name = 'read_mask'): void {
  (paths ?? []).forEach((p, i) => {
    if (!Object.hasOwn(CLUSTER_FIELDS, p))
      throw InvalidArgumentError.field(
        `${name}.paths[${i}]`,
        `unknown Cluster field "${p}"; use one of ${Object.keys(CLUSTER_FIELDS).join(', ')}`,
      );
  });
}

/** The cluster with only the masked fields set (all fields when the mask is empty). */
export function applyClusterMask(c: Cluster, paths: readonly string[] | undefined): Cluster {
  if (!paths || paths.length === 0) return c;
  const out: Record<string, unknown> = { ...Cluster.fromPartial({ id: c.id }) };
  for (const p of paths) {
    const field = CLUSTER_FIELDS[p as keyof typeof CLUSTER_FIELDS];
    out[field] = c[field];
  }
  return out as unknown as Cluster;
}
