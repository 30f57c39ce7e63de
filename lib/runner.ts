/**
 * The one seam through which l2fed runs host commands (ip, wg, ovs-vsctl, bridge, …).
 * argv arrays only, never a shell string; LC_ALL=C so output parses the same everywhere;
 * a timeout on every call; failures become CommandError with argv, exit code and stderr.
 */
import { spawn as spawnChild } from 'node:child_process';
import { execa, ExecaError } from 'execa';
import { CommandError } from './errors.js';

export interface RunOptions {
  /** Run inside this network namespace (via `ip netns exec`). */
  readonly netns?: string;
  /** Milliseconds before the command is killed; default 15 s. */
  readonly timeoutMs?: number;
  /** Text written to stdin. */
  readonly input?: string;
  /**
   * True when the command changes host state. Lets tests assert that a repeated,
   * idempotent operation ran no mutating command. Defaults to false (a read).
   */
  readonly mutates?: boolean;
  /** Return a failed result instead of throwing (for probes like `ip link show X`). */
  readonly allowFailure?: boolean;
  /** Extra environment variables (LC_ALL=C is always set). */
  readonly env?: Readonly<Record<string, string>>;
}

export interface RunResult {
  readonly argv: readonly string[];
  readonly stdout: string;
  readonly stderr: string;
  readonly exitCode: number;
}

/** A long-lived process started by CommandRunner.spawn, talking over stdin/stdout. */
export interface SpawnedProcess {
  readonly pid: number | undefined;
  readonly stdin: NodeJS.WritableStream;
  readonly stdout: NodeJS.ReadableStream;
  readonly stderr: NodeJS.ReadableStream;
  /** Resolves once the process has ended (exit code; null when a signal ended it). */
  readonly exited: Promise<number | null>;
  /** Ends it (SIGTERM). Idempotent. */
  kill(): void;
}

/** Runs one command. Implementations must be safe to call concurrently. */
export interface CommandRunner {
  run(argv: readonly string[], options?: RunOptions): Promise<RunResult>;
  /**
   * Starts one long-lived process (a helper started once, not per call) with piped
   * stdio; optional: without it, callers fall back to one-shot commands. Throws when
   * the process cannot be started.
   */
  spawn?(argv: readonly string[], options?: Pick<RunOptions, 'netns' | 'env'>): SpawnedProcess;
}

const DEFAULT_TIMEOUT_MS = 15_000;

/** The real runner, on execa. */
export class ExecaRunner implements CommandRunner {
  spawn(argv: readonly string[], options: Pick<RunOptions, 'netns' | 'env'> = {}): SpawnedProcess {
    return spawnProcess(argv, options);
  }

  async run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    if (argv.length === 0) throw new TypeError('runner: empty argv');
    const full = options.netns ? ['ip', 'netns', 'exec', options.netns, ...argv] : [...argv];
    const [file, ...args] = full as [string, ...string[]];
    try {
      const r = await execa(file, args, {
        env: { ...options.env, LC_ALL: 'C' },
        timeout: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
        input: options.input,
        reject: !options.allowFailure,
        stripFinalNewline: true,
      });
      if (r.timedOut) {
        throw new CommandError(argv, r.exitCode, String(r.stderr), true, { netns: options.netns });
      }
      return {
        argv,
        stdout: String(r.stdout),
        stderr: String(r.stderr),
        exitCode: r.exitCode ?? -1,
      };
    } catch (err) {
      if (err instanceof CommandError) throw err;
      if (err instanceof ExecaError) {
        throw new CommandError(argv, err.exitCode, String(err.stderr ?? ''), err.timedOut, {
          cause: err,
          netns: options.netns,
        });
      }
      throw new CommandError(argv, undefined, '', false, { cause: err, netns: options.netns });
    }
  }
}

/** Node's child_process behind CommandRunner.spawn (execa is for one-shot runs). */
export function spawnProcess(
  argv: readonly string[],
  options: Pick<RunOptions, 'netns' | 'env'> = {},
): SpawnedProcess {
  if (argv.length === 0) throw new TypeError('runner: empty argv');
  const full = options.netns ? ['ip', 'netns', 'exec', options.netns, ...argv] : [...argv];
  const [file, ...args] = full as [string, ...string[]];
  const child = spawnChild(file, args, {
    env: { ...process.env, ...options.env, LC_ALL: 'C' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  // A helper never keeps Node alive on its own; it exits when its stdin closes.
  child.unref();
  for (const s of [child.stdin, child.stdout, child.stderr])
    (s as { unref?: () => void }).unref?.();
  const exited = new Promise<number | null>((resolve) => {
    child.once('exit', (code) => resolve(code));
    child.once('error', () => resolve(-1));
  });
  return {
    pid: child.pid,
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill();
    },
  };
}

/** One call seen by a RecordingRunner. */
export interface RecordedCall {
  readonly argv: readonly string[];
  readonly netns: string | undefined;
  readonly mutates: boolean;
}

/**
 * Wraps another runner and records every call, so tests can assert what ran
 * (for example: a second apply of the same config ran zero mutating commands).
 */
export class RecordingRunner implements CommandRunner {
  readonly calls: RecordedCall[] = [];
  /** Present when the inner runner can spawn; a spawn is recorded like a run. */
  readonly spawn?: (
    argv: readonly string[],
    options?: Pick<RunOptions, 'netns' | 'env'>,
  ) => SpawnedProcess;

  constructor(private readonly inner: CommandRunner) {
    const spawn = inner.spawn?.bind(inner);
    if (spawn) {
      this.spawn = (argv, options = {}) => {
        this.calls.push({ argv: [...argv], netns: options.netns, mutates: false });
        return spawn(argv, options);
      };
    }
  }

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    this.calls.push({ argv: [...argv], netns: options.netns, mutates: options.mutates ?? false });
    return this.inner.run(argv, options);
  }

  /** Calls marked `mutates: true`, as space-joined strings for readable assertions. */
  mutatingCommands(): string[] {
    return this.calls.filter((c) => c.mutates).map((c) => c.argv.join(' '));
  }

  clear(): void {
    this.calls.length = 0;
  }
}
