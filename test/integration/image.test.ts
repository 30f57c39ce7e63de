/**
 * The container image (deploy/Dockerfile, built by scripts/image): each daemon's entry
 * point runs from it, and the gateway's capability set (NET_ADMIN + NET_RAW with
 * /dev/net/tun, not privileged) is enough for wireguard-go, VXLAN, nft and AF_PACKET in
 * a throwaway namespace, while dropping either capability breaks it. The member-cluster
 * manifest must give the gateway that same set. Containers are named l2fed-t… and
 * removed in teardown; `l2fed cleanup` finds any that a crash left.
 */
import anyTest, { type ExecutionContext } from 'ava';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { DEFAULT_VXLAN_PORT } from '../../gateway/config.js';
import { CONTAINER_PREFIX, PODMAN_GLOBAL, removeContainer } from '../../lib/containers.js';
import { cleanup, findLeftovers } from '../../lib/cleanup.js';
import { ExecaRunner } from '../../lib/runner.js';
import { podmanRunArgv, ROLE_SECURITY, type RoleSecurity } from '../../lab/containers.js';
import { imageName, imageUnmet } from '../fixtures/image.js';
import { createNetns } from '../fixtures/netns.js';
import { testWith } from '../fixtures/privileges.js';
import { runId } from '../fixtures/run-dir.js';

const test = testWith({ netAdmin: true, tools: ['podman'], check: imageUnmet });
const runner = new ExecaRunner();
const RUN_MS = 90_000;

async function run(argv: string[]) {
  return runner.run(argv, { allowFailure: true, timeoutMs: RUN_MS, mutates: true });
}

test('the image runs the CLI and each daemon entry point (--help, version) as uid 1000', async (t) => {
  const image = imageName();
  const name = `${CONTAINER_PREFIX}t${runId()}-smoke`;
  t.teardown(() => removeContainer(runner, name));
  const plain = (args: string[]) =>
    podmanRunArgv({ name, image, role: 'broker', args, security: ROLE_SECURITY.broker });
  const version = await run(plain(['version']));
  t.is(version.exitCode, 0, version.stderr);
  const pkg = z
    .object({ version: z.string() })
    .parse(JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')));
  t.true(version.stdout.startsWith(`l2fed ${pkg.version} `), version.stdout);
  const help = await run(plain(['--help']));
  t.is(help.exitCode, 0, help.stderr);
  for (const cmd of ['broker', 'agent', 'gateway']) {
    t.regex(help.stdout, new RegExp(`\\n  ${cmd}\\b`), `l2fed --help lists ${cmd}`);
    const r = await run(plain([cmd, '--help']));
    t.is(r.exitCode, 0, `${cmd} --help: ${r.stderr}`);
    t.regex(r.stdout, new RegExp(`l2fed ${cmd} run`), `${cmd} --help shows its run command`);
  }
  // Loads the gateway's whole module graph from dist/ and fails on the missing file.
  const bad = await run(plain(['gateway', 'run', '--config', '/nonexistent/gateway.yaml']));
  t.not(bad.exitCode, 0);
  t.regex(bad.stdout + bad.stderr, /nonexistent\/gateway\.yaml/);
  /** The image with another entrypoint, as the default user. */
  const withEntrypoint = (entrypoint: string, args: string[]) =>
    run([
      'podman',
      ...PODMAN_GLOBAL,
      'run',
      '--rm',
      '--name',
      name,
      '--ulimit',
      'nofile=1024:1024',
      '--ulimit',
      'nproc=1024:1024',
      '--entrypoint',
      entrypoint,
      image,
      ...args,
    ]);
  const id = await withEntrypoint('id', ['-u']);
  t.is(id.stdout.trim(), '1000', 'non-root by default');
  // `kubectl exec … -- l2fed …` (docs/install.md): the CLI is on the PATH, not only the entrypoint.
  const onPath = await withEntrypoint('l2fed', ['version']);
  t.is(onPath.exitCode, 0, onPath.stderr);
  t.true(onPath.stdout.startsWith(`l2fed ${pkg.version} `), onPath.stdout);
});

// What the gateway does with the kernel, in the container: wireguard-go on /dev/net/tun,
// wg, an address, a VXLAN device, an nft table, an AF_PACKET socket on it, ping.
const PROOF = `set -e
ip link set lo up
wireguard-go "$WG"
wg genkey > /tmp/wg.key
wg set "$WG" private-key /tmp/wg.key listen-port 51820
ip addr add 10.99.0.1/24 dev "$WG"
ip link set "$WG" up
ip link add vx42 type vxlan id 42 dstport ${DEFAULT_VXLAN_PORT} local 10.99.0.1 nolearning
ip link set vx42 up
nft add table inet l2fedcap
python3 -c 'import socket; s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(("vx42", 0))'
ping -c1 -W2 127.0.0.1 >/dev/null
echo "listen $(wg show "$WG" listen-port)"
`;

async function proveIn(
  t: ExecutionContext,
  security: RoleSecurity,
): Promise<{ exitCode: number; out: string }> {
  const netns = createNetns(runner);
  t.teardown(() => netns.dispose());
  const ns = await netns.add('cap');
  const id = runId();
  const name = `${CONTAINER_PREFIX}t${id}-gw`;
  t.teardown(() => removeContainer(runner, name));
  const r = await run(
    podmanRunArgv({
      name,
      image: imageName(),
      role: 'gateway',
      netns: ns,
      entrypoint: 'sh',
      args: ['-c', PROOF],
      env: { WG: `l2f${id}` },
      security,
    }),
  );
  return { exitCode: r.exitCode, out: `${r.stdout}\n${r.stderr}` };
}

test('the gateway container (NET_ADMIN + NET_RAW, /dev/net/tun, not privileged) runs wireguard-go, VXLAN, nft and AF_PACKET', async (t) => {
  const r = await proveIn(t, ROLE_SECURITY.gateway);
  t.is(r.exitCode, 0, r.out);
  t.regex(r.out, /listen 51820/);
});

test('the gateway container needs both capabilities: without NET_ADMIN or NET_RAW it fails', async (t) => {
  const gw = ROLE_SECURITY.gateway;
  const noAdmin = await proveIn(t, { ...gw, capAdd: gw.capAdd.filter((c) => c !== 'NET_ADMIN') });
  t.not(noAdmin.exitCode, 0, 'without NET_ADMIN');
  t.regex(noAdmin.out, /Operation not permitted|Permission denied/i);
  const noRaw = await proveIn(t, { ...gw, capAdd: gw.capAdd.filter((c) => c !== 'NET_RAW') });
  t.not(noRaw.exitCode, 0, 'without NET_RAW');
  t.regex(noRaw.out, /PermissionError|Operation not permitted/);
});

test('l2fed cleanup finds and removes l2fed- containers', async (t) => {
  const prefix = `${CONTAINER_PREFIX}t${runId()}`;
  const name = `${prefix}-left`;
  t.teardown(() => removeContainer(runner, name));
  const created = await run([
    'podman',
    ...PODMAN_GLOBAL,
    'create',
    '--name',
    name,
    imageName(),
    'version',
  ]);
  t.is(created.exitCode, 0, created.stderr);
  t.deepEqual((await findLeftovers(runner, prefix)).containers, [name]);
  const removed = await cleanup(runner, prefix);
  t.deepEqual(removed.containers, [name]);
  t.deepEqual((await findLeftovers(runner, prefix)).containers, []);
});

// Only the fields compared; zod strips the rest.
const SecurityContext = z.object({
  privileged: z.boolean().optional(),
  runAsUser: z.number().optional(),
  capabilities: z
    .object({ drop: z.array(z.string()).optional(), add: z.array(z.string()).optional() })
    .optional(),
});
const Container = z.object({
  name: z.string(),
  securityContext: SecurityContext,
  volumeMounts: z.array(z.object({ name: z.string(), mountPath: z.string() })).default([]),
});
const GatewayDeployment = z.object({
  metadata: z.object({ name: z.literal('l2fed-gateway') }),
  spec: z.object({
    template: z.object({
      spec: z.object({
        containers: z.array(Container),
        volumes: z.array(
          z.object({
            name: z.string(),
            hostPath: z.object({ path: z.string(), type: z.string() }).optional(),
          }),
        ),
      }),
    }),
  }),
});

anyTest(
  'the member-cluster manifest gives the gateway the capability set the image tests prove',
  async (t) => {
    const file = fileURLToPath(
      new URL('../../deploy/kubernetes/cluster/deployment.yaml', import.meta.url),
    );
    const docs = parseAllDocuments(await readFile(file, 'utf8')).map((d) => d.toJS() as unknown);
    const found = docs.map((d) => GatewayDeployment.safeParse(d)).find((r) => r.success);
    if (!found?.data) return t.fail('no Deployment l2fed-gateway in deployment.yaml');
    const spec = found.data.spec.template.spec;
    const gw = spec.containers.find((c) => c.name === 'gateway');
    const agent = spec.containers.find((c) => c.name === 'agent');
    if (!gw || !agent) return t.fail('containers gateway and agent');
    const sc = gw.securityContext;
    t.falsy(sc.privileged, 'not privileged');
    t.is(sc.runAsUser, 0);
    t.deepEqual(sc.capabilities?.drop, ['ALL']);
    t.deepEqual([...(sc.capabilities?.add ?? [])].sort(), [...ROLE_SECURITY.gateway.capAdd].sort());
    const tun = gw.volumeMounts.find((m) => m.mountPath === '/dev/net/tun');
    t.truthy(tun, 'the gateway mounts /dev/net/tun');
    const vol = spec.volumes.find((v) => v.name === tun?.name);
    t.deepEqual(vol?.hostPath, { path: '/dev/net/tun', type: 'CharDevice' });
    t.is(agent.securityContext.runAsUser, 0);
    t.deepEqual(agent.securityContext.capabilities?.drop, ['ALL']);
    t.falsy(agent.securityContext.capabilities?.add);
  },
);
