/**
 * `l2fed lab up`: starts the lab runner detached (so the lab outlives this command),
 * shows its progress, then verifies connectivity against the manifests and prints the
 * matrix. With `once`, tears the lab down again and returns the verdict.
 */
import { spawn } from 'node:child_process';
import { mkdir, open, readFile } from 'node:fs/promises';
import { ExecaRunner } from '../lib/runner.js';
import { validate } from '../cluster-agent/validate.js';
import { l2fedArgv } from './components.js';
import { labPaths } from './paths.js';
import { readState, type LabState } from './state.js';
import { planLab, labPrefix, LAB_UNDERLAY_MTU, type LabPlan, type LabSegmentKind } from './plan.js';
import { expectedChecks, peeringVerdict } from './expectations.js';
import {
  expectedTunnels,
  REACH_RETRY_MS,
  renderMatrix,
  runChecks,
  runTunnelChecks,
  verificationOk,
  type Verification,
} from './verify.js';
import { labDown, runnerAlive } from './down.js';
import { generateFederation } from './generate.js';
import { labKubeUnmet, labKubectl } from './kube.js';

export interface LabUpOptions {
  readonly manifests: string;
  /** Generate a full-mesh federation instead of reading `manifests`. */
  readonly generate?: { readonly clusters: number; readonly pods: number };
  readonly segmentKind: LabSegmentKind;
  readonly once?: boolean;
  readonly verify?: boolean;
  readonly timeoutMs?: number;
  readonly healthMs?: number;
  /** Run the daemons from this container image (lab/containers.ts). */
  readonly image?: string;
  /** One API server per cluster; the agents read their CRDs from it (lab/kube.ts). */
  readonly kubernetes?: boolean;
  readonly out?: (line: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Lines of the runner log shown when the lab fails. */
const LOG_TAIL_LINES = 15;

/** A runner failure: the reason and the end of the runner's log. */
async function runnerFailure(reason: string, log: string): Promise<Error> {
  const tail = (await readFile(log, 'utf8').catch(() => ''))
    .trimEnd()
    .split('\n')
    .slice(-LOG_TAIL_LINES)
    .filter((l) => l !== '');
  const shown = tail.length
    ? `last lines of ${log}:\n${tail.map((l) => `    ${l}`).join('\n')}`
    : `${log} is empty`;
  return new Error(`${reason}\n  ${shown}`);
}

/**
 * Waits for the runner to report ready (or fail), echoing its progress lines. Fails when
 * no new progress line came for `timeoutMs`: a large lab starts its daemons one after
 * another, so the whole start may take much longer than one step (issue 18: 32 clusters).
 */
export async function followRunner(
  timeoutMs: number,
  out: (l: string) => void,
  exited: () => number | null | undefined,
): Promise<LabState> {
  const paths = labPaths();
  let deadline = Date.now() + timeoutMs;
  let shown = 0;
  for (;;) {
    const st = await readState(paths.state);
    if (st) {
      for (const line of st.progress.slice(shown)) out(`  \u2022 ${line}`);
      if (st.progress.length > shown) deadline = Date.now() + timeoutMs;
      shown = st.progress.length;
      if (st.phase === 'ready') return st;
      if (st.phase === 'failed') {
        throw await runnerFailure(`lab failed: ${st.error ?? 'no reason recorded'}`, paths.log);
      }
      if (!runnerAlive(st)) throw await runnerFailure('lab runner exited', paths.log);
    }
    const code = exited();
    if (code !== undefined && st?.phase !== 'ready') {
      throw await runnerFailure(
        `lab runner exited (${code}) before the lab was ready${st?.error ? `: ${st.error}` : ''}`,
        paths.log,
      );
    }
    if (Date.now() > deadline) {
      throw await runnerFailure(`lab not ready: no progress for ${timeoutMs / 1000} s`, paths.log);
    }
    await sleep(300);
  }
}

/** The plan of the running lab, recomputed from the manifests the agents read. */
export async function currentPlan(st: LabState): Promise<LabPlan> {
  const report = await validate(labPaths().clusters);
  return planLab(
    report.clusters.filter((c) => c.state).map((c) => ({ id: c.id, state: c.state! })),
    { id: st.planId, segmentKind: st.segmentKind as LabSegmentKind, prefix: labPrefix() },
  );
}

/**
 * Runs the connectivity checks of the running lab: pings, then WireGuard peers. A reach
 * check that fails is retried until `retryMs` after every check was tried once (see
 * runChecks), so the wait grows with the number of checks.
 */
export async function verifyLab(st: LabState, retryMs = REACH_RETRY_MS): Promise<Verification> {
  const plan = await currentPlan(st);
  const runner = new ExecaRunner();
  const pings = await runChecks(runner, expectedChecks(plan), { retryMs });
  return { pings, tunnels: await runTunnelChecks(runner, expectedTunnels(plan)) };
}

/** The manifests' verdict for every pair of clusters. */
function pairVerdicts(plan: LabPlan): ReturnType<typeof peeringVerdict>[] {
  const out: ReturnType<typeof peeringVerdict>[] = [];
  for (let i = 0; i < plan.clusters.length; i++)
    for (let j = i + 1; j < plan.clusters.length; j++)
      out.push(peeringVerdict(plan.clusters[i]!, plan.clusters[j]!));
  return out;
}

export function renderPeerings(plan: LabPlan): string[] {
  return pairVerdicts(plan).map((v) => {
    const mark = v.active ? '\u2714 active  ' : '\u2013 inactive';
    return `  ${mark} ${v.a} <-> ${v.b}${v.active ? `: ${v.networks.join(', ')}` : ` (${v.reason})`}`;
  });
}

type Admin = { address: string; tokenFile: string };

function runStatus(admin: Admin, args: string[] = []) {
  return new ExecaRunner().run(l2fedArgv('status', ...args), {
    allowFailure: true,
    timeoutMs: 30_000,
    env: { L2FED_SERVER: admin.address, L2FED_TOKEN_FILE: admin.tokenFile },
  });
}

/**
 * Waits (bounded) until the broker sees every peering the manifests make active and a
 * health report for every expected tunnel, so the status printed is the settled one,
 * not the first seconds after start.
 */
async function waitForSettledStatus(admin: Admin, expectedActive: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const r = await runStatus(admin, ['-o', 'json']);
    try {
      const j = JSON.parse(r.stdout) as {
        verdict: { problems: string[]; warnings: string[] };
        peerings: { active?: boolean }[];
      };
      const active = j.peerings.filter((p) => p.active).length;
      const tunnelsPending = [...j.verdict.problems, ...j.verdict.warnings].some((w) =>
        w.startsWith('tunnel '),
      );
      if (active >= expectedActive && !tunnelsPending) return;
    } catch {
      // not up yet: try again
    }
    await sleep(1000);
  }
}

/** Runs `l2fed status` against the lab's broker; its output, whatever its verdict. */
async function federationStatus(admin: Admin): Promise<string> {
  const r = await runStatus(admin);
  return (r.stdout + (r.exitCode > 1 ? `\n${r.stderr}` : '')).trimEnd();
}

export async function labUp(o: LabUpOptions): Promise<number> {
  const out = o.out ?? ((l: string) => console.log(l));
  const paths = labPaths();
  if (o.kubernetes) {
    if (o.image) {
      out('l2fed lab: --kubernetes and --image cannot be combined yet; choose one');
      return 2;
    }
    const unmet = labKubeUnmet();
    if (unmet) {
      out(`l2fed lab: --kubernetes needs kube-apiserver, etcd and kubectl: ${unmet}`);
      return 1;
    }
  }
  const existing = await readState(paths.state);
  if (existing && runnerAlive(existing)) {
    out(`a lab is already up (runner pid ${existing.runnerPid}); run "l2fed lab down" first`);
    return 1;
  }
  // A crashed earlier lab may have left namespaces or processes: remove them first.
  await labDown({ quiet: true });
  let manifests = o.manifests;
  if (o.generate) {
    // Next to the lab dir and named like it, so lab down / cleanup remove it too.
    manifests = `${paths.dir}.manifests`;
    try {
      await generateFederation(manifests, o.generate.clusters, o.generate.pods);
    } catch (err) {
      out(`l2fed lab: ${err instanceof Error ? err.message : String(err)}`);
      return 2;
    }
    out(
      `\u25b6 generated ${o.generate.clusters} clusters x ${o.generate.pods} pods in ${manifests}`,
    );
  }
  // The build rules the runner's own check applies, for this segment kind: refused here,
  // nothing is built.
  const pre = await validate(manifests, { segments: o.segmentKind, underlayMtu: LAB_UNDERLAY_MTU });
  if (!pre.ok || pre.layout !== 'federation') {
    out(`l2fed lab: ${manifests} must be a folder with one valid subfolder per cluster:`);
    out((await import('../cluster-agent/validate.js')).formatReport(manifests, pre));
    return 1;
  }
  await mkdir(paths.dir, { recursive: true });
  const log = await open(paths.log, 'a');
  const args = ['lab', 'run', '--manifests', manifests, '--segment', o.segmentKind];
  if (o.healthMs) args.push('--health-ms', String(o.healthMs));
  if (o.image) args.push('--image', o.image);
  if (o.kubernetes) args.push('--kubernetes');
  const argv = l2fedArgv(...args);
  const started = Date.now();
  const since = () => `${((Date.now() - started) / 1000).toFixed(0)} s`;
  const child = spawn(argv[0]!, argv.slice(1), {
    detached: true,
    stdio: ['ignore', log.fd, log.fd],
    env: { ...process.env, L2FED_LAB_DIR: paths.dir },
  });
  let exitCode: number | null | undefined;
  child.once('exit', (c) => (exitCode = c));
  child.unref();
  await log.close();
  out(`\u25b6 building the lab from ${manifests} (log: ${paths.log})`);
  let st: LabState;
  try {
    st = await followRunner(o.timeoutMs ?? 180_000, out, () => exitCode);
  } catch (err) {
    out(`\u2718 ${err instanceof Error ? err.message : String(err)}`);
    // Processes and namespaces go; the run folder with the log stays for reading.
    await labDown({ quiet: true, keepFiles: true });
    out(`  the run folder is kept: ${paths.dir} ("l2fed lab down" removes it)`);
    return 1;
  }
  const converged = st.convergence?.converged !== false;
  out(
    converged
      ? `\u25b6 ready after ${since()}: every gateway holds its expected peers, all answering`
      : `\u2718 ready after ${since()} but NOT converged: ${st.convergence?.waiting ?? '?'}`,
  );
  const plan = await currentPlan(st);
  if (st.admin) {
    out('\u25b6 federation status (l2fed status, through the broker admin API)');
    await waitForSettledStatus(st.admin, pairVerdicts(plan).filter((v) => v.active).length, 30_000);
    out(await federationStatus(st.admin));
  }
  out('\u25b6 peerings declared in the manifests');
  for (const l of renderPeerings(plan)) out(l);
  let ok = converged;
  if (o.verify !== false) {
    out('\u25b6 verifying connectivity (pings from inside the pods)');
    const results = await verifyLab(st);
    out(renderMatrix(results, process.stdout.isTTY));
    out(`\u25b6 verified after ${since()} (from the start of lab up)`);
    ok = ok && verificationOk(results);
  }
  if (o.once) {
    out('\u25b6 tearing the lab down (--once)');
    await labDown({ quiet: true });
  } else {
    out('\nThe lab is up. Next:');
    out('  l2fed lab exec madrid/web -- ping -c 3 10.10.0.21   # run a command in a pod');
    out('  l2fed lab apply CLUSTER FILE                         # change a cluster live');
    if (st.kubernetes) {
      const c = st.clusters[0]?.id ?? 'CLUSTER';
      out(`  ${labKubectl()} --kubeconfig "$(l2fed lab kubeconfig ${c})" get fednet`);
    }
    out('  l2fed lab status                                     # processes and pods');
    if (st.admin) {
      out(`  export L2FED_SERVER=${st.admin.address} L2FED_TOKEN_FILE=${st.admin.tokenFile}`);
      out('  l2fed status; l2fed get peerings; l2fed diagnose athens bristol');
    }
    out('  l2fed lab down                                       # remove everything');
  }
  return ok ? 0 : 1;
}
