/**
 * `l2fed lab up --kubernetes`: one real API server per lab cluster (etcd + kube-apiserver,
 * lib/kube-control-plane.ts) holding the l2fed CRDs, the agent's namespace and RBAC, and
 * the cluster's FederatedNetworks and ClusterPeerings. The agent reads them from there
 * with its ServiceAccount token; `lab apply/remove` go through it with the admin
 * kubeconfig. Pods stay the lab's own (there are no kubelets).
 */
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { rename } from 'node:fs/promises';
import {
  controlPlaneBinDir,
  controlPlaneUnmet,
  packageRoot,
  startKubeControlPlane,
  type KubeControlPlane,
} from '../lib/kube-control-plane.js';
import { ExecaRunner, type RunResult } from '../lib/runner.js';

const ROOT = packageRoot();
/** The namespace and ServiceAccount deploy/rbac creates for the cluster agent. */
export const AGENT_NAMESPACE = 'l2fed-system';
export const AGENT_SERVICE_ACCOUNT = 'l2fed-cluster-agent';
/** The agent's token lives as long as a lab reasonably does. */
const AGENT_TOKEN_DURATION = '720h';
/** The kinds the API server holds; everything else (Pods) stays in the lab's folder. */
const KUBE_KINDS = new Set(['FederatedNetwork', 'ClusterPeering']);

/** Why `--kubernetes` cannot run here (binaries not built), or undefined. */
export function labKubeUnmet(): string | undefined {
  return controlPlaneUnmet();
}

/** The kubectl of the control-plane release (the one the lab prints for the user). */
export function labKubectl(): string {
  return join(controlPlaneBinDir(), 'kubectl');
}

export interface LabControlPlane {
  readonly plane: KubeControlPlane;
  /** kubeconfig with the admin token (system:masters): for the user and `lab apply`. */
  readonly adminKubeconfig: string;
  /** kubeconfig with the agent ServiceAccount's token (deploy/rbac's role only). */
  readonly agentKubeconfig: string;
}

/** A kubernetes object of one of the l2fed kinds, as read from a manifest file. */
export interface KubeObject {
  readonly kind: string;
  readonly metadata: { readonly name: string };
  readonly [k: string]: unknown;
}

/** The FederatedNetworks and ClusterPeerings of one manifest file's text (multi-doc YAML). */
export function kubeObjects(text: string): KubeObject[] {
  return parseAllDocuments(text)
    .map((d) => d.toJS() as unknown)
    .filter(
      (o): o is KubeObject =>
        typeof o === 'object' &&
        o !== null &&
        KUBE_KINDS.has((o as { kind?: unknown }).kind as string) &&
        typeof (o as { metadata?: { name?: unknown } }).metadata?.name === 'string',
    );
}

/**
 * What a member cluster installs for the agent (deploy/crds, Established; the
 * l2fed-system namespace; deploy/rbac), as `kubectl` through `plane`. Throws on failure.
 */
export async function installAgentBase(plane: Pick<KubeControlPlane, 'kubectl'>): Promise<void> {
  await plane.kubectl(['apply', '-k', join(ROOT, 'deploy/crds')]);
  await plane.kubectl(
    [
      'wait',
      '--for=condition=Established',
      '--timeout=30s',
      'crd/federatednetworks.l2fed.io',
      'crd/clusterpeerings.l2fed.io',
    ],
    { timeoutMs: 40_000 },
  );
  await plane.kubectl(['create', 'namespace', AGENT_NAMESPACE]);
  await plane.kubectl(['apply', '-k', join(ROOT, 'deploy/rbac')]);
}

/**
 * Starts a control plane for one lab cluster in `dir` (whose path must carry the lab's
 * cleanup prefix), applies deploy/crds (waits until Established), the agent namespace and
 * deploy/rbac, and writes the agent's kubeconfig. Throws with the control plane's logs on
 * failure (everything it started is stopped).
 */
export async function startLabControlPlane(o: {
  readonly dir: string;
  readonly name: string;
}): Promise<LabControlPlane> {
  const plane = await startKubeControlPlane({ dir: o.dir, name: o.name });
  try {
    await installAgentBase(plane);
    const token = (
      await plane.kubectl([
        'create',
        'token',
        AGENT_SERVICE_ACCOUNT,
        '-n',
        AGENT_NAMESPACE,
        `--duration=${AGENT_TOKEN_DURATION}`,
      ])
    ).stdout.trim();
    const agentKubeconfig = join(o.dir, 'agent.kubeconfig');
    await rename(await plane.kubeconfigFor(token), agentKubeconfig);
    return { plane, adminKubeconfig: plane.kubeconfig, agentKubeconfig };
  } catch (err) {
    await plane.dispose();
    throw err;
  }
}

/** `kubectl apply` of objects against the API server of `kubeconfig`; throws on failure. */
export async function kubeApply(
  kubeconfig: string,
  objects: readonly KubeObject[],
): Promise<RunResult | undefined> {
  if (objects.length === 0) return undefined;
  return kubectl(kubeconfig, ['apply', '-f', '-'], objects.map((o) => stringify(o)).join('---\n'));
}

/** `kubectl delete` of objects (absent ones are fine); throws on failure. */
export async function kubeDelete(
  kubeconfig: string,
  objects: readonly KubeObject[],
): Promise<RunResult | undefined> {
  if (objects.length === 0) return undefined;
  return kubectl(
    kubeconfig,
    ['delete', '--ignore-not-found', '-f', '-'],
    objects.map((o) => stringify(o)).join('---\n'),
  );
}

function kubectl(kubeconfig: string, args: string[], input: string): Promise<RunResult> {
  return new ExecaRunner().run([labKubectl(), `--kubeconfig=${kubeconfig}`, ...args], {
    input,
    timeoutMs: 30_000,
    mutates: true,
  });
}
