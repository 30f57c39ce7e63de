/**
 * Every documented command that can run here runs, as a user would type it: through bash,
 * with this checkout's `l2fed` on PATH, against one lab (deploy/examples, bridge segments,
 * one API server per cluster) started by the documented `lab up`. Which command runs
 * how, and why the others do not, is the reviewed table test/fixtures/doc-command-classes.ts
 * (cli/doc-commands.test.ts fails on a documented command missing from it). Each must exit
 * as documented (0 unless the table says otherwise) and print what the doc says it shows.
 * The lab has its own dir and namespace prefix and is always taken down.
 */
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { connect } from 'nats';
import { controlPlaneUnmet } from '../../lib/kube-control-plane.js';
import { ExecaRunner } from '../../lib/runner.js';
import { listNamespaces } from '../../lib/netns.js';
import { findLeftovers } from '../../lib/cleanup.js';
import { connectOptionsFor, type Credential } from '../../broker/auth-config.js';
import { BUCKETS, KEYS, type TransitClaim } from '../../broker/records.js';
import { testWith } from '../fixtures/privileges.js';
import { runId } from '../fixtures/run-dir.js';
import { docKey, documentedCommands, ROOT } from '../fixtures/doc-commands.js';
import {
  classOf,
  DOC_COMMAND_CLASSES,
  type DocCommandClass,
} from '../fixtures/doc-command-classes.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'ping', 'wg', 'wireguard-go', 'nats-server', 'bridge', 'openssl'],
  check: controlPlaneUnmet,
});

type Runs = Extract<
  DocCommandClass,
  { class: 'offline' | 'lab-read' | 'lab-change' | 'lab-destroy' }
>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on loopback (for the second broker's admin API). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const PEERING_ATHENS = `apiVersion: l2fed.io/v1alpha1
kind: ClusterPeering
metadata:
  name: athens
spec:
  remoteCluster: athens
  networks: [cdn]
`;

const OLD_CDN = `apiVersion: l2fed.io/v1alpha1
kind: FederatedNetwork
metadata:
  name: old-cdn
spec:
  segment:
    linuxBridge: br-oldcdn
`;

interface Ran {
  readonly doc: string;
  readonly run: string;
  readonly exitCode: number | undefined;
  readonly output: string;
  readonly ms: number;
}

test.serial(
  'doc commands: every documented command classified as runnable runs against one lab (or offline) and shows what its doc says',
  async (t) => {
    t.timeout(170_000);
    const prefix = `l2fed-td${runId(4)}`;
    const labDir = join(tmpdir(), prefix);
    const scratch = `${labDir}.scratch`;
    const env: Record<string, string> = {
      L2FED_LAB_DIR: labDir,
      L2FED_LAB_PREFIX: prefix,
      PATH: `${join(scratch, 'bin')}:${process.env.PATH ?? ''}:/usr/sbin:/sbin`,
    };
    // Teardown first: `lab down` through this process, with this lab's dir and prefix.
    process.env.L2FED_LAB_DIR = labDir;
    process.env.L2FED_LAB_PREFIX = prefix;
    t.teardown(async () => {
      const { labDown } = await import('../../lab/down.js');
      await labDown({ quiet: true });
      await rm(scratch, { recursive: true, force: true });
    });
    const { readState } = await import('../../lab/state.js');
    const { labPaths } = await import('../../lab/paths.js');
    const { labKubectl } = await import('../../lab/kube.js');

    // `l2fed` (and so `node bin/l2fed.js`, rewritten to it) runs this checkout's source.
    await mkdir(join(scratch, 'bin'), { recursive: true });
    await writeFile(
      join(scratch, 'bin', 'l2fed'),
      `#!/bin/sh\nexec ${process.execPath} --import ${import.meta.resolve('tsx')} ${join(ROOT, 'cli', 'main.ts')} "$@"\n`,
      { mode: 0o755 },
    );
    await symlink(labKubectl(), join(scratch, 'bin', 'kubectl'));
    await symlink(join(ROOT, 'deploy'), join(scratch, 'deploy'));
    await writeFile(join(scratch, 'peering-athens.yaml'), PEERING_ATHENS);
    await writeFile(join(scratch, 'old-cdn.yaml'), OLD_CDN);

    const entries = DOC_COMMAND_CLASSES.map((e) => ({ doc: e.doc, is: e.is }));
    const runs = (cls: Runs['class']) =>
      entries.filter((e): e is { doc: string; is: Runs } => e.is.class === cls);

    const failures: string[] = [];
    const ran: Ran[] = [];
    /** Runs one line through bash; bounded by `timeoutMs`, killed with its children. */
    const sh = async (
      doc: string,
      line: string,
      o: {
        cwd?: string;
        interruptMs?: number;
        timeoutMs?: number;
        noAdminToken?: boolean;
        /** Called once the process runs; resolve to stop it (SIGTERM). */
        running?: (output: () => string, alive: () => boolean) => Promise<void>;
      } = {},
    ): Promise<Ran> => {
      const started = Date.now();
      const cwd = join(scratch, o.cwd ?? '.');
      await mkdir(cwd, { recursive: true });
      const { L2FED_SERVER: _s, L2FED_TOKEN_FILE: _f, ...noToken } = env;
      const p = execa('bash', ['-c', line], {
        cwd,
        env: { ...process.env, ...(o.noAdminToken ? noToken : env) },
        extendEnv: false,
        all: true,
        reject: false,
        timeout: o.timeoutMs ?? 90_000,
        forceKillAfterDelay: 2000,
      });
      const interrupt = o.interruptMs
        ? setTimeout(() => p.kill('SIGINT'), o.interruptMs)
        : undefined;
      if (o.running) {
        let out = '';
        let alive = true;
        p.all?.on('data', (d: Buffer) => (out += d.toString()));
        void p.finally(() => (alive = false));
        await o.running(
          () => out,
          () => alive,
        );
        p.kill('SIGTERM');
      }
      const r = await p;
      clearTimeout(interrupt);
      const done: Ran = {
        doc,
        run: line,
        exitCode: r.timedOut ? undefined : r.exitCode,
        output: r.all ?? '',
        ms: Date.now() - started,
      };
      ran.push(done);
      return done;
    };
    const lineOf = (e: { doc: string; is: { run?: string } }) =>
      e.is.run ??
      e.doc
        .replace(/^node bin\/l2fed\.js /, 'l2fed ')
        .replace(/\$\(node bin\/l2fed\.js /g, '$(l2fed ');
    const where = (doc: string) =>
      documentedCommands()
        .filter((c) => docKey(c.text) === doc)
        .map((c) => c.where)
        .join(', ');
    /** Checks a run against its entry; a miss is collected with the doc's file and line. */
    const judge = (e: { doc: string; is: Runs }, r: Ran) => {
      const why: string[] = [];
      const exit = e.is.interruptMs ? 0 : (e.is.exit ?? 0);
      if (r.exitCode === undefined) why.push(`timed out after ${r.ms} ms`);
      else if (r.exitCode !== exit && !(e.is.interruptMs && r.exitCode === 130))
        why.push(`exit ${r.exitCode}, documented ${exit}`);
      for (const re of e.is.expect ?? []) if (!re.test(r.output)) why.push(`no ${String(re)}`);
      if (why.length)
        failures.push(
          `${where(e.doc)}: ${e.doc}\n    ran: ${r.run}\n    → ${why.join('; ')}\n    ${r.output.trim().split('\n').slice(-12).join('\n    ')}`,
        );
      if (e.is.capture) {
        const m = e.is.capture.from.exec(r.output);
        if (m?.[1]) env[e.is.capture.name] = m[1];
      }
    };
    const runEntry = async (e: { doc: string; is: Runs }) => {
      if (e.is.setup) await setups[e.is.setup]();
      judge(
        e,
        await sh(e.doc, lineOf(e), {
          ...(e.is.cwd ? { cwd: e.is.cwd } : {}),
          ...(e.is.interruptMs ? { interruptMs: e.is.interruptMs } : {}),
          noAdminToken: e.is.noAdminToken ?? false,
        }),
      );
    };

    const setups: Record<NonNullable<Runs['setup']>, () => Promise<void>> = {
      // madrid exports old-cdn (its own network, so releasing it touches no pod).
      'old-cdn': async () => {
        const r = await sh('setup old-cdn', 'l2fed lab apply madrid old-cdn.yaml');
        t.is(r.exitCode, 0, r.output);
        const deadline = Date.now() + 30_000;
        while (Date.now() < deadline) {
          const n = await sh('setup old-cdn', 'l2fed get networks -o json');
          if (n.output.includes('"old-cdn"')) return;
          await sleep(500);
        }
        t.fail('old-cdn never got a VNI');
      },
      // A transit claim whose cluster is gone (as a crash between the broker's steps
      // leaves it): written with the broker's own NATS credentials.
      'orphan-transit': async () => {
        const st = (await readState(labPaths().state))!;
        const cred = JSON.parse(
          await readFile(join(labDir, 'nats', 'creds', 'broker.json'), 'utf8'),
        ) as Credential;
        const nc = await connect({ servers: st.natsUrl!, ...connectOptionsFor(cred) });
        try {
          const kv = await nc.jetstream().views.kv(BUCKETS.transit);
          const claim: TransitClaim = {
            cluster: 'oslo',
            claimedAt: new Date().toISOString(),
            nonce: runId(8),
          };
          await kv.put(KEYS.transit('100.64.3.9'), JSON.stringify(claim));
        } finally {
          await nc.close();
        }
      },
    };

    const pool = async <T>(items: T[], width: number, fn: (x: T) => Promise<void>) => {
      const queue = [...items];
      await Promise.all(
        Array.from({ length: width }, async () => {
          for (let x = queue.shift(); x !== undefined; x = queue.shift()) await fn(x);
        }),
      );
    };
    // Offline commands: one chain per folder (later ones build on earlier ones).
    const offline = async () => {
      const byDir = new Map<string, { doc: string; is: Runs }[]>();
      for (const e of runs('offline'))
        byDir.set(e.is.cwd ?? '.', [...(byDir.get(e.is.cwd ?? '.') ?? []), e]);
      await pool([...byDir.values()], 2, async (chain) => {
        for (const e of chain) await runEntry(e);
      });
    };

    const started = Date.now();
    const start = entries.find((e) => e.is.class === 'lab-up' && 'start' in e.is && e.is.start)!;
    const upLine = (start.is as { run: string }).run;
    // The offline chains run while the lab comes up.
    const [up] = await Promise.all([sh(start.doc, upLine, { timeoutMs: 150_000 }), offline()]);
    const upMs = Date.now() - started;
    t.is(up.exitCode, 0, `${upLine}\n${up.output}`);
    for (const re of (start.is as { expect?: RegExp[] }).expect ?? [])
      t.regex(up.output, re, `${where(start.doc)}: ${upLine}`);
    if (up.exitCode !== 0) return;
    const st = (await readState(labPaths().state))!;
    env.L2FED_SERVER = st.admin!.address;
    env.L2FED_TOKEN_FILE = st.admin!.tokenFile;
    env.KUBECONFIG = st.clusters.find((c) => c.id === 'madrid')!.kubeconfig!;
    env.GATEWAY_ATHENS = st.clusters.find((c) => c.id === 'athens')!.gatewayGrpc!;

    env.MTLS_PORT = String(await freePort());
    const readStarted = Date.now();
    // Daemons first (ready before the reads that use them), stopped after the reads.
    let stopDaemons!: () => void;
    const stopped = new Promise<void>((r) => (stopDaemons = r));
    const daemons = runs('lab-read').filter((e) => e.is.background);
    const readiness: Promise<void>[] = [];
    const daemonsDone = daemons.map((e) => {
      let isReady!: () => void;
      readiness.push(new Promise<void>((r) => (isReady = r)));
      return sh(e.doc, lineOf(e), {
        ...(e.is.cwd ? { cwd: e.is.cwd } : {}),
        noAdminToken: e.is.noAdminToken ?? false,
        timeoutMs: 150_000,
        running: async (out, alive) => {
          const deadline = Date.now() + 30_000;
          while (alive() && !e.is.background!.ready.test(out()) && Date.now() < deadline)
            await sleep(200);
          if (!e.is.background!.ready.test(out()))
            failures.push(
              `${where(e.doc)}: ${e.doc}\n    ran: ${lineOf(e)}\n    → never ready (${String(e.is.background!.ready)})\n    ${out().trim().split('\n').slice(-12).join('\n    ')}`,
            );
          isReady();
          await stopped;
        },
      }).then((r) => judge(e, r));
    });
    await Promise.all(readiness);
    await pool(
      runs('lab-read').filter((e) => !e.is.background),
      3,
      runEntry,
    );
    stopDaemons();
    await Promise.all(daemonsDone);
    const readMs = Date.now() - readStarted;
    const changeStarted = Date.now();
    for (const e of runs('lab-change')) await runEntry(e);
    const changeMs = Date.now() - changeStarted;
    const destroyStarted = Date.now();
    for (const e of runs('lab-destroy')) await runEntry(e);
    const destroyMs = Date.now() - destroyStarted;

    const count = (c: string) => entries.filter((e) => e.is.class === c).length;
    t.log(
      `lab up ${(upMs / 1000).toFixed(1)} s (offline alongside), reads ${(readMs / 1000).toFixed(1)} s, ` +
        `changes ${(changeMs / 1000).toFixed(1)} s, last ${(destroyMs / 1000).toFixed(1)} s; ` +
        `${ran.filter((r) => !r.doc.startsWith('setup')).length} documented commands run`,
    );
    t.log(
      [
        'lab-up',
        'offline',
        'lab-read',
        'lab-change',
        'lab-destroy',
        'excerpt',
        'daemon',
        'real-cluster',
        'own-lab',
        'dev',
        'not-here',
      ]
        .map((c) => `${c} ${count(c)}`)
        .join(', '),
    );
    const slow = [...ran].sort((a, b) => b.ms - a.ms).slice(0, 5);
    t.log(`slowest: ${slow.map((r) => `${r.run} ${(r.ms / 1000).toFixed(1)} s`).join('; ')}`);
    t.deepEqual(failures, [], `documented commands that failed:\n${failures.join('\n')}`);
    // The documented `lab down` left nothing of this lab.
    t.deepEqual(await listNamespaces(new ExecaRunner(), prefix), []);
    t.deepEqual((await findLeftovers(new ExecaRunner(), prefix)).processes, []);
    // Every documented command with a running class ran.
    const shouldRun = new Set(
      documentedCommands()
        .map((c) => docKey(c.text))
        .filter((k) =>
          ['offline', 'lab-read', 'lab-change', 'lab-destroy'].includes(classOf(k)?.class ?? ''),
        ),
    );
    t.deepEqual(
      [...shouldRun].filter((k) => !ran.some((r) => r.doc === k)),
      [],
      'documented commands that should have run',
    );
  },
);
