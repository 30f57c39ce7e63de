/**
 * Starts and supervises long-running daemons (nats-server, wireguard-go, ovs-vswitchd).
 * Every child is registered so that it is killed when this process exits, even on a
 * crash or a failed test: a daemon must never outlive the run that started it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { ProcessStartError } from './errors.js';

export interface SuperviseOptions {
  /** Short label for messages, for example "nats-server". */
  readonly name: string;
  readonly argv: readonly string[];
  /** Run inside this network namespace (via `ip netns exec`, which execs in place). */
  readonly netns?: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Resolves start() once stdout+stderr so far matches. Omit to resolve on spawn. */
  readonly readyWhen?: RegExp;
  /** Default 10 s. */
  readonly readyTimeoutMs?: number;
  /** Output kept for error messages and `output()`; default 64 KiB. */
  readonly keepBytes?: number;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous; process.kill is.
  process.on('exit', () => {
    for (const child of live) {
      try {
        child.kill('SIGKILL');
      } catch {
        // already gone
      }
    }
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    // Without a listener Node would die of the signal and skip the 'exit' hook, so exit
    // explicitly -- unless the process handles the signal itself (a daemon's graceful
    // stop, the lab runner's teardown): then that handler exits, and the hook runs then.
    // Prepended, so it runs before a `once` listener has removed itself.
    const onSignal = () => {
      if (process.listeners(sig).some((l) => l !== onSignal)) return;
      process.exit(128 + (sig === 'SIGINT' ? 2 : 15));
    };
    process.prependListener(sig, onSignal);
  }
}

/** A started daemon. stop() is idempotent and safe to call concurrently. */
export class SupervisedProcess {
  private buf = '';
  private exitCode: number | null | undefined;
  readonly exited: Promise<number | null>;

  constructor(
    readonly options: SuperviseOptions,
    private readonly child: ChildProcess,
  ) {
    const keep = options.keepBytes ?? 64 * 1024;
    const onData = (d: Buffer) => {
      this.buf += d.toString('utf8');
      if (this.buf.length > keep) this.buf = this.buf.slice(-keep);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        live.delete(child);
        this.exitCode = code ?? (signal ? null : code);
        resolve(this.exitCode);
      });
      child.once('error', () => {
        live.delete(child);
        this.exitCode = null;
        resolve(null);
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** True until the process has exited. */
  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** Recent combined stdout+stderr. */
  output(): string {
    return this.buf;
  }

  /** SIGTERM, then SIGKILL after graceMs. Resolves when the process is gone. */
  async stop(graceMs = 3000): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Kill at once, as a crash would. */
  async kill(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGKILL');
    await this.exited;
  }
}

/** Starts a daemon and waits until it reports ready. Kills it if it does not. */
export async function supervise(options: SuperviseOptions): Promise<SupervisedProcess> {
  installExitHook();
  const full = options.netns
    ? ['ip', 'netns', 'exec', options.netns, ...options.argv]
    : [...options.argv];
  const [file, ...args] = full as [string, ...string[]];
  const child = spawn(file, args, {
    cwd: options.cwd,
    env: { ...process.env, LC_ALL: 'C', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  const proc = new SupervisedProcess(options, child);
  const timeoutMs = options.readyTimeoutMs ?? 10_000;

  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  const ready = new Promise<void>((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      if (!options.readyWhen || options.readyWhen.test(proc.output())) return resolve();
      if (!proc.running) {
        return reject(
          new ProcessStartError(options.name, 'exited before it was ready', proc.output()),
        );
      }
      if (Date.now() - started > timeoutMs) {
        return reject(
          new ProcessStartError(options.name, `not ready after ${timeoutMs} ms`, proc.output()),
        );
      }
      setTimeout(tick, 25);
    };
    tick();
  });
  try {
    await Promise.race([
      ready,
      spawnError.then((e) => {
        throw new ProcessStartError(options.name, `could not start: ${e.message}`, '', {
          cause: e,
        });
      }),
    ]);
  } catch (err) {
    await proc.kill();
    throw err;
  }
  return proc;
}
