/**
 * A lab daemon that is started again when it dies (as a Kubernetes Deployment would
 * restart a crashed gateway or agent pod), until stop() is called.
 */
import { supervise, type SuperviseOptions, type SupervisedProcess } from '../lib/supervisor.js';

export class KeptProcess {
  private proc: SupervisedProcess | undefined;
  private stopped = false;
  restarts = 0;

  private constructor(
    private readonly options: SuperviseOptions,
    private readonly restartDelayMs: number,
    private readonly onRestart: (name: string, output: string) => void,
  ) {}

  /** Starts and waits until ready (throws when it never gets there). */
  static async start(
    options: SuperviseOptions,
    opts: { restartDelayMs?: number; onRestart?: (name: string, output: string) => void } = {},
  ): Promise<KeptProcess> {
    const k = new KeptProcess(options, opts.restartDelayMs ?? 1000, opts.onRestart ?? (() => {}));
    await k.spawn();
    return k;
  }

  get name(): string {
    return this.options.name;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  output(): string {
    return this.proc?.output() ?? '';
  }

  private async spawn(): Promise<void> {
    const proc = await supervise(this.options);
    this.proc = proc;
    void proc.exited.then(() => this.onExit(proc));
  }

  private onExit(proc: SupervisedProcess): void {
    if (this.stopped || proc !== this.proc) return;
    this.onRestart(this.name, proc.output().slice(-2000));
    setTimeout(() => {
      if (this.stopped) return;
      this.restarts++;
      this.spawn()
        .then(() => this.onRestart(this.name, 'restarted'))
        .catch((err: unknown) => {
          this.onRestart(this.name, `restart failed: ${String(err)}`);
          if (!this.stopped) setTimeout(() => void this.onExit(proc), this.restartDelayMs);
        });
    }, this.restartDelayMs);
  }

  /** Stops for good (SIGTERM, then SIGKILL). Idempotent. */
  async stop(graceMs = 3000): Promise<void> {
    this.stopped = true;
    await this.proc?.stop(graceMs);
  }
}
