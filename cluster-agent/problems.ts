/**
 * A problem found in a manifest: where (file, document, line, field) and what to do. The
 * same shape serves the folder source's error events and `l2fed validate DIR`.
 */

/** How bad a ManifestProblem is (see ManifestProblem.severity). */
export const SEVERITIES = ['error', 'warning'] as const;
/** One of SEVERITIES. */
export type Severity = (typeof SEVERITIES)[number];

export interface ManifestProblem {
  /** 'error' makes a folder invalid (last good state kept); 'warning' is reported only. */
  readonly severity: Severity;
  /** File path as the caller named it (relative to the manifest folder for folder sources). */
  readonly file: string;
  /** 1-based index of the YAML document in the file, when the problem is inside one. */
  readonly document?: number;
  /** 1-based line of the offending node (or its closest existing parent). */
  readonly line?: number;
  /** `Kind/name` of the object, when known. */
  readonly object?: string;
  /** Dotted field path, e.g. `spec.segment.vlan`; '' for the document as a whole. */
  readonly path: string;
  /** What is wrong. */
  readonly reason: string;
  /** What to do about it. */
  readonly hint: string;
}

/**
 * Renders a problem as one line, e.g.
 * `madrid/cdn.yaml:9 (document 2, FederatedNetwork/cdn): spec.segment.vlan: must be <=4094, got 5000. Fix: …`
 */
export function formatProblem(p: ManifestProblem): string {
  const where = p.line === undefined ? p.file : `${p.file}:${p.line}`;
  const ctx = [p.document === undefined ? undefined : `document ${p.document}`, p.object]
    .filter((s) => s !== undefined)
    .join(', ');
  const field = p.path === '' ? '' : `${p.path}: `;
  const tag = p.severity === 'warning' ? 'warning: ' : '';
  return `${tag}${where}${ctx ? ` (${ctx})` : ''}: ${field}${p.reason}. Fix: ${p.hint}`;
}

/** Renders a field path like `metadata.annotations["k8s.v1.cni.cncf.io/networks"][0].ips`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_][A-Za-z0-9_]*$/.test(seg)) {
      out += out === '' ? seg : `.${seg}`;
    } else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

/** True when any problem is an error (not just a warning). */
export function hasErrors(problems: readonly ManifestProblem[]): boolean {
  return problems.some((p) => p.severity === 'error');
}
