/**
 * `l2fed lab up --kubernetes` on bridge segments: the examples federation with one real
 * API server per cluster (etcd + kube-apiserver). The agents read their CRDs from it,
 * which holds the networks as the lab builds them (Linux bridges), the user's kubectl
 * sees the status the agent wrote, and `lab down` leaves no etcd, API server or
 * namespace, even after the runner was killed. The full scenario with --kubernetes (live
 * changes through the API server, outage, rotation) is lab-e2e.test.ts's second OVS run.
 * Runs in its own lab dir and namespace prefix, so it never touches a developer's lab.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ExecutionContext } from 'ava';
import { ExecaRunner } from '../../lib/runner.js';
import { listNamespaces } from '../../lib/netns.js';
import { findLeftovers } from '../../lib/cleanup.js';
import { controlPlaneUnmet } from '../../lib/kube-control-plane.js';
import { testWith } from '../fixtures/privileges.js';
import { runId } from '../fixtures/run-dir.js';
import { processesMentioning } from '../fixtures/proc-scan.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'ping', 'wg', 'wireguard-go', 'nats-server', 'bridge', 'openssl'],
  check: controlPlaneUnmet,
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A lab of its own: dir and namespace prefix named alike (/tmp/l2fed-tkXXXX), so even
 * after a killed runner `lab down` finds its node daemons by the dir in their argv. The
 * teardown is registered before anything can fail.
 */
function ownLab(t: ExecutionContext): { prefix: string; labDir: string } {
  const prefix = `l2fed-tk${runId(4)}`;
  const labDir = join(tmpdir(), prefix);
  process.env.L2FED_LAB_DIR = labDir;
  process.env.L2FED_LAB_PREFIX = prefix;
  t.teardown(async () => {
    const { labDown } = await import('../../lab/down.js');
    await labDown({ quiet: true });
  });
  return { prefix, labDir };
}

test.serial(
  'lab up --kubernetes, bridge segments: agents read their API servers, which hold the networks as Linux bridges, matrix as declared, kubectl sees the status, clean down',
  async (t) => {
    t.timeout(240_000);
    const { prefix, labDir } = ownLab(t);
    const { labUp } = await import('../../lab/up.js');
    const { labDown } = await import('../../lab/down.js');
    const { readState } = await import('../../lab/state.js');
    const { labPaths } = await import('../../lab/paths.js');
    const { labKubectl } = await import('../../lab/kube.js');
    const { l2fedArgv } = await import('../../lab/components.js');
    const runner = new ExecaRunner();
    const lines: string[] = [];
    const started = Date.now();
    const up = await labUp({
      manifests: 'deploy/examples',
      segmentKind: 'bridge',
      kubernetes: true,
      healthMs: 1000,
      out: (l) => lines.push(l),
    });
    t.is(up, 0, lines.join('\n'));
    t.true(lines.some((l) => /connectivity: all \d+ checks as declared/.test(l)));
    t.log(`up and matrix with 3 API servers in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    t.log(lines.find((l) => /API servers ready in/.test(l))?.trim() ?? 'no API server timing');
    for (const c of ['athens', 'bristol', 'madrid']) {
      t.true(
        lines.some((l) => l.includes(`cluster ${c}: agent reading its API server https://`)),
        `${c}'s agent reads its API server`,
      );
    }

    const st = (await readState(labPaths().state))!;
    t.true(st.kubernetes);
    // The README's command: the path comes from `l2fed lab kubeconfig`.
    const printed = await runner.run(l2fedArgv('lab', 'kubeconfig', 'madrid'), {
      env: { L2FED_LAB_DIR: labPaths().dir, L2FED_LAB_PREFIX: prefix },
      timeoutMs: 30_000,
    });
    const madridConfig = printed.stdout.trim();
    t.is(madridConfig, st.clusters.find((c) => c.id === 'madrid')!.kubeconfig!);
    const kubectl = (config: string, ...args: string[]) =>
      runner.run([labKubectl(), '--kubeconfig', config, ...args], { timeoutMs: 30_000 });

    // The agent writes each network's status (VNI from the broker, MTU, members).
    let fednet = '';
    const fednetDeadline = Date.now() + 30_000;
    for (;;) {
      fednet = (await kubectl(madridConfig, 'get', 'fednet')).stdout;
      const rows = fednet.split('\n').slice(1).filter(Boolean);
      const settled = rows.filter((r) => /^\S+\s+\d+\s+\d+\s+\S*bristol/.test(r));
      if (rows.length === 2 && settled.length === 2) break;
      if (Date.now() > fednetDeadline) break;
      await sleep(500);
    }
    t.log(`kubectl get fednet (madrid):\n${fednet}`);
    t.regex(fednet, /^NAME\s+VNI\s+MTU\s+MEMBERS/m);
    t.regex(fednet, /^cdn\s+\d+\s+\d+\s+\S*athens\S*bristol\S*madrid/m);
    t.regex(fednet, /^telemetry\s+\d+\s+\d+\s+\S*bristol\S*madrid/m);

    // Bridge mode builds Linux bridges, so the API server holds what the lab built:
    // madrid's OVS networks of the examples as Linux bridges of the same name (the
    // VLAN dropped), as its folder copy has them (lab/segment-rewrite.ts).
    const segments = JSON.parse(
      (await kubectl(madridConfig, 'get', 'fednet', '-o', 'json')).stdout,
    ) as { items: { metadata: { name: string }; spec: { segment: unknown } }[] };
    t.deepEqual(Object.fromEntries(segments.items.map((i) => [i.metadata.name, i.spec.segment])), {
      cdn: { linuxBridge: 'br-cdn' },
      telemetry: { linuxBridge: 'br-lab' },
    });

    t.is(await labDown({ quiet: true }), 0);
    t.deepEqual(await listNamespaces(runner, prefix), []);
    const left = await findLeftovers(runner, prefix);
    t.deepEqual(left.processes, []);
    t.deepEqual(await processesMentioning(labDir), []);
    t.deepEqual(await readState(labPaths().state), undefined);
  },
);

test.serial(
  'lab up --kubernetes: after the runner is killed (SIGKILL), lab down still finds and stops every etcd and kube-apiserver',
  async (t) => {
    t.timeout(180_000);
    const { prefix, labDir } = ownLab(t);
    const { labUp } = await import('../../lab/up.js');
    const { labDown } = await import('../../lab/down.js');
    const { readState } = await import('../../lab/state.js');
    const { labPaths } = await import('../../lab/paths.js');
    const runner = new ExecaRunner();
    const lines: string[] = [];
    const up = await labUp({
      manifests: 'deploy/examples',
      generate: { clusters: 2, pods: 1 },
      segmentKind: 'bridge',
      kubernetes: true,
      verify: false,
      healthMs: 1000,
      out: (l) => lines.push(l),
    });
    t.is(up, 0, lines.join('\n'));
    const st = (await readState(labPaths().state))!;
    process.kill(st.runnerPid, 'SIGKILL');
    await sleep(500);
    const planes = (await findLeftovers(runner, prefix)).processes.filter((p) =>
      /\/(etcd|kube-apiserver) /.test(p.command),
    );
    t.is(planes.length, 4, 'two etcd and two kube-apiserver outlive a killed runner');
    t.is(await labDown({ quiet: true }), 0);
    t.deepEqual((await findLeftovers(runner, prefix)).processes, []);
    t.deepEqual(await processesMentioning(labDir), []);
    t.deepEqual(await listNamespaces(runner, prefix), []);
  },
);
