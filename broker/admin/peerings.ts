/**
 * Peerings as operators think of them: one entry per pair of clusters where at least
 * one side declares the other, with both declarations, whether the pair is active in
 * the peer maps and, when not, why. Pure: computed from a FederationSnapshot, using
 * the same computePeerMap the broker publishes with, so the two never disagree.
 */
import {
  computePeerMap,
  vxlanPortMessage,
  vxlanPortsDiffer,
  type ClusterInputs,
} from '../peer-map.js';
import type { PeeringDecl } from '../records.js';
import type { FederationSnapshot } from './snapshot.js';
import {
  PeeringState,
  type Peering,
  type PeeringDeclaration,
} from '../../proto/gen/l2fed/admin/v1/federation.js';

/** The canonical name of a pair: the two ids sorted, joined by ":". */
export function pairName(a: string, b: string): string {
  return a < b ? `${a}:${b}` : `${b}:${a}`;
}

function inputsOf(s: FederationSnapshot, id: string): ClusterInputs {
  return {
    cluster: s.clusters.get(id),
    networks: s.exports.get(id)?.networks ?? [],
    peerings: s.peerings.get(id)?.peerings ?? [],
  };
}

const declOf = (s: FederationSnapshot, from: string, to: string): PeeringDecl | undefined =>
  s.peerings.get(from)?.peerings.find((p) => p.remoteCluster === to);

function declaration(d: PeeringDecl | undefined): PeeringDeclaration {
  return {
    declared: d !== undefined,
    networks: [...(d?.networks ?? [])],
    allExports: !d?.networks,
  };
}

/** Networks a side offers to the pair: declared list (or all exports) ∩ its exports. */
function offers(s: FederationSnapshot, id: string, d: PeeringDecl | undefined): string[] {
  const exported = (s.exports.get(id)?.networks ?? []).map((n) => n.name);
  return d?.networks ? d.networks.filter((n) => exported.includes(n)) : exported;
}

const list = (names: readonly string[]) => (names.length ? names.join(', ') : 'nothing');

const inMap = (s: FederationSnapshot, of: string, peer: string) =>
  s.peerMaps.get(of)?.peers.some((p) => p.cluster === peer) ?? false;

/** The state of the pair (a, b); undefined when neither declares the other. */
export function peeringOf(s: FederationSnapshot, x: string, y: string): Peering | undefined {
  const [a, b] = x < y ? [x, y] : [y, x];
  const da = declOf(s, a, b);
  const db = declOf(s, b, a);
  if (!da && !db) return undefined;
  const base = {
    name: pairName(a, b),
    clusterA: a,
    clusterB: b,
    declaredByA: declaration(da),
    declaredByB: declaration(db),
    active: inMap(s, a, b) && inMap(s, b, a),
    networks: [] as { name: string; vni: number }[],
  };
  const ca = s.clusters.get(a);
  const cb = s.clusters.get(b);
  const missing = [ca ? undefined : a, cb ? undefined : b].filter((v) => v !== undefined);
  if (missing.length > 0)
    return {
      ...base,
      state: PeeringState.PEERING_STATE_CLUSTER_MISSING,
      reason: `${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} not registered`,
    };
  const cordoned = [ca, cb].filter((c) => c?.cordon);
  if (cordoned.length > 0)
    return {
      ...base,
      state: PeeringState.PEERING_STATE_CORDONED,
      reason: cordoned
        .map((c) => `${c!.id} is cordoned by ${c!.cordon!.by}: ${c!.cordon!.reason}`)
        .join('; '),
    };
  if (!da || !db) {
    const [waitFor, declaredBy] = da ? [b, a] : [a, b];
    return {
      ...base,
      state: PeeringState.PEERING_STATE_WAITING_FOR_CONSENT,
      reason: `waiting for ${waitFor} to declare ${declaredBy}`,
    };
  }
  if (vxlanPortsDiffer(ca!, cb!))
    return {
      ...base,
      state: PeeringState.PEERING_STATE_VXLAN_PORT_MISMATCH,
      reason: vxlanPortMessage(ca!, cb!),
    };
  const map = computePeerMap({ ...inputsOf(s, a), cluster: ca! }, new Map([[b, inputsOf(s, b)]]));
  const networks = map.peers.find((p) => p.cluster === b)?.networks ?? [];
  if (networks.length === 0) {
    return {
      ...base,
      networks: [],
      state: PeeringState.PEERING_STATE_NO_COMMON_NETWORK,
      reason:
        `no common exported network: ${a} offers ${list(offers(s, a, da))}, ` +
        `${b} offers ${list(offers(s, b, db))}`,
    };
  }
  return {
    ...base,
    networks: networks.map((n) => ({ name: n.name, vni: n.vni })),
    state: PeeringState.PEERING_STATE_ACTIVE,
    reason: base.active
      ? ''
      : 'consent is mutual but the peer maps are not updated yet; retry shortly',
  };
}

/** Every declared pair, sorted by name. */
export function allPeerings(s: FederationSnapshot): Peering[] {
  const pairs = new Set<string>();
  for (const [from, rec] of s.peerings)
    for (const p of rec.peerings)
      if (p.remoteCluster !== from) pairs.add(pairName(from, p.remoteCluster));
  return [...pairs].sort().map((n) => {
    const [a, b] = n.split(':') as [string, string];
    return peeringOf(s, a, b)!;
  });
}
