/**
 * Clusters and networks as the admin API shows them, derived from a snapshot. Pure
 * functions: no I/O, so they are unit-testable and every replica answers the same.
 */
import type { FederationSnapshot } from './snapshot.js';
import { healthSummary, type HealthOptions } from './health.js';
import type { Cluster, Network, NetworkMtu } from '../../proto/gen/l2fed/admin/v1/federation.js';
import type { AgreedMtu } from '../records.js';

const date = (iso: string | undefined): Date | undefined => {
  if (!iso) return undefined;
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? undefined : d;
};

/** One registered cluster; undefined when `id` is not registered. */
export function clusterView(
  s: FederationSnapshot,
  id: string,
  o: HealthOptions,
): Cluster | undefined {
  const c = s.clusters.get(id);
  if (!c) return undefined;
  return {
    id: c.id,
    publicKey: c.publicKey,
    endpoints: [...c.endpoints],
    capabilities: [...c.capabilities],
    transitAddress: c.transitAddress,
    registeredAt: date(c.registeredAt),
    exports: (s.exports.get(id)?.networks ?? []).map((n) => ({ name: n.name, vni: n.vni })),
    declaredPeers: (s.peerings.get(id)?.peerings ?? []).map((p) => p.remoteCluster).sort(),
    activePeers: (s.peerMaps.get(id)?.peers ?? []).map((p) => p.cluster).sort(),
    cordon: c.cordon
      ? { by: c.cordon.by, reason: c.cordon.reason, cordonedAt: date(c.cordon.at) }
      : undefined,
    health: healthSummary(s.health.get(id), o),
    keySince: date(c.keySince),
    rejoin: c.rejoin
      ? {
          publicKey: c.rejoin.publicKey,
          since: date(c.rejoin.since),
          remedy:
            `a gateway with a new key asks to register (node replaced?); the broker accepts ` +
            `it once the registered key's gateway has been silent for rejoinAfterMs (default ` +
            `60 s), or at once after: l2fed evict ${id} --force --reason "gateway replaced"`,
        }
      : undefined,
    vxlanPort: c.vxlanPort ?? 0,
  };
}

/** Every registered cluster, sorted by id. */
export function allClusters(s: FederationSnapshot, o: HealthOptions): Cluster[] {
  return [...s.clusters.keys()].sort().map((id) => clusterView(s, id, o)!);
}

/** One bound network with its members; undefined when no VNI is bound to `name`. */
export function networkView(s: FederationSnapshot, name: string): Network | undefined {
  const n = s.networks.get(name);
  if (!n) return undefined;
  return {
    name: n.name,
    vni: n.vni,
    createdAt: date(n.createdAt),
    members: (s.members.get(name) ?? []).map((m) => ({
      cluster: m.cluster,
      since: date(m.since),
      requestedMtu: m.mtu?.requested ?? 0,
      capacityMtu: m.mtu?.capacity ?? 0,
    })),
    mtu: n.mtu ? mtuView(n.mtu) : undefined,
  };
}

/** The agreed MTU with a sentence saying who set it and who is unknown. */
function mtuView(m: AgreedMtu): NetworkMtu {
  const by =
    m.limit === 'requested'
      ? `${m.setBy} requests ${m.value}`
      : `${m.setBy}'s underlay carries at most ${m.value}`;
  const silent = m.silent?.length
    ? `; ${m.silent.join(', ')} sent no MTU ask (older agent): check that they carry ${m.value}`
    : '';
  return {
    value: m.value,
    setBy: m.setBy,
    limit: m.limit,
    silent: [...(m.silent ?? [])],
    reason: `${by}${silent}`,
  };
}

/** Every bound network, sorted by name. */
export function allNetworks(s: FederationSnapshot): Network[] {
  return [...s.networks.keys()].sort().map((n) => networkView(s, n)!);
}
