import { cleanup, findLeftovers, isClean, type Leftovers } from '../lib/cleanup.js';
import { ExecaRunner } from '../lib/runner.js';

export interface CleanupOptions {
  readonly prefix: string;
  /** Only report; exit code 1 when anything is found. */
  readonly check?: boolean;
  readonly dryRun?: boolean;
  readonly quiet?: boolean;
}

function describe(l: Leftovers): string[] {
  return [
    ...l.namespaces.map((n) => `namespace ${n}`),
    ...l.processes.map((p) => `process ${p.pid}: ${p.command}`),
    ...l.wgSockets.map((s) => `socket ${s}`),
    ...l.runDirs.map((d) => `directory ${d}`),
    ...l.containers.map((c) => `container ${c}`),
    ...l.netnsEtc.map((d) => `directory ${d}`),
  ];
}

/** `l2fed cleanup`: returns the process exit code. */
export async function runCleanup(o: CleanupOptions): Promise<number> {
  const runner = new ExecaRunner();
  if (o.check || o.dryRun) {
    const found = await findLeftovers(runner, o.prefix);
    if (isClean(found)) {
      if (!o.quiet) console.log(`cleanup: nothing left behind (prefix ${o.prefix})`);
      return 0;
    }
    for (const line of describe(found)) console.log(`left behind: ${line}`);
    return o.check ? 1 : 0;
  }
  const removed = await cleanup(runner, o.prefix);
  if (!o.quiet) {
    const lines = describe(removed);
    console.log(
      lines.length ? lines.map((l) => `removed ${l}`).join('\n') : 'cleanup: nothing to remove',
    );
  }
  return 0;
}
