/**
 * The benchmark sections `npm run bench` runs, in order. Each module exports
 * `run(opts: SectionOptions): Promise<BenchSection>`; it is imported only when run, so
 * one section's tools need not be present for another's `--only` run.
 */
import type { BenchSection } from './result.js';

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
}

export interface SectionEntry {
  readonly id: string;
  /** Upper bound of the section's wall time in a full run, ms (all sections: ≤ 15 min). */
  readonly budgetMs: number;
  /** Needs root (namespaces, WireGuard, OVS). */
  readonly root: boolean;
  readonly load: () => Promise<{ run(opts: SectionOptions): Promise<BenchSection> }>;
}

export const SECTIONS: readonly SectionEntry[] = [
  {
    id: 'gateway-reconcile',
    budgetMs: 60_000,
    root: false, // fakes only
    load: () => import('./gateway-reconcile.js'),
  },
  {
    id: 'control-plane',
    budgetMs: 300_000, // a 2-cluster lab; trials stop early to keep it (bench/control-plane.ts)
    root: true,
    load: () => import('./control-plane.js'),
  },
  {
    id: 'endpoint-failover',
    budgetMs: 150_000, // 2 gateways, 9 trials of ~8 s (bench/endpoint-failover.ts)
    root: true,
    load: () => import('./endpoint-failover.js'),
  },
];
