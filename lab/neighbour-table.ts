/**
 * The kernel's neighbour tables (ARP for IPv4, NDP for IPv6) are one per family for the
 * whole host: every network namespace's entries count against the same limits, set only
 * in the initial namespace (`net.ipv4.neigh.default.gc_thresh3`, default 1024; Linux
 * Documentation/networking/ip-sysctl.rst, "neigh/default/gc_thresh3"). When the table is
 * full, a new entry cannot be made and the packet that needed it is dropped silently
 * (dmesg: "neighbour: arp_cache: neighbor table overflow!").
 *
 * A lab puts every cluster's gateway and pods on one host, so the entries grow with the
 * square of the clusters: each gateway holds one underlay entry and one tunnel entry
 * (NOARP, but still in the table) per peer, and each pod one per pod it talks to. At 32
 * clusters that is ~3,000 IPv4 entries: the table filled, VXLAN frames to peers were
 * dropped before they reached WireGuard, and ~40 % of the verify pings failed while the
 * same pairs answered one at a time (issue 18). So `lab up` raises the limits when its
 * plan needs more than half of them, and never lowers them.
 */
import type { Sysctl } from '../lib/sysctl.js';
import type { LabPlan } from './plan.js';

export const FAMILIES = ['ipv4', 'ipv6'] as const;
export type Family = (typeof FAMILIES)[number];

const key = (family: Family, n: 1 | 2 | 3) => `net.${family}.neigh.default.gc_thresh${n}`;

/** gc_thresh2 (soft limit: forced garbage collection above it) and gc_thresh3 (hard). */
export interface NeighbourLimits {
  readonly gcThresh2: number;
  readonly gcThresh3: number;
}

/**
 * Upper bound of the neighbour entries the lab's own namespaces may hold at once, per
 * family: 2 per gateway per peer (underlay, IPv4 only; tunnel address), and per network,
 * for every pod interface, one per other pod interface on it (twice for IPv6: global and
 * link-local addresses both get resolved).
 */
export function neighbourEntriesNeeded(plan: LabPlan): Record<Family, number> {
  const peers = Math.max(0, plan.clusters.length - 1);
  const need = { ipv4: plan.clusters.length * 2 * peers, ipv6: 0 };
  const perNetwork = new Map<string, { ipv4: number; ipv6: number }>();
  for (const c of plan.clusters)
    for (const p of c.pods)
      for (const i of p.interfaces) {
        const n = perNetwork.get(i.network) ?? { ipv4: 0, ipv6: 0 };
        if (i.ips.some((ip) => !ip.includes(':'))) n.ipv4++;
        if (i.ips.some((ip) => ip.includes(':'))) n.ipv6++;
        perNetwork.set(i.network, n);
      }
  for (const n of perNetwork.values()) {
    need.ipv4 += n.ipv4 * Math.max(0, n.ipv4 - 1);
    need.ipv6 += 2 * n.ipv6 * Math.max(0, n.ipv6 - 1);
  }
  return need;
}

const roundUp = (n: number, to: number) => Math.ceil(n / to) * to;

/**
 * The limits to set so that `need` entries fill at most half of gc_thresh3 and stay
 * under gc_thresh2, or undefined when `current` already allows that. Only raises. Pure.
 */
export function raisedLimits(current: NeighbourLimits, need: number): NeighbourLimits | undefined {
  if (2 * need <= current.gcThresh3 && need <= current.gcThresh2) return undefined;
  return {
    gcThresh2: Math.max(current.gcThresh2, roundUp(2 * need, 1024)),
    gcThresh3: Math.max(current.gcThresh3, roundUp(4 * need, 1024)),
  };
}

/**
 * Raises the host's neighbour table limits where the plan needs it; returns one line per
 * change for the lab's progress (none when nothing changed). Throws, naming the sysctl
 * and what to do, when a limit cannot be read or written.
 */
export async function ensureNeighbourLimits(plan: LabPlan, sysctl: Sysctl): Promise<string[]> {
  const need = neighbourEntriesNeeded(plan);
  const lines: string[] = [];
  for (const family of FAMILIES) {
    if (need[family] === 0) continue;
    const read = async (n: 2 | 3) => {
      const v = Number(await sysctl.read(key(family, n)));
      if (!Number.isInteger(v)) throw new Error(`${key(family, n)} is not a number`);
      return v;
    };
    const current = { gcThresh2: await read(2), gcThresh3: await read(3) };
    const want = raisedLimits(current, need[family]);
    if (!want) continue;
    try {
      // Hard limit first, so the soft one never exceeds it, even between the writes.
      await sysctl.write(key(family, 3), String(want.gcThresh3));
      await sysctl.write(key(family, 2), String(want.gcThresh2));
    } catch (e) {
      throw new Error(
        `the lab needs up to ${need[family]} ${family} neighbour entries on this host, more than ` +
          `${key(family, 3)} = ${current.gcThresh3} allows with room to spare (${(e as Error).message}); ` +
          `run as root, or set it yourself: sysctl -w ${key(family, 3)}=${want.gcThresh3} ` +
          `${key(family, 2)}=${want.gcThresh2}`,
        { cause: e },
      );
    }
    lines.push(
      `kernel ${family} neighbour table: up to ${need[family]} entries needed; raised ` +
        `gc_thresh3 ${current.gcThresh3} -> ${want.gcThresh3}, gc_thresh2 ${current.gcThresh2} -> ` +
        `${want.gcThresh2} (one table for every namespace on the host; left raised after lab down)`,
    );
  }
  return lines;
}
