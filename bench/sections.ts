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

/*
 * Budgets: each section's longest measured run with ~20–40 % to spare, so that all of
 * them plus the runner's reserve (HARNESS_RESERVE_MS) fit the 15 min bound
 * (bench/run.test.ts). Measured in bench/results/2026-11-30.json, quiet box (load 0.5–3.5,
 * 222a9ef) / loaded box (load 30–66, cffb632): gateway-reconcile 2 / 16 s, control-plane
 * 89 / 215 s, endpoint-failover 65 / 72 s, broker-scale 53 / 148 s, data-path 61 / 99 s.
 * A section with a variable number of trials reads its time from SectionOptions.budgetMs.
 * 2026-12-01: gateway-idle +25 s for its loop phase (it had overrun 150 s with it, twice),
 * taken from gateway-reconcile (−10 s, 25 % over its longest run), endpoint-failover
 * (−10 s, 25 %) and data-path (−5 s, 26 %).
 */
export const SECTIONS: readonly SectionEntry[] = [
  {
    id: 'gateway-reconcile',
    budgetMs: 20_000,
    root: false, // fakes only
    load: () => import('./gateway-reconcile.js'),
  },
  {
    id: 'gateway-idle',
    budgetMs: 175_000, // 2 namespaces, up to 4 runs × 4 peer counts × 3 shapes of 12-check samples, then the loop phase; runs stop early to keep it (bench/gateway-idle.ts)
    root: true,
    load: () => import('./gateway-idle.js'),
  },
  {
    id: 'control-plane',
    budgetMs: 240_000, // a 2-cluster lab; trials stop early to keep it (bench/control-plane.ts)
    root: true,
    load: () => import('./control-plane.js'),
  },
  {
    id: 'endpoint-failover',
    budgetMs: 90_000, // 2 gateways, 9 trials of ~8 s (bench/endpoint-failover.ts)
    root: true,
    load: () => import('./endpoint-failover.js'),
  },
  {
    id: 'broker-scale',
    budgetMs: 180_000, // nats-server + 2 replicas; 100, 300, 1,000 clusters once, churn 10 s (bench/broker-scale.ts)
    root: false,
    load: () => import('./broker-scale.js'),
  },
  {
    id: 'data-path',
    budgetMs: 125_000, // 2 × 2-site testbeds, then 2-, 3-, 5-site ones; ~100 s at load average 30-50 (bench/data-path.ts)
    root: true,
    load: () => import('./data-path.js'),
  },
];
