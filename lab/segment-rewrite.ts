import { parseAllDocuments } from 'yaml';

/**
 * Bridge mode: turns every FederatedNetwork's segment into a Linux bridge of the same
 * name (VLAN tags dropped; L2S-M networks become a bridge named after them), because
 * that is what the lab builds. Other documents and
 * comments pass through unchanged.
 */
export function rewriteForBridge(text: string): string {
  const docs = parseAllDocuments(text);
  let changed = false;
  for (const doc of docs) {
    if (doc.get('kind') !== 'FederatedNetwork') continue;
    const seg = doc.getIn(['spec', 'segment']);
    if (!seg) continue;
    const ovs = doc.getIn(['spec', 'segment', 'ovsBridge']);
    const l2sm = doc.getIn(['spec', 'segment', 'l2smNetwork']);
    // Same bridge name the lab builds (lab/plan.ts labSegment).
    const bridge =
      typeof ovs === 'string' ? ovs : typeof l2sm === 'string' ? l2sm.slice(0, 15) : undefined;
    if (bridge === undefined) continue;
    doc.setIn(['spec', 'segment'], doc.createNode({ linuxBridge: bridge }));
    changed = true;
  }
  return changed ? docs.map((d) => d.toString()).join('') : text;
}
