/**
 * Builds and removes the lab's namespaces: an underlay switch, one gateway namespace per
 * cluster (underlay port, segment bridges, a private OVS when segments are OVS) and one
 * namespace per pod, plugged into its networks' segments. Everything is named from the
 * plan, so a second process (`lab down`, `lab exec`) finds it without shared memory.
 */
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { LAB_UNDERLAY_IFNAME } from '../cluster-agent/build-rules.js';
import type { CommandRunner } from '../lib/runner.js';
import { NetnsSet, removeNamespace, listNamespaces } from '../lib/netns.js';
import { OvsInstance } from '../lib/ovs-process.js';
import { labWgPrefix, type LabCluster, type LabPlan, type LabPod } from './plan.js';

export interface BuiltCluster {
  readonly cluster: LabCluster;
  readonly ovs: OvsInstance | undefined;
}

export class LabTopology {
  readonly built: BuiltCluster[] = [];
  private readonly netns: NetnsSet;

  constructor(
    private readonly runner: CommandRunner,
    readonly plan: LabPlan,
    /** Run dir of the lab; each cluster's OVS lives under it. */
    private readonly dir: string,
  ) {
    this.netns = new NetnsSet(runner, plan.prefix);
  }

  /** Creates everything in the plan. On failure, removes what it made and rethrows. */
  async build(progress: (msg: string) => void = () => undefined): Promise<void> {
    try {
      await this.buildSwitch();
      for (const c of this.plan.clusters) {
        progress(`cluster ${c.id}: gateway namespace ${c.ns}, underlay ${c.underlayAddress}`);
        this.built.push(await this.buildCluster(c));
        for (const pod of c.pods) {
          progress(
            `cluster ${c.id}: pod ${pod.name} (${pod.interfaces.map((i) => i.network).join(', ')})`,
          );
          await this.addPod(c, pod);
        }
      }
    } catch (err) {
      await this.destroy();
      throw err;
    }
  }

  private async buildSwitch(): Promise<void> {
    const sw = await this.netns.addNamed(this.plan.switchNs);
    await this.run(sw, ['ip', 'link', 'add', 'ulbr', 'type', 'bridge']);
    await this.run(sw, ['ip', 'link', 'set', 'ulbr', 'up']);
  }

  private async buildCluster(c: LabCluster): Promise<BuiltCluster> {
    const ns = await this.netns.addNamed(c.ns);
    const swPort = `u${c.index}`;
    await this.netns.veth(
      { ns: this.plan.switchNs, ifname: swPort },
      { ns, ifname: LAB_UNDERLAY_IFNAME },
    );
    await this.run(this.plan.switchNs, ['ip', 'link', 'set', swPort, 'master', 'ulbr']);
    await this.netns.addr(ns, LAB_UNDERLAY_IFNAME, `${c.underlayAddress}/24`);
    // In ovs mode every cluster gets its own OVS, so a later `lab apply` can export an
    // OVS segment even where the first manifests had only Linux bridges.
    const ovs =
      this.plan.segmentKind === 'ovs'
        ? await OvsInstance.start({
            dir: join(this.dir, c.id, 'ovs'),
            netns: ns,
            runner: this.runner,
          })
        : undefined;
    for (const s of c.segments) await this.addSegment(ns, s, ovs, c);
    return { cluster: c, ovs };
  }

  private async addSegment(
    ns: string,
    s: LabCluster['segments'][number],
    ovs: OvsInstance | undefined,
    c: LabCluster,
  ): Promise<void> {
    if (s.type === 'ovs') {
      await this.ovsctl(c, ovs, [
        'add-br',
        s.bridge,
        '--',
        'set',
        'bridge',
        s.bridge,
        'datapath_type=netdev',
      ]);
    } else {
      await this.run(ns, ['ip', 'link', 'add', s.bridge, 'type', 'bridge']);
    }
    await this.run(ns, ['ip', 'link', 'set', s.bridge, 'up']);
  }

  /** Creates one pod namespace and plugs each of its interfaces into its segment. */
  async addPod(c: LabCluster, pod: LabPod): Promise<void> {
    const built = this.built.find((b) => b.cluster.id === c.id);
    await this.netns.addNamed(pod.ns);
    for (const i of pod.interfaces) {
      await this.netns.veth(
        { ns: pod.ns, ifname: i.ifname },
        { ns: c.ns, ifname: i.hostIfname },
        { mtu: i.mtu },
      );
      if (i.mac) await this.run(pod.ns, ['ip', 'link', 'set', i.ifname, 'address', i.mac]);
      const seg = c.segments.find((s) => s.bridge === i.bridge);
      if (seg?.type === 'ovs') {
        // OVS netdev reads veths with AF_PACKET and never completes a partial checksum:
        // the pod must compute it, else TCP stalls while ping works.
        await this.run(pod.ns, ['ethtool', '-K', i.ifname, 'tx', 'off']);
        const tag = i.vlan !== undefined ? [`tag=${i.vlan}`] : [];
        await this.ovsctl(c, built?.ovs, ['add-port', i.bridge, i.hostIfname, ...tag]);
      } else {
        await this.run(c.ns, ['ip', 'link', 'set', i.hostIfname, 'master', i.bridge]);
      }
      for (const ip of i.ips) await this.netns.addr(pod.ns, i.ifname, ip);
    }
  }

  /** Removes a pod namespace (its veths go with it; OVS ports are deleted too). */
  async removePod(c: LabCluster, pod: LabPod): Promise<void> {
    const built = this.built.find((b) => b.cluster.id === c.id);
    for (const i of pod.interfaces) {
      const seg = c.segments.find((s) => s.bridge === i.bridge);
      if (seg?.type === 'ovs' && built?.ovs) {
        await this.ovsctl(c, built.ovs, ['--if-exists', 'del-port', i.bridge, i.hostIfname]);
      }
    }
    await removeNamespace(this.runner, pod.ns);
  }

  /**
   * Brings pods and segments in line with a newer plan of the same lab (after
   * `lab apply`): new segments and pods are created, removed or changed pods are
   * removed (and re-created). Segments are never deleted: a bridge may still carry
   * traffic the agent is draining. Returns what changed, for progress lines.
   */
  async sync(next: LabPlan): Promise<string[]> {
    const changes: string[] = [];
    for (const c of next.clusters) {
      const built = this.built.find((b) => b.cluster.id === c.id);
      if (!built) continue; // clusters are fixed at lab up
      const old = built.cluster;
      for (const s of c.segments) {
        if (old.segments.some((o) => o.bridge === s.bridge)) continue;
        await this.addSegment(c.ns, s, built.ovs, c);
        changes.push(`cluster ${c.id}: new segment ${s.bridge}`);
      }
      const key = (p: LabPod) => JSON.stringify(p.interfaces);
      for (const p of old.pods) {
        const now = c.pods.find((q) => q.name === p.name);
        if (!now || key(now) !== key(p)) {
          await this.removePod(old, p);
          changes.push(`cluster ${c.id}: removed pod ${p.name}`);
        }
      }
      const idx = this.built.indexOf(built);
      this.built[idx] = { cluster: c, ovs: built.ovs };
      for (const p of c.pods) {
        const before = old.pods.find((q) => q.name === p.name);
        if (!before || key(before) !== key(p)) {
          await this.addPod(c, p);
          changes.push(`cluster ${c.id}: added pod ${p.name}`);
        }
      }
    }
    return changes;
  }

  /** Stops every OVS and deletes every lab namespace (with the processes inside). Idempotent. */
  async destroy(): Promise<void> {
    for (const b of this.built) await b.ovs?.stop();
    this.built.length = 0;
    await destroyLabNamespaces(this.runner, this.plan.prefix);
    await removeWgSockets(this.plan.id);
  }

  private async ovsctl(c: LabCluster, ovs: OvsInstance | undefined, args: string[]): Promise<void> {
    if (!ovs) throw new Error(`cluster ${c.id}: OVS segment without an OVS instance`);
    await this.runner.run(['ovs-vsctl', `--db=unix:${ovs.dbSocket}`, ...args], {
      netns: c.ns,
      mutates: true,
    });
  }

  private async run(ns: string, argv: string[]): Promise<void> {
    await this.runner.run(argv, { netns: ns, mutates: true });
  }
}

/**
 * wireguard-go killed with its namespace cannot remove its control socket, and the
 * socket folder is machine-wide: remove the sockets of this lab's interfaces.
 */
export async function removeWgSockets(planId: string): Promise<void> {
  if (!planId) return;
  const dir = '/var/run/wireguard';
  const names = await readdir(dir).catch(() => [] as string[]);
  for (const n of names) {
    if (n.startsWith(labWgPrefix(planId)) && n.endsWith('.sock'))
      await rm(join(dir, n), { force: true });
  }
}

/** Deletes every namespace whose name starts with the lab prefix. */
export async function destroyLabNamespaces(
  runner: CommandRunner,
  prefix: string,
): Promise<string[]> {
  // '-' or '.' after the prefix: l2fed-lab must not match l2fed-lab2's namespaces.
  const all = (await listNamespaces(runner, prefix)).filter((n) =>
    /^[-.]/.test(n.slice(prefix.length)),
  );
  // Pods first, then gateways, then the switch: nothing is left half-plugged.
  const order = (n: string) => (n === `${prefix}.underlay` ? 2 : n.includes('.') ? 0 : 1);
  for (const ns of all.sort((a, b) => order(a) - order(b))) await removeNamespace(runner, ns);
  return all;
}
