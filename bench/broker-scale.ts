/**
 * Broker scale (issue 15): N simulated clusters × M exported networks build a federation
 * from empty against a real nats-server with JetStream, configured with the accounts and
 * permissions `broker gen-auth` generates (one nkey user per cluster, one for the broker),
 * and broker replicas in their own processes on the broker credentials
 * (bench/broker-scale-replica.ts). Each simulated cluster has its own connection and
 * credentials and follows its peer map as the agent does (`watchPeerMap`).
 *
 * Measures, per federation size (100, 300, 1,000 clusters):
 *  - time from the first request until every peer map equals the map expected from what
 *    the clusters sent and the broker answered (transit addresses, VNIs), by the documented
 *    rules (test/fixtures/peer-map-oracle.ts, not the broker's computePeerMap/agreeMtu);
 *  - KV operations and broker CPU-ms per cluster of that build, so growth shows as a curve;
 *  - broker and nats-server memory (RSS) after it;
 * and at the largest size, peer-map update delay under churn: changes (peering withdrawn
 * or declared, endpoint moved, a network dropped or added) sent at a fixed rate by random
 * clusters, each timed from its request until every map it changes holds the new content.
 *
 *   npx tsx bench/broker-scale.ts [--clusters 100,300,1000] [--runs 1] [--replicas 2]
 *     [--churn-s 10] [--deadline-s 600] [--quick]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { connect, type NatsConnection } from 'nats';
import { NatsServer } from '../lib/nats-process.js';
import { makeRunDir } from '../test/fixtures/run-dir.js';
import { connectOptionsFor, generateFederationAuth } from '../broker/auth-config.js';
import { BrokerClient, decodePeerMap, type PeerMapWatch } from '../broker/client.js';
import { expectedPeerMap, type OracleCluster } from '../test/fixtures/peer-map-oracle.js';
import {
  BUCKETS,
  type ClusterRecord,
  type MtuAsk,
  type PeeringDecl,
  type PeerMap,
} from '../broker/records.js';
import type { BrokerConfigInput } from '../broker/config.js';
import { BROKER_NODE_OPTIONS } from '../broker/node-options.js';
import {
  figure,
  stat,
  type BenchSection,
  type Chart,
  type Figure,
  type SectionOptions,
} from './result.js';
import type { ReplicaArgs, ReplicaStats } from './broker-scale-replica.js';

const REPLICA = fileURLToPath(new URL('./broker-scale-replica.ts', import.meta.url));
const REPO = fileURLToPath(new URL('..', import.meta.url));

export interface BrokerScaleOptions {
  /**
   * Federation sizes, ascending; the last one also runs the churn. Each is built once,
   * the largest `runs` times (the first with the churn) while the time left allows.
   */
  readonly sizes: readonly number[];
  readonly runs: number;
  readonly networks: number;
  /** Network names the exports are drawn from. */
  readonly names: number;
  /** Mutual peerings per cluster, on average. */
  readonly degree: number;
  readonly replicas: number;
  readonly churnSeconds: number;
  /** Changes started per second during the churn. */
  readonly churnRate: number;
  /** Whole run bound; past it the run fails (everything is stopped). */
  readonly deadlineMs: number;
  /** Wall time the section has (SectionOptions.budgetMs): no build of the largest size starts that would not fit. */
  readonly budgetMs?: number;
  /** Temp dir name prefix (the bench runner's, so it can list leftovers). */
  readonly prefix?: string;
  readonly log: (line: string) => void;
}

export const FULL: Omit<BrokerScaleOptions, 'log'> = {
  sizes: [100, 300, 1000],
  // Builds of the largest size: as many of 3 as fit the section's budget (a loaded box
  // has time for one after the smaller sizes; a quiet one for all three).
  runs: 3,
  networks: 10,
  names: 200,
  degree: 6,
  replicas: 2,
  churnSeconds: 10,
  churnRate: 20,
  deadlineMs: 280_000,
};

export const QUICK: Omit<BrokerScaleOptions, 'log'> = {
  ...FULL,
  sizes: [50, 100],
  runs: 1,
  churnSeconds: 3,
  deadlineMs: 2 * 60_000,
};

const BROKER_CONFIG: BrokerConfigInput = {
  // No periodic full reconcile in the middle of a measurement.
  reconcileIntervalMs: 0,
  transitPool: '100.64.0.0/16',
};

/** Deterministic pseudo-random numbers (runs differ by seed only). */
function prng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

/** JSON with sorted keys: equal content, equal text, whatever the key order. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(
          Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
        )
      : x,
  );
}
const digest = (m: PeerMap | undefined) =>
  createHash('sha1')
    .update(m === undefined ? '-' : canonical(m))
    .digest('hex');

/** What the simulated clusters declared and the broker answered: the expected maps. */
class Model {
  readonly records = new Map<string, ClusterRecord>();
  readonly exports = new Map<string, Set<string>>();
  readonly asks = new Map<string, Map<string, MtuAsk>>();
  readonly decls = new Map<string, PeeringDecl[]>();
  readonly vnis = new Map<string, number>();
  /** Members of each name. */
  readonly members = new Map<string, Set<string>>();

  setExports(
    id: string,
    names: readonly string[],
    asks: readonly (MtuAsk & { network: string })[],
  ) {
    for (const n of this.exports.get(id) ?? []) this.members.get(n)?.delete(id);
    this.exports.set(id, new Set(names));
    this.asks.set(id, new Map(asks.map(({ network, ...a }) => [network, a])));
    for (const n of names) {
      if (!this.members.has(n)) this.members.set(n, new Set());
      this.members.get(n)!.add(id);
    }
  }

  /** One cluster as the oracle reads it; O(1) but its exports list. */
  private cluster(id: string): OracleCluster | undefined {
    const rec = this.records.get(id);
    if (!rec) return undefined;
    return {
      id,
      publicKey: rec.publicKey,
      endpoints: rec.endpoints,
      transitAddress: rec.transitAddress,
      cordoned: rec.cordon !== undefined,
      ...(rec.nextKey ? { nextKey: rec.nextKey } : {}),
      exports: [...(this.exports.get(id) ?? [])],
      asks: this.asks.get(id) ?? new Map<string, MtuAsk>(),
      peerings: this.decls.get(id) ?? [],
    };
  }

  /** O(peers × networks + networks × members), as the broker's own map. */
  expected(id: string): PeerMap | undefined {
    return expectedPeerMap(
      {
        cluster: (c) => this.cluster(c),
        vni: (name) => this.vnis.get(name)!,
        members: (name) => this.members.get(name) ?? [],
      },
      id,
    );
  }
}

/**
 * Digests what `s` received since the last call, newest first, stopping at the first
 * that differs from the newest (older ones cannot change when the content last changed).
 */
function settle(s: Sim): void {
  if (s.pending.length === 0) return;
  const todo = s.pending;
  s.pending = [];
  const dig = (p: { data: Uint8Array | undefined }) =>
    digest(p.data ? (JSON.parse(new TextDecoder().decode(p.data)) as PeerMap) : undefined);
  const newest = dig(todo[todo.length - 1]!);
  let since = todo[todo.length - 1]!.at;
  let i = todo.length - 2;
  for (; i >= 0 && dig(todo[i]!) === newest; i--) since = todo[i]!.at;
  if (i < 0 && newest === s.latest) since = s.latestAt;
  s.latest = newest;
  s.latestAt = since;
  if (s.waiter?.digest === newest) s.waiter.resolve(since);
}

/** A simulated cluster: its connection, client, and the peer-map versions it received. */
interface Sim {
  readonly id: string;
  readonly nc: NatsConnection;
  readonly client: BrokerClient;
  readonly watch: PeerMapWatch;
  /**
   * Maps received, not yet digested (digests cost CPU the broker would miss): the latest
   * digest is worked out on demand by `settle`.
   */
  pending: { at: number; data: Uint8Array | undefined }[];
  /** Digest of the latest map received, and since when the map has had that digest. */
  latest: string;
  latestAt: number;
  /** Resolved when a map with this digest arrives (churn). */
  waiter?: { digest: string; resolve: (at: number) => void };
}

interface Replica {
  readonly proc: ChildProcess;
  stats(): Promise<ReplicaStats>;
  stop(): Promise<void>;
}

async function startReplica(args: ReplicaArgs): Promise<Replica> {
  // Arguments (with the broker's nkey seed) in the environment, not on the command line.
  const proc = fork(REPLICA, [], {
    cwd: REPO,
    env: { ...process.env, L2FED_BENCH_REPLICA: JSON.stringify(args) },
    // L2FED_BENCH_CPU_PROF=<dir>: each replica writes a V8 CPU profile there on exit.
    // L2FED_BENCH_REPLICA_NODE_ARGS: more node options for the replicas only, to try a
    // runtime setting on the broker alone (e.g. '--max-semi-space-size=128'; not
    // '--stack-trace-limit' below 3: tsx then fails to import nats' named exports).
    execArgv: [
      '--import',
      'tsx',
      ...(process.env.L2FED_BENCH_CPU_PROF
        ? ['--cpu-prof', '--cpu-prof-dir', process.env.L2FED_BENCH_CPU_PROF]
        : []),
      // What the deployment runs the broker with (NODE_OPTIONS in its manifest).
      ...BROKER_NODE_OPTIONS,
      ...(process.env.L2FED_BENCH_REPLICA_NODE_ARGS?.split(/\s+/).filter(Boolean) ?? []),
    ],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const waitFor = <T>(type: string, timeoutMs: number) =>
    new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`broker replica ${args.name}: no ${type} within ${timeoutMs} ms`)),
        timeoutMs,
      );
      const onMsg = (m: { type?: string; stats?: T }) => {
        if (m.type !== type) return;
        clearTimeout(timer);
        proc.off('message', onMsg);
        resolve(m.stats as T);
      };
      proc.on('message', onMsg);
      proc.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`broker replica ${args.name} exited (${code}) while waiting for ${type}`));
      });
    });
  await waitFor('ready', 60_000);
  return {
    proc,
    stats: () => {
      const p = waitFor<ReplicaStats>('stats', 10_000);
      proc.send({ type: 'stats' });
      return p;
    },
    stop: async () => {
      if (proc.exitCode !== null) return;
      const exited = new Promise<void>((r) => proc.once('exit', () => r()));
      proc.send({ type: 'stop' });
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** CPU time (user + system, ms) of a process so far; NaN when unreadable. */
async function cpuMsOf(pid: number | undefined): Promise<number> {
  if (pid === undefined) return NaN;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  // Fields after the command (which may hold spaces): utime and stime are the 12th and 13th.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // USER_HZ is 100 on Linux
}

/** Per cluster, what changed between two stats snapshots of every replica (sum). */
function perCluster(
  before: readonly ReplicaStats[],
  after: readonly ReplicaStats[],
  size: number,
  f: (s: ReplicaStats) => Record<string, number>,
): [string, number][] {
  const out = new Map<string, number>();
  for (const [list, sign] of [
    [after, 1],
    [before, -1],
  ] as const)
    for (const s of list)
      for (const [k, v] of Object.entries(f(s))) out.set(k, (out.get(k) ?? 0) + sign * v);
  return [...out]
    .map(([k, v]) => [k, v / size] as [string, number])
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1]);
}

async function rssBytes(pid: number | undefined): Promise<number> {
  if (pid === undefined) return NaN;
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
  return kb ? Number(kb) * 1024 : NaN;
}

/** Runs fn over items, at most `limit` at once. */
async function pool<T>(items: readonly T[], limit: number, fn: (x: T, i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface BuildResult {
  readonly size: number;
  readonly buildMs: number;
  readonly kvOpsPerCluster: number;
  readonly readsPerCluster: number;
  readonly writesPerCluster: number;
  readonly cpuMsPerCluster: number;
  readonly brokerRssMiB: number;
  readonly natsRssMiB: number;
  readonly rawKvOpsPerS: number;
  /** CPU-ms per cluster during the build of nats-server and of this process (the simulated clusters). */
  readonly natsCpuMsPerCluster: number;
  readonly simCpuMsPerCluster: number;
  /** 1-min load average when the build started and when its maps were correct. */
  readonly load: readonly [number, number];
  /** Wall time of the whole build: servers, connections, requests, teardown. */
  wallMs?: number;
  readonly churn?: {
    readonly delays: number[];
    readonly changes: number;
    readonly kinds: Record<string, number>;
  };
}

/** One federation of `size` clusters built from empty (and churned when `churn`). */
async function buildOnce(
  o: BrokerScaleOptions,
  size: number,
  seed: number,
  churn: boolean,
  deadline: number,
): Promise<BuildResult> {
  const log = (s: string) => o.log(`broker-scale ${size}: ${s}`);
  const left = () => deadline - Date.now();
  const check = () => {
    if (left() <= 0) throw new Error('broker-scale: deadline passed');
  };
  const rnd = prng(seed);
  const ids = Array.from({ length: size }, (_, i) => `c${String(i).padStart(4, '0')}`);
  const auth = generateFederationAuth({ clusters: ids, mode: 'nkey' });
  const dir = o.prefix
    ? await mkdtemp(join(tmpdir(), `${o.prefix}-broker-`)).then((path) => ({
        path,
        remove: () => rm(path, { recursive: true, force: true }),
      }))
    : await makeRunDir('bench-broker');
  const replicas: Replica[] = [];
  const sims: Sim[] = [];
  let server: NatsServer | undefined;
  let admin: NatsConnection | undefined;
  try {
    server = await NatsServer.start({
      dir: join(dir.path, 'nats'),
      extraConfig: auth.serverConfig,
    });
    for (let r = 0; r < o.replicas; r++)
      replicas.push(
        await startReplica({
          servers: server.url,
          credential: auth.broker,
          config: BROKER_CONFIG,
          name: `bench-${r}`,
        }),
      );
    admin = await connect({
      servers: server.url,
      name: 'bench-as-broker',
      timeout: 60_000,
      ...connectOptionsFor(auth.broker),
    });
    const rawKvOpsPerS = await rawKvRate(admin);
    // Every cluster on its own connection and credentials, following its map.
    await pool(ids, 32, async (id) => {
      check();
      const nc = await connect({
        servers: server!.url,
        name: `cluster-${id}`,
        maxReconnectAttempts: -1,
        // A loaded 2-core box can take longer than nats.js's 20 s to answer a dial.
        timeout: 60_000,
        ...connectOptionsFor(auth.clusters[id]!, id),
      });
      const client = new BrokerClient(nc, id, { timeoutMs: 120_000 });
      const watch = await client.watchPeerMap();
      const sim: Sim = {
        id,
        nc,
        client,
        watch,
        pending: [],
        latest: digest(undefined),
        latestAt: 0,
      };
      sims.push(sim);
      void (async () => {
        for await (const e of watch) {
          sim.pending.push({
            at: performance.now(),
            data: e.operation === 'PUT' ? e.value : undefined,
          });
          if (sim.waiter) settle(sim);
        }
      })().catch(() => undefined);
    });
    sims.sort((a, b) => (a.id < b.id ? -1 : 1));
    log(`${size} clusters connected; raw KV ${Math.round(rawKvOpsPerS)} ops/s`);

    // The plan: exports and asks (10 % jumbo underlays), random mutual peerings.
    const model = new Model();
    const names = Array.from({ length: o.names }, (_, i) => `net-${i}`);
    const plannedExports = ids.map(() => {
      const s = new Set<string>();
      while (s.size < Math.min(o.networks, o.names)) s.add(names[rnd(o.names)]!);
      return [...s];
    });
    const capacityOf = ids.map(() => (rnd(10) === 0 ? 8870 : 1370));
    const peers = ids.map(() => new Set<string>());
    for (let k = 0; k < (size * o.degree) / 2; k++) {
      const x = rnd(size);
      const y = rnd(size);
      if (x === y) continue;
      peers[x]!.add(ids[y]!);
      peers[y]!.add(ids[x]!);
    }
    const sum = (xs: ReplicaStats[], f: (s: ReplicaStats) => number) =>
      xs.reduce((a, s) => a + f(s), 0);
    const before = await Promise.all(replicas.map((r) => r.stats()));
    const natsCpu0 = await cpuMsOf(server.pid);
    const ownCpu0 = process.cpuUsage();
    const load0 = loadavg()[0]!;
    // When each cluster's requests were answered (ms after t0), per verb: the phases.
    const answered = {
      register: [] as number[],
      exports: [] as number[],
      peerings: [] as number[],
    };
    const t0 = performance.now();
    await Promise.all(
      sims.map(async (s, i) => {
        const reg = await s.client.request('register', {
          publicKey: wgKey(seed, i),
          endpoints: [`198.18.${i >> 8}.${i & 255}:51820`],
          capabilities: [],
        });
        answered.register.push(performance.now() - t0);
        model.records.set(s.id, reg.cluster);
        const nets = plannedExports[i]!;
        const asks = nets.map((network) => ({ network, capacity: capacityOf[i]! }));
        const exp = await s.client.request('exports', { networks: nets, mtu: asks });
        answered.exports.push(performance.now() - t0);
        for (const n of exp.networks) model.vnis.set(n.name, n.vni);
        model.setExports(s.id, nets, asks);
        const decl = [...peers[i]!].sort().map((remoteCluster) => ({ remoteCluster }));
        await s.client.request('peerings', { peerings: decl });
        answered.peerings.push(performance.now() - t0);
        model.decls.set(s.id, decl);
      }),
    );
    const sentMs = performance.now() - t0;
    log(`all ${size * 3} requests answered after ${Math.round(sentMs)} ms`);
    const want = new Map(ids.map((id) => [id, digest(model.expected(id))]));
    const correctAt = await untilCorrect(sims, want, admin, check);
    const buildMs = correctAt - t0;
    const after = await Promise.all(replicas.map((r) => r.stats()));
    const natsCpuMs = (await cpuMsOf(server.pid)) - natsCpu0;
    const ownCpu = process.cpuUsage(ownCpu0);
    const at = (xs: number[], q: number) => stat(xs, 'ms', [q]).percentiles![`p${q}`]!;
    log(
      `phases (ms after the first request, p50 / last answered): ` +
        Object.entries(answered)
          .map(([v, xs]) => `${v} ${at(xs, 50).toFixed(0)} / ${Math.max(...xs).toFixed(0)}`)
          .join(', ') +
        `; maps correct ${Math.round(buildMs)}`,
    );
    const verbTotal = (xs: readonly ReplicaStats[], verb: string, k: 'count' | 'seconds') =>
      sum([...xs], (x) => x.verbs[verb]?.[k] ?? 0);
    log(
      `handling time per request (broker, mean ms): ` +
        ['register', 'exports', 'peerings']
          .map((v) => {
            const n = verbTotal(after, v, 'count') - verbTotal(before, v, 'count');
            const sec = verbTotal(after, v, 'seconds') - verbTotal(before, v, 'seconds');
            return `${v} ${((sec * 1000) / n).toFixed(1)}`;
          })
          .join(', '),
    );
    log(
      `CPU during the build: broker replicas ${Math.round(sum(after, (x) => x.cpuMs) - sum(before, (x) => x.cpuMs))} ms, ` +
        `nats-server ${Math.round(natsCpuMs)} ms, simulated clusters ${Math.round((ownCpu.user + ownCpu.system) / 1000)} ms ` +
        `(wall ${Math.round(buildMs)} ms, 2 cores)`,
    );
    const ops =
      sum(after, (s) => s.reads + s.writes + s.listings + s.other) -
      sum(before, (s) => s.reads + s.writes + s.listings + s.other);
    log(
      `broker replicas' system calls per KV operation: ` +
        `write ${((sum(after, (s) => s.writeSyscalls) - sum(before, (s) => s.writeSyscalls)) / ops).toFixed(2)}, ` +
        `read ${((sum(after, (s) => s.readSyscalls) - sum(before, (s) => s.readSyscalls)) / ops).toFixed(2)}`,
    );
    log(
      `KV ops per cluster by bucket/op/result: ` +
        perCluster(before, after, size, (s) => s.kvOps)
          .map(([k, v]) => `${k} ${v.toFixed(1)}`)
          .join(', '),
    );
    const delta = (f: (s: ReplicaStats) => number) => (sum(after, f) - sum(before, f)) / size;
    const result: BuildResult = {
      size,
      buildMs,
      kvOpsPerCluster: delta((s) => s.reads + s.writes + s.listings + s.other),
      readsPerCluster: delta((s) => s.reads),
      writesPerCluster: delta((s) => s.writes),
      cpuMsPerCluster: delta((s) => s.cpuMs),
      brokerRssMiB: sum(after, (s) => s.rssBytes) / 2 ** 20,
      natsRssMiB: (await rssBytes(server.pid)) / 2 ** 20,
      rawKvOpsPerS,
      natsCpuMsPerCluster: natsCpuMs / size,
      simCpuMsPerCluster: (ownCpu.user + ownCpu.system) / 1000 / size,
      load: [load0, loadavg()[0]!],
    };
    log(
      `every map correct ${Math.round(buildMs)} ms after the first request; ` +
        `${result.kvOpsPerCluster.toFixed(1)} KV ops and ${result.cpuMsPerCluster.toFixed(2)} broker CPU-ms per cluster; ` +
        `RSS broker ${result.brokerRssMiB.toFixed(0)} MiB, nats ${result.natsRssMiB.toFixed(0)} MiB; ` +
        `load average ${result.load[0].toFixed(1)} -> ${result.load[1].toFixed(1)}`,
    );
    if (!churn) return result;
    const c = await runChurn(o, sims, model, rnd, check, log);
    // Correct at the end too: no change was lost.
    const final = new Map(ids.map((id) => [id, digest(model.expected(id))]));
    await untilCorrect(sims, final, admin, check);
    return { ...result, churn: c };
  } finally {
    await Promise.all(sims.map((s) => (s.watch.stop(), s.nc.close().catch(() => undefined))));
    await admin?.close().catch(() => undefined);
    await Promise.all(replicas.map((r) => r.stop().catch(() => undefined)));
    await server?.stop().catch(() => undefined);
    await dir.remove();
  }
}

/** A WireGuard public key (any 32 bytes) unique per run and cluster. */
function wgKey(seed: number, i: number): string {
  const b = Buffer.alloc(32);
  b.writeUInt32BE(seed >>> 0, 0);
  b.writeUInt32BE(i, 4);
  return b.toString('base64');
}

/** Puts and gets of one key each, 64 at once for 1 s: what this nats-server does raw. */
async function rawKvRate(nc: NatsConnection): Promise<number> {
  const kv = await nc.jetstream().views.kv(BUCKETS.health, { bindOnly: true, allow_direct: true });
  let ops = 0;
  const end = performance.now() + 1000;
  await Promise.all(
    Array.from({ length: 64 }, async (_, w) => {
      while (performance.now() < end) {
        await kv.put(`bench-${w}`, '{}');
        await kv.get(`bench-${w}`);
        ops += 2;
      }
    }),
  );
  await Promise.all(
    Array.from({ length: 64 }, (_, w) => kv.purge(`bench-${w}`).catch(() => undefined)),
  );
  return ops;
}

/**
 * When every cluster's followed map has the expected digest: the latest time one of them
 * changed to it. A map whose forwarded update was lost (core NATS, at most once) is read
 * directly, as the agent's poll would.
 */
async function untilCorrect(
  sims: readonly Sim[],
  want: ReadonlyMap<string, string>,
  nc: NatsConnection,
  check: () => void,
): Promise<number> {
  const kv = await nc
    .jetstream()
    .views.kv(BUCKETS.peerMaps, { bindOnly: true, allow_direct: true });
  let polls = 0;
  for (;;) {
    check();
    sims.forEach(settle);
    const wrong = sims.filter((s) => s.latest !== want.get(s.id));
    if (wrong.length === 0) return Math.max(...sims.map((s) => s.latestAt));
    // Forwarded updates are normally seconds apart at most; poll the stragglers after 2 s.
    if (++polls % 10 === 0)
      for (const s of wrong) {
        const e = await kv.get(s.id);
        const d = digest(e ? decodePeerMap(e) : undefined);
        if (d === want.get(s.id) && d !== s.latest) {
          s.latest = d;
          s.latestAt = performance.now();
        }
      }
    await sleep(200);
  }
}

type ChangeKind = 'peering' | 'endpoint' | 'exports';

/**
 * Changes at `churnRate`/s for `churnSeconds`, each by a random cluster and touching maps
 * no change in flight touches (so each one's expected maps are known); returns each
 * change's delay until every map it changes holds the new content.
 */
async function runChurn(
  o: BrokerScaleOptions,
  sims: readonly Sim[],
  model: Model,
  rnd: (n: number) => number,
  check: () => void,
  log: (s: string) => void,
): Promise<NonNullable<BuildResult['churn']>> {
  const byId = new Map(sims.map((s) => [s.id, s]));
  const ids = sims.map((s) => s.id);
  const busy = new Set<string>();
  const delays: number[] = [];
  const kinds: Record<string, number> = {};
  const inFlight: Promise<void>[] = [];
  const boundNames = [...model.vnis.keys()];
  let failures = 0;

  /** Applies a change to the model; returns the maps whose content it changes and how to undo. */
  const plan = ():
    | { kind: ChangeKind; id: string; send: () => Promise<unknown>; touched: string[] }
    | undefined => {
    const x = ids[rnd(ids.length)]!;
    if (busy.has(x)) return undefined;
    const kind: ChangeKind = (['peering', 'peering', 'endpoint', 'exports'] as const)[rnd(4)]!;
    // Maps a change of x can alter: x's, its declared peers', and members of its networks.
    const around = new Set([x, ...(model.decls.get(x) ?? []).map((p) => p.remoteCluster)]);
    const snapshot = () =>
      new Map([...around].map((id) => [id, digest(model.expected(id))] as const));
    let undo: () => void;
    let send: () => Promise<unknown>;
    if (kind === 'peering') {
      const decl = model.decls.get(x) ?? [];
      // Withdraw one, or declare one back to a cluster that declares x.
      const back = ids.filter(
        (y) => y !== x && (model.decls.get(y) ?? []).some((p) => p.remoteCluster === x),
      );
      const withdraw = decl.length > 0 && rnd(2) === 0;
      const y = withdraw
        ? decl[rnd(decl.length)]!.remoteCluster
        : back[rnd(Math.max(1, back.length))];
      if (!y) return undefined;
      around.add(y);
      const next = withdraw
        ? decl.filter((p) => p.remoteCluster !== y)
        : [...decl.filter((p) => p.remoteCluster !== y), { remoteCluster: y }].sort((a, b) =>
            a.remoteCluster < b.remoteCluster ? -1 : 1,
          );
      const prev = decl;
      const pre = snapshot();
      model.decls.set(x, next);
      undo = () => model.decls.set(x, prev);
      send = () =>
        byId.get(x)!.client.request('peerings', {
          peerings: next.map((p) => ({ remoteCluster: p.remoteCluster })),
        });
      return finish(kind, x, pre, undo, send);
    }
    if (kind === 'endpoint') {
      const rec = model.records.get(x)!;
      const port = 51820 + 1 + rnd(1000);
      const endpoints = [`${rec.endpoints[0]!.split(':')[0]}:${port}`];
      const pre = snapshot();
      model.records.set(x, { ...rec, endpoints });
      undo = () => model.records.set(x, rec);
      send = async () => {
        const r = await byId.get(x)!.client.request('register', {
          publicKey: rec.publicKey,
          endpoints,
          capabilities: [],
        });
        model.records.set(x, r.cluster);
      };
      return finish(kind, x, pre, undo, send);
    }
    // exports: drop one network or add one already bound (its VNI is known).
    const cur = [...(model.exports.get(x) ?? [])];
    const asks = model.asks.get(x) ?? new Map<string, MtuAsk>();
    const drop = cur.length > 1 && rnd(2) === 0;
    const n = drop ? cur[rnd(cur.length)]! : boundNames[rnd(boundNames.length)]!;
    if (!drop && cur.includes(n)) return undefined;
    // Keep every name bound (a released VNI comes back as another number).
    if ((model.members.get(n)?.size ?? 0) < (drop ? 2 : 1)) return undefined;
    const nextNames = drop ? cur.filter((m) => m !== n) : [...cur, n];
    const capacity = [...asks.values()][0]?.capacity ?? 1370;
    const nextAsks = nextNames.map((network) => ({
      network,
      ...(asks.get(network) ?? { capacity }),
    }));
    for (const m of model.members.get(n) ?? []) around.add(m);
    const pre = snapshot();
    const prevAsks = [...asks].map(([network, a]) => ({ network, ...a }));
    model.setExports(x, nextNames, nextAsks);
    undo = () => model.setExports(x, cur, prevAsks);
    send = () => byId.get(x)!.client.request('exports', { networks: nextNames, mtu: nextAsks });
    return finish('exports', x, pre, undo, send);

    function finish(
      k: ChangeKind,
      id: string,
      pre: Map<string, string>,
      undoIt: () => void,
      sendIt: () => Promise<unknown>,
    ) {
      const touched = [...pre].filter(([m, d]) => digest(model.expected(m)) !== d).map(([m]) => m);
      if (touched.length === 0 || touched.some((m) => busy.has(m)) || busy.has(id)) {
        undoIt();
        return undefined;
      }
      return { kind: k, id, send: sendIt, touched: [...new Set([id, ...touched])] };
    }
  };

  const start = performance.now();
  const every = 1000 / o.churnRate;
  for (let k = 0; performance.now() - start < o.churnSeconds * 1000; k++) {
    check();
    await sleep(Math.max(0, start + k * every - performance.now()));
    let c: ReturnType<typeof plan>;
    for (let tries = 0; tries < 50 && !c; tries++) c = plan();
    if (!c) continue;
    const change = c;
    change.touched.forEach((m) => busy.add(m));
    kinds[change.kind] = (kinds[change.kind] ?? 0) + 1;
    const sent = performance.now();
    const arrivals = change.touched.map((m) => {
      const s = byId.get(m)!;
      const d = digest(model.expected(m));
      return new Promise<number>((resolve) => {
        s.waiter = { digest: d, resolve };
        settle(s);
        if (s.latest === d) resolve(s.latestAt);
      });
    });
    inFlight.push(
      (async () => {
        try {
          await change.send();
          const times = await Promise.race([
            Promise.all(arrivals),
            sleep(30_000).then(() => undefined),
          ]);
          if (times) delays.push(Math.max(...times) - sent);
          else failures++;
        } catch (err) {
          failures++;
          log(`churn change by ${change.id} failed: ${String(err)}`);
        } finally {
          for (const m of change.touched) {
            byId.get(m)!.waiter = undefined;
            busy.delete(m);
          }
        }
      })(),
    );
  }
  await Promise.all(inFlight);
  if (failures > 0)
    throw new Error(`broker-scale churn: ${failures} changes never reached their maps within 30 s`);
  log(
    `churn: ${delays.length} changes (${Object.entries(kinds)
      .map(([k, v]) => `${v} ${k}`)
      .join(', ')}); ` +
      `delay p50 ${stat(delays, 'ms', [50, 99]).percentiles!.p50!.toFixed(0)} ms, p99 ${stat(delays, 'ms', [50, 99]).percentiles!.p99!.toFixed(0)} ms`,
  );
  return { delays, changes: delays.length, kinds };
}

/** Runs the whole measurement and returns the section. */
export async function measure(o: BrokerScaleOptions): Promise<BenchSection> {
  const started = performance.now();
  const deadline = Date.now() + o.deadlineMs;
  const results: BuildResult[] = [];
  const largest = o.sizes[o.sizes.length - 1]!;
  // A further build of the largest size starts only if one as long as the longest so far
  // (with a quarter to spare) ends before the section's budget does.
  const failed: string[] = [];
  const stopBy = o.budgetMs === undefined ? Infinity : Date.now() + o.budgetMs - 15_000;
  for (let run = 0; run < o.runs; run++) {
    const longest = Math.max(0, ...results.filter((r) => r.size === largest).map((r) => r.wallMs!));
    if (run > 0 && Date.now() + 1.25 * longest > Math.min(stopBy, deadline)) {
      o.log(`broker-scale: no time left for build ${run + 1} of ${o.runs} at ${largest} clusters`);
      break;
    }
    for (const size of run === 0 ? o.sizes : [largest]) {
      const t = performance.now();
      const build = buildOnce(
        o,
        size,
        1 + run * 7919 + size,
        run === 0 && size === largest && o.churnSeconds > 0,
        deadline,
      );
      // A further build that fails (a dial timing out at a load of ~100) leaves the
      // first ones standing; it is reported in the notes.
      const r = await (run === 0
        ? build
        : build.catch((err: unknown) => {
            failed.push(`build ${run + 1} of ${largest} clusters failed: ${String(err)}`);
            o.log(`broker-scale: ${failed[failed.length - 1]}`);
            return undefined;
          }));
      if (!r) break;
      r.wallMs = performance.now() - t;
      results.push(r);
    }
    if (failed.length > 0) break;
  }
  const of = (size: number) => results.filter((r) => r.size === size);
  const big = of(largest);
  const small = of(o.sizes[0]!);
  const med = (xs: number[]) => stat(xs, '').median;
  const delays = big.flatMap((r) => r.churn?.delays ?? []);
  const churned = delays.length > 0;
  const figures: Figure[] = [
    figure({
      id: 'broker-build-ms',
      label: `${largest} clusters × ${o.networks} networks registered, exported and peered from empty: time until every peer map is correct`,
      stat: stat(
        big.map((r) => r.buildMs),
        'ms',
      ),
      baseline: `this nats-server's raw KV rate in the same run: ${Math.round(med(big.map((r) => r.rawKvOpsPerS)))} put+get ops/s (64 at once)`,
      target: { op: '<=', value: 10_000 },
    }),
    ...(churned
      ? [
          figure({
            id: 'broker-churn-p99-ms',
            label: `peer-map update delay under churn (${o.churnRate} changes/s at ${largest} clusters), p99 per run`,
            stat: stat(
              big.flatMap((r) =>
                r.churn ? [stat(r.churn.delays, 'ms', [99]).percentiles!.p99!] : [],
              ),
              'ms',
            ),
            target: { op: '<=', value: 500 },
          }),
          figure({
            id: 'broker-churn-delay-ms',
            label:
              'peer-map update delay under churn, all changes: request sent → every map it changes holds the new content',
            stat: stat(delays, 'ms', [50, 99]),
          }),
        ]
      : []),
    figure({
      id: 'broker-kv-ops-per-cluster-growth',
      label: `KV operations per cluster, ${largest} clusters / ${o.sizes[0]} clusters (1 = does not grow with the federation)`,
      stat: stat(
        big.map((r, i) => r.kvOpsPerCluster / (small[i] ?? small[0]!).kvOpsPerCluster),
        'ratio',
      ),
      baseline: `the ${o.sizes[0]}-cluster build of the same run`,
      target: { op: '<=', value: 1.2 },
    }),
    figure({
      id: 'broker-cpu-per-cluster-growth',
      label: `broker CPU-ms per cluster, ${largest} clusters / ${o.sizes[0]} clusters`,
      stat: stat(
        big.map((r, i) => r.cpuMsPerCluster / (small[i] ?? small[0]!).cpuMsPerCluster),
        'ratio',
      ),
      baseline: `the ${o.sizes[0]}-cluster build of the same run`,
    }),
    ...o.sizes.flatMap((size) => [
      figure({
        id: `broker-kv-ops-per-cluster-${size}`,
        label: `KV operations per cluster (reads, writes, listings of all replicas), ${size} clusters`,
        stat: stat(
          of(size).map((r) => r.kvOpsPerCluster),
          'ops',
        ),
      }),
      figure({
        id: `broker-cpu-ms-per-cluster-${size}`,
        label: `broker CPU-ms per cluster (all replicas), ${size} clusters`,
        stat: stat(
          of(size).map((r) => r.cpuMsPerCluster),
          'ms',
        ),
      }),
    ]),
    figure({
      id: 'nats-cpu-ms-per-cluster',
      label: `nats-server CPU-ms per cluster, ${largest} clusters`,
      stat: stat(
        big.map((r) => r.natsCpuMsPerCluster),
        'ms',
      ),
    }),
    figure({
      id: 'broker-sim-cpu-share',
      label: `the simulated clusters' share of the CPU used by the ${largest}-cluster build (replicas + nats-server + simulated clusters)`,
      stat: stat(
        big.map(
          (r) =>
            r.simCpuMsPerCluster /
            (r.simCpuMsPerCluster + r.natsCpuMsPerCluster + r.cpuMsPerCluster),
        ),
        'ratio',
      ),
    }),
    figure({
      id: 'broker-rss-mib',
      label: `broker RSS after the ${largest}-cluster build (all ${o.replicas} replicas)`,
      stat: stat(
        big.map((r) => r.brokerRssMiB),
        'MiB',
      ),
    }),
    figure({
      id: 'nats-rss-mib',
      label: `nats-server RSS after the ${largest}-cluster build (${largest} cluster connections)`,
      stat: stat(
        big.map((r) => r.natsRssMiB),
        'MiB',
      ),
    }),
  ];
  const curve = (id: string, title: string, y: string, f: (r: BuildResult) => number): Chart => ({
    id,
    title,
    kind: 'line',
    x: { field: 'clusters', title: 'clusters in the federation' },
    y: { field: 'value', title: y },
    rows: o.sizes.map((size) => ({ clusters: size, value: med(of(size).map(f)) })),
  });
  const charts: Chart[] = [
    curve(
      'broker-kv-ops-curve',
      'KV operations per added cluster',
      'KV ops per cluster',
      (r) => r.kvOpsPerCluster,
    ),
    curve(
      'broker-cpu-curve',
      'Broker CPU per added cluster',
      'CPU-ms per cluster',
      (r) => r.cpuMsPerCluster,
    ),
    curve('broker-build-curve', 'Time until every peer map is correct', 'ms', (r) => r.buildMs),
    ...(churned
      ? [
          {
            id: 'broker-churn-cdf',
            title: `Peer-map update delay under churn (${largest} clusters)`,
            kind: 'cdf' as const,
            x: { field: 'ms', title: 'delay, ms' },
            y: { field: 'fraction', title: 'fraction of changes' },
            // bench/report.ts derives the cumulative fraction (cume_dist) from the samples.
            rows: delays.map((ms) => ({ ms: Math.round(ms) })),
          },
        ]
      : []),
  ];
  return {
    id: 'broker-scale',
    title: 'Broker scale',
    method:
      `Simulated clusters (${o.sizes.join(', ')}) build a federation from empty against one nats-server 2.9 ` +
      `with JetStream (file store), configured with the accounts \`broker gen-auth\` generates; ` +
      `${o.replicas} broker replicas, each its own process on the broker credentials. Every cluster has its ` +
      `own connection and credentials, sends register, exports (${o.networks} of ${o.names} names, with MTU ` +
      `asks) and peerings (~${o.degree} random mutual peers) one after another, all clusters at once, and ` +
      `follows its map as the agent does. A build ends when every map equals the one computed locally ` +
      `from what was sent and answered. KV operations are counted on the replicas' connections; CPU is the ` +
      `replicas' process CPU. Churn: ${o.churnRate} changes/s for ${o.churnSeconds} s (peering withdrawn ` +
      `or declared, endpoint moved, network dropped or added), each timed until every map it changes holds ` +
      `the new content. Each size built once, then the largest again (up to ${o.runs} builds, no churn) ` +
      `while the section's time allows; the load average (1 min) is noted per build below.`,
    figures,
    charts,
    notes: [
      'Everything shares the 2-core machine: nats-server, the broker replicas and the simulated clusters ' +
        "(one Node process holding every cluster connection), besides other engineers' tests; times are " +
        'bounded by that CPU, the counts (KV ops per cluster) are not.',
      'A real deployment runs nats-server as a 3-node cluster (R3 buckets): every write is a Raft round, ' +
        'slower per operation than this single node; the operation counts carry over.',
      `Builds of ${largest} clusters (every map correct after; 1-min load average at its start → end): ` +
        big
          .map(
            (r) =>
              `${(r.buildMs / 1000).toFixed(1)} s (${r.load[0].toFixed(1)} → ${r.load[1].toFixed(1)})`,
          )
          .join(', ') +
        '. The CPU of a build is that of the broker replicas, nats-server and the simulated clusters; ' +
        'they share 2 cores with whatever else runs, so at a load above 2 the build waits for CPU.',
      ...failed,
    ],
    tookMs: performance.now() - started,
  };
}

/** The `npm run bench` entry (bench/sections.ts). */
export async function run(opts: SectionOptions): Promise<BenchSection> {
  return measure({
    ...(opts.quick ? QUICK : FULL),
    log: opts.log,
    ...(opts.prefix ? { prefix: opts.prefix } : {}),
    ...(opts.budgetMs !== undefined ? { budgetMs: opts.budgetMs } : {}),
  });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values: a } = parseArgs({
    options: {
      clusters: { type: 'string' },
      runs: { type: 'string' },
      replicas: { type: 'string' },
      'churn-s': { type: 'string' },
      'deadline-s': { type: 'string' },
      quick: { type: 'boolean' },
      json: { type: 'boolean' },
    },
  });
  const base = a.quick ? QUICK : FULL;
  const o: BrokerScaleOptions = {
    ...base,
    ...(a.clusters ? { sizes: a.clusters.split(',').map(Number) } : {}),
    ...(a.runs ? { runs: Number(a.runs) } : {}),
    ...(a.replicas ? { replicas: Number(a.replicas) } : {}),
    ...(a['churn-s'] ? { churnSeconds: Number(a['churn-s']) } : {}),
    ...(a['deadline-s'] ? { deadlineMs: Number(a['deadline-s']) * 1000 } : {}),
    log: (l) => console.error(l),
  };
  measure(o)
    .then((s) => {
      if (a.json) console.log(JSON.stringify(s, null, 2));
      else
        for (const f of s.figures)
          console.log(
            `${f.id}: median ${f.stat.median.toFixed(2)} ${f.stat.unit} (min ${f.stat.min.toFixed(2)}, max ${f.stat.max.toFixed(2)}, n ${f.stat.n})` +
              (f.stat.percentiles ? ` ${JSON.stringify(f.stat.percentiles)}` : '') +
              (f.target
                ? ` target ${f.target.op} ${f.target.value}: ${f.target.met ? 'met' : 'NOT met'}`
                : ''),
          );
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exitCode = 1;
    });
}
