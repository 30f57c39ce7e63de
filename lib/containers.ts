/**
 * podman, as l2fed uses it: containers of the l2fed image run with runc and explicit
 * ulimits, named with the `l2fed-` prefix so `l2fed cleanup` finds what a crashed run
 * left. Which container gets which user, capabilities and devices is lab/containers.ts.
 */
import { execFileSync } from 'node:child_process';
import type { CommandRunner } from './runner.js';
import { NETNS_PREFIX } from './netns.js';

/** Names of l2fed's containers start with this (the same prefix as its namespaces). */
export const CONTAINER_PREFIX = NETNS_PREFIX;

/** Highest nproc limit runc is known to set on these machines (scripts/image says why). */
const NPROC_CAP = 16_384;

/**
 * `podman` global options: the runc runtime (crun fails on a hybrid cgroup layout, as
 * these machines have).
 */
export const PODMAN_GLOBAL = ['--runtime', 'runc'] as const;

/**
 * `--ulimit` options for `podman run`: nofile at the current limit, nproc at most
 * 16384. Needed because the containers get no CAP_SYS_RESOURCE and podman's defaults
 * lie above what this process may set. Reads `ulimit` through bash (Node has no getrlimit; dash lacks -u).
 */
export function containerUlimits(): string[] {
  const read = (flag: string): number => {
    try {
      const v = execFileSync('bash', ['-c', `ulimit ${flag}`], { encoding: 'utf8' }).trim();
      return v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v);
    } catch {
      return Number.NaN;
    }
  };
  const nofile = Math.min(read('-n'), 65_536);
  const hardProc = read('-Hu');
  const nproc = Math.min(Number.isNaN(hardProc) ? NPROC_CAP : hardProc, NPROC_CAP);
  const n = Number.isNaN(nofile) ? 1024 : nofile;
  return ['--ulimit', `nofile=${n}:${n}`, '--ulimit', `nproc=${nproc}:${nproc}`];
}

/** True when podman is on PATH. */
export function hasPodman(): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v podman'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Names of all containers (running or not) whose name starts with `prefix`. */
export async function listContainers(
  runner: CommandRunner,
  prefix = CONTAINER_PREFIX,
): Promise<string[]> {
  if (!hasPodman()) return [];
  const r = await runner.run(['podman', 'ps', '--all', '--format', '{{.Names}}'], {
    allowFailure: true,
    timeoutMs: 30_000,
  });
  if (r.exitCode !== 0) return [];
  return r.stdout
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s.startsWith(prefix));
}

/** Removes a container whatever its state (kills it first); a missing one is fine. */
export async function removeContainer(runner: CommandRunner, name: string): Promise<void> {
  await runner.run(['podman', ...PODMAN_GLOBAL, 'rm', '--force', '--time', '5', name], {
    allowFailure: true,
    mutates: true,
    timeoutMs: 60_000,
  });
}
