/**
 * Reads one manifest folder: the `*.yaml` / `*.yml` files directly in it (one level; see
 * docs/cluster-agent.md for why), parsed and validated, plus the cross-object checks.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { clusterBuildProblems, type BuildTarget } from './build-rules.js';
import { buildDesiredState, type BuildResult } from './desired-state.js';
import { ManifestFolderError } from './errors.js';
import { parseManifests, type Manifest } from './manifests.js';
import type { ManifestProblem } from './problems.js';

/** Files bigger than this are refused: a manifest folder holds small hand-written YAML. */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

/** What one read of a folder found. */
export interface FolderScan {
  readonly dir: string;
  /** Manifest files read, as `join(dir, name)`, sorted. */
  readonly files: readonly string[];
  readonly manifests: readonly Manifest[];
  readonly problems: readonly ManifestProblem[];
}

/**
 * True for names the folder source reads. Hidden files are skipped (editor swap files, and
 * the `..data` links of a mounted ConfigMap); kustomization files are build input, not
 * objects.
 */
export function isManifestFile(name: string): boolean {
  if (name.startsWith('.')) return false;
  if (/^kustomization\.ya?ml$/i.test(name)) return false;
  return /\.ya?ml$/i.test(name);
}

/**
 * Reads and parses every manifest file in `dir`. Throws {@link ManifestFolderError} only
 * when the folder itself cannot be listed; per-file trouble becomes problems. Read-only,
 * safe to run concurrently (each call reads the files afresh).
 */
/** Why a folder could not be listed, for people (see ManifestFolderError). */
export function folderReadReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT'
    ? 'it does not exist'
    : code === 'ENOTDIR'
      ? 'it is not a directory'
      : String(code ?? err);
}

export async function scanFolder(dir: string): Promise<FolderScan> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter(isManifestFile).sort();
  } catch (err) {
    throw new ManifestFolderError(dir, folderReadReason(err), { cause: err });
  }
  const files: string[] = [];
  const manifests: Manifest[] = [];
  const problems: ManifestProblem[] = [];
  for (const name of names) {
    const file = join(dir, name);
    let text: string;
    try {
      // stat follows symlinks: ConfigMap volumes expose files as links into ..data/.
      const info = await stat(file);
      if (!info.isFile()) continue;
      if (info.size > MAX_MANIFEST_BYTES) {
        problems.push(
          fileProblem(
            file,
            `file is ${info.size} bytes, over the ${MAX_MANIFEST_BYTES}-byte limit`,
            'split it, or move non-manifest data out of the folder',
          ),
        );
        continue;
      }
      text = await readFile(file, 'utf8');
    } catch (err) {
      // Removed between readdir and read: it simply is not part of this snapshot.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
      problems.push(
        fileProblem(
          file,
          `cannot read file: ${String((err as Error).message)}`,
          'check its permissions',
        ),
      );
      continue;
    }
    files.push(file);
    const parsed = parseManifests(text, file);
    manifests.push(...parsed.manifests);
    problems.push(...parsed.problems);
  }
  return { dir, files, manifests, problems };
}

/**
 * Turns a scan into a desired state: fails if any file had an error, else runs the
 * cross-object checks and the build rules (build-rules.ts; `segments`: how the lab will
 * build segments, default 'ovs'; `underlayMtu`: check fixed MTUs against it). `clusterId`, when known, also rejects a peering with
 * itself. Pure.
 */
export function evaluateScan(
  scan: FolderScan,
  opts: { clusterId?: string } & BuildTarget = {},
): BuildResult {
  const selfPeerings: ManifestProblem[] = [];
  if (opts.clusterId !== undefined) {
    for (const m of scan.manifests) {
      if (m.kind !== 'ClusterPeering' || m.object.spec.remoteCluster !== opts.clusterId) continue;
      selfPeerings.push({
        severity: 'error',
        file: m.origin.file,
        document: m.origin.document,
        line: m.origin.line,
        object: `ClusterPeering/${m.object.metadata.name}`,
        path: 'spec.remoteCluster',
        reason: `peering with this cluster itself (${opts.clusterId})`,
        hint: 'name the other cluster in remoteCluster',
      });
    }
  }
  const built = buildDesiredState(scan.manifests, { withPods: true });
  const rules = clusterBuildProblems(scan.manifests, opts);
  const errors = [...scan.problems, ...selfPeerings, ...rules];
  if (errors.some((p) => p.severity === 'error')) {
    return {
      ok: false,
      problems: built.ok ? [...errors, ...built.warnings] : [...errors, ...built.problems],
    };
  }
  return built.ok ? { ...built, warnings: [...scan.problems, ...built.warnings] } : built;
}

function fileProblem(file: string, reason: string, hint: string): ManifestProblem {
  return { severity: 'error', file, path: '', reason, hint };
}
