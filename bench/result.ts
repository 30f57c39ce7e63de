/**
 * The shape every benchmark section returns to `npm run bench` (bench/run.ts), which
 * writes them to bench/results/<date>.json and renders docs/benchmarks.md and its SVG
 * charts from them (bench/report.ts).
 *
 * Absolute times on a 2-core machine are noise: a figure is a ratio or a count against
 * a baseline measured in the same run, or a time given with its spread over several runs.
 */

/** Median, min and max of n samples, in `unit` (e.g. "ratio", "ms", "commands", "MiB"). */
export interface Stat {
  readonly median: number;
  readonly min: number;
  readonly max: number;
  readonly n: number;
  readonly unit: string;
  /** Percentiles when the samples are a distribution (latency), e.g. { p50, p99 }. */
  readonly percentiles?: Readonly<Record<string, number>>;
}

/** One reported figure: a statistic, what it is compared with, and our target if any. */
export interface Figure {
  /** Stable key, e.g. "tcp-ratio-ovs"; used by charts and by status.md's table. */
  readonly id: string;
  /** What it is, in words: "pod-to-pod TCP / raw WireGuard tunnel, OVS segment". */
  readonly label: string;
  readonly stat: Stat;
  /** The baseline measured in the same run, in words ("raw WireGuard tunnel, same gateways"). */
  readonly baseline?: string;
  /** The target from the issue or the docs; `met` is computed from the median. */
  readonly target?: { readonly op: '<=' | '>='; readonly value: number; readonly met: boolean };
}

/** A chart as data; bench/report.ts draws it (vega-lite → SVG). */
export interface Chart {
  readonly id: string;
  readonly title: string;
  readonly kind: 'bar' | 'line' | 'cdf' | 'box';
  readonly x: { readonly field: string; readonly title: string };
  /** `scale: 'log'` for curves of very different sizes (line, bar, box; every y > 0). */
  readonly y: { readonly field: string; readonly title: string; readonly scale?: 'log' };
  /** Optional series field (one colour per value). */
  readonly series?: string;
  readonly rows: readonly Readonly<Record<string, string | number>>[];
}

export interface BenchSection {
  /** "data-path", "control-plane", "broker-scale", "gateway-reconcile". */
  readonly id: string;
  readonly title: string;
  /** How it was measured (Markdown, a few sentences): topology, runs, what bounds it. */
  readonly method: string;
  readonly figures: readonly Figure[];
  readonly charts: readonly Chart[];
  /** Honest notes: what bounds each figure here, how a real node would differ. */
  readonly notes?: readonly string[];
  /** Wall time the section took, ms. */
  readonly tookMs: number;
}

/**
 * What the runner hands a section's `run()`. It lives here, not in bench/sections.ts, so
 * a section need not import the registry that imports it (an import cycle).
 */
export interface SectionOptions {
  /** Fewer runs and smaller sizes (a smoke run); the published report uses full runs. */
  readonly quick: boolean;
  /** Progress lines for the operator (stderr). */
  readonly log: (line: string) => void;
  /**
   * Name prefix (`l2fed-b<id>`, unique per run) for every namespace, temp dir and lab
   * (L2FED_LAB_PREFIX) the section makes: the runner lists leftovers with it afterwards.
   * `npm run bench` always sets it; a section run on its own may pick its own `l2fed-…`.
   */
  readonly prefix?: string;
  /**
   * Wall time the section has, ms: its budget in bench/sections.ts, or less when the
   * run's 15 min bound is nearer. Past it the runner stops the section, so a section with
   * a variable number of trials stops starting new ones in time. `npm run bench` always
   * sets it; a section run on its own falls back to its own default.
   */
  readonly budgetMs?: number;
}

/** Median/min/max (and optional percentiles) of samples; throws on an empty list. */
export function stat(
  samples: readonly number[],
  unit: string,
  percentiles: readonly number[] = [],
): Stat {
  if (samples.length === 0) throw new Error(`stat: no samples (${unit})`);
  const s = [...samples].sort((a, b) => a - b);
  const q = (p: number) =>
    s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
  const mid = s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  return {
    median: mid,
    min: s[0]!,
    max: s[s.length - 1]!,
    n: s.length,
    unit,
    ...(percentiles.length
      ? { percentiles: Object.fromEntries(percentiles.map((p) => [`p${p}`, q(p)])) }
      : {}),
  };
}

/** A figure with its target checked against the median. */
export function figure(
  f: Omit<Figure, 'target'> & { target?: { op: '<=' | '>='; value: number } },
): Figure {
  const { target, ...rest } = f;
  if (!target) return rest;
  const met = target.op === '<=' ? f.stat.median <= target.value : f.stat.median >= target.value;
  return { ...rest, target: { ...target, met } };
}
