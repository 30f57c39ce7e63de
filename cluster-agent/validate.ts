/**
 * Offline validation of manifest folders, for `l2fed validate DIR` (exit 0 ok, 1 invalid).
 * DIR is either one cluster's folder (it holds YAML files) or a federation folder with one
 * subfolder per cluster, named for the cluster id, as the lab reads it. In the latter case
 * the checks that span clusters run too (one-sided peerings, address clashes). Every
 * folder also meets the build rules (build-rules.ts), so what validates, the lab builds.
 */
import { readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { MAX_LAB_CLUSTERS, type BuildTarget } from './build-rules.js';
import { DNS1123_LABEL_PATTERN } from './constants.js';
import type { DesiredState } from './desired-state.js';
import { ManifestFolderError } from './errors.js';
import { evaluateScan, folderReadReason, isManifestFile, scanFolder } from './folder-scan.js';
import { federationProblems } from './federation-checks.js';
import type { ManifestOrigin } from './manifests.js';
import { formatProblem, hasErrors, type ManifestProblem } from './problems.js';

/** Exit codes of `l2fed validate`. */
export const VALIDATE_EXIT = { ok: 0, invalid: 1 } as const;
export type ValidateExitCode = (typeof VALIDATE_EXIT)[keyof typeof VALIDATE_EXIT];

export interface ClusterReport {
  readonly id: string;
  readonly dir: string;
  /** The desired state the folder yields, when it is valid. */
  readonly state?: DesiredState;
  readonly problems: readonly ManifestProblem[];
  /** Where each object (`Kind/name`) was declared. */
  readonly origins?: ReadonlyMap<string, ManifestOrigin>;
}

export interface ValidationReport {
  readonly layout: 'cluster' | 'federation';
  readonly ok: boolean;
  readonly exitCode: ValidateExitCode;
  readonly clusters: readonly ClusterReport[];
  /** Every problem (errors and warnings), clusters' and cross-cluster ones. */
  readonly problems: readonly ManifestProblem[];
}

/**
 * Validates `dir`. Read-only; never throws for bad input (an unreadable folder is a
 * problem in the report). `clusterId` names the cluster for a single-cluster folder
 * (default: the folder's name, if it is a DNS-1123 label). `segments` is how the lab will
 * build segments (`lab up --segment`), default 'ovs', and `underlayMtu` the gateways'
 * underlay MTU (fixed network MTUs must fit it); the build rules depend on them.
 */
export async function validate(
  dir: string,
  opts: { clusterId?: string } & BuildTarget = {},
): Promise<ValidationReport> {
  let entries;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch (err) {
    const problem = folderProblem(
      new ManifestFolderError(dir, folderReadReason(err), { cause: err }),
    );
    return report('cluster', [], [problem]);
  }
  const hasFiles = entries.some((e) => !e.isDirectory() && isManifestFile(e.name));
  const subdirs = entries
    .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
    .map((e) => e.name)
    .sort();
  if (hasFiles || subdirs.length === 0) {
    const id = opts.clusterId ?? defaultId(dir);
    const cluster = await validateCluster(dir, id, opts);
    if (!hasFiles) {
      return report(
        'cluster',
        [cluster],
        [
          ...cluster.problems,
          {
            severity: 'error',
            file: dir,
            path: '',
            reason: 'no manifests (*.yaml, *.yml) and no cluster subfolders found',
            hint: 'point at a cluster folder holding manifests, or at a folder of cluster folders',
          },
        ],
      );
    }
    return report('cluster', [cluster], cluster.problems);
  }
  const clusters = await Promise.all(
    subdirs.map((name) => validateCluster(join(dir, name), name, opts)),
  );
  const problems: ManifestProblem[] = clusters.flatMap((c) => c.problems);
  for (const c of clusters) {
    if (new RegExp(DNS1123_LABEL_PATTERN).test(c.id)) continue;
    problems.push({
      severity: 'error',
      file: c.dir,
      path: '',
      reason: `cluster folder name "${c.id}" is not a DNS-1123 label (it is the cluster id)`,
      hint: 'rename the folder: lower-case letters, digits and "-"',
    });
  }
  if (clusters.length > MAX_LAB_CLUSTERS) {
    problems.push({
      severity: 'error',
      file: dir,
      path: '',
      reason: `${clusters.length} cluster folders, more than the lab's ${MAX_LAB_CLUSTERS} (its underlay is one /24)`,
      hint: `split the federation into folders of at most ${MAX_LAB_CLUSTERS} clusters`,
    });
  }
  problems.push(...federationProblems(clusters));
  return report('federation', clusters, problems);
}

async function validateCluster(
  dir: string,
  id: string | undefined,
  target: BuildTarget,
): Promise<ClusterReport> {
  const name = id ?? basename(dir);
  try {
    const scan = await scanFolder(dir);
    const result = evaluateScan(scan, { ...target, clusterId: id });
    const origins = new Map(
      scan.manifests.map((m) => [`${m.kind}/${m.object.metadata.name}`, m.origin]),
    );
    return result.ok
      ? { id: name, dir, state: result.state, problems: result.warnings, origins }
      : { id: name, dir, problems: result.problems };
  } catch (err) {
    if (err instanceof ManifestFolderError)
      return { id: name, dir, problems: [folderProblem(err)] };
    throw err;
  }
}

function report(
  layout: ValidationReport['layout'],
  clusters: readonly ClusterReport[],
  problems: readonly ManifestProblem[],
): ValidationReport {
  const ok = !hasErrors(problems);
  return {
    layout,
    ok,
    exitCode: ok ? VALIDATE_EXIT.ok : VALIDATE_EXIT.invalid,
    clusters,
    problems,
  };
}

function defaultId(dir: string): string | undefined {
  const name = basename(dir);
  return new RegExp(DNS1123_LABEL_PATTERN).test(name) ? name : undefined;
}

function folderProblem(err: ManifestFolderError): ManifestProblem {
  return {
    severity: 'error',
    file: err.dir,
    path: '',
    // The error's own hint is the agent's; here the folder came from the command line.
    reason: `cannot read manifest folder ${err.dir}: ${err.reason}`,
    hint: 'check the folder given to l2fed validate',
  };
}

/**
 * Renders a report for a terminal: one line per problem (errors first), then a summary
 * such as `deploy/examples: 3 clusters, 0 errors, 1 warning`. Pure.
 */
export function formatReport(dir: string, report: ValidationReport): string {
  const errors = report.problems.filter((p) => p.severity === 'error');
  const warnings = report.problems.filter((p) => p.severity === 'warning');
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  const what =
    report.layout === 'federation' ? `${plural(report.clusters.length, 'cluster')}, ` : '';
  return [
    ...[...errors, ...warnings].map(formatProblem),
    `${dir}: ${what}${plural(errors.length, 'error')}, ${plural(warnings.length, 'warning')}`,
  ].join('\n');
}
