/** `l2fed lab exec CLUSTER/POD -- CMD…`: runs a command inside a lab pod's namespace. */
import { spawn } from 'node:child_process';
import { labPaths } from './paths.js';
import { readState } from './state.js';

export async function labExec(target: string, argv: readonly string[]): Promise<number> {
  const m = /^([a-z0-9-]+)\/([a-z0-9-]+)$/.exec(target);
  if (!m) {
    console.error(`l2fed lab exec: target must be CLUSTER/POD, like madrid/web (got "${target}")`);
    return 2;
  }
  if (argv.length === 0) {
    console.error(
      'l2fed lab exec: give a command after --, like: l2fed lab exec madrid/web -- ip addr',
    );
    return 2;
  }
  const st = await readState(labPaths().state);
  const cluster = st?.clusters.find((c) => c.id === m[1]);
  const pod = cluster?.pods.find((p) => p.name === m[2]);
  if (!st || !cluster || !pod) {
    const known = st?.clusters.flatMap((c) => c.pods.map((p) => `${c.id}/${p.name}`)) ?? [];
    console.error(
      st
        ? `l2fed lab exec: no pod ${target}; lab pods: ${known.join(', ') || 'none'}`
        : 'l2fed lab exec: no lab is up; start one with "l2fed lab up"',
    );
    return 1;
  }
  const child = spawn('ip', ['netns', 'exec', pod.ns, ...argv], { stdio: 'inherit' });
  return new Promise((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    child.once('error', (e) => {
      console.error(`l2fed lab exec: ${e.message}`);
      resolve(1);
    });
  });
}
