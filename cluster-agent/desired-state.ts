/**
 * The desired state of one cluster: what it exports, whom it peers with, and (standalone /
 * lab only) the pods to create. Built from manifests with cross-object checks, and
 * versioned by a hash of what matters, so equal content always has an equal version.
 */
import { createHash } from 'node:crypto';
import type { Manifest } from './manifests.js';
import type { ManifestProblem } from './problems.js';
import type { ClusterPeering } from './schema-peering.js';
import type { FederatedNetwork } from './schema-network.js';
import type { PodManifest } from './schema-pod.js';
import { segmentClashes } from './segment-layout.js';

/** A full, consistent snapshot of desired state. Immutable by convention. */
export interface DesiredState {
  /**
   * Content hash over names and specs (not status, not server metadata): a status write
   * does not change it, and two sources holding the same objects agree on it.
   */
  readonly version: string;
  /** Sorted by name. */
  readonly networks: readonly FederatedNetwork[];
  /** Sorted by name. */
  readonly peerings: readonly ClusterPeering[];
  /** Lab pods, sorted by name; absent for the Kubernetes source (real pods are Multus'). */
  readonly pods?: readonly PodManifest[];
}

export type BuildResult =
  | {
      readonly ok: true;
      readonly state: DesiredState;
      readonly warnings: readonly ManifestProblem[];
    }
  | { readonly ok: false; readonly problems: readonly ManifestProblem[] };

/**
 * Builds a snapshot from validated manifests and runs the checks that span objects:
 * duplicate names, two peerings with one remote, two networks on one local segment,
 * pods on networks not exported here.
 * `withPods` is true for folder sources. Pure.
 */
export function buildDesiredState(
  manifests: readonly Manifest[],
  opts: { withPods: boolean },
): BuildResult {
  const problems: ManifestProblem[] = [];
  const byKind = <K extends Manifest['kind']>(kind: K) =>
    manifests.filter((m): m is Extract<Manifest, { kind: K }> => m.kind === kind);
  const networks = byKind('FederatedNetwork');
  const peerings = byKind('ClusterPeering');
  const pods = byKind('Pod');

  problems.push(...duplicates(networks, (m) => m.object.metadata.name, 'metadata.name'));
  problems.push(...duplicates(peerings, (m) => m.object.metadata.name, 'metadata.name'));
  // Two networks on one local segment would merge (segment-layout.ts).
  const networkAt = new Map(networks.map((m) => [`${m.kind}/${m.object.metadata.name}`, m]));
  problems.push(
    ...segmentClashes(
      networks.map((m) => m.object),
      (object) => at(networkAt.get(object)!, ''),
    ),
  );
  problems.push(
    ...duplicates(
      peerings,
      (m) => m.object.spec.remoteCluster,
      'spec.remoteCluster',
      'remote cluster',
    ),
  );
  problems.push(
    ...duplicates(
      pods,
      (m) => `${m.object.metadata.namespace ?? ''}/${m.object.metadata.name}`,
      'metadata.name',
    ),
  );

  const exported = new Set(networks.map((m) => m.object.metadata.name));
  for (const pod of pods) {
    pod.object.networks.forEach((sel, i) => {
      if (exported.has(sel.name)) return;
      problems.push({
        ...at(pod, `metadata.annotations["k8s.v1.cni.cncf.io/networks"][${i}]`),
        severity: 'error',
        reason: `pod joins network "${sel.name}", which no FederatedNetwork in this folder exports`,
        hint: `add a FederatedNetwork named ${sel.name} or fix the network name in the annotation`,
      });
    });
    if (pod.object.networks.length === 0) {
      problems.push({
        ...at(pod, 'metadata.annotations'),
        severity: 'warning',
        reason: 'pod joins no federated network (no k8s.v1.cni.cncf.io/networks annotation)',
        hint: 'add the Multus annotation, or remove the pod from the folder',
      });
    }
  }
  for (const peering of peerings) {
    (peering.object.spec.networks ?? []).forEach((name, i) => {
      if (exported.has(name)) return;
      problems.push({
        ...at(peering, `spec.networks[${i}]`),
        severity: 'warning',
        reason: `network "${name}" is not exported by this cluster, so it is not carried`,
        hint: `add a FederatedNetwork named ${name}, or drop it from the peering`,
      });
    });
  }
  if (problems.some((p) => p.severity === 'error')) return { ok: false, problems };
  const byName = <T extends { metadata: { name: string } }>(a: T, b: T) =>
    a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
  const state = makeState(
    networks.map((m) => m.object).sort(byName),
    peerings.map((m) => m.object).sort(byName),
    opts.withPods ? pods.map((m) => m.object).sort(byName) : undefined,
  );
  return { ok: true, state, warnings: problems };
}

/** Assembles a snapshot and computes its version. Pure. */
export function makeState(
  networks: readonly FederatedNetwork[],
  peerings: readonly ClusterPeering[],
  pods?: readonly PodManifest[],
): DesiredState {
  const content = {
    networks: networks.map((n) => [n.metadata.name, n.spec]),
    peerings: peerings.map((p) => [p.metadata.name, p.spec]),
    pods: pods?.map((p) => [p.metadata.namespace ?? '', p.metadata.name, p.networks]),
  };
  const version = createHash('sha256').update(canonicalJson(content)).digest('hex').slice(0, 16);
  return pods === undefined
    ? { version, networks, peerings }
    : { version, networks, peerings, pods };
}

/** JSON with object keys sorted, so equal values hash equally whatever the key order. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

function at(m: Manifest, path: string): Omit<ManifestProblem, 'severity' | 'reason' | 'hint'> {
  return {
    file: m.origin.file,
    document: m.origin.document,
    line: m.origin.line,
    object: `${m.kind}/${m.object.metadata.name}`,
    path,
  };
}

function duplicates<M extends Manifest>(
  items: readonly M[],
  key: (m: M) => string,
  path: string,
  what = 'name',
): ManifestProblem[] {
  const first = new Map<string, M>();
  const out: ManifestProblem[] = [];
  for (const m of items) {
    const k = key(m);
    const prev = first.get(k);
    if (prev === undefined) {
      first.set(k, m);
      continue;
    }
    out.push({
      ...at(m, path),
      severity: 'error',
      reason: `duplicate ${m.kind} ${what} "${k}", also declared in ${prev.origin.file} (document ${prev.origin.document})`,
      hint: `keep one ${m.kind} per ${what}; merge or rename the other`,
    });
  }
  return out;
}
