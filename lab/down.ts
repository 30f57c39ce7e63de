/** `l2fed lab down`: stops the lab runner, then removes anything still left. */
import { rm } from 'node:fs/promises';
import { ExecaRunner } from '../lib/runner.js';
import { cleanup } from '../lib/cleanup.js';
import { labPaths } from './paths.js';
import { readState, type LabState } from './state.js';
import { destroyLabNamespaces, removeWgSockets } from './topology.js';
import { labPrefix } from './plan.js';

export function runnerAlive(st: LabState): boolean {
  try {
    process.kill(st.runnerPid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Idempotent; safe after a crash (works from the names alone when the runner is gone).
 * `keepFiles` leaves the run folder (log, state, manifests) for reading after a failure.
 */
export async function labDown(o: { quiet?: boolean; keepFiles?: boolean } = {}): Promise<number> {
  const say = (s: string) => {
    if (!o.quiet) console.log(s);
  };
  const paths = labPaths();
  const st = await readState(paths.state);
  if (st && runnerAlive(st)) {
    say(`stopping the lab runner (pid ${st.runnerPid})`);
    process.kill(st.runnerPid, 'SIGTERM');
    for (let i = 0; i < 150 && runnerAlive(st); i++) await sleep(200);
    if (runnerAlive(st)) process.kill(st.runnerPid, 'SIGKILL');
  }
  const runner = new ExecaRunner();
  const prefix = labPrefix();
  const namespaces = await destroyLabNamespaces(runner, prefix);
  if (st) await removeWgSockets(st.planId);
  const removed = await cleanup(runner, prefix);
  if (!o.keepFiles) {
    await rm(paths.dir, { recursive: true, force: true });
    await rm(`${paths.dir}.manifests`, { recursive: true, force: true });
  }
  const n = namespaces.length + removed.namespaces.length + removed.processes.length;
  say(
    n
      ? `the lab is down; removed ${n} namespaces/processes its runner had left`
      : 'the lab is down; nothing left behind',
  );
  return 0;
}
