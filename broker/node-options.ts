/**
 * Node options the broker process runs with (deploy/kubernetes/broker/deployment.yaml sets
 * them as NODE_OPTIONS; deploy/deploy.test.ts checks that it does; the broker-scale bench
 * starts its replicas with them, so it measures what ships).
 *
 * `--max-semi-space-size=64` (MiB; V8's default is 16 on 64-bit): a broker's work is
 * short-lived KV requests whose objects die young, and with the default young generation
 * many of them lived through a scavenge and were copied. Measured (issue 15, bench
 * broker-scale at 1,000 clusters, 3 builds each, alternated): broker CPU per cluster
 * 7.15–7.67 ms vs 7.57–9.62, every map correct in 5.6–5.9 s vs 5.9–7.5 s, for ~95 MiB
 * more RSS per replica (docs/broker.md, Measured here).
 */
export const BROKER_NODE_OPTIONS: readonly string[] = ['--max-semi-space-size=64'];
