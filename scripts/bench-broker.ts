/**
 * Broker benchmark: N simulated clusters x M exported networks with random mutual
 * peerings, through R broker replicas on one local nats-server (file store).
 *
 *   npx tsx scripts/bench-broker.ts [--clusters 1000] [--networks 10] [--names 200]
 *     [--degree 6] [--replicas 2] [--samples 100] [--concurrency 64] [--deadline-s 600]
 *
 * Reports: transit allocations/s (registration), network exports/s and VNI
 * allocations, time until every peer map equals the locally computed expectation,
 * and p50/p99 delay from the consenting peering request to the updated peer map.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { randomBytes } from 'node:crypto';
import { connect, KvWatchInclude, type KvEntry } from 'nats';
import { NatsServer } from '../lib/nats-process.js';
import { Broker } from '../broker/broker.js';
import { BrokerClient, decodePeerMap } from '../broker/client.js';
import { computePeerMap, type ClusterInputs } from '../broker/peer-map.js';
import { BUCKETS, type ClusterRecord, type PeerMap } from '../broker/records.js';

const { values: a } = parseArgs({
  options: {
    clusters: { type: 'string', default: '1000' },
    networks: { type: 'string', default: '10' },
    names: { type: 'string', default: '200' },
    degree: { type: 'string', default: '6' },
    replicas: { type: 'string', default: '2' },
    samples: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '64' },
    'deadline-s': { type: 'string', default: '600' },
  },
});
const N = Number(a.clusters);
const M = Number(a.networks);
const NAMES = Number(a.names);
const DEGREE = Number(a.degree);
const REPLICAS = Number(a.replicas);
const SAMPLES = Number(a.samples);
const CONC = Number(a.concurrency);
const deadline = Date.now() + Number(a['deadline-s']) * 1000;

function checkDeadline(): void {
  if (Date.now() > deadline) throw new Error('benchmark deadline passed');
}

/** Runs fn over items with at most `limit` in flight. */
async function pool<T, R>(
  items: T[],
  limit: number,
  fn: (x: T, i: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        checkDeadline();
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const rnd = (n: number) => Math.floor(Math.random() * n);

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-bench-'));
  const server = await NatsServer.start({ dir });
  const brokers: Broker[] = [];
  const nc = await connect({ servers: server.url, maxReconnectAttempts: -1 });
  try {
    for (let i = 0; i < REPLICAS; i++)
      brokers.push(await Broker.start({ name: `b${i}`, connect: { servers: server.url } }));
    const ids = Array.from({ length: N }, (_, i) => `c${i}`);
    const clients = ids.map((id) => new BrokerClient(nc, id, { timeoutMs: 60_000 }));
    console.log(
      `nats ${server.url}; ${N} clusters x ${M} networks (of ${NAMES} names), degree ~${DEGREE}, ${REPLICAS} broker replicas`,
    );

    // 1. Registration: one transit allocation each.
    let t0 = Date.now();
    const records = await pool(clients, CONC, (c, i) =>
      c.request('register', {
        publicKey: randomBytes(32).toString('base64'),
        endpoints: [`198.18.${i >> 8}.${i & 255}:51820`],
      }),
    );
    const regMs = Date.now() - t0;
    console.log(
      `register: ${N} transit allocations in ${regMs} ms = ${((N * 1000) / regMs).toFixed(0)}/s`,
    );

    // 2. Exports: M random names each.
    const exportsOf = ids.map(() => {
      const s = new Set<string>();
      while (s.size < Math.min(M, NAMES)) s.add(`net-${rnd(NAMES)}`);
      return [...s];
    });
    t0 = Date.now();
    const exported = await pool(clients, CONC, (c, i) =>
      c.request('exports', { networks: exportsOf[i]! }),
    );
    const expMs = Date.now() - t0;
    const vnis = new Map<string, number>();
    for (const r of exported) for (const n of r.networks) vnis.set(n.name, n.vni);
    console.log(
      `exports: ${N * M} network exports (${vnis.size} VNIs allocated, ${new Set(vnis.values()).size} distinct) ` +
        `in ${expMs} ms = ${((N * M * 1000) / expMs).toFixed(0)} exports/s`,
    );

    // 3. Random mutual peerings, all declared at once.
    const peers = ids.map(() => new Set<string>());
    for (let k = 0; k < (N * DEGREE) / 2; k++) {
      const x = rnd(N);
      const y = rnd(N);
      if (x !== y) {
        peers[x]!.add(ids[y]!);
        peers[y]!.add(ids[x]!);
      }
    }
    // Hold back SAMPLES pairs: declared one-sided now, consent measured later.
    const held: [number, number][] = [];
    while (held.length < SAMPLES) {
      const x = rnd(N);
      const y = rnd(N);
      if (x === y || peers[x]!.has(ids[y]!) || held.some(([p, q]) => p === y && q === x)) continue;
      peers[x]!.add(ids[y]!);
      held.push([x, y]);
    }
    const decl = (i: number) => ({
      peerings: [...peers[i]!].map((remoteCluster) => ({ remoteCluster })),
    });
    t0 = Date.now();
    await pool(clients, CONC, (c, i) => c.request('peerings', decl(i)));
    const peerMs = Date.now() - t0;

    // Expected maps, computed locally from what we sent.
    const inputs = new Map<string, ClusterInputs>(
      ids.map((id, i) => [
        id,
        {
          cluster: records[i]!.cluster,
          networks: exported[i]!.networks,
          peerings: decl(i).peerings,
        },
      ]),
    );
    const expected = (id: string): string =>
      JSON.stringify(
        computePeerMap(inputs.get(id)! as ClusterInputs & { cluster: ClusterRecord }, inputs),
      );
    const kv = await nc.jetstream().views.kv(BUCKETS.peerMaps);
    let correct = 0;
    while (correct < N) {
      checkDeadline();
      const got = await pool(ids, CONC, async (id) => {
        const e = await kv.get(id);
        return e ? JSON.stringify(decodePeerMap(e)) === expected(id) : false;
      });
      correct = got.filter(Boolean).length;
      if (correct < N) await new Promise((r) => setTimeout(r, 200));
    }
    console.log(
      `peerings: ${N} declarations in ${peerMs} ms; every peer map correct ${Date.now() - t0} ms after the first declaration`,
    );

    // 4. Consent latency: y declares x back; time until x's map (watched) lists y.
    const arrivals = new Map<string, PeerMap>();
    const waiters = new Map<string, (m: PeerMap) => void>();
    const watch = await kv.watch({ include: KvWatchInclude.UpdatesOnly });
    void (async () => {
      for await (const e of watch as AsyncIterable<KvEntry>) {
        const m = decodePeerMap(e);
        if (!m) continue;
        arrivals.set(e.key, m);
        waiters.get(e.key)?.(m);
      }
    })();
    const delays: number[] = [];
    for (const [x, y] of held) {
      checkDeadline();
      const xid = ids[x]!;
      const yid = ids[y]!;
      const seen = new Promise<number>((resolve) => {
        waiters.set(xid, (m) => {
          if (m.peers.some((p) => p.cluster === yid)) resolve(Date.now());
        });
      });
      peers[y]!.add(xid);
      const start = Date.now();
      await clients[y]!.request('peerings', decl(y));
      delays.push((await seen) - start);
      waiters.delete(xid);
    }
    watch.stop();
    console.log(
      `consent -> peer map (${delays.length} samples, sequential): p50 ${pct(delays, 50)} ms, p99 ${pct(delays, 99)} ms, max ${Math.max(...delays)} ms`,
    );
    const handled = brokers.map((b) => b.stats.handled);
    console.log(`requests per replica: ${handled.join(', ')}`);
  } finally {
    await Promise.all(brokers.map((b) => b.stop()));
    await nc.close();
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
