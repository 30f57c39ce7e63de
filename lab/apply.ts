/**
 * `l2fed lab apply CLUSTER FILE` and `l2fed lab remove CLUSTER NAME`: change one
 * cluster's manifests in the running lab, as a GitOps commit would. The change is
 * validated against the whole federation first (build rules included); a bad change is
 * refused and nothing is written. The agent (exports, peerings) and the lab runner (pods) react.
 */
import { access, cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { tmpdir } from 'node:os';
import { validate, formatReport } from '../cluster-agent/validate.js';
import { labPaths } from './paths.js';
import { readState } from './state.js';
import { rewriteForBridge } from './segment-rewrite.js';
import { LAB_UNDERLAY_MTU } from './plan.js';
import { kubeApply, kubeDelete, kubeObjects, type KubeObject } from './kube.js';
import { describeError } from '../lib/errors.js';

/** The cluster's admin kubeconfig when the lab runs with --kubernetes, else undefined. */
async function clusterKubeconfig(cluster: string): Promise<string | undefined> {
  const st = await readState(labPaths().state);
  return st?.kubernetes ? st.clusters.find((c) => c.id === cluster)?.kubeconfig : undefined;
}

const key = (o: KubeObject) => `${o.kind}/${o.metadata.name}`;

/**
 * --kubernetes: sends one file's change to the cluster's API server: applies the
 * FederatedNetworks and ClusterPeerings in `next`, deletes those only in `previous`.
 * False (with the reason on stderr) when kubectl failed; the folder is then left as is.
 */
async function throughApiServer(
  cluster: string,
  kubeconfig: string,
  previous: string | undefined,
  next: string | undefined,
): Promise<boolean> {
  const now = next === undefined ? [] : kubeObjects(next);
  const kept = new Set(now.map(key));
  const gone = (previous === undefined ? [] : kubeObjects(previous)).filter(
    (o) => !kept.has(key(o)),
  );
  try {
    await kubeApply(kubeconfig, now);
    await kubeDelete(kubeconfig, gone);
    return true;
  } catch (err) {
    console.error(`l2fed lab: ${cluster}'s API server refused the change: ${describeError(err)}`);
    return false;
  }
}

async function clusterDir(cluster: string): Promise<string | undefined> {
  const st = await readState(labPaths().state);
  if (!st?.clusters.some((c) => c.id === cluster)) {
    console.error(
      st
        ? `l2fed lab: no cluster "${cluster}"; lab clusters: ${st.clusters.map((c) => c.id).join(', ')}`
        : 'l2fed lab: no lab is up; start one with "l2fed lab up"',
    );
    return undefined;
  }
  return labPaths().cluster(cluster);
}

/**
 * Validates the whole federation as it would be after `change` to one cluster's folder,
 * in a scratch copy, with the build rules of the lab's segment kind: a change can clash
 * with another cluster (one MAC on a network).
 */
async function checkChange(
  dir: string,
  cluster: string,
  change: (scratch: string) => Promise<void>,
): Promise<boolean> {
  const scratchRoot = await mkdtemp(join(tmpdir(), 'l2fed-apply-'));
  try {
    await cp(dirname(dir), scratchRoot, { recursive: true });
    const scratch = join(scratchRoot, cluster);
    await change(scratch);
    const st = await readState(labPaths().state);
    const segments = st?.segmentKind === 'bridge' ? 'bridge' : 'ovs';
    const report = await validate(scratchRoot, { segments, underlayMtu: LAB_UNDERLAY_MTU });
    if (!report.ok) {
      // Name files as the user knows them (CLUSTER/FILE), not by the scratch copy.
      const text = formatReport(scratchRoot, report)
        .replaceAll(`${scratchRoot}/`, '')
        .replaceAll(scratchRoot, 'the lab');
      console.error(`l2fed lab: refused, nothing changed:\n${text}`);
      return false;
    }
    return true;
  } finally {
    await rm(scratchRoot, { recursive: true, force: true });
  }
}

export async function labApply(cluster: string, file: string): Promise<number> {
  const dir = await clusterDir(cluster);
  if (!dir) return 1;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    console.error(`l2fed lab apply: cannot read ${file}: ${(err as NodeJS.ErrnoException).code}`);
    return 1;
  }
  const st = await readState(labPaths().state);
  if (st?.segmentKind === 'bridge') text = rewriteForBridge(text);
  const name = basename(file);
  const write = (d: string) => writeFile(join(d, name), text);
  if (!(await checkChange(dir, cluster, write))) return 1;
  const kubeconfig = await clusterKubeconfig(cluster);
  if (kubeconfig) {
    const previous = await readFile(join(dir, name), 'utf8').catch(() => undefined);
    if (!(await throughApiServer(cluster, kubeconfig, previous, text))) return 1;
  }
  // The folder copy stays in step: the whole federation is validated from it.
  await write(dir);
  console.log(`applied ${name} to ${cluster}${kubeconfig ? ' (through its API server)' : ''}`);
  return 0;
}

export async function labRemove(cluster: string, name: string): Promise<number> {
  const dir = await clusterDir(cluster);
  if (!dir) return 1;
  const target = join(dir, basename(name));
  try {
    await access(target);
  } catch {
    console.error(`l2fed lab remove: ${cluster} has no manifest file ${basename(name)}`);
    return 1;
  }
  const del = (d: string) => rm(join(d, basename(name)), { force: true });
  if (!(await checkChange(dir, cluster, del))) return 1;
  const kubeconfig = await clusterKubeconfig(cluster);
  if (kubeconfig) {
    const previous = await readFile(target, 'utf8');
    if (!(await throughApiServer(cluster, kubeconfig, previous, undefined))) return 1;
  }
  await del(dir);
  console.log(
    `removed ${basename(name)} from ${cluster}${kubeconfig ? ' (through its API server)' : ''}`,
  );
  return 0;
}
