/**
 * The one seam through which l2fed runs host commands (ip, wg, ovs-vsctl, bridge, …).
 * argv arrays only, never a shell string; LC_ALL=C so output parses the same everywhere;
 * a timeout on every call; failures become CommandError with argv, exit code and stderr.
 */
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

/** Runs one command. Implementations must be safe to call concurrently. */
export interface CommandRunner {
  run(argv: readonly string[], options?: RunOptions): Promise<RunResult>;
}

const DEFAULT_TIMEOUT_MS = 15_000;

/** The real runner, on execa. */
export class ExecaRunner implements CommandRunner {
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
  constructor(private readonly inner: CommandRunner) {}

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
