/**
 * CPU accounting for the benchmarks that measure one process's idle work (gateway-idle,
 * and its loop phase in loop-idle.ts): this process, its threads, its reaped children and
 * other processes by pid, and a garbage collection on demand.
 */
import { readdir, readFile } from 'node:fs/promises';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Linux USER_HZ: /proc/<pid>/stat times are in 1/100 s. */
export const TICK_MS = 10;

/** cutime + cstime of a /proc/<pid>/stat line, ms: CPU of the children waited for. */
export function parseChildCpuMs(statLine: string): number {
  const close = statLine.lastIndexOf(')');
  if (close < 0) throw new Error(`not a /proc/<pid>/stat line: ${statLine.slice(0, 60)}`);
  // After "pid (comm) ": state is field 3, so cutime (16) and cstime (17) are 13 and 14.
  const f = statLine.slice(close + 2).split(' ');
  const [cu, cs] = [Number(f[13]), Number(f[14])];
  if (!Number.isFinite(cu) || !Number.isFinite(cs))
    throw new Error(`no cutime/cstime in /proc/<pid>/stat line: ${statLine.slice(0, 60)}`);
  return (cu + cs) * TICK_MS;
}

/**
 * A garbage collection now: full (default), so a sample does not pay for the garbage of
 * the one before (a "before" sample leaves ~100 processes' worth of execa objects:
 * without it, 1-peer "after" samples of one run measured 2.6 and 10.5 ms per check), or
 * minor (the young generation only, V8's `gc({type: 'minor'})`), so a sample pays for
 * collecting the short-lived garbage it made itself. No-op if unavailable.
 */
export const collectGarbage: (type?: 'minor') => void = (() => {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as (o?: { type: 'minor' | 'major' }) => void;
    return (type?: 'minor') => gc(type ? { type } : undefined);
  } catch {
    return () => undefined;
  }
})();

/** CPU ms of a process so far (schedstat: ns on CPU); 0 when it is gone. */
export async function cpuOfPid(pid: number): Promise<number> {
  const s = await readFile(`/proc/${pid}/schedstat`, 'utf8').catch(() => '0');
  return Number(s.split(' ')[0]) / 1e6;
}

/** CPU ms so far of this process's threads other than the main one (V8's GC and compiler workers). */
export async function workerThreadsCpu(): Promise<number> {
  const tids = (await readdir('/proc/self/task')).filter((t) => t !== String(process.pid));
  const ms = await Promise.all(
    tids.map(async (t) =>
      Number(
        (await readFile(`/proc/self/task/${t}/schedstat`, 'utf8').catch(() => '0')).split(' ')[0],
      ),
    ),
  );
  return ms.reduce((a, b) => a + b, 0) / 1e6;
}

/**
 * Waits until V8's worker threads are idle (≤ 0.2 ms of CPU in 50 ms; at most 1 s), so a
 * sample does not pay for the concurrent sweeping of the sample before: a "before" sample
 * at 50–100 peers leaves that much garbage that its sweeping went on into the next one.
 * Returns the ms waited.
 */
export async function settleWorkers(): Promise<number> {
  const t0 = performance.now();
  let last = await workerThreadsCpu();
  while (performance.now() - t0 < 1000) {
    await new Promise((r) => setTimeout(r, 50));
    const now = await workerThreadsCpu();
    if (now - last <= 0.2) break;
    last = now;
  }
  return performance.now() - t0;
}

/** CPU ms of this process and of the children it waited for. */
export async function cpuOfSelf(): Promise<number> {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000 + parseChildCpuMs(await readFile('/proc/self/stat', 'utf8'));
}
