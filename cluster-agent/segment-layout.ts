/**
 * Local layout checks: two federated networks of one cluster on one local segment (the
 * same bridge, and for OVS the same VLAN) are one broadcast domain here, so each would
 * carry the other's frames to its peers; no way of plugging ports can keep them apart.
 * A VLAN network and an untagged network on one OVS bridge are fine: the gateway plugs
 * the untagged one as an access port of VLAN 0 (gateway/segment-ovs.ts). The gateway
 * refuses the same clash in its config (gateway/config.ts); this says so before deploy.
 */
import { segmentKey } from '../gateway/config.js';
import type { ManifestProblem } from './problems.js';
import { segmentOf, type FederatedNetwork } from './schema-network.js';

/** The local segment of n as the gateway's comparable key and a readable name. */
function localSegment(n: FederatedNetwork): { key: string; text: string } {
  const s = segmentOf(n.spec.segment);
  switch (s.type) {
    case 'ovsBridge':
      return {
        key: segmentKey(s),
        text: `OVS bridge ${s.bridge}, ${s.vlan === undefined ? 'untagged' : `VLAN ${s.vlan}`}`,
      };
    case 'linuxBridge':
      return { key: segmentKey(s), text: `bridge ${s.bridge}` };
    case 'l2smNetwork':
      // A space cannot occur in a bridge name, so this never equals a bridge's key.
      return { key: `l2sm ${s.network}`, text: `L2S-M network ${s.network}` };
  }
}

/**
 * One error per network that shares its local segment with an earlier one (by name
 * order). Pure. `where` locates a network's manifest (`FederatedNetwork/<name>`).
 */
export function segmentClashes(
  networks: readonly FederatedNetwork[],
  where: (object: string) => Pick<ManifestProblem, 'file' | 'document' | 'line' | 'object'>,
): ManifestProblem[] {
  const first = new Map<string, string>();
  const out: ManifestProblem[] = [];
  for (const n of [...networks].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))) {
    const { key, text } = localSegment(n);
    const other = first.get(key);
    if (other === undefined) {
      first.set(key, n.metadata.name);
      continue;
    }
    out.push({
      severity: 'error',
      ...where(`FederatedNetwork/${n.metadata.name}`),
      path: 'spec.segment',
      reason: `network ${n.metadata.name} uses the same local segment as ${other} (${text}), which would merge the two networks and carry each one's frames to the other's peers`,
      hint: 'give each federated network its own bridge or VLAN',
    });
  }
  return out;
}
