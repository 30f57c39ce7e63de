/**
 * Which lab pods must reach which, derived from the manifests alone: the oracle the
 * lab's connectivity matrix and the e2e tests check the running federation against.
 */
import { BlockList, isIPv4 } from 'node:net';
import type { DesiredState } from '../cluster-agent/desired-state.js';
import type { LabPlan, LabPod } from './plan.js';

export interface PeeringVerdict {
  readonly a: string;
  readonly b: string;
  readonly active: boolean;
  /** Networks carried when active. */
  readonly networks: readonly string[];
  readonly reason: string;
}

const exportsOf = (s: DesiredState) => new Set(s.networks.map((n) => n.metadata.name));

/**
 * Mutual consent: active only when each side declares the other; carries networks both
 * export and both list (an omitted list offers every export). Pure.
 */
export function peeringVerdict(
  a: { id: string; state: DesiredState },
  b: { id: string; state: DesiredState },
): PeeringVerdict {
  const declA = a.state.peerings.find((p) => p.spec.remoteCluster === b.id);
  const declB = b.state.peerings.find((p) => p.spec.remoteCluster === a.id);
  if (!declA || !declB) {
    const missing = !declA ? a.id : b.id;
    const other = !declA ? b.id : a.id;
    return {
      a: a.id,
      b: b.id,
      active: false,
      networks: [],
      reason: `${missing} declares no ClusterPeering for ${other}`,
    };
  }
  const expA = exportsOf(a.state);
  const expB = exportsOf(b.state);
  const offerA = new Set(declA.spec.networks ?? expA);
  const offerB = new Set(declB.spec.networks ?? expB);
  const networks = [...expA].filter((n) => expB.has(n) && offerA.has(n) && offerB.has(n)).sort();
  return networks.length
    ? { a: a.id, b: b.id, active: true, networks, reason: 'both sides agree' }
    : { a: a.id, b: b.id, active: false, networks: [], reason: 'no network both export and list' };
}

export interface PingCheck {
  readonly from: LabPod;
  readonly fromIf: string;
  readonly to: LabPod;
  readonly address: string;
  /** The source interface's network. */
  readonly network: string;
  /** The destination's network, when it is another one (a cross-network check). */
  readonly toNetwork?: string;
  readonly family: 4 | 6;
  readonly expect: 'reach' | 'isolated';
  readonly why: string;
}

const hostOf = (cidr: string) => cidr.slice(0, cidr.indexOf('/'));

/** Is `address` inside the subnet of `cidr` (so a ping to it is sent on-link)? */
function onLink(cidr: string, address: string): boolean {
  const [net, len] = [hostOf(cidr), Number(cidr.slice(cidr.indexOf('/') + 1))];
  const type = isIPv4(net) ? 'ipv4' : 'ipv6';
  if (isIPv4(address) !== (type === 'ipv4')) return false;
  const list = new BlockList();
  list.addSubnet(net, len, type);
  return list.check(address, type);
}

/**
 * Every ordered pod pair sharing a network, with the expected verdict; and every pair on
 * two different networks whose addresses share a subnet (the source sends on-link, so a
 * frame crossing between the networks would answer): always isolated. Skipped when the
 * destination pod is on the source's network too, since its stack may answer for any of
 * its addresses.
 */
export function expectedChecks(plan: LabPlan): PingCheck[] {
  const byId = new Map(plan.clusters.map((c) => [c.id, c]));
  const verdicts = new Map<string, PeeringVerdict>();
  const verdict = (x: string, y: string) => {
    const key = [x, y].sort().join('|');
    let v = verdicts.get(key);
    if (!v) {
      v = peeringVerdict(byId.get(x)!, byId.get(y)!);
      verdicts.set(key, v);
    }
    return v;
  };
  const pods = plan.clusters.flatMap((c) => c.pods);
  const checks: PingCheck[] = [];
  for (const from of pods) {
    for (const to of pods) {
      if (from === to) continue;
      for (const fi of from.interfaces) {
        for (const ti of to.interfaces) {
          if (ti.network !== fi.network) {
            if (to.interfaces.some((i) => i.network === fi.network)) continue;
            for (const src of fi.ips) {
              const dst = ti.ips.find((ip) => onLink(src, hostOf(ip)));
              if (!dst) continue;
              checks.push({
                from,
                fromIf: fi.ifname,
                to,
                address: hostOf(dst),
                network: fi.network,
                toNetwork: ti.network,
                family: isIPv4(hostOf(dst)) ? 4 : 6,
                expect: 'isolated',
                why: `${fi.network} and ${ti.network} are different networks in one subnet`,
              });
            }
            continue;
          }
          for (const family of [4, 6] as const) {
            const src = fi.ips.find((ip) => ip.includes(':') === (family === 6));
            const dst = ti.ips.find((ip) => ip.includes(':') === (family === 6));
            if (!src || !dst) continue;
            let expect: PingCheck['expect'];
            let why: string;
            if (from.cluster === to.cluster) {
              expect = 'reach';
              why = 'same cluster, same segment';
            } else {
              const v = verdict(from.cluster, to.cluster);
              expect = v.active && v.networks.includes(fi.network) ? 'reach' : 'isolated';
              why = v.active
                ? v.networks.includes(fi.network)
                  ? `peering ${from.cluster}<->${to.cluster} carries ${fi.network}`
                  : `peering ${from.cluster}<->${to.cluster} does not carry ${fi.network}`
                : `peering ${from.cluster}<->${to.cluster} inactive: ${v.reason}`;
            }
            checks.push({
              from,
              fromIf: fi.ifname,
              to,
              address: hostOf(dst),
              network: fi.network,
              family,
              expect,
              why,
            });
          }
        }
      }
    }
  }
  return checks;
}
