/** `l2fed lab kubeconfig CLUSTER`: the path of a cluster's admin kubeconfig (--kubernetes). */
import { labPaths } from './paths.js';
import { readState } from './state.js';

/** Prints the path; 1 with a message on stderr when there is no such lab or cluster. */
export async function labKubeconfig(cluster: string): Promise<number> {
  const st = await readState(labPaths().state);
  if (!st) {
    console.error('l2fed lab: no lab is up; start one with "l2fed lab up --kubernetes"');
    return 1;
  }
  const c = st.clusters.find((x) => x.id === cluster);
  if (!c) {
    console.error(
      `l2fed lab: no cluster "${cluster}"; lab clusters: ${st.clusters.map((x) => x.id).join(', ')}`,
    );
    return 1;
  }
  if (!c.kubeconfig) {
    console.error(
      st.kubernetes
        ? `l2fed lab: ${cluster}'s API server is not up yet (lab phase: ${st.phase})`
        : 'l2fed lab: this lab has no API servers; start it with "l2fed lab up --kubernetes"',
    );
    return 1;
  }
  console.log(c.kubeconfig);
  return 0;
}
