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
  const argv = ['podman', ...PODMAN_GLOBAL, 'run', '--rm', '--name', spec.name];
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
