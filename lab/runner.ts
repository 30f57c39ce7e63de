/**
 * The lab runner: the one long-lived process that owns a lab. It builds the topology,
 * starts nats-server, the broker, one gateway and one agent per cluster, restarts any of
 * them that dies, records everything in the state file, and tears it all down on SIGTERM.
 * `lab up` starts it detached and watches the state file; `lab down` signals it.
 */
import { cp, mkdir, rm, writeFile, readdir, readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { ExecaRunner } from '../lib/runner.js';
import { NatsServer } from '../lib/nats-process.js';
import { withFreePort } from '../lib/ports.js';
import { shortId } from '../lib/short-id.js';
import { describeError } from '../lib/errors.js';
import { writeToken } from '../lib/pki.js';
import { generateFederationAuth } from '../broker/auth-config.js';
import { labBridge } from '../cluster-agent/build-rules.js';
import { validate } from '../cluster-agent/validate.js';
import { FolderSource } from '../cluster-agent/source-folder.js';
import type { DesiredState } from '../cluster-agent/desired-state.js';
import { formatProblem } from '../cluster-agent/problems.js';
import { GrpcGatewayClient } from '../gateway/client.js';
import { KeptProcess } from './kept-process.js';
import { describePending, waitForConvergence } from './convergence.js';
import { pool } from './pool.js';
import {
  BROKER_MOUNTS,
  labAgentArgv,
  labBrokerArgv,
  labGatewayArgv,
  placeClusterFiles,
  type ClusterFiles,
  type LabContainerContext,
} from './containers.js';
import { listContainers, removeContainer } from '../lib/containers.js';
import { l2fedArgv } from './components.js';
import { labPaths } from './paths.js';
import {
  planLab,
  labPrefix,
  LAB_UNDERLAY_MTU,
  type LabCluster,
  type LabPlan,
  type LabSegmentKind,
} from './plan.js';
import { LabTopology } from './topology.js';
import { ensureNeighbourLimits } from './neighbour-table.js';
import { ProcSysctl } from '../lib/sysctl.js';
import { writeState, type LabPhase, type LabState } from './state.js';
import { rewriteForBridge } from './segment-rewrite.js';
import { kubeApply, kubeObjects, startLabControlPlane, type LabControlPlane } from './kube.js';

export interface LabRunOptions {
  readonly manifests: string;
  readonly segmentKind: LabSegmentKind;
  /** Agent/gateway health poll, ms (default labHealthMs of the plan): short so the status settles fast. */
  readonly healthMs?: number;
  /** Run the broker, gateways and agents from this container image (lab/containers.ts). */
  readonly image?: string;
  /** One API server per cluster; agents read their CRDs from it (lab/kube.ts). */
  readonly kubernetes?: boolean;
}

/** A lab is for watching: health every 2 s instead of the daemons' 10 s. */
export const LAB_HEALTH_MS = 2000;

/** Clusters up to which a lab keeps LAB_HEALTH_MS; see labHealthMs. */
export const LAB_HEALTH_FULL_SPEED_CLUSTERS = 16;

/**
 * The lab's health interval (ms) for `clusters` clusters in a full mesh: LAB_HEALTH_MS up
 * to LAB_HEALTH_FULL_SPEED_CLUSTERS, then longer in proportion to the peer pairs, so
 * the whole lab's probing (every gateway probes every peer each check) stays at what 16
 * clusters cost. Probing is O(clusters²) on one box: at 32 clusters and 2 s the settled
 * lab used 1.5 of the 2 cores (wireguard-go 69 %, gateways 31 %, agents 27 %, helpers
 * 22 %; issue 18). Pure.
 */
export function labHealthMs(clusters: number): number {
  const full = LAB_HEALTH_FULL_SPEED_CLUSTERS;
  const pairs = (n: number) => n * (n - 1);
  return Math.max(LAB_HEALTH_MS, Math.round((LAB_HEALTH_MS * pairs(clusters)) / pairs(full)));
}

/** Transit addresses (inside WireGuard) come from here; lab-only, like the underlay. */
export const LAB_TRANSIT_POOL = '198.19.0.0/16';

/** A lab whose gateways gain no answering peer for this long is called not converged. */
export const LAB_CONVERGE_STALL_MS = 180_000;

/**
 * Daemons started at once: starting one is mostly CPU (Node loading l2fed), so about
 * two per core; more only makes each start slower on a busy machine.
 */
export const labStartParallel = (): number => Math.max(2, Math.min(8, 2 * availableParallelism()));

export class LabRunner {
  private readonly paths = labPaths();
  private readonly runner = new ExecaRunner();
  private readonly progressLines: string[] = [];
  private readonly procs: KeptProcess[] = [];
  private readonly grpc = new Map<string, string>();
  private readonly kube = new Map<string, LabControlPlane>();
  private phase: LabPhase = 'building';
  private error: string | undefined;
  private nats: NatsServer | undefined;
  private admin: { address: string; tokenFile: string } | undefined;
  private topology: LabTopology | undefined;
  private convergence: LabState['convergence'];
  private saving: Promise<void> = Promise.resolve();
  plan: LabPlan | undefined;

  constructor(private readonly opts: LabRunOptions) {}

  /** --health-ms, else the interval for the plan's size (labHealthMs). */
  private healthMs(): number {
    return this.opts.healthMs ?? labHealthMs(this.plan?.clusters.length ?? 0);
  }

  private async progress(msg: string): Promise<void> {
    this.progressLines.push(msg);
    if (this.progressLines.length > 200) this.progressLines.shift();
    await this.save();
  }

  /**
   * Writes the state file; writes queue one behind the other (concurrent starts report
   * at once, and two writers of the one temp file would lose a rename), each with the
   * state as it is when its turn comes.
   */
  private save(): Promise<void> {
    const next = this.saving.then(() => writeState(this.paths.state, this.snapshot()));
    this.saving = next.catch(() => undefined);
    return next;
  }

  private snapshot(): LabState {
    const plan = this.plan;
    const state: LabState = {
      phase: this.phase,
      runnerPid: process.pid,
      planId: plan?.id ?? '',
      segmentKind: this.opts.segmentKind,
      ...(this.opts.kubernetes ? { kubernetes: true } : {}),
      ...(this.nats ? { natsUrl: this.nats.url, natsPid: this.nats.pid } : {}),
      ...(this.admin ? { admin: this.admin } : {}),
      clusters: (plan?.clusters ?? []).map((c) => ({
        id: c.id,
        ns: c.ns,
        underlayAddress: c.underlayAddress,
        ...(this.grpc.has(c.id) ? { gatewayGrpc: this.grpc.get(c.id)! } : {}),
        ...(this.kube.has(c.id)
          ? {
              kubeconfig: this.kube.get(c.id)!.adminKubeconfig,
              kubeServer: this.kube.get(c.id)!.plane.server,
            }
          : {}),
        pods: c.pods.map((p) => ({ name: p.name, ns: p.ns })),
      })),
      processes: this.procs.map((p) => ({ name: p.name, pid: p.pid, restarts: p.restarts })),
      progress: this.progressLines,
      ...(this.convergence ? { convergence: this.convergence } : {}),
      ...(this.error ? { error: this.error } : {}),
    };
    return state;
  }

  private readonly startedAt = Date.now();
  private secondsSinceStart = () => ((Date.now() - this.startedAt) / 1000).toFixed(0);

  /** Builds and starts everything; on failure records the error and cleans up. */
  async start(): Promise<void> {
    try {
      await mkdir(this.paths.dir, { recursive: true });
      await this.copyManifests();
      const report = await validate(this.paths.clusters, {
        segments: this.opts.segmentKind,
        underlayMtu: LAB_UNDERLAY_MTU,
      });
      if (!report.ok || report.layout !== 'federation') {
        const errs = report.problems.filter((p) => p.severity === 'error');
        throw new Error(
          `manifests in ${this.opts.manifests} are not a valid federation folder:\n` +
            errs.map((p) => `  ${formatProblem(p)}`).join('\n'),
        );
      }
      const id = shortId();
      this.plan = planLab(
        report.clusters.map((c) => ({ id: c.id, state: c.state! })),
        { id, segmentKind: this.opts.segmentKind, prefix: labPrefix() },
      );
      await this.progress(
        `plan: ${this.plan.clusters.length} clusters, segments: ${this.opts.segmentKind}`,
      );
      for (const line of await ensureNeighbourLimits(this.plan, new ProcSysctl()))
        await this.progress(line);
      this.topology = new LabTopology(this.runner, this.plan, join(this.paths.dir, 'run'));
      await this.topology.build((m) => void this.progress(m));
      if (this.opts.kubernetes) await this.startControlPlanes(this.plan.clusters);
      await this.startNats();
      await this.startBroker();
      await this.startDaemons(this.plan.clusters);
      await this.awaitConvergence();
      this.phase = 'ready';
      await this.progress(`lab is up (${this.secondsSinceStart()} s after the runner started)`);
      await this.watchPods();
    } catch (err) {
      this.phase = 'failed';
      this.error = describeError(err);
      // stderr is the lab log; written before cleanup, which `lab down` may cut short.
      console.error(`lab runner failed: ${this.error}`);
      await this.progress(`failed: ${this.error}`);
      await this.stop();
      throw err;
    }
  }

  /**
   * Every gateway, then every agent, a few at a time (labStartParallel). Not one cluster
   * after another: each agent that joins changes the peer maps of all that joined before,
   * which apply it, so a serial start cost O(N²) applies spread over N slow starts (issue
   * 18: 32 clusters took ~880 s). Agents joining in one burst see the changes together,
   * and each agent's reconcile queue folds them into few applies.
   */
  private async startDaemons(clusters: readonly LabCluster[]): Promise<void> {
    const parallel = labStartParallel();
    const t0 = Date.now();
    const took = () => ((Date.now() - t0) / 1000).toFixed(0);
    await pool(clusters, parallel, (c) => this.startGateway(c));
    await this.progress(`${clusters.length} gateways started (${parallel} at a time, ${took()} s)`);
    await pool(clusters, parallel, (c) => this.startAgent(c));
    await this.progress(`${clusters.length} agents started (${took()} s since the first gateway)`);
  }

  /**
   * Ready means converged: every gateway holds exactly the peers the manifests make active
   * and reports each answering (lab/convergence.ts), read from each gateway's GetState.
   * A lab that stops improving for 180 s is declared ready anyway, marked not converged,
   * so `lab up` shows what differs and the lab stays up to look at.
   */
  private async awaitConvergence(): Promise<void> {
    const plan = this.plan!;
    const gateways = new Map(
      plan.clusters.map((c) => [
        c.id,
        new GrpcGatewayClient(this.grpc.get(c.id)!, { readTimeoutMs: 10_000 }),
      ]),
    );
    try {
      const r = await waitForConvergence(plan, gateways, {
        pollMs: this.opts.healthMs ?? LAB_HEALTH_MS,
        stallMs: LAB_CONVERGE_STALL_MS,
        onProgress: (l) => void this.progress(l),
      });
      const s = (r.ms / 1000).toFixed(0);
      this.convergence = r.converged
        ? { converged: true, ms: r.ms }
        : { converged: false, ms: r.ms, waiting: describePending(r.pending, 5) };
      await this.progress(
        r.converged
          ? `converged: every gateway holds its expected peers, all answering (${s} s after the agents started)`
          : `NOT converged: no more peers answering for ${LAB_CONVERGE_STALL_MS / 1000} s (${s} s after the agents started); waiting for ${describePending(r.pending, 5)}`,
      );
    } finally {
      for (const g of gateways.values()) g.close();
    }
  }

  private async copyManifests(): Promise<void> {
    await rm(this.paths.clusters, { recursive: true, force: true });
    await cp(this.opts.manifests, this.paths.clusters, { recursive: true });
    if (this.opts.segmentKind !== 'bridge') return;
    // Bridge mode: the lab builds Linux bridges, so the manifests the agents read say so.
    for (const cluster of await readdir(this.paths.clusters)) {
      const dir = join(this.paths.clusters, cluster);
      for (const f of await readdir(dir).catch(() => [] as string[])) {
        if (!/\.ya?ml$/.test(f)) continue;
        const p = join(dir, f);
        await writeFile(p, rewriteForBridge(await readFile(p, 'utf8')));
      }
    }
  }

  private async keep(name: string, argv: string[], readyWhen?: RegExp): Promise<KeptProcess> {
    const p = await KeptProcess.start(
      // 120 s: a 32-cluster lab on a loaded 2-core box (load ~90 while 63 daemons
      // converge) took over 30 s for its last agent to say it runs (issue 18).
      { name, argv, readyWhen, readyTimeoutMs: 120_000 },
      {
        onRestart: (n, out) =>
          out === 'restarted'
            ? void this.progress(`${n} restarted`)
            : void this.progress(
                `${n} exited; restarting (last output: ${out.trim().split('\n').slice(-2).join(' | ')})`,
              ),
      },
    );
    this.procs.push(p);
    await this.save();
    return p;
  }

  private containerContext(): LabContainerContext | undefined {
    if (!this.opts.image || !this.plan) return undefined;
    return { image: this.opts.image, prefix: this.plan.prefix };
  }

  /** The cluster's files, placed for the source tree or for containers (lab/containers.ts). */
  private async clusterFiles(c: LabCluster): Promise<ClusterFiles> {
    const built = this.topology!.built.find((b) => b.cluster.id === c.id);
    return placeClusterFiles({
      runDir: this.paths.run(c.id),
      natsCredentials: join(this.paths.dir, 'nats', 'creds', `${c.id}.json`),
      manifests: this.paths.cluster(c.id),
      ...(built?.ovs ? { ovsDbSocket: built.ovs.dbSocket } : {}),
      inContainers: this.opts.image !== undefined,
    });
  }

  /** argv of a gateway or agent: l2fed from this tree, or the image in a container. */
  private daemonArgv(
    args: string[],
    inContainer: (ctx: LabContainerContext, args: string[]) => string[],
  ): string[] {
    const ctx = this.containerContext();
    return ctx ? inContainer(ctx, args) : l2fedArgv(...args);
  }

  private async startNats(): Promise<void> {
    const clusters = this.plan!.clusters.map((c) => c.id);
    const auth = generateFederationAuth({ clusters, mode: 'nkey' });
    const dir = join(this.paths.dir, 'nats');
    await mkdir(join(dir, 'creds'), { recursive: true, mode: 0o700 });
    await writeFile(join(dir, 'creds', 'broker.json'), JSON.stringify(auth.broker), {
      mode: 0o600,
    });
    for (const [id, c] of Object.entries(auth.clusters)) {
      await writeFile(join(dir, 'creds', `${id}.json`), JSON.stringify(c), { mode: 0o600 });
    }
    this.nats = await NatsServer.start({
      dir: join(dir, 'server'),
      extraConfig: auth.serverConfig,
    });
    await this.progress(
      `nats-server with JetStream on ${this.nats.url} (one credential per cluster)`,
    );
  }

  private async startBroker(): Promise<void> {
    const cfg = join(this.paths.dir, 'broker.yaml');
    await writeFile(
      cfg,
      toYaml({
        nats: {
          servers: [this.nats!.url],
          credentials: this.opts.image
            ? BROKER_MOUNTS.natsCredentials
            : join(this.paths.dir, 'nats', 'creds', 'broker.json'),
        },
        broker: { transitPool: LAB_TRANSIT_POOL, vniQuarantineMs: 0 },
      }),
    );
    const tokenFile = join(this.paths.dir, 'admin.token');
    await writeToken(tokenFile);
    const ctx = this.containerContext();
    const files = ctx && {
      config: cfg,
      natsCredentials: join(this.paths.dir, 'nats', 'creds', 'broker.json'),
      adminToken: tokenFile,
    };
    // The same arguments; in a container the files are where the manifest mounts them.
    const args = (address: string, f: { config: string; adminToken: string }) => [
      ...['broker', 'run', '--config', f.config],
      ...['--admin-listen', address, '--admin-token-file', f.adminToken],
    ];
    // A fixed port (restarts keep the address the CLI was given), retried if another
    // process takes it between freePort and the broker's listen.
    await withFreePort(async (adminPort) => {
      this.admin = { address: `127.0.0.1:${adminPort}`, tokenFile };
      await this.keep(
        'broker',
        ctx && files
          ? await labBrokerArgv(ctx, files, args(this.admin.address, BROKER_MOUNTS))
          : l2fedArgv(...args(this.admin.address, { config: cfg, adminToken: tokenFile })),
        /admin API/,
      );
    });
    await this.progress(
      `broker is serving; admin API on ${this.admin!.address} (token in ${tokenFile})`,
    );
  }

  private async startGateway(c: LabCluster): Promise<void> {
    const files = await this.clusterFiles(c);
    // A root-only unix socket, as on a real node (see docs/gateway.md, gRPC).
    const socket = files.gatewaySocket.host;
    // Retried on a new metrics port if another process takes it before the gateway binds.
    const metrics = await withFreePort(async (metrics) => {
      await writeFile(
        files.gatewayConfig.host,
        toYaml({
          identity: c.id,
          // In a container the gateway is already inside the namespace.
          ...(this.opts.image ? {} : { netns: c.ns }),
          grpc: { socket: files.gatewaySocket.seen },
          metrics: { host: '127.0.0.1', port: metrics },
          ...(files.ovsDbSocket ? { ovsDbSocket: files.ovsDbSocket.seen } : {}),
          tunnel: 'auto',
          // In a container wireguard-go lives and dies with it, as in the manifest.
          launcher: this.opts.image
            ? { type: 'supervised' }
            : { type: 'detached', dir: files.daemonsDir.seen },
          healthIntervalMs: this.healthMs(),
        }),
      );
      await this.keep(
        `gateway-${c.id}`,
        this.daemonArgv(['gateway', 'run', '--config', files.gatewayConfig.seen], (ctx, a) =>
          labGatewayArgv(ctx, c, files, a),
        ),
        /listening|serving/,
      );
      return metrics;
    });
    this.grpc.set(c.id, `unix:${socket}`);
    await this.progress(`cluster ${c.id}: gateway on unix:${socket}, metrics :${metrics}`);
  }

  private async startAgent(c: LabCluster): Promise<void> {
    const files = await this.clusterFiles(c);
    await writeFile(
      files.agentConfig.host,
      toYaml({
        clusterId: c.id,
        nats: {
          servers: [this.nats!.url],
          credentials: files.natsCredentials.seen,
        },
        gateway: {
          address: `unix:${files.gatewaySocket.seen}`,
          ...(this.opts.image ? {} : { netns: c.ns }),
          healthPollMs: this.healthMs(),
        },
        advertise: { endpoints: [`${c.underlayAddress}:${c.listenPort}`] },
        wireguard: {
          ifname: c.wgIfname,
          listenPort: c.listenPort,
          privateKeyFile: files.privateKeyFile.seen,
        },
        transitPrefixLength: 16,
        // L2S-M networks become lab bridges named after them (lab/plan.ts labSegment).
        segments: { l2sm: l2smMapping(c) },
        underlayMtu: LAB_UNDERLAY_MTU,
        cacheDir: files.cacheDir.seen,
        statusDir: files.statusDir.seen,
        source: this.kube.has(c.id)
          ? { kubernetes: { kubeconfig: this.kube.get(c.id)!.agentKubeconfig } }
          : { folder: files.manifests.seen },
        resyncMs: 10_000,
        backoff: { initialMs: 200, maxMs: 5000 },
      }),
    );
    await this.keep(
      `agent-${c.id}`,
      this.daemonArgv(['agent', 'run', '--config', files.agentConfig.seen], (ctx, a) =>
        labAgentArgv(ctx, c, files, a),
      ),
      /started|running|ready/,
    );
    const kube = this.kube.get(c.id);
    await this.progress(
      `cluster ${c.id}: agent reading ${kube ? `its API server ${kube.plane.server}` : this.paths.cluster(c.id)}`,
    );
  }

  /**
   * etcd + kube-apiserver for one cluster, its CRDs, namespace and RBAC, then the
   * cluster's FederatedNetworks and ClusterPeerings from its folder (Pods stay here).
   * The dir carries the lab prefix so `lab down`/cleanup find both processes by argv.
   */
  /**
   * All clusters' control planes at once (most of their start is waiting); every one that
   * started is recorded, so stop() disposes it even when another failed.
   */
  private async startControlPlanes(clusters: readonly LabCluster[]): Promise<void> {
    const started = Date.now();
    const results = await Promise.allSettled(clusters.map((c) => this.startControlPlane(c)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
    await this.progress(
      `${clusters.length} API servers ready in ${((Date.now() - started) / 1000).toFixed(1)} s`,
    );
  }

  private async startControlPlane(c: LabCluster): Promise<void> {
    const kube = await startLabControlPlane({
      dir: join(this.paths.run(c.id), `${this.plan!.prefix}-kube`),
      name: `${this.plan!.prefix}-${c.id}`,
    });
    this.kube.set(c.id, kube);
    const dir = this.paths.cluster(c.id);
    const objects = [];
    for (const f of (await readdir(dir)).sort()) {
      if (/\.ya?ml$/.test(f)) objects.push(...kubeObjects(await readFile(join(dir, f), 'utf8')));
    }
    await kubeApply(kube.adminKubeconfig, objects);
    await this.progress(
      `cluster ${c.id}: API server on ${kube.plane.server} (${kube.plane.startMs} ms), ${objects.length} objects applied; admin kubeconfig ${kube.adminKubeconfig}`,
    );
  }

  /**
   * Pods follow the manifests too (`lab apply` of a Pod): the agents handle exports and
   * peerings, the runner creates or removes pod namespaces. Each cluster's folder is
   * followed with the agents' own FolderSource (file events, debounce, last good state
   * kept on invalid input); changes are applied one at a time.
   */
  private async watchPods(): Promise<void> {
    for (const c of this.plan!.clusters) {
      const source = new FolderSource({ dir: this.paths.cluster(c.id), clusterId: c.id });
      source.subscribe((ev) => {
        if (ev.type !== 'snapshot') return; // the agent reports manifest errors
        this.podSync = this.podSync
          .then(() => this.syncPods(c.id, ev.state))
          .catch((err: unknown) => this.progress(`pod sync: ${describeError(err)}`));
      });
      this.sources.push(source);
      await source.start();
    }
  }

  private async syncPods(clusterId: string, state: DesiredState): Promise<void> {
    if (this.phase !== 'ready' || !this.plan || !this.topology) return;
    const plan = this.plan;
    const next = planLab(
      plan.clusters.map((c) => ({ id: c.id, state: c.id === clusterId ? state : c.state })),
      { id: plan.id, segmentKind: this.opts.segmentKind, prefix: plan.prefix },
    );
    for (const line of await ensureNeighbourLimits(next, new ProcSysctl()))
      await this.progress(line);
    const changes = await this.topology.sync(next);
    this.plan = next;
    for (const c of changes) await this.progress(c);
  }

  private readonly sources: FolderSource[] = [];
  private podSync: Promise<void> = Promise.resolve();

  /**
   * Stops every process and removes namespaces; removes the lab dir too, unless the lab
   * failed (its log and state say why; `lab down` removes it). Idempotent.
   */
  async stop(): Promise<void> {
    if (this.phase !== 'failed') this.phase = 'stopping';
    for (const src of this.sources) await src.stop();
    await this.podSync;
    await this.save().catch(() => undefined);
    for (const p of [...this.procs].reverse()) await p.stop();
    // A container whose podman client was killed (stop's SIGKILL) outlives it.
    if (this.opts.image && this.plan) {
      for (const name of await listContainers(this.runner, this.plan.prefix)) {
        await removeContainer(this.runner, name);
      }
    }
    await this.nats?.stop();
    for (const k of this.kube.values()) await k.plane.dispose();
    // wireguard-go outlives gateway processes by design: kill what lives in lab namespaces.
    await this.topology?.destroy();
    if (this.phase !== 'failed') await rm(this.paths.dir, { recursive: true, force: true });
  }
}

function l2smMapping(c: LabCluster): Record<string, { bridge: string }> {
  const out: Record<string, { bridge: string }> = {};
  for (const n of c.state.networks) {
    const l2sm = n.spec.segment.l2smNetwork;
    if (l2sm !== undefined) out[l2sm] = { bridge: labBridge(n) };
  }
  return out;
}

/** `l2fed lab run`: runs a lab until SIGTERM/SIGINT. */
export async function runLabForeground(opts: LabRunOptions): Promise<number> {
  const lab = new LabRunner(opts);
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= lab.stop());
  process.once('SIGTERM', () => void stop().then(() => process.exit(0)));
  process.once('SIGINT', () => void stop().then(() => process.exit(0)));
  try {
    await lab.start();
  } catch {
    return 1; // start() wrote the reason to the log and the state file
  }
  await new Promise(() => undefined); // until a signal
  return 0;
}
