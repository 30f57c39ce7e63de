/**
 * The plan: the difference between desired and observed state as a list of typed steps.
 * planSteps() is pure (no I/O), so a dry-run prints exactly what apply would do and
 * tables test every case. An empty plan means the data plane already matches.
 */
import type { SegmentConfig } from './config.js';
import { endpointToKeep } from './endpoint-failover.js';
import { PreconditionError } from './errors.js';
import {
  firewallMatches,
  FIREWALL_FAMILY,
  FIREWALL_TABLE,
  VXLAN_FROM_SET,
  vxlanSourceChange,
  type FirewallSpec,
  type VxlanSourceChange,
} from './firewall.js';
import { VXLAN_FDB_LIMIT } from './links.js';
import {
  sameSegment,
  type DesiredPeer,
  type DesiredDataplane,
  type ObservedPeer,
  type ObservedDataplane,
  type ObservedTunnel,
} from './model.js';

/** One idempotent change. `kind` discriminates; every field is plain data. */
export type Step =
  | ({
      readonly kind: 'firewall-set';
      /** Only these pairs of the set change; absent: the whole table is replaced. */
      readonly elements?: VxlanSourceChange;
    } & FirewallSpec)
  | { readonly kind: 'tunnel-create'; readonly ifname: string }
  | { readonly kind: 'tunnel-set-key'; readonly ifname: string; readonly privateKeyFile: string }
  | { readonly kind: 'tunnel-set-port'; readonly ifname: string; readonly listenPort: number }
  | { readonly kind: 'tunnel-set-peer'; readonly ifname: string; readonly peer: DesiredPeer }
  | { readonly kind: 'tunnel-remove-peer'; readonly ifname: string; readonly publicKey: string }
  | { readonly kind: 'addr-add'; readonly ifname: string; readonly cidr: string }
  | { readonly kind: 'addr-del'; readonly ifname: string; readonly cidr: string }
  | { readonly kind: 'link-set-mtu'; readonly ifname: string; readonly mtu: number }
  | { readonly kind: 'link-set-up'; readonly ifname: string }
  | {
      readonly kind: 'vxlan-create';
      readonly name: string;
      readonly vni: number;
      readonly local: string;
      readonly dstport: number;
    }
  | { readonly kind: 'vxlan-delete'; readonly name: string }
  | { readonly kind: 'vxlan-noarp'; readonly name: string }
  | { readonly kind: 'fdb-append'; readonly dev: string; readonly dst: string }
  | { readonly kind: 'fdb-del'; readonly dev: string; readonly dst: string }
  | {
      readonly kind: 'fdb-forget';
      readonly dev: string;
      readonly mac: string;
      readonly dst: string;
    }
  | { readonly kind: 'segment-attach'; readonly port: string; readonly segment: SegmentConfig }
  | { readonly kind: 'segment-detach'; readonly port: string; readonly segment: SegmentConfig };

export type StepKind = Step['kind'];

function segmentText(s: SegmentConfig): string {
  return s.type === 'ovs'
    ? `ovs:${s.bridge}${s.vlan !== undefined ? ` vlan ${s.vlan}` : ''}`
    : `linux-bridge:${s.bridge}`;
}

/** One line per step, for dry-run output and error messages. Never prints key material. */
export function describeStep(s: Step): string {
  switch (s.kind) {
    case 'firewall-set':
      if (s.elements) {
        const pairs = (ps: readonly { address: string; vni: number }[]) =>
          ps.map((p) => `${p.address} vni ${p.vni}`).join(', ');
        const { add, del } = s.elements;
        const what = [
          ...(add.length ? [`admit ${pairs(add)}`] : []),
          ...(del.length ? [`stop admitting ${pairs(del)}`] : []),
        ].join('; ');
        return `guard vxlan port ${s.vxlanPort}: ${what} (nft set ${FIREWALL_FAMILY} ${FIREWALL_TABLE} ${VXLAN_FROM_SET}, those elements only)`;
      }
      return `guard vxlan port ${s.vxlanPort}: only through ${s.wgIfname}, only from ${s.vxlanFrom.map((p) => `${p.address} vni ${p.vni}`).join(', ') || 'no peer'}, nothing to the stack through vxlan devices (nft table ${FIREWALL_FAMILY} ${FIREWALL_TABLE})`;
    case 'tunnel-create':
      return `create tunnel ${s.ifname}`;
    case 'tunnel-set-key':
      return `set private key of ${s.ifname} from ${s.privateKeyFile}`;
    case 'tunnel-set-port':
      return `set listen port of ${s.ifname} to ${s.listenPort}`;
    case 'tunnel-set-peer':
      return `set peer ${s.peer.name} (${s.peer.publicKey}) on ${s.ifname}: endpoint ${s.peer.endpoint}, allowed ${s.peer.allowedIps.join(',')}, keepalive ${s.peer.persistentKeepalive}`;
    case 'tunnel-remove-peer':
      return `remove peer ${s.publicKey} from ${s.ifname}`;
    case 'addr-add':
      return `add address ${s.cidr} to ${s.ifname}`;
    case 'addr-del':
      return `remove address ${s.cidr} from ${s.ifname}`;
    case 'link-set-mtu':
      return `set mtu of ${s.ifname} to ${s.mtu}`;
    case 'link-set-up':
      return `set ${s.ifname} up`;
    case 'vxlan-create':
      return `create vxlan ${s.name} id ${s.vni} local ${s.local} dstport ${s.dstport} learning maxaddress ${VXLAN_FDB_LIMIT}`;
    case 'vxlan-delete':
      return `delete vxlan ${s.name}`;
    case 'vxlan-noarp':
      return `no ARP on ${s.name} (the gateway's stack answers nothing through it)`;
    case 'fdb-append':
      return `flood ${s.dev} to ${s.dst}`;
    case 'fdb-del':
      return `stop flooding ${s.dev} to ${s.dst}`;
    case 'fdb-forget':
      return `forget ${s.mac} on ${s.dev}, learned from ${s.dst}`;
    case 'segment-attach':
      return `plug ${s.port} into ${segmentText(s.segment)}`;
    case 'segment-detach':
      return `unplug ${s.port} from ${segmentText(s.segment)}`;
  }
}

/** A MAC a host may send from: not all-zero, group bit clear. */
function isUnicastMac(mac: string): boolean {
  return (parseInt(mac.slice(0, 2), 16) & 1) === 0 && !/^(00:){5}00$/.test(mac);
}

function peerMatches(want: DesiredPeer, have: ObservedPeer | undefined, now: number): boolean {
  if (!have?.endpoint) return false;
  // A DNS name resolves to an address we cannot compare; any current endpoint is fine.
  // So is one WireGuard roamed to and a recent handshake proved (NAT).
  const endpointOk =
    endpointToKeep(want.endpoints, have, now) !== undefined ||
    want.endpoints.some((e) => /^[a-z]/i.test(e));
  return (
    endpointOk &&
    have.persistentKeepalive === want.persistentKeepalive &&
    [...have.allowedIps].sort().join(',') === [...want.allowedIps].sort().join(',')
  );
}

function tunnelSteps(
  want: DesiredDataplane['tunnel'],
  have: ObservedTunnel | undefined,
  now: number,
): Step[] {
  const ifname = want.ifname;
  const steps: Step[] = [];
  if (!have) steps.push({ kind: 'tunnel-create', ifname });
  if (have?.privateKey !== want.privateKey) {
    steps.push({ kind: 'tunnel-set-key', ifname, privateKeyFile: want.privateKeyFile });
  }
  if (have?.listenPort !== want.listenPort) {
    steps.push({ kind: 'tunnel-set-port', ifname, listenPort: want.listenPort });
  }
  const wanted = new Set(want.peers.map((p) => p.publicKey));
  for (const p of have?.peers ?? []) {
    if (!wanted.has(p.publicKey)) {
      steps.push({ kind: 'tunnel-remove-peer', ifname, publicKey: p.publicKey });
    }
  }
  const observed = new Map((have?.peers ?? []).map((p) => [p.publicKey, p]));
  for (const peer of want.peers) {
    const have = observed.get(peer.publicKey);
    if (!peerMatches(peer, have, now)) {
      // Re-set for another reason (keepalive, allowed-ips): keep the endpoint in use when
      // it is listed (fail-over or roaming chose it) or proven by a recent handshake.
      const keep = endpointToKeep(peer.endpoints, have, now);
      steps.push({
        kind: 'tunnel-set-peer',
        ifname,
        peer: keep !== undefined ? { ...peer, endpoint: keep } : peer,
      });
    }
  }
  for (const cidr of have?.addresses ?? []) {
    if (cidr !== want.address) steps.push({ kind: 'addr-del', ifname, cidr });
  }
  if (!have?.addresses.includes(want.address)) {
    steps.push({ kind: 'addr-add', ifname, cidr: want.address });
  }
  if (have?.mtu !== want.mtu) steps.push({ kind: 'link-set-mtu', ifname, mtu: want.mtu });
  if (!have?.up) steps.push({ kind: 'link-set-up', ifname });
  return steps;
}

/**
 * Computes the steps that turn `observed` into `desired`. Pure and deterministic.
 * The VXLAN guard comes first (so no VXLAN device ever exists unguarded, and a changed
 * tunnel name is guarded before anything else moves), then removals (so a VNI or
 * segment can move), then the tunnel, then each network's VXLAN device, its flood list
 * and its segment port.
 * `now` (unix s, default the current time) judges handshake ages: a peer endpoint that
 * WireGuard roamed to is kept while a handshake within REJECT_AFTER_TIME proves it.
 * @throws PreconditionError when a network's segment bridge does not exist (the
 * gateway plugs into local segments, it does not invent them), when another VXLAN or
 * Geneve device uses vxlanPort, or when another socket holds the tunnel's listen port
 * (`observed.listenPortHolders`) and the tunnel is not on that port already.
 */
export function planSteps(
  desired: DesiredDataplane,
  observed: ObservedDataplane,
  now: number = Math.floor(Date.now() / 1000),
): Step[] {
  const clash = (observed.foreignTunnels ?? []).find((f) => f.port === desired.vxlanPort);
  if (clash) {
    throw new PreconditionError(
      'vxlanPort',
      `${clash.kind} device ${clash.name} already uses UDP ${clash.port} in this namespace, and the gateway's guard drops that port outside the tunnel, which would cut ${clash.name} off; set vxlanPort to a port nothing else uses (the same on every gateway of the federation)`,
    );
  }
  const port = desired.tunnel.listenPort;
  const holders = observed.tunnel?.listenPort === port ? [] : (observed.listenPortHolders ?? []);
  if (holders.length > 0) {
    const who = holders
      .map((h) =>
        h.processes.length > 0
          ? h.processes.map((p) => `${p.name} (pid ${p.pid})`).join(', ')
          : "a socket with no process in sight (a kernel one, such as another WireGuard device's, or one of a process in another PID namespace)",
      )
      .join('; ');
    throw new PreconditionError(
      'wireguard.listenPort',
      `UDP ${port} is already in use in this namespace by ${who}, so the tunnel cannot listen on it (the node's network plugin may use it: Calico's, Flannel's, Antrea's and Kilo's WireGuard take 51820, Calico and Flannel 51821 for IPv6); set wireguard.listenPort to a free port, and the port of advertise.endpoints with it`,
    );
  }
  for (const v of desired.vxlans) {
    if (!observed.segments.bridges[v.segment.type].includes(v.segment.bridge)) {
      throw new PreconditionError(
        `network ${v.network}`,
        `segment ${segmentText(v.segment)} does not exist; create the bridge first (the gateway plugs into a local segment, it does not make one)`,
      );
    }
  }
  const wantedVx = new Map(desired.vxlans.map((v) => [v.name, v]));
  const stale = new Set<string>();
  const recreate = new Set<string>();
  for (const v of observed.vxlans) {
    const want = wantedVx.get(v.name);
    const same =
      want &&
      want.vni === v.vni &&
      want.local === v.local &&
      v.dstport === desired.vxlanPort &&
      v.learning &&
      v.limit === VXLAN_FDB_LIMIT;
    if (!same) {
      stale.add(v.name);
      if (want) recreate.add(v.name);
    }
  }
  const removals: Step[] = [];
  // Unplug first: an OVS port record would outlive the device it names.
  for (const a of observed.segments.attachments) {
    const want = wantedVx.get(a.port);
    if (!want || !sameSegment(want.segment, a.segment) || recreate.has(a.port)) {
      removals.push({ kind: 'segment-detach', port: a.port, segment: a.segment });
    }
  }
  for (const name of stale) removals.push({ kind: 'vxlan-delete', name });

  // A table that is current but for its set gets only the changed pairs: a one-peer
  // change writes that peer's pairs, not every (peer, VNI) pair.
  const elements = vxlanSourceChange(desired.firewall, observed.firewall);
  const guard: Step[] = firewallMatches(desired.firewall, observed.firewall)
    ? []
    : [{ kind: 'firewall-set', ...desired.firewall, ...(elements ? { elements } : {}) }];
  const steps: Step[] = [
    ...guard,
    ...removals,
    ...tunnelSteps(desired.tunnel, observed.tunnel, now),
  ];
  const observedVx = new Map(observed.vxlans.map((v) => [v.name, v]));
  for (const want of desired.vxlans) {
    const have = recreate.has(want.name) ? undefined : observedVx.get(want.name);
    const dev = want.name;
    if (!have) {
      steps.push({
        kind: 'vxlan-create',
        name: dev,
        vni: want.vni,
        local: want.local,
        dstport: desired.vxlanPort,
      });
    }
    // Append before delete: the all-zero entry then never goes away, and re-creating it
    // could fail while learned MACs fill the device's bound (ENOSPC).
    for (const dst of want.remotes) {
      if (!have?.remotes.includes(dst)) steps.push({ kind: 'fdb-append', dev, dst });
    }
    for (const dst of have?.remotes ?? []) {
      if (!want.remotes.includes(dst)) steps.push({ kind: 'fdb-del', dev, dst });
    }
    // Learned entries are the kernel's; only those that would send a network's unicast
    // to a peer that no longer carries it, or capture a group address, are dropped.
    for (const e of have?.learned ?? []) {
      if (!want.remotes.includes(e.dst) || !isUnicastMac(e.mac)) {
        steps.push({ kind: 'fdb-forget', dev, mac: e.mac, dst: e.dst });
      }
    }
    if (have?.mtu !== want.mtu) steps.push({ kind: 'link-set-mtu', ifname: dev, mtu: want.mtu });
    // With OVS netdev the kernel stack also sees the device's frames and would answer
    // ARP for the transit address into the tenant network (the guard is IP only).
    if (!have?.noarp) steps.push({ kind: 'vxlan-noarp', name: dev });
    const attached = observed.segments.attachments.some(
      (a) => a.port === dev && sameSegment(a.segment, want.segment),
    );
    // A recreated device lost its segment port with it.
    if (!attached || recreate.has(dev)) {
      steps.push({ kind: 'segment-attach', port: dev, segment: want.segment });
    }
    if (!have?.up) steps.push({ kind: 'link-set-up', ifname: dev });
  }
  return steps;
}
