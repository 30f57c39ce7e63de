/**
 * Checks that span the clusters of a federation folder (lab layout). They mirror what the
 * broker will decide at run time, so `l2fed validate` can say in advance that a peering
 * will stay inactive. Warnings, not errors: a one-sided peering is legal (consent pending).
 * The exception is an address used twice on one network (see addressClashes).
 */
import { duplicateAddressProblems } from './build-rules.js';
import type { DesiredState } from './desired-state.js';
import type { ManifestOrigin } from './manifests.js';
import type { ManifestProblem } from './problems.js';

export interface ClusterState {
  readonly id: string;
  readonly dir: string;
  readonly state?: DesiredState;
  /** Where each object (`Kind/name`) was declared, to point problems at the file. */
  readonly origins?: ReadonlyMap<string, ManifestOrigin>;
}

/** Networks a peering between `a` and `b` would carry: listed (or all) and exported by both. */
export function carriedNetworks(
  a: DesiredState,
  aId: string,
  b: DesiredState,
  bId: string,
): string[] {
  const side = (s: DesiredState, remote: string) => {
    const exported = new Set(s.networks.map((n) => n.metadata.name));
    const peering = s.peerings.find((p) => p.spec.remoteCluster === remote);
    if (!peering) return new Set<string>();
    return new Set((peering.spec.networks ?? [...exported]).filter((n) => exported.has(n)));
  };
  const fromA = side(a, bId);
  const fromB = side(b, aId);
  return [...fromA].filter((n) => fromB.has(n)).sort();
}

/** Cross-cluster problems for a set of valid cluster states. Pure. */
export function federationProblems(clusters: readonly ClusterState[]): ManifestProblem[] {
  const out: ManifestProblem[] = [];
  const byId = new Map(clusters.map((c) => [c.id, c]));
  for (const c of clusters) {
    if (!c.state) continue;
    for (const p of c.state.peerings) {
      const remote = byId.get(p.spec.remoteCluster);
      const where = {
        severity: 'warning' as const,
        ...locate(c, `ClusterPeering/${p.metadata.name}`),
        path: 'spec.remoteCluster',
      };
      if (!remote) {
        out.push({
          ...where,
          reason: `remote cluster "${p.spec.remoteCluster}" is not a folder here`,
          hint: 'add its folder, or ignore if it lives elsewhere',
        });
        continue;
      }
      if (!remote.state) continue;
      if (!remote.state.peerings.some((q) => q.spec.remoteCluster === c.id)) {
        out.push({
          ...where,
          reason: `one-sided: ${p.spec.remoteCluster} declares no ClusterPeering for ${c.id}, so this peering stays inactive`,
          hint: `add a ClusterPeering with remoteCluster: ${c.id} in ${remote.dir}, if both should peer`,
        });
        continue;
      }
      if (carriedNetworks(c.state, c.id, remote.state, remote.id).length === 0) {
        out.push({
          ...where,
          path: 'spec.networks',
          reason: `mutual, but no network is listed and exported by both ${c.id} and ${remote.id}`,
          hint: 'export a common network on both sides and list it in both peerings',
        });
      }
    }
  }
  out.push(...addressClashes(clusters));
  return out;
}

// The same MAC or IP address on one network in two clusters (build-rules.ts): an error
// for MACs and for IPs the clusters' peering carries, a warning for IPs it does not.
function addressClashes(clusters: readonly ClusterState[]): ManifestProblem[] {
  const byId = new Map(clusters.map((c) => [c.id, c.state]));
  return duplicateAddressProblems(
    clusters.map((c) => ({
      cluster: c.id,
      pods: (c.state?.pods ?? []).map((pod) => ({
        pod,
        where: locate(c, `Pod/${pod.metadata.name}`),
      })),
    })),
    {
      acrossOnly: true,
      connected: (a, b, network) => {
        const [sa, sb] = [byId.get(a), byId.get(b)];
        return !!sa && !!sb && carriedNetworks(sa, a, sb, b).includes(network);
      },
    },
  );
}

function locate(c: ClusterState, object: string) {
  const origin = c.origins?.get(object);
  return origin
    ? { file: origin.file, document: origin.document, line: origin.line, object }
    : { file: c.dir, object };
}
