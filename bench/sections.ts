/**
 * The benchmark sections `npm run bench` runs, in order. Each module exports
 * `run(opts: SectionOptions): Promise<BenchSection>`; it is imported only when run, so
 * one section's tools need not be present for another's `--only` run.
 */
import type { BenchSection, SectionOptions } from './result.js';

/** Import it from './result.js' in a section: importing this registry makes a cycle. */
export type { SectionOptions } from './result.js';

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
  {
    id: 'broker-scale',
    budgetMs: 300_000, // nats-server + 2 replicas; 100, 300, 1,000 clusters once, churn 10 s (bench/broker-scale.ts)
    root: false,
    load: () => import('./broker-scale.js'),
  },
  {
    id: 'data-path',
    budgetMs: 150_000, // 2 × 2-site testbeds, then 2-, 3-, 5-site ones; ~100 s at load average 30 (bench/data-path.ts)
    root: true,
    load: () => import('./data-path.js'),
  },
];
