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
 * The path's out chain records each (peer, VNI, nonce) the first time it leaves; a beacon
 * leaving again with a recorded triple came back through some segment: a loop through
 * that peer's path on that network. It is dropped (so beacons never circulate) and
 * counted under that pair in a counter set, which the monitor reads.
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
 *
 * Layout (issue 15): every path has its own two chains, reached by one verdict-map
 * lookup per direction, so a path added, removed or re-bounded is a small transaction of
 * that path's chains and map entries, whatever the number of paths.
 *
 * Counters (issue 18): a rule that drops does not count itself; it jumps (goto) to the
 * sink chain of its kind, which updates the path's element in one of five counter sets
 * (COUNTER_SETS, nft's per-element counters) and then drops. So a check reads its
 * counters with `list set` of those five, a small fraction of `list table` (whose rules
 * are most of it: 144 KB and 6.6 ms of libnftables at 31 paths). The drop is a rule of
 * its own: an update that cannot make its element (a full set, no memory) ends only that
 * rule, and the packet is dropped all the same.
 */
import { ParseError } from './errors.js';

/** A locally administered group address (bit 0 and 1 of the first octet): bridges flood it. */
export const LOOP_BEACON_MAC = '03:6c:32:66:6c:70';
export const LOOP_BEACON_ETHERTYPE = 0x88b5;

export const L2_GUARD_FAMILY = 'inet';
export const L2_GUARD_TABLE = 'l2fed_l2';
/** Bumped when the rules change; part of the marker, so older tables are replaced. */
export const L2_GUARD_VERSION = 5;

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
 * The table's fixed part in one comparable string (a rule comment): version, tunnel and
 * port. The paths are not in it: each has its own chains, compared one by one
 * (l2GuardChange), so a one-path change rewrites that path only.
 */
export function l2GuardMarker(spec: Pick<L2GuardSpec, 'wgIfname' | 'vxlanPort'>): string {
  return `l2fed-l2 v${L2_GUARD_VERSION} wg=${spec.wgIfname} port=${spec.vxlanPort}`;
}

const TABLE = `${L2_GUARD_FAMILY} ${L2_GUARD_TABLE}`;
/** Verdict maps (peer address . VNI) → goto the path's chain, one per direction. */
const PATHS_IN = 'paths_in';
const PATHS_OUT = 'paths_out';

/** The path's chains: `in-198.19.0.3-1000`, `out-198.19.0.3-1000`. */
const chainOf = (dir: 'in' | 'out', p: BlockedPath) => `${dir}-${p.address}-${p.vni}`;

const BEACON = `${INNER_DST} ${BEACON_MAC_HEX} ${INNER_TYPE} 0x${LOOP_BEACON_ETHERTYPE.toString(16)}`;
const GROUP = `${INNER_GROUP_BYTE} & 0x1 == 0x1`;
const CONTROL = `${INNER_DST} { ${BEACON_MAC_HEX}, ${PROBE_MAC_HEX} } ${INNER_TYPE} 0x${LOOP_BEACON_ETHERTYPE.toString(16)}`;
const bound = (p: GuardedPath) => `${p.packetsPerSecond}/${p.burst}`;

/**
 * The counter set of each counting rule kind (by its comment's first word). Each holds
 * one element per path that dropped something, with nft's packet counter.
 */
export const COUNTER_SETS = {
  repeat: 'count_repeat',
  'bum-in': 'count_bum_in',
  'bum-out': 'count_bum_out',
  'blocked-in': 'count_blocked_in',
  'blocked-out': 'count_blocked_out',
} as const;
type CountingKind = keyof typeof COUNTER_SETS;
/** Elements per counter set at most: paths are peers × networks of one gateway. */
const COUNTER_SET_SIZE = 65536;
const KINDS = Object.keys(COUNTER_SETS) as CountingKind[];
/** The sink chain of a kind: counts the packet under its path, then drops it. */
const sinkOf = (kind: CountingKind) => `count-${kind}`;
/** The path key of a packet of `kind`, as the verdict maps key it. */
const keyOf = (kind: CountingKind) => `${kind.endsWith('-in') ? 'ip saddr' : 'ip daddr'} . ${VNI}`;
/** The five sink chains with their two rules each (part of the fixed table). */
function sinkLines(): string[] {
  return KINDS.flatMap((kind) => [
    `add chain ${TABLE} ${sinkOf(kind)}`,
    `add rule ${TABLE} ${sinkOf(kind)} update @${COUNTER_SETS[kind]} { ${keyOf(kind)} } comment "count ${kind}"`,
    `add rule ${TABLE} ${sinkOf(kind)} drop comment "drop ${kind}"`,
  ]);
}
const drop = (kind: CountingKind) => `goto ${sinkOf(kind)}`;

/**
 * One path's two chains, their rules and map entries. `fresh`: the chains are new in
 * this transaction (a full table); otherwise they may exist (a changed bound, or a path
 * left half-made by hand) and are flushed first, so they end up exactly these rules.
 * The map entries are added either way (an entry already there with the same verdict is
 * no error).
 */
function pathLines(p: GuardedPath, fresh: boolean): string[] {
  const k = pathKey(p);
  const [cin, cout] = [chainOf('in', p), chainOf('out', p)];
  const rule = (chain: string, body: string, comment: string) =>
    `add rule ${TABLE} ${chain} ${body} comment "${comment} ${k}"`;
  const limit = `limit rate over ${p.packetsPerSecond}/second burst ${p.burst} packets`;
  return [
    `add chain ${TABLE} ${cin}`,
    ...(fresh ? [] : [`flush chain ${TABLE} ${cin}`]),
    rule(cin, `ip saddr . ${VNI} @blocked ${drop('blocked-in')}`, 'blocked-in'),
    rule(cin, `${CONTROL} ${CONTROL_LIMIT} accept`, 'control-in'),
    rule(cin, `${GROUP} ${limit} ${drop('bum-in')}`, `bum-in ${bound(p)}`),
    `add chain ${TABLE} ${cout}`,
    ...(fresh ? [] : [`flush chain ${TABLE} ${cout}`]),
    // A beacon leaving a second time came back through a segment: count it, drop it.
    rule(cout, `${BEACON} ip daddr . ${VNI} . ${NONCE} @beacons_out ${drop('repeat')}`, 'repeat'),
    rule(cout, `${BEACON} add @beacons_out { ip daddr . ${VNI} . ${NONCE} }`, 'record'),
    // Blocked: everything but a first-time beacon (a forged one passes once, no more).
    rule(
      cout,
      `ip daddr . ${VNI} @blocked ${INNER_DST} != ${BEACON_MAC_HEX} ${drop('blocked-out')}`,
      'blocked-out',
    ),
    rule(cout, `${CONTROL} ${CONTROL_LIMIT} accept`, 'control-out'),
    rule(cout, `${GROUP} ${limit} ${drop('bum-out')}`, `bum-out ${bound(p)}`),
    `add element ${TABLE} ${PATHS_IN} { ${p.address} . ${p.vni} : goto ${cin} }`,
    `add element ${TABLE} ${PATHS_OUT} { ${p.address} . ${p.vni} : goto ${cout} }`,
  ];
}

/**
 * Removes one path: its map entries, its counters, then its chains. Elements are added
 * first, so the delete cannot fail on a path that was only half there (or that never
 * dropped anything, so has no counter elements).
 */
function pathRemoveLines(p: BlockedPath): string[] {
  const [cin, cout] = [chainOf('in', p), chainOf('out', p)];
  const elem = `${p.address} . ${p.vni}`;
  const counters = Object.values(COUNTER_SETS);
  return [
    `add chain ${TABLE} ${cin}`,
    `add chain ${TABLE} ${cout}`,
    `add element ${TABLE} ${PATHS_IN} { ${elem} : goto ${cin} }`,
    `add element ${TABLE} ${PATHS_OUT} { ${elem} : goto ${cout} }`,
    ...counters.map((set) => `add element ${TABLE} ${set} { ${elem} }`),
    `delete element ${TABLE} ${PATHS_IN} { ${elem} }`,
    `delete element ${TABLE} ${PATHS_OUT} { ${elem} }`,
    ...counters.map((set) => `delete element ${TABLE} ${set} { ${elem} }`),
    `flush chain ${TABLE} ${cin}`,
    `delete chain ${TABLE} ${cin}`,
    `flush chain ${TABLE} ${cout}`,
    `delete chain ${TABLE} ${cout}`,
  ];
}

const sortPaths = <P extends BlockedPath>(ps: readonly P[]) =>
  [...ps].sort((a, b) => pathKey(a).localeCompare(pathKey(b)));

/**
 * The whole table as one `nft -f` script (one transaction, replacing an older table
 * atomically; counters and the beacon record restart). Used when there is no table or
 * its fixed part (marker) differs; path changes go through l2GuardChangeScript.
 * `blocked` is carried over so a replaced table keeps the blocks in force.
 *
 * A VXLAN packet through the tunnel is looked up once by (peer address, VNI) in a
 * verdict map and goes to its path's chain (a handful of rules), so neither the per
 * packet cost nor a one-path change grows with the number of paths.
 */
export function l2GuardScript(spec: L2GuardSpec, blocked: readonly BlockedPath[]): string {
  const wg = spec.wgIfname;
  const vx = `udp dport ${spec.vxlanPort}`;
  const marker = l2GuardMarker(spec);
  const elems = sortPaths(blocked).map((b) => `${b.address} . ${b.vni}`);
  return [
    `table ${TABLE} {}`,
    `delete table ${TABLE}`,
    `add table ${TABLE}`,
    `add set ${TABLE} blocked { typeof ip saddr . ${VNI}; }`,
    // A beacon comes back within ms of its first passage; 10 s is plenty, and keeps the
    // set small: one element per network per peer per check.
    `add set ${TABLE} beacons_out { typeof ip daddr . ${VNI} . ${NONCE}; size 262144; flags timeout; timeout 10s; }`,
    ...Object.values(COUNTER_SETS).map(
      (set) =>
        `add set ${TABLE} ${set} { typeof ip saddr . ${VNI}; size ${COUNTER_SET_SIZE}; flags dynamic; counter; }`,
    ),
    ...sinkLines(),
    `add map ${TABLE} ${PATHS_IN} { typeof ip saddr . ${VNI} : verdict; }`,
    `add map ${TABLE} ${PATHS_OUT} { typeof ip daddr . ${VNI} : verdict; }`,
    `add chain ${TABLE} input { type filter hook input priority filter - 20; policy accept; }`,
    `add chain ${TABLE} output { type filter hook output priority filter - 20; policy accept; }`,
    `add rule ${TABLE} input iifname "${wg}" ${vx} ip saddr . ${VNI} vmap @${PATHS_IN} comment "${marker}"`,
    `add rule ${TABLE} output oifname "${wg}" ${vx} ip daddr . ${VNI} vmap @${PATHS_OUT} comment "${marker}"`,
    ...(elems.length ? [`add element ${TABLE} blocked { ${elems.join(', ')} }`] : []),
    ...sortPaths(spec.paths).flatMap((p) => pathLines(p, true)),
    '',
  ].join('\n');
}

/** Paths to (re)write and to remove, when the table's fixed part is current. */
export interface L2GuardChange {
  /** Missing, with another bound, or not whole: written afresh. */
  readonly put: readonly GuardedPath[];
  /** In the table (whole or in part), not in the spec. */
  readonly del: readonly BlockedPath[];
}

/**
 * What differs path by path; undefined when nothing does. Call only when
 * `have.marker === l2GuardMarker(want)` (else the whole table is replaced). Pure.
 */
export function l2GuardChange(want: L2GuardSpec, have: ObservedL2Guard): L2GuardChange | undefined {
  const wanted = new Map(want.paths.map((p) => [pathKey(p), p]));
  const put = sortPaths(
    [...wanted.values()].filter((p) => {
      const h = have.paths.get(pathKey(p));
      return h?.packetsPerSecond !== p.packetsPerSecond || h.burst !== p.burst;
    }),
  );
  const del = sortPaths(
    [...new Set([...have.paths.keys(), ...have.partial])]
      .filter((k) => !wanted.has(k))
      .map(parsePathKey),
  );
  return put.length || del.length ? { put, del } : undefined;
}

/**
 * One transaction for a path change and the blocked elements that go with it (a new
 * path of a blocked network is blocked in the same step; a removed path's element goes).
 */
export function l2GuardChangeScript(
  change: L2GuardChange,
  blocked: { readonly add: readonly BlockedPath[]; readonly del: readonly BlockedPath[] },
): string {
  return [
    ...change.del.flatMap(pathRemoveLines),
    ...change.put.flatMap((p) => pathLines(p, false)),
    blockScript(blocked.add, blocked.del),
  ].join('\n');
}

export function l2GuardRemoveScript(): string {
  return `table ${TABLE} {}\ndelete table ${TABLE}\n`;
}

/**
 * `nft add/delete element` script for the blocked set. An element to delete is added
 * first, so a delete of one already gone (a stale read, a hand edit) cannot fail the
 * transaction and keep the other changes from happening.
 */
export function blockScript(add: readonly BlockedPath[], del: readonly BlockedPath[]): string {
  const list = (ps: readonly BlockedPath[]) => ps.map((p) => `${p.address} . ${p.vni}`).join(', ');
  const set = `element ${TABLE} blocked`;
  return [
    ...(add.length ? [`add ${set} { ${list(add)} }`] : []),
    ...(del.length ? [`add ${set} { ${list(del)} }`, `delete ${set} { ${list(del)} }`] : []),
    '',
  ].join('\n');
}

/**
 * Frames dropped and counted by the path rules since the table or the path was made (a
 * new bound keeps them), by "address vni"; a path that dropped nothing has no entry.
 */
export interface PathCounters {
  /** Own beacons that came back (loop evidence). */
  readonly repeats: ReadonlyMap<string, number>;
  /** BUM frames dropped by the bound, from the peer / to the peer. */
  readonly bumDroppedIn: ReadonlyMap<string, number>;
  readonly bumDroppedOut: ReadonlyMap<string, number>;
  /** Frames dropped because the path is blocked, from the peer / to the peer. */
  readonly blockedDroppedIn: ReadonlyMap<string, number>;
  readonly blockedDroppedOut: ReadonlyMap<string, number>;
  /**
   * Set when a counter set holds an element without a counter (a kernel that keeps none
   * on elements its rules add): loop detection is blind. The check still does its work,
   * then fails with this reason (loop-monitor.ts).
   */
  readonly uncounted?: string;
}

export interface ObservedL2Guard {
  /** The fixed part (both base rules carry it); undefined when either is missing. */
  readonly marker: string | undefined;
  readonly blocked: readonly BlockedPath[];
  /** Whole paths (both chains with all their rules, both map entries), with their bound. */
  readonly paths: ReadonlyMap<string, GuardedPath>;
  /** Paths of which only some part is there (chains, rules or map entries), by key. */
  readonly partial: ReadonlySet<string>;
  readonly counters: PathCounters;
}

export { pathKey };

interface NftRule {
  chain?: string;
  comment?: string;
}
interface NftSet {
  name?: string;
  elem?: unknown[];
}

/** Every rule a whole path has, by the first word of its comment, and the chain it sits in. */
const PATH_RULES: Readonly<Record<string, 'in' | 'out'>> = {
  'blocked-in': 'in',
  'control-in': 'in',
  'bum-in': 'in',
  repeat: 'out',
  record: 'out',
  'blocked-out': 'out',
  'control-out': 'out',
  'bum-out': 'out',
};
const PATH_COMMENT = /^([a-z-]+)(?: (\d+)\/(\d+))? (\d{1,3}(?:\.\d{1,3}){3}) (\d+)$/;

/** An element of a set ({concat: [a, v]}, maybe wrapped in {elem: {val}}) as a pair. */
function pairOf(e: unknown): BlockedPath | undefined {
  const val = (e as { elem?: { val?: unknown } }).elem?.val ?? e;
  const c = (val as { concat?: unknown[] }).concat;
  return Array.isArray(c) && typeof c[0] === 'string' && typeof c[1] === 'number'
    ? { address: c[0], vni: c[1] }
    : undefined;
}

/** A verdict map's elements, [key, {goto: {target}}] in nft -j, as key → chain. */
function gotoTargets(elems: readonly unknown[] | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of elems ?? []) {
    if (!Array.isArray(e) || e.length !== 2) continue;
    const p = pairOf(e[0]);
    const target = (e[1] as { goto?: { target?: unknown } } | undefined)?.goto?.target;
    if (p && typeof target === 'string') out.set(pathKey(p), target);
  }
  return out;
}

type NftObject = { rule?: NftRule; set?: NftSet; map?: NftSet };

/** The objects of one `nft -j list …` document, or of several, one per line. */
function nftObjects(text: string, what: string): NftObject[] {
  const docs = (): unknown[] => {
    try {
      return [JSON.parse(text)];
    } catch {
      return text
        .split('\n')
        .filter((line) => line.trim())
        .map((line) => JSON.parse(line) as unknown);
    }
  };
  try {
    return docs().flatMap((doc) => {
      const objects = (doc as { nftables?: unknown } | null)?.nftables;
      if (!Array.isArray(objects)) throw new Error('no "nftables" array');
      return objects as NftObject[];
    });
  } catch (err) {
    throw new ParseError(what, 'not nftables JSON', { cause: err });
  }
}

/**
 * The counter sets' elements (COUNTER_SETS) as PathCounters. `requireAll`: a set not
 * listed is an error (a listing of the sets alone), else it counts as empty (a table
 * without them is an older version, replaced whole).
 */
function countersOf(objects: readonly NftObject[], requireAll: boolean): PathCounters {
  let uncounted: string | undefined;
  const of = (kind: CountingKind) => {
    const out = new Map<string, number>();
    const set = objects.find((o) => o.set?.name === COUNTER_SETS[kind])?.set;
    if (!set && requireAll) {
      // Read as empty, every path's next count would look like a repeat: a false loop.
      throw new ParseError('nft -j list set', `no set ${COUNTER_SETS[kind]} in the listing`);
    }
    for (const e of set?.elem ?? []) {
      const p = pairOf(e);
      const n = (e as { elem?: { counter?: { packets?: unknown } } }).elem?.counter?.packets;
      if (p && typeof n !== 'number') {
        uncounted ??= `element ${pathKey(p)} of ${COUNTER_SETS[kind]} has no counter: this kernel does not keep counters on set elements its rules add, so loops cannot be detected`;
      } else if (p) out.set(pathKey(p), n as number);
    }
    return out;
  };
  return {
    repeats: of('repeat'),
    bumDroppedIn: of('bum-in'),
    bumDroppedOut: of('bum-out'),
    blockedDroppedIn: of('blocked-in'),
    blockedDroppedOut: of('blocked-out'),
    ...(uncounted ? { uncounted } : {}),
  };
}

/**
 * Parses `nft -j list set inet l2fed_l2 S` of the COUNTER_SETS (one document per line,
 * as the probe helper returns them): a check's counters without the rest of the table.
 * Pure.
 * @throws ParseError when the text is not nft JSON or lacks one of the five sets.
 */
export function parseL2GuardCounters(text: string): PathCounters {
  return countersOf(nftObjects(text, 'nft -j list set'), true);
}

/**
 * Parses `nft -j list table inet l2fed_l2`. Pure. A path counts as whole only with both
 * chains holding all their rules (one each, the same bound in and out) and both map
 * entries pointing at them; anything less is `partial` and gets rewritten.
 * @throws ParseError when the text is not nft JSON.
 */
export function parseL2Guard(text: string): ObservedL2Guard {
  const objects = nftObjects(text, 'nft -j list table');
  const markers = {
    input: undefined as string | undefined,
    output: undefined as string | undefined,
  };
  // Per path: the rules seen (kind → how many) and the bounds they carry.
  const seen = new Map<string, { kinds: Map<string, number>; bounds: Set<string> }>();
  // Every rule of the sink chains, in order, by comment ('' without one).
  const sinkRules = new Map<string, string[]>();
  for (const o of objects) {
    const r = o.rule;
    if (r?.chain?.startsWith('count-')) {
      sinkRules.set(r.chain, [...(sinkRules.get(r.chain) ?? []), r.comment ?? '']);
      continue;
    }
    if (!r?.comment) continue;
    if (r.comment.startsWith('l2fed-l2 ')) {
      if (r.chain === 'input' || r.chain === 'output') markers[r.chain] = r.comment;
      continue;
    }
    const m = PATH_COMMENT.exec(r.comment);
    const dir = m && PATH_RULES[m[1]!];
    if (!m || !dir) continue;
    const p = { address: m[4]!, vni: Number(m[5]) };
    const k = pathKey(p);
    const s = seen.get(k) ?? { kinds: new Map<string, number>(), bounds: new Set<string>() };
    seen.set(k, s);
    // A rule in another path's chain does not make this one whole.
    if (r.chain !== chainOf(dir, p)) continue;
    s.kinds.set(m[1]!, (s.kinds.get(m[1]!) ?? 0) + 1);
    if (m[2] !== undefined) s.bounds.add(`${m[2]}/${m[3]}`);
  }
  const mapped = (name: string) =>
    gotoTargets(objects.find((o) => o.map?.name === name)?.map?.elem);
  const [ins, outs] = [mapped(PATHS_IN), mapped(PATHS_OUT)];
  const paths = new Map<string, GuardedPath>();
  const partial = new Set<string>([...ins.keys(), ...outs.keys(), ...seen.keys()]);
  for (const [k, s] of seen) {
    const p = parsePathKey(k);
    const whole =
      Object.keys(PATH_RULES).every((kind) => s.kinds.get(kind) === 1) &&
      s.bounds.size === 1 &&
      ins.get(k) === chainOf('in', p) &&
      outs.get(k) === chainOf('out', p);
    if (!whole) continue;
    const [pps, burst] = [...s.bounds][0]!.split('/').map(Number) as [number, number];
    paths.set(k, { ...p, packetsPerSecond: pps, burst });
    partial.delete(k);
  }
  const set = objects.find((o) => o.set?.name === 'blocked')?.set;
  const blocked = (set?.elem ?? []).flatMap((e) => {
    const p = pairOf(e);
    return p ? [p] : [];
  });
  // The sinks are part of the fixed part: each exactly its count rule, then its drop rule
  // (anything else there, and the table is made afresh).
  const sinksWhole = KINDS.every(
    (kind) => sinkRules.get(sinkOf(kind))?.join('|') === `count ${kind}|drop ${kind}`,
  );
  return {
    marker: markers.input === markers.output && sinksWhole ? markers.input : undefined,
    blocked,
    paths,
    partial,
    counters: countersOf(objects, false),
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
  /**
   * Frames dropped since the path was made (a new table, or the path removed and made
   * again; a new bound keeps the count), from / to the peer: by the BUM bound, and
   * because the path is blocked.
   */
  readonly bumDroppedIn: number;
  readonly bumDroppedOut: number;
  readonly blockedDroppedIn: number;
  readonly blockedDroppedOut: number;
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
  /** The paths' blockedDropped counts added up (all networks). */
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
