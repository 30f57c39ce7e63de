/**
 * Reads the observed state through the backends and executes plan steps through them.
 * The decision of *what* to change lives in plan.ts (pure); this file only does I/O.
 */
import { ApplyError } from './errors.js';
import type { FirewallBackend } from './firewall.js';
import type { LinkBackend } from './links.js';
import {
  isVxlanDeviceName,
  VXLAN_PREFIX,
  type ObservedDataplane,
  type ObservedVxlan,
} from './model.js';
import { describeStep, type Step } from './plan.js';
import type { SegmentBackend, SegmentType } from './segment.js';
import type { TunnelBackend } from './tunnel.js';
import { PreconditionError } from './errors.js';

/** The backends of one gateway, chosen at start. */
export interface Backends {
  /** The VXLAN guard (nftables); required: VXLAN devices never run unguarded. */
  readonly firewall: FirewallBackend;
  readonly tunnel: TunnelBackend;
  readonly links: LinkBackend;
  readonly segments: Partial<Record<SegmentType, SegmentBackend>>;
}

/**
 * Reads everything the planner compares. Side-effect free; safe to run concurrently.
 * `listenPort`: the port the tunnel is to listen on; when the tunnel is not on it
 * already, the sockets on it are read too (one more read, on a first apply or a port
 * change only), so the plan can refuse a port someone else holds.
 */
export async function observe(
  b: Backends,
  ifname: string,
  listenPort?: number,
): Promise<ObservedDataplane> {
  const [links, wg, firewall] = await Promise.all([
    b.links.list(),
    b.tunnel.read(ifname),
    b.firewall.read(),
  ]);
  const listenPortHolders =
    listenPort !== undefined && wg?.listenPort !== listenPort && b.links.udpSockets
      ? await b.links.udpSockets(listenPort)
      : undefined;
  const tl = links.find((l) => l.name === ifname);
  const foreignTunnels = links.flatMap((l) =>
    (l.kind === 'vxlan' || l.kind === 'geneve') && !isVxlanDeviceName(l.name) && l.udpPort
      ? [{ name: l.name, kind: l.kind, port: l.udpPort }]
      : [],
  );
  const vxlanLinks = links.filter((l) => l.name.startsWith(VXLAN_PREFIX) && l.vxlan);
  // One read for every device's FDB: an apply's reads stay constant as networks grow.
  const fdbs = await b.links.fdbAll(vxlanLinks.map((l) => l.name));
  const vxlans = vxlanLinks.map((l): ObservedVxlan => ({
    name: l.name,
    vni: l.vxlan!.vni,
    local: l.vxlan!.local,
    dstport: l.vxlan!.dstport,
    learning: l.vxlan!.learning,
    limit: l.vxlan!.limit,
    noarp: l.noarp ?? false,
    mtu: l.mtu,
    up: l.up,
    ...(fdbs.get(l.name) ?? { remotes: [], learned: [] }),
  }));
  const views = await Promise.all(
    (['ovs', 'linux-bridge'] as const).map(async (type) => ({
      type,
      view: (await b.segments[type]?.read(links)) ?? { bridges: [], attachments: [] },
    })),
  );
  return {
    foreignTunnels,
    ...(listenPortHolders ? { listenPortHolders } : {}),
    firewall,
    tunnel: wg && {
      ifname,
      up: tl?.up ?? false,
      mtu: tl?.mtu ?? 0,
      addresses: tl?.addresses ?? [],
      privateKey: wg.privateKey,
      publicKey: wg.publicKey,
      listenPort: wg.listenPort,
      peers: wg.peers,
    },
    vxlans,
    segments: {
      bridges: {
        ovs: views.find((v) => v.type === 'ovs')!.view.bridges,
        'linux-bridge': views.find((v) => v.type === 'linux-bridge')!.view.bridges,
      },
      attachments: views.flatMap((v) => v.view.attachments),
    },
  };
}

function segmentBackend(b: Backends, type: SegmentType): SegmentBackend {
  const s = b.segments[type];
  if (!s) throw new PreconditionError(`segment ${type}`, 'no backend configured for this type');
  return s;
}

/** Executes one step. Each step is a single change; see plan.ts for when it is emitted. */
export async function executeStep(b: Backends, s: Step): Promise<void> {
  switch (s.kind) {
    case 'firewall-set':
      return b.firewall.set(
        { wgIfname: s.wgIfname, vxlanPort: s.vxlanPort, vxlanFrom: s.vxlanFrom },
        s.elements,
      );
    case 'tunnel-create':
      return b.tunnel.create(s.ifname);
    case 'tunnel-set-key':
      return b.tunnel.setKey(s.ifname, s.privateKeyFile);
    case 'tunnel-set-port':
      return b.tunnel.setPort(s.ifname, s.listenPort);
    case 'tunnel-set-peer':
      return b.tunnel.setPeer(s.ifname, s.peer);
    case 'tunnel-remove-peer':
      return b.tunnel.removePeer(s.ifname, s.publicKey);
    case 'addr-add':
      return b.links.addAddress(s.ifname, s.cidr);
    case 'addr-del':
      return b.links.delAddress(s.ifname, s.cidr);
    case 'link-set-mtu':
      return b.links.setMtu(s.ifname, s.mtu);
    case 'link-set-up':
      return b.links.setUp(s.ifname);
    case 'vxlan-noarp':
      return b.links.setNoArp(s.name);
    case 'vxlan-create':
      return b.links.createVxlan(s.name, s.vni, s.local, s.dstport);
    case 'vxlan-delete':
      return b.links.deleteLink(s.name);
    case 'fdb-append':
      return b.links.floodAppend(s.dev, s.dst);
    case 'fdb-del':
      return b.links.floodDelete(s.dev, s.dst);
    case 'fdb-forget':
      return b.links.forgetLearned(s.dev, s.mac, s.dst);
    case 'segment-attach':
      return segmentBackend(b, s.segment.type).attach(s.port, s.segment);
    case 'segment-detach':
      return segmentBackend(b, s.segment.type).detach(s.port, s.segment);
  }
}

/**
 * Runs steps in order, stopping at the first failure.
 * @throws ApplyError naming the failed step and the ones that ran before it.
 */
export async function executePlan(b: Backends, steps: readonly Step[]): Promise<void> {
  const done: string[] = [];
  for (const s of steps) {
    try {
      await executeStep(b, s);
    } catch (err) {
      throw new ApplyError(describeStep(s), done, { cause: err });
    }
    done.push(describeStep(s));
  }
}
