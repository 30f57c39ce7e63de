/**
 * Desired state from a GitOps folder (standalone agents and the lab). Reacts to files being
 * added, edited and removed: fs.watch on the folder, debounced, plus a periodic resync as a
 * safety net for the events fs.watch can miss (network filesystems, editors that swap
 * directories, ConfigMap volume updates). An invalid folder is reported with file, field
 * and reason, and never replaces the last good state.
 */
import { watch, type FSWatcher } from 'node:fs';
import { evaluateScan, scanFolder } from './folder-scan.js';
import { ManifestError, ManifestFolderError } from './errors.js';
import { SourceEmitter, type DesiredStateSource, type SourceListener } from './source.js';
import type { DesiredState } from './desired-state.js';

export interface FolderSourceOptions {
  /** The cluster's manifest folder (read one level deep). */
  readonly dir: string;
  /** This cluster's id, to reject a peering with itself. Optional. */
  readonly clusterId?: string;
  /** Quiet time after the last file event before re-reading (editors write in bursts). */
  readonly debounceMs?: number;
  /** Re-read this often even without events; 0 disables. */
  readonly resyncMs?: number;
}

export const FOLDER_DEFAULTS = { debounceMs: 150, resyncMs: 30_000 } as const;

/**
 * A {@link DesiredStateSource} over a folder. One scan runs at a time; events that arrive
 * during a scan schedule exactly one more. Not reentrant across processes: two agents on
 * one folder each read it independently, which is harmless (reads only).
 */
export class FolderSource implements DesiredStateSource {
  readonly kind = 'folder' as const;
  private readonly emitter = new SourceEmitter();
  private readonly debounceMs: number;
  private readonly resyncMs: number;
  private watcher: FSWatcher | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private resync: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private pending: 'change' | 'resync' | undefined;
  private running = false;

  constructor(private readonly opts: FolderSourceOptions) {
    this.debounceMs = opts.debounceMs ?? FOLDER_DEFAULTS.debounceMs;
    this.resyncMs = opts.resyncMs ?? FOLDER_DEFAULTS.resyncMs;
  }

  subscribe(listener: SourceListener): () => void {
    return this.emitter.subscribe(listener);
  }

  current(): DesiredState | undefined {
    return this.emitter.current();
  }

  /** Reads the folder once (emitting a snapshot or an error), then watches. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.ensureWatcher();
    if (this.resyncMs > 0) {
      this.resync = setInterval(() => this.request('resync'), this.resyncMs);
      this.resync.unref();
    }
    this.request('change');
    await this.scanning;
  }

  /** `await using source = …` stops it at scope exit. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.debounce);
    clearInterval(this.resync);
    this.watcher?.close();
    this.watcher = undefined;
    await this.scanning;
  }

  /** Forces a re-read now (e.g. on SIGHUP). Resolves when it is done. */
  async refresh(): Promise<void> {
    this.request('change');
    await this.scanning;
  }

  // fs.watch on the directory sees create, write, rename and unlink of its entries. It is
  // (re)armed on every scan so that a folder which did not exist yet, or was replaced, is
  // picked up.
  private ensureWatcher(): void {
    if (this.watcher || !this.running) return;
    try {
      const w = watch(this.opts.dir, { persistent: false }, () => this.schedule());
      w.on('error', () => {
        w.close();
        if (this.watcher === w) this.watcher = undefined;
        this.schedule();
      });
      this.watcher = w;
    } catch {
      // The folder is missing; the scan reports it and the resync retries.
    }
  }

  private schedule(): void {
    if (!this.running) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => this.request('change'), this.debounceMs);
  }

  private request(cause: 'change' | 'resync'): void {
    if (!this.running) return;
    // A change outranks a resync: it must not be reported as a mere repeat.
    this.pending = this.pending === 'change' ? 'change' : cause;
    if (!this.scanning) this.scanning = this.drain();
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending && this.running) {
        const cause = this.pending;
        this.pending = undefined;
        await this.scanOnce(cause);
      }
    } finally {
      this.scanning = undefined;
    }
  }

  private async scanOnce(cause: 'change' | 'resync'): Promise<void> {
    if (cause === 'resync') {
      // Re-arm: a watcher on a folder that was deleted and re-created sees nothing more.
      this.watcher?.close();
      this.watcher = undefined;
    }
    this.ensureWatcher();
    let scan;
    try {
      scan = await scanFolder(this.opts.dir);
    } catch (err) {
      if (err instanceof ManifestFolderError) {
        this.watcher?.close();
        this.watcher = undefined;
        this.emitter.error(err);
        return;
      }
      throw err;
    }
    if (!this.running) return;
    const result = evaluateScan(scan, { clusterId: this.opts.clusterId });
    if (!result.ok) {
      this.emitter.error(new ManifestError(result.problems), result.problems);
      return;
    }
    this.emitter.snapshot(result.state, cause, result.warnings);
  }
}
