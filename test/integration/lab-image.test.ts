/**
 * `l2fed lab up --image`: the examples federation with the broker, every gateway and every
 * agent running from the l2fed image (podman, runc), each with the user, capabilities and
 * devices its manifest gives it; the connectivity matrix must match the manifests as in
 * the source-tree lab, and `lab down` must remove the containers too. Own lab dir and
 * prefix, so it never touches a developer's lab.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { ExecaRunner } from '../../lib/runner.js';
import { listNamespaces } from '../../lib/netns.js';
import { findLeftovers } from '../../lib/cleanup.js';
import { listContainers } from '../../lib/containers.js';
import { imageName, imageUnmet } from '../fixtures/image.js';
import { testWith } from '../fixtures/privileges.js';
import { makeRunDir, runId } from '../fixtures/run-dir.js';

const test = testWith({
  netAdmin: true,
  tools: ['podman', 'ip', 'ping', 'wg', 'nats-server', 'ovs-vsctl'],
  check: imageUnmet,
});

const Inspect = z.array(
  z.object({
    Name: z.string(),
    EffectiveCaps: z.array(z.string()).nullable(),
    Config: z.object({ User: z.string() }),
    Mounts: z.array(z.object({ Destination: z.string() })).nullable(),
    HostConfig: z.object({
      Privileged: z.boolean(),
      NetworkMode: z.string(),
      ReadonlyRootfs: z.boolean(),
      Devices: z.array(z.object({ PathOnHost: z.string() })).nullable(),
    }),
  }),
);

test.serial(
  'lab up --image: the examples run from the image with the manifests’ privileges; matrix as declared; down removes the containers',
  async (t) => {
    t.timeout(300_000);
    const id = runId(4);
    const dir = await makeRunDir(`img${id}`);
    const prefix = `l2fed-ti${id}`;
    process.env.L2FED_LAB_DIR = join(dir.path, 'lab');
    process.env.L2FED_LAB_PREFIX = prefix;
    const { labUp } = await import('../../lab/up.js');
    const { labDown } = await import('../../lab/down.js');
    t.teardown(async () => {
      await labDown({ quiet: true });
      await dir.remove();
    });
    const runner = new ExecaRunner();
    const lines: string[] = [];
    const up = await labUp({
      manifests: 'deploy/examples',
      segmentKind: 'ovs',
      image: imageName(),
      out: (l) => lines.push(l),
    });
    t.is(up, 0, lines.join('\n'));
    t.true(
      lines.some((l) => /connectivity: all \d+ checks as declared/.test(l)),
      lines.join('\n'),
    );

    const clusters = ['athens', 'bristol', 'madrid'];
    const manifestMounts = await mountPathsInManifest();
    t.true(manifestMounts.gateway.length >= 4 && manifestMounts.agent.length >= 4);
    const expected = [
      `${prefix}-broker`,
      ...clusters.flatMap((c) => [`${prefix}-gateway-${c}`, `${prefix}-agent-${c}`]),
    ];
    const running = await listContainers(runner, prefix);
    t.deepEqual([...running].sort(), [...expected].sort());
    const r = await runner.run(['podman', 'inspect', ...expected], { timeoutMs: 60_000 });
    const byName = new Map(Inspect.parse(JSON.parse(r.stdout)).map((c) => [c.Name, c]));
    const broker = byName.get(`${prefix}-broker`)!;
    t.is(broker.Config.User, '1000:1000');
    t.deepEqual(broker.EffectiveCaps ?? [], []);
    t.true(broker.HostConfig.ReadonlyRootfs);
    for (const c of clusters) {
      const gw = byName.get(`${prefix}-gateway-${c}`)!;
      t.false(gw.HostConfig.Privileged, `${c} gateway not privileged`);
      t.is(gw.Config.User, '0:0');
      t.deepEqual([...(gw.EffectiveCaps ?? [])].sort(), ['CAP_NET_ADMIN', 'CAP_NET_RAW']);
      t.is(gw.HostConfig.NetworkMode, `ns:/run/netns/${prefix}-${c}`);
      t.deepEqual(
        (gw.HostConfig.Devices ?? []).map((d) => d.PathOnHost),
        ['/dev/net/tun'],
      );
      // Every path the manifest mounts is mounted there (tun is a device here).
      const mounted = (gw.Mounts ?? []).map((m) => m.Destination);
      for (const path of manifestMounts.gateway.filter((m) => m !== '/dev/net/tun')) {
        t.true(mounted.includes(path), `${c} gateway mounts ${path} (has ${mounted.join(' ')})`);
      }
      const agent = byName.get(`${prefix}-agent-${c}`)!;
      t.is(agent.Config.User, '0:0');
      t.deepEqual(agent.EffectiveCaps ?? [], []);
      t.true(agent.HostConfig.ReadonlyRootfs);
      // The manifest's mounts, less the API token (the lab agent reads a folder); the
      // NATS Secret is one file here.
      const agentMounted = (agent.Mounts ?? []).map((m) => m.Destination);
      for (const path of manifestMounts.agent.filter((m) => !m.startsWith('/var/run/secrets'))) {
        t.true(
          agentMounted.some((m) => m === path || m.startsWith(`${path}/`)),
          `${c} agent mounts ${path} (has ${agentMounted.join(' ')})`,
        );
      }
    }

    await labDown({ quiet: true });
    t.deepEqual(await listContainers(runner, prefix), [], 'lab down removes the containers');
    t.deepEqual(await listNamespaces(runner, prefix), []);
    const left = await findLeftovers(runner, prefix);
    t.deepEqual(left.processes, []);
    t.deepEqual(left.containers, []);
  },
);

/** mountPaths of the gateway and agent containers in deploy/kubernetes/cluster. */
async function mountPathsInManifest(): Promise<{ gateway: string[]; agent: string[] }> {
  const text = await readFile(
    new URL('../../deploy/kubernetes/cluster/deployment.yaml', import.meta.url),
    'utf8',
  );
  const Pod = z.object({
    spec: z.object({
      template: z.object({
        spec: z.object({
          containers: z.array(
            z.object({
              name: z.string(),
              volumeMounts: z.array(z.object({ mountPath: z.string() })),
            }),
          ),
        }),
      }),
    }),
  });
  const docs = parseAllDocuments(text).map((d) => Pod.safeParse(d.toJS() as unknown));
  const containers = docs.flatMap((r) => (r.success ? r.data.spec.template.spec.containers : []));
  const paths = (name: string) =>
    (containers.find((c) => c.name === name)?.volumeMounts ?? []).map((m) => m.mountPath);
  return { gateway: paths('gateway'), agent: paths('agent') };
}
