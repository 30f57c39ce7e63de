import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Where the lab keeps its files: one directory, named l2fed-lab so `l2fed cleanup`
 * recognises it. L2FED_LAB_DIR moves it (tests use their own); it must still name l2fed-.
 */
export function labDir(): string {
  const dir = process.env.L2FED_LAB_DIR ?? join(tmpdir(), 'l2fed-lab');
  if (!dir.includes('l2fed-')) {
    throw new Error(`L2FED_LAB_DIR must contain "l2fed-" so cleanup can find it (got ${dir})`);
  }
  return dir;
}

export const labPaths = (dir = labDir()) => ({
  dir,
  state: join(dir, 'state.json'),
  log: join(dir, 'lab.log'),
  /** The manifests each agent reads: clusters/<id>/*.yaml (`lab apply` writes here). */
  clusters: join(dir, 'clusters'),
  cluster: (id: string) => join(dir, 'clusters', id),
  run: (id: string) => join(dir, 'run', id),
});
