/**
 * The lab's state file: written by the lab runner, read by `lab up` (progress, ready),
 * `lab exec`, `lab status` and `lab down`. Written atomically (temp file + rename) so a
 * reader never sees half a file.
 */
import { readFile, rename, writeFile } from 'node:fs/promises';

export type LabPhase = 'building' | 'ready' | 'failed' | 'stopping';

export interface LabProcessInfo {
  readonly name: string;
  readonly pid: number | undefined;
  readonly restarts: number;
}

export interface LabState {
  readonly phase: LabPhase;
  /** pid of the lab runner that owns every process. */
  readonly runnerPid: number;
  readonly planId: string;
  readonly segmentKind: string;
  /** Started with --kubernetes: each cluster has an API server (kubeconfig below). */
  readonly kubernetes?: boolean;
  readonly natsUrl?: string;
  readonly natsPid?: number;
  /** The broker's admin API and the token file `l2fed status` needs for it. */
  readonly admin?: { readonly address: string; readonly tokenFile: string };
  readonly clusters: readonly {
    id: string;
    ns: string;
    underlayAddress: string;
    gatewayGrpc?: string;
    /** --kubernetes: the admin kubeconfig of the cluster's API server, and its URL. */
    kubeconfig?: string;
    kubeServer?: string;
    pods: readonly { name: string; ns: string }[];
  }[];
  readonly processes: readonly LabProcessInfo[];
  /**
   * Whether every gateway held its expected peers, all answering, before the runner said
   * ready (lab/convergence.ts); `ms` from the last agent's start until then (or until it
   * gave up), `waiting` what was still missing.
   */
  readonly convergence?: { converged: boolean; ms: number; waiting?: string };
  /** Progress lines, newest last (bounded). */
  readonly progress: readonly string[];
  readonly error?: string;
}

export async function writeState(path: string, state: LabState): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o644 });
  await rename(tmp, path);
}

export async function readState(path: string): Promise<LabState | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as LabState;
  } catch {
    return undefined;
  }
}
