/**
 * How the l2fed image's daemons run as podman containers, with exactly the user,
 * capabilities and devices that deploy/kubernetes gives them:
 *
 * - broker: uid 1000, no capabilities, read-only root (broker/deployment.yaml);
 * - agent: uid 0 (only to open the gateway's 0600 socket), no capabilities, read-only
 *   root (cluster/deployment.yaml, container agent);
 * - gateway: uid 0 with NET_ADMIN (links, addresses, routes, nft, wireguard config) and
 *   NET_RAW (AF_PACKET probe frames, ping), plus /dev/net/tun for wireguard-go. Not
 *   privileged: test/integration/image.test.ts shows this set is enough and that each of
 *   the two capabilities is needed.
 *
 * A container joins an existing network namespace (`--network ns:/run/netns/NAME`), so
 * the lab's topology is unchanged; only the process runs from the image.
 */
import { mkdirSync } from 'node:fs';
import { chown, mkdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CONTAINER_PREFIX, PODMAN_GLOBAL, containerUlimits } from '../lib/containers.js';

export type ContainerRole = 'broker' | 'agent' | 'gateway';

export interface RoleSecurity {
  /** `--user`: uid[:gid]. */
  readonly user: string;
  /** Capabilities added after dropping all. */
  readonly capAdd: readonly string[];
  /** Host devices passed in. */
  readonly devices: readonly string[];
  readonly readOnlyRoot: boolean;
}

/** The manifests' security context per role (see the header). */
export const ROLE_SECURITY: Readonly<Record<ContainerRole, RoleSecurity>> = {
  broker: { user: '1000:1000', capAdd: [], devices: [], readOnlyRoot: true },
  agent: { user: '0:0', capAdd: [], devices: [], readOnlyRoot: true },
  gateway: {
    user: '0:0',
    capAdd: ['NET_ADMIN', 'NET_RAW'],
    devices: ['/dev/net/tun'],
    readOnlyRoot: false,
  },
};

export interface Mount {
  readonly host: string;
  readonly container: string;
  readonly readOnly?: boolean;
}

export interface ContainerSpec {
  /** Container name; must start with CONTAINER_PREFIX so cleanup finds it. */
  readonly name: string;
  readonly image: string;
  readonly role: ContainerRole;
  /** Network namespace to join (a name under /run/netns); the host's when omitted. */
  readonly netns?: string;
  readonly mounts?: readonly Mount[];
  /** Arguments after the image's entrypoint (`tini -- node /app/bin/l2fed.js`). */
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Replace the entrypoint (tests run a shell); args then follow it. */
  readonly entrypoint?: string;
  /** Override the role's security (tests prove a smaller set fails). */
  readonly security?: RoleSecurity;
}

/**
 * argv of `podman run` for one container, in the foreground (`--rm`: the container goes
 * when its process ends). Throws a TypeError when the name lacks the l2fed prefix.
 */
export function podmanRunArgv(spec: ContainerSpec): string[] {
  if (!spec.name.startsWith(CONTAINER_PREFIX)) {
    throw new TypeError(
      `container name "${spec.name}" must start with "${CONTAINER_PREFIX}" (so l2fed cleanup finds it)`,
    );
  }
  const sec = spec.security ?? ROLE_SECURITY[spec.role];
  // --replace: a container of the same name left by a crash is removed first.
  const argv = ['podman', ...PODMAN_GLOBAL, 'run', '--rm', '--replace', '--name', spec.name];
  argv.push('--network', spec.netns ? `ns:/run/netns/${spec.netns}` : 'host');
  argv.push(...containerUlimits());
  argv.push('--user', sec.user, '--cap-drop', 'ALL');
  if (sec.capAdd.length) argv.push('--cap-add', sec.capAdd.join(','));
  for (const d of sec.devices) argv.push('--device', d);
  argv.push('--security-opt', 'no-new-privileges');
  if (sec.readOnlyRoot) argv.push('--read-only');
  for (const m of spec.mounts ?? []) {
    argv.push('--volume', `${m.host}:${m.container}${m.readOnly ? ':ro' : ''}`);
  }
  for (const [k, v] of Object.entries(spec.env ?? {})) argv.push('--env', `${k}=${v}`);
  if (spec.entrypoint) argv.push('--entrypoint', spec.entrypoint);
  argv.push(spec.image, ...spec.args);
  return argv;
}

/** Where the broker's manifest mounts its files (deploy/kubernetes/broker/deployment.yaml). */
export const BROKER_MOUNTS = {
  config: '/etc/l2fed/config/broker.yaml',
  natsCredentials: '/etc/l2fed/nats/credentials.json',
  adminToken: '/etc/l2fed/admin/token',
} as const;

/** uid/gid the broker runs as (the image's "node" user, as in its manifest). */
const BROKER_UID = 1000;

export interface LabContainerContext {
  readonly image: string;
  /** The lab's prefix (l2fed-lab…): container names start with it, so lab down finds them. */
  readonly prefix: string;
}

/** A file or folder as the host sees it and as the daemon sees it. */
export interface Placed {
  readonly host: string;
  readonly seen: string;
}

/** Where one cluster's gateway and agent find their files, and the mounts behind them. */
export interface ClusterFiles {
  readonly gatewayConfig: Placed;
  readonly agentConfig: Placed;
  readonly gatewaySocket: Placed;
  readonly privateKeyFile: Placed;
  readonly cacheDir: Placed;
  readonly statusDir: Placed;
  readonly natsCredentials: Placed;
  /** The cluster's manifest folder (the agent's folder source). */
  readonly manifests: Placed;
  readonly ovsDbSocket?: Placed;
  /** wireguard-go's pid and log files when the gateway runs from the source tree. */
  readonly daemonsDir: Placed;
  readonly gatewayMounts: readonly Mount[];
  readonly agentMounts: readonly Mount[];
}

/** The member-cluster manifest's mount paths (deploy/kubernetes/cluster). */
const CLUSTER_MOUNTS = {
  config: '/etc/l2fed/config',
  nats: '/etc/l2fed/nats',
  run: '/run/l2fed',
  state: '/var/lib/l2fed',
  agentCache: '/var/lib/l2fed/agent',
  openvswitch: '/var/run/openvswitch',
  // Lab only: in a cluster the agent reads the Kubernetes API instead of a folder.
  manifests: '/etc/l2fed/manifests',
} as const;

/**
 * Places one cluster's files and creates their folders. From the source tree the daemons
 * see the lab's run folder as it is (runDir/gateway.yaml, runDir/gateway.sock, …). In
 * containers they see the paths the member-cluster manifest mounts (/etc/l2fed/config,
 * /etc/l2fed/nats, /run/l2fed, /var/lib/l2fed, /var/run/openvswitch), backed by folders
 * of runDir. `ovsDbSocket` must be named db.sock (as OVS names it) to be mounted.
 */
export async function placeClusterFiles(o: {
  runDir: string;
  natsCredentials: string;
  manifests: string;
  ovsDbSocket?: string;
  inContainers: boolean;
}): Promise<ClusterFiles> {
  const d = o.runDir;
  if (!o.inContainers) {
    const same = (p: string): Placed => ({ host: p, seen: p });
    await mkdir(d, { recursive: true });
    return {
      gatewayConfig: same(join(d, 'gateway.yaml')),
      agentConfig: same(join(d, 'agent.yaml')),
      gatewaySocket: same(join(d, 'gateway.sock')),
      privateKeyFile: same(join(d, 'wg.key')),
      cacheDir: same(join(d, 'cache')),
      statusDir: same(join(d, 'status')),
      natsCredentials: same(o.natsCredentials),
      manifests: same(o.manifests),
      ...(o.ovsDbSocket ? { ovsDbSocket: same(o.ovsDbSocket) } : {}),
      daemonsDir: same(join(d, 'daemons')),
      gatewayMounts: [],
      agentMounts: [],
    };
  }
  const host = {
    gatewayConfig: join(d, 'gateway-config'),
    agentConfig: join(d, 'agent-config'),
    run: join(d, 'run'),
    state: join(d, 'state'),
    agentCache: join(d, 'state', 'agent'),
  };
  for (const dir of Object.values(host)) await mkdir(dir, { recursive: true, mode: 0o700 });
  if (o.ovsDbSocket && basename(o.ovsDbSocket) !== 'db.sock') {
    throw new Error(`OVS db socket ${o.ovsDbSocket}: expected a file named db.sock to mount`);
  }
  const M = CLUSTER_MOUNTS;
  return {
    gatewayConfig: {
      host: join(host.gatewayConfig, 'gateway.yaml'),
      seen: `${M.config}/gateway.yaml`,
    },
    agentConfig: { host: join(host.agentConfig, 'agent.yaml'), seen: `${M.config}/agent.yaml` },
    gatewaySocket: { host: join(host.run, 'gateway.sock'), seen: `${M.run}/gateway.sock` },
    privateKeyFile: { host: join(host.state, 'wg.key'), seen: `${M.state}/wg.key` },
    cacheDir: { host: host.agentCache, seen: M.agentCache },
    statusDir: { host: join(host.agentCache, 'status'), seen: `${M.agentCache}/status` },
    natsCredentials: { host: o.natsCredentials, seen: `${M.nats}/creds.json` },
    manifests: { host: o.manifests, seen: M.manifests },
    ...(o.ovsDbSocket
      ? { ovsDbSocket: { host: o.ovsDbSocket, seen: `${M.openvswitch}/db.sock` } }
      : {}),
    daemonsDir: { host: join(host.state, 'daemons'), seen: `${M.state}/daemons` },
    gatewayMounts: [
      { host: host.gatewayConfig, container: M.config, readOnly: true },
      { host: host.state, container: M.state },
      { host: host.run, container: M.run },
      ...(o.ovsDbSocket ? [{ host: dirname(o.ovsDbSocket), container: M.openvswitch }] : []),
    ],
    agentMounts: [
      { host: host.agentConfig, container: M.config, readOnly: true },
      { host: o.natsCredentials, container: `${M.nats}/creds.json`, readOnly: true },
      { host: host.run, container: M.run },
      { host: host.agentCache, container: M.agentCache },
      { host: o.manifests, container: M.manifests, readOnly: true },
    ],
  };
}

/**
 * `podman run` for the lab's broker: host network (the lab's NATS and admin API are on
 * loopback), uid 1000, its three files mounted where the manifest mounts them. Makes
 * those files readable by uid 1000 (what fsGroup does in Kubernetes). `args` are the
 * broker's, with the container paths of BROKER_MOUNTS.
 */
export async function labBrokerArgv(
  ctx: LabContainerContext,
  files: { config: string; natsCredentials: string; adminToken: string },
  args: readonly string[],
): Promise<string[]> {
  for (const f of Object.values(files)) await chown(f, BROKER_UID, BROKER_UID);
  return podmanRunArgv({
    name: `${ctx.prefix}-broker`,
    image: ctx.image,
    role: 'broker',
    mounts: [
      { host: files.config, container: BROKER_MOUNTS.config, readOnly: true },
      { host: files.natsCredentials, container: BROKER_MOUNTS.natsCredentials, readOnly: true },
      { host: files.adminToken, container: BROKER_MOUNTS.adminToken, readOnly: true },
    ],
    args,
  });
}

/**
 * `podman run` for a cluster's gateway: inside the cluster's namespace (so its config
 * names no netns), NET_ADMIN + NET_RAW and /dev/net/tun, the manifest's mounts; and
 * /var/run/wireguard (lab only), so the lab's checks (`wg show` from the host) see
 * wireguard-go's sockets.
 */
export function labGatewayArgv(
  ctx: LabContainerContext,
  cluster: { id: string; ns: string },
  files: ClusterFiles,
  args: readonly string[],
): string[] {
  mkdirSync(WG_SOCKET_DIR, { recursive: true });
  return podmanRunArgv({
    name: `${ctx.prefix}-gateway-${cluster.id}`,
    image: ctx.image,
    role: 'gateway',
    netns: cluster.ns,
    mounts: [...files.gatewayMounts, { host: WG_SOCKET_DIR, container: WG_SOCKET_DIR }],
    args,
  });
}

/**
 * `podman run` for a cluster's agent: host network (it reaches the lab's NATS on
 * loopback and the gateway through its unix socket, as in the gateway's pod), uid 0 with
 * no capabilities, read-only root, the manifest's mounts plus the manifest folder.
 */
export function labAgentArgv(
  ctx: LabContainerContext,
  cluster: { id: string },
  files: ClusterFiles,
  args: readonly string[],
): string[] {
  return podmanRunArgv({
    name: `${ctx.prefix}-agent-${cluster.id}`,
    image: ctx.image,
    role: 'agent',
    mounts: files.agentMounts,
    args,
  });
}

const WG_SOCKET_DIR = '/var/run/wireguard';
