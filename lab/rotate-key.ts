/**
 * `l2fed lab rotate-key CLUSTER`: asks that cluster's gateway for a new WireGuard key,
 * exactly as an operator would (gateway RotateKey), then waits until the cluster's agent
 * has announced it through the broker, every peer's gateway holds it, and the tunnel uses
 * it (docs/gateway.md, key rotation).
 */
import { GrpcGatewayClient } from '../gateway/client.js';
import { labPaths } from './paths.js';
import { readState } from './state.js';

export interface RotateKeyResult {
  readonly previousKey: string;
  readonly publicKey: string;
  /** From RotateKey until the gateway reported the new key in use. */
  readonly switchMs: number;
}

/** Rotates and waits (bounded); throws with a message naming what did not happen. */
export async function rotateLabKey(cluster: string, timeoutMs = 30_000): Promise<RotateKeyResult> {
  const st = await readState(labPaths().state);
  const c = st?.clusters.find((x) => x.id === cluster);
  if (!st) throw new Error('no lab is up; start one with "l2fed lab up"');
  if (!c?.gatewayGrpc) {
    const known = st.clusters.map((x) => x.id).join(', ') || 'none';
    throw new Error(`no running gateway for cluster "${cluster}"; lab clusters: ${known}`);
  }
  const gw = new GrpcGatewayClient(c.gatewayGrpc);
  try {
    const before = (await gw.getState()).report?.publicKey;
    if (!before) throw new Error(`the ${cluster} gateway has no config yet; wait for "lab up"`);
    const started = Date.now();
    const { publicKey } = await gw.rotateKey();
    for (;;) {
      const s = await gw.getState();
      if (s.report?.publicKey === publicKey && !s.pendingPublicKey) {
        return { previousKey: before, publicKey, switchMs: Date.now() - started };
      }
      if (Date.now() - started > timeoutMs) {
        throw new Error(
          `the ${cluster} gateway still uses the old key after ${timeoutMs} ms; the agent ` +
            `switches only once the broker announced the new key and every peer's gateway ` +
            `holds it (is the broker up? is a peer's agent down? see the "rotation" line of ` +
            `${cluster}'s agent status and lab.log); the rotation goes on in the background`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    gw.close();
  }
}

export async function labRotateKey(cluster: string): Promise<number> {
  try {
    const r = await rotateLabKey(cluster);
    console.log(`${cluster}: gateway key ${r.previousKey} → ${r.publicKey}`);
    console.log(`published through the broker and in use after ${r.switchMs} ms`);
    return 0;
  } catch (err) {
    console.error(`l2fed lab rotate-key: ${(err as Error).message}`);
    return 1;
  }
}
