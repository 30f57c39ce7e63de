/**
 * Where the data plane lives: a runner plus the namespace commands run in. The gateway
 * process stays in the root namespace; every command names the namespace instead.
 */
import type { CommandRunner, RunOptions, RunResult } from '../lib/runner.js';

export interface Host {
  readonly runner: CommandRunner;
  /** Namespace of the data plane; undefined = the namespace the runner is in. */
  readonly netns: string | undefined;
}

/** A read: never changes state, so it is safe to repeat. */
export function read(
  host: Host,
  argv: readonly string[],
  opts: Omit<RunOptions, 'netns' | 'mutates'> = {},
): Promise<RunResult> {
  return host.runner.run(argv, { ...opts, netns: host.netns });
}

/** A change: marked `mutates` so tests can assert that a repeated apply runs none. */
export function change(
  host: Host,
  argv: readonly string[],
  opts: Omit<RunOptions, 'netns' | 'mutates'> = {},
): Promise<RunResult> {
  return host.runner.run(argv, { ...opts, netns: host.netns, mutates: true });
}
