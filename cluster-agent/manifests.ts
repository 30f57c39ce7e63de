/**
 * Parses multi-document YAML into typed, validated API objects. Every problem names the
 * file, the document (1-based), the line, the field path and what to do; parsing goes on
 * after a bad document so one run reports everything.
 */
import { isNode, LineCounter, parseAllDocuments, type Document } from 'yaml';
import type { z } from 'zod';
import { clusterPeering, type ClusterPeering } from './schema-peering.js';
import { federatedNetwork, type FederatedNetwork } from './schema-network.js';
import { podManifest, type PodManifest } from './schema-pod.js';
import { formatPath, type ManifestProblem } from './problems.js';

/** Where a manifest came from. */
export interface ManifestOrigin {
  readonly file: string;
  /** 1-based document index in the file. */
  readonly document: number;
  readonly line: number;
}

export type Manifest =
  | {
      readonly kind: 'FederatedNetwork';
      readonly object: FederatedNetwork;
      readonly origin: ManifestOrigin;
    }
  | {
      readonly kind: 'ClusterPeering';
      readonly object: ClusterPeering;
      readonly origin: ManifestOrigin;
    }
  | { readonly kind: 'Pod'; readonly object: PodManifest; readonly origin: ManifestOrigin };

export type ManifestKind = Manifest['kind'];

const SCHEMAS = {
  FederatedNetwork: federatedNetwork,
  ClusterPeering: clusterPeering,
  Pod: podManifest,
} as const satisfies Record<ManifestKind, z.ZodType>;

/** The kinds a manifest folder may hold. */
export const SUPPORTED_KINDS = Object.keys(SCHEMAS) as readonly ManifestKind[];

export interface ParseResult {
  readonly manifests: readonly Manifest[];
  readonly problems: readonly ManifestProblem[];
}

/** Context used to place a problem: file, document and a field-path → line lookup. */
export interface ProblemContext {
  readonly file: string;
  readonly document?: number;
  readonly object?: string;
  readonly lineOf?: (path: readonly PropertyKey[]) => number | undefined;
}

/**
 * Parses every YAML document in `text` (named `file` in problems). Pure and synchronous;
 * empty documents (a trailing `---`, comments only) are skipped.
 */
export function parseManifests(text: string, file: string): ParseResult {
  const lineCounter = new LineCounter();
  const docs = parseAllDocuments(text, { lineCounter });
  const manifests: Manifest[] = [];
  const problems: ManifestProblem[] = [];
  if (!Array.isArray(docs)) {
    // An empty stream: `parseAllDocuments` returns an EmptyStream (no documents).
    return { manifests, problems };
  }
  docs.forEach((doc, i) => {
    const document = i + 1;
    const lineOf = (path: readonly PropertyKey[]) => lineOfPath(doc, lineCounter, path);
    if (doc.errors.length > 0) {
      for (const err of doc.errors) {
        problems.push({
          severity: 'error',
          file,
          document,
          line: err.linePos?.[0]?.line,
          path: '',
          reason: `YAML syntax error: ${err.message.split('\n')[0] ?? err.code}`,
          hint: 'fix the YAML syntax (indentation, quoting, duplicate keys)',
        });
      }
      return;
    }
    let raw: unknown;
    try {
      raw = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      problems.push({
        severity: 'error',
        file,
        document,
        path: '',
        reason: `cannot read YAML: ${err instanceof Error ? err.message : String(err)}`,
        hint: 'simplify the document (avoid alias chains)',
      });
      return;
    }
    if (raw === null || raw === undefined) return;
    const result = checkObject(raw, { file, document, lineOf });
    if (result.ok) {
      manifests.push({
        ...result.manifest,
        origin: { file, document, line: lineOf([]) ?? 1 },
      } as Manifest);
    } else problems.push(...result.problems);
  });
  return { manifests, problems };
}

export type CheckResult =
  | { readonly ok: true; readonly manifest: Omit<Manifest, 'origin'> }
  | { readonly ok: false; readonly problems: readonly ManifestProblem[] };

/**
 * Validates one decoded object (from YAML or from the Kubernetes API) against the schema
 * of its kind. Pure.
 */
export function checkObject(raw: unknown, ctx: ProblemContext): CheckResult {
  const problem = (
    path: readonly PropertyKey[],
    reason: string,
    hint: string,
  ): ManifestProblem => ({
    severity: 'error',
    file: ctx.file,
    document: ctx.document,
    line: ctx.lineOf?.(path),
    object: ctx.object,
    path: formatPath(path),
    reason,
    hint,
  });
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return {
      ok: false,
      problems: [
        problem(
          [],
          'the document is not a mapping',
          'write a Kubernetes object (apiVersion, kind, metadata, spec)',
        ),
      ],
    };
  }
  const obj = raw as Record<string, unknown>;
  const kind = obj.kind;
  if (typeof kind !== 'string' || !Object.hasOwn(SCHEMAS, kind)) {
    const got = kind === undefined ? 'kind is missing' : `unsupported kind ${JSON.stringify(kind)}`;
    return {
      ok: false,
      problems: [problem(['kind'], got, `use one of ${SUPPORTED_KINDS.join(', ')}`)],
    };
  }
  const name = (obj.metadata as { name?: unknown } | undefined)?.name;
  const object = ctx.object ?? (typeof name === 'string' ? `${kind}/${name}` : kind);
  const schema = SCHEMAS[kind as ManifestKind];
  const result = schema.safeParse(raw);
  if (result.success) {
    return { ok: true, manifest: { kind, object: result.data } as Omit<Manifest, 'origin'> };
  }
  return { ok: false, problems: zodProblems(result.error, raw, { ...ctx, object }) };
}

/** Turns zod issues into problems, one per offending field, with a hint each. */
export function zodProblems(
  error: z.ZodError,
  raw: unknown,
  ctx: ProblemContext,
): ManifestProblem[] {
  const out: ManifestProblem[] = [];
  const push = (path: readonly PropertyKey[], reason: string, hint: string) =>
    out.push({
      severity: 'error',
      file: ctx.file,
      document: ctx.document,
      line: ctx.lineOf?.(path),
      object: ctx.object,
      path: formatPath(path),
      reason,
      hint,
    });
  for (const issue of error.issues) {
    const value = valueAt(raw, issue.path);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        push(
          [...issue.path, key],
          `unknown field ${JSON.stringify(key)}`,
          'remove the field or fix its spelling; unknown fields are rejected, as kubectl does',
        );
      }
    } else if (issue.code === 'invalid_type' && value === undefined) {
      const last = issue.path[issue.path.length - 1];
      push(issue.path, 'required field is missing', `add ${String(last ?? 'the field')}`);
    } else if (issue.code === 'invalid_type') {
      push(issue.path, `${issue.message}, got ${show(value)}`, `write a ${issue.expected}`);
    } else {
      const got = value === undefined || typeof value === 'object' ? '' : `, got ${show(value)}`;
      push(issue.path, `${issue.message}${got}`, hintFor(issue.code));
    }
  }
  return out;
}

function hintFor(code: string): string {
  switch (code) {
    case 'too_big':
    case 'too_small':
      return 'use a value within the allowed range';
    case 'invalid_format':
      return 'correct the format as described';
    default:
      return 'correct the value; docs/cluster-agent.md lists every field and its rules';
  }
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function valueAt(raw: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = raw;
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[seg];
  }
  return cur;
}

// The line of the node at `path`, or of its closest ancestor that exists in the YAML (a
// missing field points at its parent; a path into the Multus JSON at the annotation).
function lineOfPath(
  doc: Document,
  lc: LineCounter,
  path: readonly PropertyKey[],
): number | undefined {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    if (isNode(node) && node.range) return lc.linePos(node.range[0]).line;
  }
  return undefined;
}
