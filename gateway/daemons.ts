/**
 * Who keeps long-running data-plane daemons (wireguard-go) alive. The gateway asks a
 * launcher to start them but does not own their lifetime: closing or crashing a Gateway
 * object leaves them running, and the next Gateway re-adopts the device through its
 * control socket. The launcher's owner (the gateway process's main, the lab, a test)
 * decides when they stop.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { supervise, type SupervisedProcess } from '../lib/supervisor.js';

export interface DaemonSpec {
  /** Stable identity, e.g. "wireguard-go:l2fa"; one daemon per key. */
  readonly key: string;
  readonly argv: readonly string[];
  readonly netns: string | undefined;
  readonly env?: NodeJS.ProcessEnv;
}

export interface DaemonHandle {
  readonly pid: number | undefined;
  readonly running: boolean;
  /** Recent output, for error messages. */
  output(): string;
  stop(): Promise<void>;
}

/** Starts daemons and finds them again by key. Safe to call concurrently for distinct keys. */
export interface DaemonLauncher {
  start(spec: DaemonSpec): Promise<DaemonHandle>;
  /** The running daemon for key, if this launcher started one. */
  get(key: string): DaemonHandle | undefined;
}

/**
 * Launcher on lib/supervisor: daemons die with this Node process (never orphaned), and
 * outlive any number of Gateway objects created and dropped within it.
 */
export class SupervisedLauncher implements DaemonLauncher {
  private readonly procs = new Map<string, SupervisedProcess>();

  async start(spec: DaemonSpec): Promise<DaemonHandle> {
    const existing = this.get(spec.key);
    if (existing) return existing;
    const proc = await supervise({
      name: spec.key,
      argv: spec.argv,
      netns: spec.netns,
      env: spec.env,
    });
    this.procs.set(spec.key, proc);
    return proc;
  }

  get(key: string): DaemonHandle | undefined {
    const p = this.procs.get(key);
    return p?.running ? p : undefined;
  }

  /** Stops every daemon this launcher started (SIGTERM, then SIGKILL). Idempotent. */
  async stopAll(): Promise<void> {
    await Promise.all([...this.procs.values()].map((p) => p.stop()));
    this.procs.clear();
  }
}

/**
 * Launcher for daemons that must outlive the gateway *process* (a crash, an upgrade):
 * each daemon runs in its own session with output to `dir/KEY.log` and its pid in
 * `dir/KEY.pid`; Node's exit does not touch it. A restarted gateway with a launcher on
 * the same dir finds it again by pid file (and the tunnel by its control socket).
 * Whoever owns `dir` must call stop for each key when the data plane goes away.
 */
export class DetachedLauncher implements DaemonLauncher {
  constructor(private readonly dir: string) {}

  private path(key: string, ext: string): string {
    return join(this.dir, `${key.replace(/[^a-zA-Z0-9_.-]/g, '_')}.${ext}`);
  }

  async start(spec: DaemonSpec): Promise<DaemonHandle> {
    const existing = this.get(spec.key);
    if (existing) return existing;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const log = openSync(this.path(spec.key, 'log'), 'a', 0o600);
    const argv = spec.netns ? ['ip', 'netns', 'exec', spec.netns, ...spec.argv] : [...spec.argv];
    const child = spawn(argv[0]!, argv.slice(1), {
      detached: true,
      stdio: ['ignore', log, log],
      env: { ...process.env, LC_ALL: 'C', ...spec.env },
    });
    closeSync(log);
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!));
      child.once('error', reject);
    });
    child.unref();
    await writeFile(this.path(spec.key, 'pid'), `${pid}\n`, { mode: 0o600 });
    return this.handle(spec.key, pid);
  }

  get(key: string): DaemonHandle | undefined {
    let pid: number;
    try {
      pid = Number(readFileSync(this.path(key, 'pid'), 'utf8').trim());
    } catch {
      return undefined;
    }
    const h = this.handle(key, pid);
    return h.running ? h : undefined;
  }

  private handle(key: string, pid: number): DaemonHandle {
    const logPath = this.path(key, 'log');
    const alive = () => {
      try {
        process.kill(pid, 0);
        // A zombie (our own exited child) still answers signal 0; check its state.
        return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    return {
      pid,
      get running() {
        return alive();
      },
      output: () => {
        try {
          return readFileSync(logPath, 'utf8').slice(-8192);
        } catch {
          return '';
        }
      },
      stop: async () => {
        if (!alive()) return;
        process.kill(pid, 'SIGTERM');
        for (let i = 0; i < 60 && alive(); i++) await new Promise((r) => setTimeout(r, 50));
        if (alive()) process.kill(pid, 'SIGKILL');
      },
    };
  }
}
