/** `l2fed lab status`: what runs, what restarted, and (optionally) the live matrix. */
import { labPaths } from './paths.js';
import { readState } from './state.js';
import { runnerAlive } from './down.js';
import { currentPlan, renderPeerings, verifyLab } from './up.js';
import { renderMatrix, verificationOk } from './verify.js';

export async function labStatus(o: { verify: boolean }): Promise<number> {
  const st = await readState(labPaths().state);
  if (!st || !runnerAlive(st)) {
    console.log('no lab is up (start one with "l2fed lab up")');
    return 1;
  }
  console.log(
    `lab ${st.phase} (runner pid ${st.runnerPid}, segments: ${st.segmentKind}, NATS ${st.natsUrl ?? '?'})`,
  );
  const conv = st.convergence;
  if (conv) {
    console.log(
      conv.converged
        ? `  converged ${(conv.ms / 1000).toFixed(0)} s after the agents started: every gateway held its expected peers, all answering`
        : `  NOT converged when called ready (${(conv.ms / 1000).toFixed(0)} s): ${conv.waiting ?? '?'}`,
    );
  }
  for (const p of st.processes) {
    console.log(
      `  ${p.name.padEnd(20)} pid ${String(p.pid ?? '-').padEnd(8)} restarts ${p.restarts}`,
    );
  }
  for (const c of st.clusters) {
    console.log(
      `  cluster ${c.id}: underlay ${c.underlayAddress}, pods ${c.pods.map((p) => p.name).join(', ') || 'none'}`,
    );
  }
  console.log('peerings declared in the manifests:');
  for (const l of renderPeerings(await currentPlan(st))) console.log(l);
  if (!o.verify) return 0;
  const results = await verifyLab(st, 10_000);
  console.log(renderMatrix(results, process.stdout.isTTY));
  return verificationOk(results) ? 0 : 1;
}
