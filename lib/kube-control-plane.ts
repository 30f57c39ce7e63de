/**
 * A real Kubernetes control plane (no kubelets, no controllers): etcd and kube-apiserver
 * of the release scripts/kube-control-plane builds (cached outside the repository), on
 * 127.0.0.1 with free ports, in one dir whose path names l2fed- (a `l2fed-kube-…` temp
 * dir unless the caller gives one), so `l2fed cleanup` finds the dir and both processes
 * if a run crashes. Used by the tests (test/fixtures/kube-control-plane.ts) and by
 * `l2fed lab up --kubernetes`.
 *
 * The API server runs with `--authorization-mode=RBAC`, a serving certificate from the
 * project's PKI helpers (lib/pki.ts), an admin bearer token (static token file, group
 * system:masters) and a ServiceAccount token issuer (an ES256 key of its own), so
 * `serviceAccountToken()` mints real tokens through the TokenRequest API. Always
 * `dispose()` it (it kills both processes and removes the dir, whatever state it is in).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { get as httpGet } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { ensureCa, issueCert } from './pki.js';
import { ProcessStartError } from './errors.js';
import { freePort, withFreePort } from './ports.js';
import { ExecaRunner, type RunResult } from './runner.js';
import { supervise, type SupervisedProcess } from './supervisor.js';

/**
 * The l2fed package root (it holds scripts/ and deploy/): the nearest folder above `from`
 * with l2fed's package.json, so it is the same from source (lib/) and from dist/lib/.
 * Throws when there is none.
 */
export function packageRoot(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = from; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'l2fed') return dir;
    } catch {
      // not here; go up
    }
    if (dirname(dir) === dir) throw new Error(`no l2fed package.json above ${from}`);
  }
}

const SCRIPT = join(packageRoot(), 'scripts', 'kube-control-plane');
/** Exit codes of scripts/kube-control-plane (see its header). */
const EXIT = { ready: 0, noGo: 3, notBuilt: 4 } as const;
const READY_MS = 60_000;
const STOP_MS = 5_000;
export const ADMIN_USER = 'l2fed-test-admin';

let checked: { dir?: string; reason?: string } | undefined;

/**
 * Why the control plane cannot run here (no Go toolchain, or not built yet), or undefined
 * when the binaries are in the cache. Synchronous, for test registration; builds nothing.
 */
export function controlPlaneUnmet(): string | undefined {
  checked ??= check();
  return checked.reason;
}

function check(): { dir?: string; reason?: string } {
  try {
    const dir = execFileSync('bash', [SCRIPT, '--check'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
    return { dir };
  } catch (err) {
    const status = (err as { status?: number }).status;
    if (status === EXIT.noGo)
      return { reason: 'needs a Go toolchain to build kube-apiserver and etcd (install Go)' };
    if (status === EXIT.notBuilt)
      return {
        reason:
          'Kubernetes control plane not built; run "bash scripts/setup --kube" (builds it once, ~6 min)',
      };
    return { reason: `scripts/kube-control-plane --check failed: ${String(err)}` };
  }
}

/** The cache dir holding kube-apiserver, etcd and kubectl. Throws when not built. */
export function controlPlaneBinDir(): string {
  const reason = controlPlaneUnmet();
  if (reason || !checked?.dir) throw new Error(reason ?? 'control plane not found');
  return checked.dir;
}

export interface KubectlOptions {
  /** Bearer token to use instead of the admin's. */
  readonly token?: string;
  /** Text for stdin (with `-f -`). */
  readonly input?: string;
  /** Return a failed result instead of throwing. */
  readonly allowFailure?: boolean;
  readonly timeoutMs?: number;
}

/** A running control plane. */
export interface KubeControlPlane {
  /** https://127.0.0.1:PORT */
  readonly server: string;
  /** PEM file of the CA that signed the serving certificate. */
  readonly caFile: string;
  /** kubeconfig file for the admin (group system:masters). */
  readonly kubeconfig: string;
  /** The admin's bearer token. */
  readonly adminToken: string;
  /** Milliseconds from spawning etcd to /readyz answering ok. */
  readonly startMs: number;
  /** The temp dir (l2fed-kube-…) holding certs, keys, kubeconfigs and etcd data. */
  readonly dir: string;
  /** KubeConfig (@kubernetes/client-node) for the admin, or for `token`. */
  kubeConfig(token?: string): KubeConfig;
  /** Writes a kubeconfig file that authenticates with `token`; returns its path. */
  kubeconfigFor(token: string): Promise<string>;
  /** Runs the release's kubectl against this server (admin unless opts.token). */
  kubectl(args: readonly string[], opts?: KubectlOptions): Promise<RunResult>;
  /** Mints a token for ServiceAccount namespace/name via TokenRequest (10 min). */
  serviceAccountToken(namespace: string, name: string): Promise<string>;
  /** One API request as the admin (or `token`): status code and body text, never throws for HTTP. */
  request(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    token?: string,
  ): Promise<{ status: number; body: string }>;
  /** GET/POST a JSON API path as the admin (or `token`); throws on a non-2xx status. */
  api<T = unknown>(
    method: 'GET' | 'POST',
    path: string,
    body?: unknown,
    token?: string,
  ): Promise<T>;
  /** Stops the API server (etcd keeps running); clients see connection errors. */
  stopApiServer(): Promise<void>;
  /** Starts it again on the same port, with the same flags; waits for /readyz. */
  startApiServer(): Promise<void>;
  /** A second API server on the same etcd (another port), e.g. to write while the first is down. */
  extraApiServer(): Promise<{
    readonly server: string;
    kubectl(args: readonly string[], opts?: KubectlOptions): Promise<RunResult>;
    stop(): Promise<void>;
  }>;
  /** Compacts etcd's history up to its current revision (physical); returns that revision. */
  compactEtcd(): Promise<number>;
  /** A raw etcd range read at `revision` (to see that compaction happened). */
  etcdRangeAt(revision: number): Promise<{ status: number; body: string }>;
  /** Kills both processes and removes the dir; safe to call twice. */
  dispose(): Promise<void>;
}

export interface KubeControlPlaneOptions {
  /**
   * Where certs, keys, kubeconfigs and etcd data go (created; removed by dispose). Its
   * path should name l2fed- (or the caller's cleanup prefix) so cleanup finds etcd and
   * kube-apiserver by their argv. Default: a new `l2fed-kube-…` temp dir.
   */
  readonly dir?: string;
  /** etcd member, kubeconfig cluster/context name and admin user prefix; default l2fed-test. */
  readonly name?: string;
}

/**
 * Starts etcd, then kube-apiserver, and waits (up to 60 s) for /readyz. On any failure
 * everything started so far is torn down and the error carries the tail of the logs.
 * Throws when the binaries are not built (the message names the command that builds them).
 */
export async function startKubeControlPlane(
  opts: KubeControlPlaneOptions = {},
): Promise<KubeControlPlane> {
  const bin = controlPlaneBinDir();
  const name = opts.name ?? 'l2fed-test';
  const adminUser = name === 'l2fed-test' ? ADMIN_USER : `${name}-admin`;
  let dir: string;
  if (opts.dir) {
    dir = opts.dir;
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } else {
    dir = await mkdtemp(join(tmpdir(), 'l2fed-kube-'));
  }
  const run = { remove: () => rm(dir, { recursive: true, force: true }) };
  const children: SupervisedProcess[] = [];
  let disposed = false;
  const dispose = async () => {
    if (disposed) return;
    disposed = true;
    // API server first, so it does not log a storm of etcd errors while etcd goes.
    for (const child of children.reverse()) await child.stop(STOP_MS);
    await run.remove();
  };
  try {
    const started = Date.now();
    const runner = new ExecaRunner();
    const pki = join(dir, 'pki');
    await mkdir(pki, { mode: 0o700 });
    const ca = await ensureCa(runner, pki, 'l2fed test kube CA');
    const serving = await issueCert(runner, ca, pki, 'kube-apiserver', 'server', [
      '127.0.0.1',
      'localhost',
    ]);
    const sa = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    const saKey = join(pki, 'sa.key');
    const saPub = join(pki, 'sa.pub');
    await writeFile(saKey, sa.privateKey.export({ type: 'pkcs8', format: 'pem' }), {
      mode: 0o600,
    });
    await writeFile(saPub, sa.publicKey.export({ type: 'spki', format: 'pem' }));
    const adminToken = randomBytes(32).toString('hex');
    const tokens = join(pki, 'tokens.csv');
    await writeFile(tokens, `${adminToken},${adminUser},${adminUser},"system:masters"\n`, {
      mode: 0o600,
    });

    /** Stops a child that failed to start and forgets it (idempotent). */
    const dropChild = async (proc: SupervisedProcess) => {
      const index = children.indexOf(proc);
      if (index >= 0) children.splice(index, 1);
      await proc.stop(STOP_MS);
    };
    // Ports come from freePort and are bound later by another process, which can lose a
    // race with any other process on the machine: each start retries on a new port then.
    const etcdUrl = await withFreePort(async (etcdPort) => {
      const peerPort = await freePort();
      const etcdUrl = `http://127.0.0.1:${etcdPort}`;
      const peerUrl = `http://127.0.0.1:${peerPort}`;
      const etcd = await launch('etcd', [
        join(bin, 'etcd'),
        `--name=${name}`,
        // Its own data directory per attempt: a failed start may leave a member behind.
        `--data-dir=${join(dir, `etcd-${etcdPort}`)}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=${name}=${peerUrl}`,
        // Throwaway data: skipping fsync keeps start-up fast on a busy 2-core machine.
        '--unsafe-no-fsync',
        '--log-level=warn',
      ]);
      children.push(etcd);
      try {
        await waitFor(() => httpOk(`${etcdUrl}/health`), READY_MS, 'etcd /health', children);
      } catch (err) {
        await dropChild(etcd);
        throw err;
      }
      return etcdUrl;
    });

    const apiServerArgv = (port: number) => [
      join(bin, 'kube-apiserver'),
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${port}`,
      `--cert-dir=${join(dir, 'apiserver-certs')}`,
      `--tls-cert-file=${serving.cert}`,
      `--tls-private-key-file=${serving.key}`,
      `--client-ca-file=${ca.caCert}`,
      `--token-auth-file=${tokens}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      '--service-cluster-ip-range=10.96.0.0/24',
      // No nodes and no kube-proxy: nothing should publish endpoints for 'kubernetes'.
      '--endpoint-reconciler-type=none',
      '--profiling=false',
      // As kubeadm and kind set it: the gateway Deployment runs privileged.
      '--allow-privileged=true',
    ];
    /** Starts a kube-apiserver on port (sharing etcd, certs and keys) and waits for /readyz. */
    const startApiServer = async (port: number) => {
      const proc = await launch('kube-apiserver', apiServerArgv(port));
      children.push(proc);
      const probe = makeApi(`https://127.0.0.1:${port}`, ca.caCert, adminToken);
      try {
        await waitFor(
          async () => {
            try {
              return (await probe.raw('GET', '/readyz', undefined)).status === 200;
            } catch {
              return false;
            }
          },
          READY_MS,
          'kube-apiserver /readyz',
          children,
        );
      } catch (err) {
        await dropChild(proc);
        throw err;
      }
      return proc;
    };
    // Idempotent: a second stop must not drop another process from the list.
    const stopProcess = dropChild;
    let apiPort = 0;
    let primary = await withFreePort(async (port) => {
      const proc = await startApiServer(port);
      apiPort = port;
      return proc;
    });
    const server = `https://127.0.0.1:${apiPort}`;
    const api = makeApi(server, ca.caCert, adminToken);
    const startMs = Date.now() - started;

    const writeKubeconfig = async (path: string, token: string, url = server) => {
      await writeFile(path, stringify(kubeconfigDoc(url, ca.caCert, token, name)), { mode: 0o600 });
      return path;
    };
    const tempName = () => join(dir, `token-${randomBytes(4).toString('hex')}.kubeconfig`);
    const kubeconfig = await writeKubeconfig(join(dir, 'admin.kubeconfig'), adminToken);
    const kubectlBin = join(bin, 'kubectl');
    const kubectlAt = async (url: string, args: readonly string[], opts: KubectlOptions = {}) => {
      const config =
        opts.token || url !== server
          ? await writeKubeconfig(tempName(), opts.token ?? adminToken, url)
          : kubeconfig;
      return runner.run([kubectlBin, `--kubeconfig=${config}`, ...args], {
        input: opts.input,
        allowFailure: opts.allowFailure,
        timeoutMs: opts.timeoutMs ?? 30_000,
        mutates: true,
      });
    };
    const kubectl = (args: readonly string[], opts?: KubectlOptions) =>
      kubectlAt(server, args, opts);
    const etcdPost = async <T>(path: string, body: unknown): Promise<T> => {
      const res = await fetch(`${etcdUrl}${path}`, {
        method: 'POST',
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(10_000),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`etcd ${path}: HTTP ${res.status}: ${text}`);
      return JSON.parse(text) as T;
    };
    return {
      server,
      caFile: ca.caCert,
      kubeconfig,
      adminToken,
      startMs,
      dir,
      kubeConfig: (token = adminToken) => {
        const kc = new KubeConfig();
        kc.loadFromString(stringify(kubeconfigDoc(server, ca.caCert, token, name)));
        return kc;
      },
      kubeconfigFor: (token) => writeKubeconfig(tempName(), token),
      kubectl,
      serviceAccountToken: async (namespace, name) =>
        (await kubectl(['create', 'token', name, '-n', namespace, '--duration=10m'])).stdout.trim(),
      request: (method, path, body, token) => api.raw(method, path, body, token),
      api: async <T>(method: 'GET' | 'POST', path: string, body?: unknown, token?: string) => {
        const res = await api.raw(method, path, body, token);
        if (res.status < 200 || res.status > 299)
          throw new Error(`${method} ${path}: HTTP ${res.status}: ${res.body}`);
        return JSON.parse(res.body) as T;
      },
      stopApiServer: async () => {
        await stopProcess(primary);
      },
      startApiServer: async () => {
        if (primary.running) return;
        primary = await startApiServer(apiPort);
      },
      extraApiServer: async () => {
        let port = 0;
        const proc = await withFreePort(async (p) => {
          port = p;
          return startApiServer(p);
        });
        const url = `https://127.0.0.1:${port}`;
        return {
          server: url,
          kubectl: (args, opts) => kubectlAt(url, args, opts),
          stop: () => stopProcess(proc),
        };
      },
      compactEtcd: async () => {
        // etcd's JSON gateway: any range answers with the store's current revision.
        const range = await etcdPost<{ header: { revision: string } }>('/v3/kv/range', {
          key: Buffer.from('/').toString('base64'),
          limit: 1,
        });
        const revision = Number(range.header.revision);
        await etcdPost('/v3/kv/compaction', { revision: String(revision), physical: true });
        return revision;
      },
      etcdRangeAt: async (revision) => {
        const res = await fetch(`${etcdUrl}/v3/kv/range`, {
          method: 'POST',
          body: JSON.stringify({
            key: Buffer.from('/').toString('base64'),
            limit: 1,
            revision: String(revision),
          }),
          signal: AbortSignal.timeout(10_000),
        });
        return { status: res.status, body: await res.text() };
      },
      dispose,
    };
  } catch (err) {
    const logs = children
      .map(
        (c) =>
          `--- ${c.options.name} (last lines)\n${c.output().split('\n').slice(-15).join('\n')}`,
      )
      .join('\n');
    await dispose();
    throw new Error(`kube control plane did not start: ${String(err)}\n${logs}`, {
      cause: err,
    });
  }
}

function kubeconfigDoc(server: string, caFile: string, token: string, name: string) {
  return {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name, cluster: { server, 'certificate-authority': caFile } }],
    users: [{ name: 'user', user: { token } }],
    contexts: [{ name, context: { cluster: name, user: 'user' } }],
    'current-context': name,
  };
}

/** Started through lib/supervisor.ts, so they die with the process that started them. */
function launch(name: string, argv: readonly string[]): Promise<SupervisedProcess> {
  return supervise({ name, argv, keepBytes: 16 * 1024 });
}

async function waitFor(
  ok: () => Promise<boolean>,
  ms: number,
  what: string,
  children: readonly SupervisedProcess[],
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await ok()) return;
    const dead = children.find((c) => !c.running);
    if (dead)
      throw new ProcessStartError(
        dead.options.name,
        `exited while waiting for ${what}`,
        dead.output(),
      );
    await sleep(100);
  }
  throw new Error(`${what} not ready within ${ms} ms`);
}

function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpGet(url, { timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('error', () => resolve(false));
    req.on('timeout', () => req.destroy());
  });
}

function makeApi(server: string, caFile: string, adminToken: string) {
  let ca: Buffer | undefined;
  return {
    async raw(
      method: string,
      path: string,
      body: unknown,
      token = adminToken,
    ): Promise<{ status: number; body: string }> {
      ca ??= await readFile(caFile);
      const url = new URL(path, server);
      const payload = body === undefined ? undefined : JSON.stringify(body);
      return new Promise((resolve, reject) => {
        const req = httpsRequest(
          url,
          {
            method,
            ca,
            timeout: 10_000,
            headers: {
              authorization: `Bearer ${token}`,
              accept: 'application/json',
              ...(payload ? { 'content-type': 'application/json' } : {}),
            },
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c: string) => (text += c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
          },
        );
        req.on('error', reject);
        req.on('timeout', () => req.destroy(new Error(`${method} ${path}: timed out`)));
        req.end(payload);
      });
    },
  };
}
