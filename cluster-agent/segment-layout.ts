/**
 * Local layout checks: two federated networks of one cluster on one local segment (the
 * same bridge, and for OVS the same VLAN) are one broadcast domain here, so each would
 * carry the other's frames to its peers; no way of plugging ports can keep them apart.
 * A VLAN network and an untagged network on one OVS bridge are fine: the gateway plugs
 * the untagged one as an access port of VLAN 0 (gateway/segment-ovs.ts). The gateway
 * refuses the same clash in its config (gateway/config.ts); this says so before deploy.
 */
import type { ManifestProblem } from './problems.js';
import type { FederatedNetwork } from './schema-network.js';

/**
 * The local segment a network plugs into, as a comparable key and a readable name.
 * A Linux bridge and an untagged OVS bridge of one name are the same device name, so
 * they share a key, as in the gateway's check.
 */
function segmentOf(n: FederatedNetwork): { key: string; text: string } {
  const s = n.spec.segment;
  if (s.ovsBridge !== undefined) {
    return s.vlan === undefined
      ? { key: `bridge ${s.ovsBridge}`, text: `OVS bridge ${s.ovsBridge}, untagged` }
      : {
          key: `bridge ${s.ovsBridge} vlan ${s.vlan}`,
          text: `OVS bridge ${s.ovsBridge}, VLAN ${s.vlan}`,
        };
  }
  if (s.linuxBridge !== undefined) {
    return { key: `bridge ${s.linuxBridge}`, text: `bridge ${s.linuxBridge}` };
  }
  return { key: `l2sm ${s.l2smNetwork}`, text: `L2S-M network ${s.l2smNetwork}` };
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
    const { key, text } = segmentOf(n);
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
