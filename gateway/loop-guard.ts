/**
 * L2 loop guard and broadcast/multicast rate bound (issue 12): the pure parts (the nft
 * table as a script, its parser, the loop decision). loop-monitor.ts runs them.
 *
 * Split horizon between gateways cannot see a loop that leaves the federation: two
 * clusters exporting the same physical segment, or a tenant bridging segments. A frame
 * then goes gateway A → tunnel → gateway B → B's segment → A's segment → A's VXLAN
 * device → tunnel → B … for ever, and every broadcast multiplies.
 *
 * Detection: every check each gateway sends one beacon per network through its VXLAN
 * device (loop-beacon.ts): group address LOOP_BEACON_MAC (bridges flood it), EtherType
 * 0x88B5, a random 32-bit nonce. Head-end replication sends one VXLAN copy per peer.
 * The output chain records each (peer, VNI, nonce) the first time it leaves; a beacon
 * leaving again with a recorded triple came back through some segment: a loop through
 * that peer's path on that network. It is dropped (so beacons never circulate) and
 * counted in that pair's rule counter, which the monitor reads.
 *
 * Cutting: of the two gateways on a loop, the one whose identity sorts higher stands
 * down on that network: it drops all VXLAN of the network to and from every peer (the
 * lower one keeps carrying the shared segment, which the higher one's pods reach through
 * it). Only its own fresh beacons still leave (once, then their repeat is dropped), so
 * it keeps seeing the loop while it lasts and unblocks after `holdTicks` quiet checks.
 * Both sides compute the same answer, so they never both block or flap.
 *
 * Rate bound: per (peer, VNI) and direction, VXLAN packets whose inner destination MAC
 * has the group bit (broadcast, multicast) over `packetsPerSecond` (burst `burst`) are
 * dropped and counted. Unknown unicast is not bounded: in the tunnel it cannot be told
 * from known unicast (docs/gateway.md, "Loops and storms").
 */
import { createHash } from 'node:crypto';
import { ParseError } from './errors.js';

/** A locally administered group address (bit 0 and 1 of the first octet): bridges flood it. */
export const LOOP_BEACON_MAC = '03:6c:32:66:6c:70';
export const LOOP_BEACON_ETHERTYPE = 0x88b5;

export const L2_GUARD_FAMILY = 'inet';
export const L2_GUARD_TABLE = 'l2fed_l2';
/** Bumped when the rules change; part of the marker, so older tables are replaced. */
export const L2_GUARD_VERSION = 3;

/** Quiet checks (beacon sent, no repeat) before a block lifts. */
export const DEFAULT_HOLD_TICKS = 3;

// Offsets in the transport header of the outer UDP packet (bits): UDP 8 bytes, VXLAN 8
// bytes (VNI at bytes 4-6), then the inner frame: destination MAC, source MAC, EtherType,
// payload (the beacon's nonce first).
const VNI = '@th,96,24';
const INNER_DST = '@th,128,48';
const INNER_GROUP_BYTE = '@th,128,8';
const INNER_TYPE = '@th,224,16';
const NONCE = '@th,240,32';

const BEACON_MAC_HEX = `0x${LOOP_BEACON_MAC.replaceAll(':', '')}`;
/** The health probe's destination (l2-probe.ts); bridges drop it, so tenants cannot send it. */
const PROBE_MAC_HEX = '0x0180c200000e';

/**
 * Beacons and health probes per path and direction get their own budget ahead of the
 * bound (one each per check), so a storm at the bound cannot starve loop detection.
 * Forged beacons share only this budget.
 */
const CONTROL_LIMIT = 'limit rate 10/second burst 10 packets';

/** One network carried to one peer, with its bound. */
export interface GuardedPath {
  /** Peer transit address (IPv4). */
  readonly address: string;
  readonly vni: number;
  readonly packetsPerSecond: number;
  readonly burst: number;
}

export interface L2GuardSpec {
  readonly wgIfname: string;
  readonly vxlanPort: number;
  readonly paths: readonly GuardedPath[];
}

/** A blocked (peer address, VNI) pair: VXLAN both ways dropped, except own beacons out. */
export interface BlockedPath {
  readonly address: string;
  readonly vni: number;
}

const pathKey = (p: { address: string; vni: number }) => `${p.address} ${p.vni}`;

/** nft refuses a longer rule comment, and with it the whole `nft -f` transaction. */
export const NFT_COMMENT_MAX = 128;

/**
 * The spec in one comparable string that fits a rule comment (≤ NFT_COMMENT_MAX at any
 * size): version, tunnel, port, path count and a digest of every path and bound. The
 * paths themselves do not fit: at 4 paths the list passed 128 characters and nft refused
 * the table.
 */
export function l2GuardMarker(spec: L2GuardSpec): string {
  const paths = [...spec.paths]
    .map((p) => `${p.address}/${p.vni}/${p.packetsPerSecond}/${p.burst}`)
    .sort()
    .join(',');
  const digest = createHash('sha256').update(paths).digest('hex').slice(0, 32);
  return `l2fed-l2 v${L2_GUARD_VERSION} wg=${spec.wgIfname} port=${spec.vxlanPort} paths=${spec.paths.length} sha256=${digest}`;
}

/**
 * The whole table as one `nft -f` script (one transaction, replacing an older table
 * atomically; counters and the beacon record restart). `blocked` is carried over so a
 * replaced table keeps the blocks in force.
 */
export function l2GuardScript(spec: L2GuardSpec, blocked: readonly BlockedPath[]): string {
  const t = `${L2_GUARD_FAMILY} ${L2_GUARD_TABLE}`;
  const wg = spec.wgIfname;
  const port = spec.vxlanPort;
  const vx = `udp dport ${port}`;
  const beacon = `${INNER_DST} ${BEACON_MAC_HEX} ${INNER_TYPE} 0x${LOOP_BEACON_ETHERTYPE.toString(16)}`;
  const group = `${INNER_GROUP_BYTE} & 0x1 == 0x1`;
  const control = `${INNER_DST} { ${BEACON_MAC_HEX}, ${PROBE_MAC_HEX} } ${INNER_TYPE} 0x${LOOP_BEACON_ETHERTYPE.toString(16)}`;
  const elems = blocked.map((b) => `${b.address} . ${b.vni}`);
  const paths = [...spec.paths].sort((a, b) => pathKey(a).localeCompare(pathKey(b)));
  return [
    `table ${t} {}`,
    `delete table ${t}`,
    `table ${t} {`,
    '  set blocked {',
    `    typeof ip saddr . ${VNI}`,
    ...(elems.length ? [`    elements = { ${elems.join(', ')} }`] : []),
    '  }',
    // A beacon comes back within ms of its first passage; 10 s is plenty, and keeps the
    // set small: one element per network per peer per check.
    '  set beacons_out {',
    `    typeof ip daddr . ${VNI} . ${NONCE}`,
    '    size 262144',
    '    flags timeout',
    '    timeout 10s',
    '  }',
    '  chain input {',
    '    type filter hook input priority filter - 20; policy accept;',
    `    iifname "${wg}" ${vx} ip saddr . ${VNI} @blocked counter drop comment "${l2GuardMarker(spec)}"`,
    ...paths.map(
      (p) =>
        `    iifname "${wg}" ${vx} ip saddr ${p.address} ${VNI} ${p.vni} ${control} ${CONTROL_LIMIT} accept comment "control-in ${p.address} ${p.vni}"`,
    ),
    ...paths.map(
      (p) =>
        `    iifname "${wg}" ${vx} ip saddr ${p.address} ${VNI} ${p.vni} ${group} limit rate over ${p.packetsPerSecond}/second burst ${p.burst} packets counter drop comment "bum-in ${p.address} ${p.vni}"`,
    ),
    '  }',
    '  chain output {',
    '    type filter hook output priority filter - 20; policy accept;',
    // A beacon leaving a second time came back through a segment: count it per path, drop.
    ...paths.map(
      (p) =>
        `    oifname "${wg}" ${vx} ip daddr ${p.address} ${VNI} ${p.vni} ${beacon} ip daddr . ${VNI} . ${NONCE} @beacons_out counter drop comment "repeat ${p.address} ${p.vni}"`,
    ),
    `    oifname "${wg}" ${vx} ${beacon} add @beacons_out { ip daddr . ${VNI} . ${NONCE} }`,
    // Blocked: everything but a first-time beacon (a forged one passes once, no more).
    `    oifname "${wg}" ${vx} ip daddr . ${VNI} @blocked ${INNER_DST} != ${BEACON_MAC_HEX} counter drop comment "blocked-out"`,
    ...paths.map(
      (p) =>
        `    oifname "${wg}" ${vx} ip daddr ${p.address} ${VNI} ${p.vni} ${control} ${CONTROL_LIMIT} accept comment "control-out ${p.address} ${p.vni}"`,
    ),
    ...paths.map(
      (p) =>
        `    oifname "${wg}" ${vx} ip daddr ${p.address} ${VNI} ${p.vni} ${group} limit rate over ${p.packetsPerSecond}/second burst ${p.burst} packets counter drop comment "bum-out ${p.address} ${p.vni}"`,
    ),
    '  }',
    '}',
    '',
  ].join('\n');
}

export function l2GuardRemoveScript(): string {
  const t = `${L2_GUARD_FAMILY} ${L2_GUARD_TABLE}`;
  return `table ${t} {}\ndelete table ${t}\n`;
}

/** `nft add/delete element` script for the blocked set. */
export function blockScript(add: readonly BlockedPath[], del: readonly BlockedPath[]): string {
  const t = `${L2_GUARD_FAMILY} ${L2_GUARD_TABLE}`;
  const list = (ps: readonly BlockedPath[]) => ps.map((p) => `${p.address} . ${p.vni}`).join(', ');
  return [
    ...(add.length ? [`add element ${t} blocked { ${list(add)} }`] : []),
    ...(del.length ? [`delete element ${t} blocked { ${list(del)} }`] : []),
    '',
  ].join('\n');
}

/** Frames counted by one rule since the table was (re)made. */
export interface PathCounters {
  /** Own beacons that came back (loop evidence), by "address vni". */
  readonly repeats: ReadonlyMap<string, number>;
  /** BUM frames dropped by the bound, from the peer / to the peer, by "address vni". */
  readonly bumDroppedIn: ReadonlyMap<string, number>;
  readonly bumDroppedOut: ReadonlyMap<string, number>;
  /** Frames dropped on blocked paths (all paths together). */
  readonly blockedIn: number;
  readonly blockedOut: number;
}

export interface ObservedL2Guard {
  readonly marker: string | undefined;
  readonly blocked: readonly BlockedPath[];
  readonly counters: PathCounters;
}

export { pathKey };

interface NftRule {
  chain?: string;
  comment?: string;
  expr?: { counter?: { packets?: number } }[];
}
interface NftSet {
  name?: string;
  elem?: unknown[];
}

/**
 * Parses `nft -j list table inet l2fed_l2`. Pure.
 * @throws ParseError when the text is not nft JSON.
 */
export function parseL2Guard(text: string): ObservedL2Guard {
  let objects: { rule?: NftRule; set?: NftSet }[];
  try {
    objects = (JSON.parse(text) as { nftables: { rule?: NftRule; set?: NftSet }[] }).nftables;
    if (!Array.isArray(objects)) throw new Error('no "nftables" array');
  } catch (err) {
    throw new ParseError('nft -j list table', 'not nftables JSON', { cause: err });
  }
  const repeats = new Map<string, number>();
  const bumIn = new Map<string, number>();
  const bumOut = new Map<string, number>();
  let marker: string | undefined;
  let blockedIn = 0;
  let blockedOut = 0;
  for (const o of objects) {
    const r = o.rule;
    if (!r?.comment) continue;
    const n = r.expr?.find((e) => e.counter)?.counter?.packets ?? 0;
    const m = /^(repeat|bum-in|bum-out) (\S+ \d+)$/.exec(r.comment);
    if (m) {
      const map = m[1] === 'repeat' ? repeats : m[1] === 'bum-in' ? bumIn : bumOut;
      map.set(m[2]!, n);
    } else if (r.comment.startsWith('l2fed-l2 ')) {
      marker = r.comment;
      blockedIn = n;
    } else if (r.comment === 'blocked-out') {
      blockedOut = n;
    }
  }
  const set = objects.find((o) => o.set?.name === 'blocked')?.set;
  const blocked: BlockedPath[] = [];
  for (const e of set?.elem ?? []) {
    const val = (e as { elem?: { val?: unknown } }).elem?.val ?? e;
    const c = (val as { concat?: unknown[] }).concat;
    if (Array.isArray(c) && typeof c[0] === 'string' && typeof c[1] === 'number') {
      blocked.push({ address: c[0], vni: c[1] });
    }
  }
  return {
    marker,
    blocked,
    counters: { repeats, bumDroppedIn: bumIn, bumDroppedOut: bumOut, blockedIn, blockedOut },
  };
}

/** A network as the decision sees it. */
export interface LoopNetwork {
  readonly name: string;
  readonly vni: number;
  readonly peers: readonly { readonly name: string; readonly address: string }[];
}

/** The loop state of one network. */
export interface NetworkLoopState {
  /** Peers through whose path our beacon came back in the last check. */
  readonly loopPeers: readonly string[];
  /** This gateway stands down on the network (all its peer paths blocked). */
  readonly blocked: boolean;
  /** Checks in a row with a beacon sent and none back, while blocked. */
  readonly quietTicks: number;
  /** For people: '' when there is no loop. */
  readonly reason: string;
}

/**
 * One check's decision. Pure. A loop is seen on a network when a beacon came back
 * through one of its peers' paths (`repeats` grew). Of the gateways on the loop, the one
 * whose identity sorts higher stands down: it blocks the network to all peers. A block
 * lifts after `holdTicks` checks in a row in which a beacon went out and none came back.
 * Peer names are the peers' identities (cluster ids), as the agent configures them.
 * @param repeatsGrew "address vni" keys whose repeat counter grew since the last check
 * @param beaconSent networks on which this check's beacon left
 */
export function decideLoops(input: {
  readonly identity: string;
  readonly networks: readonly LoopNetwork[];
  readonly previous: ReadonlyMap<string, NetworkLoopState>;
  readonly repeatsGrew: ReadonlySet<string>;
  readonly beaconSent: ReadonlySet<string>;
  readonly holdTicks?: number;
}): Map<string, NetworkLoopState> {
  const hold = input.holdTicks ?? DEFAULT_HOLD_TICKS;
  const out = new Map<string, NetworkLoopState>();
  for (const n of input.networks) {
    const prev = input.previous.get(n.name);
    const loopPeers = n.peers
      .filter((p) => input.repeatsGrew.has(pathKey({ address: p.address, vni: n.vni })))
      .map((p) => p.name)
      .sort();
    const lower = loopPeers.filter((p) => p < input.identity);
    let blocked = prev?.blocked ?? false;
    let quietTicks = 0;
    if (loopPeers.length > 0) {
      // Blocked and still looping: stay. Not blocked: only the higher side blocks.
      blocked = blocked || lower.length > 0;
    } else if (blocked && input.beaconSent.has(n.name)) {
      quietTicks = (prev?.quietTicks ?? 0) + 1;
      if (quietTicks >= hold) {
        blocked = false;
        quietTicks = 0;
      }
    } else if (blocked) {
      quietTicks = prev?.quietTicks ?? 0; // no beacon left: no evidence either way
    }
    const via = loopPeers.join(', ');
    const reason = blocked
      ? loopPeers.length > 0
        ? `loop through ${via} on ${n.name}: this gateway blocks ${n.name}'s VXLAN to all peers (${lower[0] ?? via} carries the shared segment)`
        : `loop on ${n.name} blocked by this gateway; no beacon came back for ${quietTicks} of ${hold} checks`
      : loopPeers.length > 0
        ? `loop through ${via} on ${n.name}: the gateway with the higher id (${loopPeers.join(', ')}) blocks it`
        : '';
    out.set(n.name, { loopPeers, blocked, quietTicks, reason });
  }
  return out;
}

/** Per network per peer. */
export interface PathReport {
  readonly peer: string;
  readonly address: string;
  /** BUM frames dropped by the bound since the table was made: from / to the peer. */
  readonly bumDroppedIn: number;
  readonly bumDroppedOut: number;
}

export interface NetworkLoopReport extends NetworkLoopState {
  readonly name: string;
  readonly vni: number;
  readonly paths: readonly PathReport[];
  /** Why no beacon left this check ('' = it did, or no peers). */
  readonly beaconError: string;
}

export interface LoopReport {
  readonly at: string;
  readonly networks: readonly NetworkLoopReport[];
  /** Frames dropped on blocked paths since the table was made (all paths). */
  readonly blockedDroppedIn: number;
  readonly blockedDroppedOut: number;
}

/** The blocked pairs that the states ask for. Pure. */
export function blockedPaths(
  networks: readonly LoopNetwork[],
  states: ReadonlyMap<string, NetworkLoopState>,
): BlockedPath[] {
  return networks.flatMap((n) =>
    states.get(n.name)?.blocked ? n.peers.map((p) => ({ address: p.address, vni: n.vni })) : [],
  );
}

/** Parses a "address vni" key back. */
export function parsePathKey(key: string): BlockedPath {
  const [address, vni] = key.split(' ');
  return { address: address!, vni: Number(vni) };
}

/**
 * A network's health with its loop state folded in. Pure. A loop (seen or blocked here)
 * makes an ok network degraded with the loop's reason; a worse status keeps its status
 * and gets the reason appended.
 */
export function withLoop<S extends string>(
  judged: { readonly status: S; readonly reason: string },
  loop: { readonly reason: string } | undefined,
): { status: S | 'degraded'; reason: string } {
  if (!loop?.reason) return judged;
  if (judged.status === 'ok') return { status: 'degraded', reason: loop.reason };
  return {
    status: judged.status,
    reason: judged.reason ? `${judged.reason}; ${loop.reason}` : loop.reason,
  };
}
