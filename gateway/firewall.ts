/**
 * The VXLAN guard: an nftables table in the data-plane namespace that lets VXLAN in only
 * through the WireGuard interface, from a peer's transit address only for the VNIs that
 * peer carries with us, and lets nothing reach the gateway's own IP stack through a
 * VXLAN device. Linux binds VXLAN sockets to INADDR_ANY:<dstport> and a VXLAN device
 * takes packets from any source, so without it a pod could send a hand-made VXLAN packet
 * to the transit address (through its own segment and the gateway's VXLAN device), and a
 * peer gateway sharing network A could send frames into network B. WireGuard admits a
 * packet from a peer only with a source in that peer's allowed-ips (its transit /32), so
 * the source address names the peer. See docs/gateway.md, "VXLAN only through the tunnel".
 *
 * The pure parts live here (spec, script, parser); firewall-nft.ts runs `nft`.
 */
import { ParseError } from './errors.js';
import { VXLAN_PREFIX } from './names.js';

/** Bumped when the rule set changes, so an older table is replaced on the next apply. */
export const FIREWALL_VERSION = 4;

/** Family and name of the table the gateway owns; nothing else in nftables is touched. */
export const FIREWALL_FAMILY = 'inet';
export const FIREWALL_TABLE = 'l2fed';

/** Name of the set of (transit address . VNI) pairs VXLAN may come from. */
export const VXLAN_FROM_SET = 'vxlan_from';

/** A peer's transit address (IPv4) and a VNI it carries with us. */
export interface VxlanSource {
  readonly address: string;
  readonly vni: number;
}

/** What the guard protects: the tunnel interface VXLAN must arrive on, and its port. */
export interface FirewallSpec {
  readonly wgIfname: string;
  readonly vxlanPort: number;
  /** Who may send which VNI through the tunnel; sorted and unique (see vxlanSources). */
  readonly vxlanFrom: readonly VxlanSource[];
}

const ipv4Key = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0);

/** Sorted (address numerically, then VNI) and without duplicates: the comparable form. */
export function vxlanSources(pairs: readonly VxlanSource[]): VxlanSource[] {
  // Each address is parsed once, not in every comparison: at 100 peers × 50 networks
  // the comparator's parsing was most of a no-op apply's CPU.
  const sorted = pairs
    .map((p) => ({ p, key: ipv4Key(p.address) }))
    .sort((a, b) => a.key - b.key || a.p.vni - b.p.vni)
    .map((x) => x.p);
  return sorted.filter(
    (p, i) => i === 0 || p.address !== sorted[i - 1]!.address || p.vni !== sorted[i - 1]!.vni,
  );
}

/** The table as read back. `intact` = its chain and rules are the ones the marker names. */
export interface ObservedFirewall {
  /** Parsed from the version marker; undefined when the table has no (readable) marker. */
  readonly version: number | undefined;
  readonly spec: FirewallSpec | undefined;
  readonly intact: boolean;
}

/** The comment on the first rule: version, tunnel and port in one comparable string. */
export function firewallMarker(spec: FirewallSpec): string {
  return `l2fed v${FIREWALL_VERSION} wg=${spec.wgIfname} port=${spec.vxlanPort}`;
}

const MARKER = /^l2fed v(\d+) wg=(\S+) port=(\d+)$/;

/** The set's key: the outer source address and the VNI in the VXLAN header. */
const SOURCE_KEY = 'ip saddr . @th,96,24';

/** Pairs to add to and delete from the set, when only its elements differ. */
export interface VxlanSourceChange {
  readonly add: readonly VxlanSource[];
  readonly del: readonly VxlanSource[];
}

/**
 * When the observed table is current (intact, this version, tunnel and port) and only
 * its set differs, the pairs to add and delete; undefined when the whole table must be
 * replaced (or nothing differs). A one-peer change then writes that peer's pairs, not
 * every pair of every peer.
 */
export function vxlanSourceChange(
  want: FirewallSpec,
  have: ObservedFirewall | undefined,
): VxlanSourceChange | undefined {
  if (
    !have?.intact ||
    have.version !== FIREWALL_VERSION ||
    have.spec?.wgIfname !== want.wgIfname ||
    have.spec.vxlanPort !== want.vxlanPort
  ) {
    return undefined;
  }
  const key = (p: VxlanSource) => `${p.address} ${p.vni}`;
  const wanted = new Set(want.vxlanFrom.map(key));
  const held = new Set(have.spec.vxlanFrom.map(key));
  const add = vxlanSources(want.vxlanFrom.filter((p) => !held.has(key(p))));
  const del = vxlanSources(have.spec.vxlanFrom.filter((p) => !wanted.has(key(p))));
  return add.length || del.length ? { add, del } : undefined;
}

/**
 * The set's changed pairs as one `nft -f` script: one transaction, so a packet sees
 * the old set or the new one.
 */
export function vxlanSourceChangeScript(change: VxlanSourceChange): string {
  const set = `${FIREWALL_FAMILY} ${FIREWALL_TABLE} ${VXLAN_FROM_SET}`;
  const list = (ps: readonly VxlanSource[]) => ps.map((p) => `${p.address} . ${p.vni}`).join(', ');
  return [
    ...(change.del.length ? [`delete element ${set} { ${list(change.del)} }`] : []),
    ...(change.add.length ? [`add element ${set} { ${list(change.add)} }`] : []),
    '',
  ].join('\n');
}

/** True when the observed table is exactly the desired one. */
export function firewallMatches(want: FirewallSpec, have: ObservedFirewall | undefined): boolean {
  return (
    have !== undefined &&
    have.intact &&
    have.version === FIREWALL_VERSION &&
    have.spec?.wgIfname === want.wgIfname &&
    have.spec.vxlanPort === want.vxlanPort &&
    sameSources(have.spec.vxlanFrom, want.vxlanFrom)
  );
}

function sameSources(a: readonly VxlanSource[], b: readonly VxlanSource[]): boolean {
  const x = vxlanSources(a);
  const y = vxlanSources(b);
  return (
    x.length === y.length && x.every((p, i) => p.address === y[i]!.address && p.vni === y[i]!.vni)
  );
}

/**
 * The whole table as one `nft -f` script. `nft -f` is one transaction: the empty
 * `table` makes the `delete` valid when there is no table yet, and the old table (if
 * any) is replaced by the new one atomically, so a half-installed guard never exists.
 * Interface names come from a validated config (`l2f` prefix, no quotes or spaces).
 */
export function firewallScript(spec: FirewallSpec): string {
  const t = `${FIREWALL_FAMILY} ${FIREWALL_TABLE}`;
  const pairs = vxlanSources(spec.vxlanFrom).map((p) => `${p.address} . ${p.vni}`);
  return [
    `table ${t} {}`,
    `delete table ${t}`,
    `table ${t} {`,
    // @th,96,24: the VNI, bytes 4-6 of the VXLAN header after the 8-byte UDP header.
    `  set ${VXLAN_FROM_SET} {`,
    `    typeof ${SOURCE_KEY}`,
    ...(pairs.length ? [`    elements = { ${pairs.join(', ')} }`] : []),
    '  }',
    '  chain input {',
    '    type filter hook input priority filter - 10; policy accept;',
    // Nothing reaches the gateway's stack through a VXLAN device (OVS netdev leaves
    // the kernel stack seeing decapsulated frames: ARP for the transit address, IPv6).
    // nft has only prefix wildcards, and a tunnel may be named `l2fv…` too (l2fvienna),
    // so the tunnel is excepted by name: without it such a gateway drops all its traffic.
    `    iifname "${VXLAN_PREFIX}*" iifname != "${spec.wgIfname}" drop comment "${firewallMarker(spec)}"`,
    // VXLAN only through the tunnel, and only the VNIs each peer carries with us.
    // (An IPv6 packet has no `ip saddr` and falls through to the drop.)
    `    iifname "${spec.wgIfname}" udp dport ${spec.vxlanPort} ${SOURCE_KEY} @${VXLAN_FROM_SET} accept`,
    `    udp dport ${spec.vxlanPort} drop`,
    '  }',
    // Nor does the gateway's stack say anything into a tenant network: no IPv6 router
    // solicitations, MLD or DAD from a VXLAN device's link-local address. (ARP is off on
    // the devices themselves: NOARP.) Probe frames use AF_PACKET and pass.
    '  chain output {',
    '    type filter hook output priority filter - 10; policy accept;',
    `    oifname "${VXLAN_PREFIX}*" oifname != "${spec.wgIfname}" drop`,
    '  }',
    '}',
    '',
  ].join('\n');
}

/** Removes the table if present, as one transaction (no error when it is absent). */
export function firewallRemoveScript(): string {
  const t = `${FIREWALL_FAMILY} ${FIREWALL_TABLE}`;
  return `table ${t} {}\ndelete table ${t}\n`;
}

// The parts of `nft -j list table` the parser looks at. Anything else is ignored.
interface NftMatch {
  match?: { op?: string; left?: unknown; right?: unknown };
  drop?: unknown;
  accept?: unknown;
}
interface NftObject {
  chain?: { name?: string; type?: string; hook?: string; prio?: unknown; policy?: string };
  rule?: { chain?: string; comment?: string; expr?: NftMatch[] };
  set?: { name?: string; type?: unknown; elem?: unknown[] };
}

const metaKey = (key: string) => (left: unknown) =>
  (left as { meta?: { key?: string } } | undefined)?.meta?.key === key;
const isIifname = metaKey('iifname');
const isOifname = metaKey('oifname');

function isUdpDport(left: unknown): boolean {
  const p = (left as { payload?: { protocol?: string; field?: string } } | undefined)?.payload;
  return p?.protocol === 'udp' && p.field === 'dport';
}

function hasMatch(expr: NftMatch[], op: string, left: (l: unknown) => boolean, right: unknown) {
  return expr.some(
    (e) => e.match && (e.match.op ?? '==') === op && left(e.match.left) && e.match.right === right,
  );
}

/** `ip saddr . @th,96,24` as nft -j renders it. */
function isSourceKey(left: unknown): boolean {
  const parts = (left as { concat?: unknown[] } | undefined)?.concat;
  if (!Array.isArray(parts) || parts.length !== 2) return false;
  const [a, b] = parts as { payload?: Record<string, unknown> }[];
  return (
    a?.payload?.protocol === 'ip' &&
    a.payload.field === 'saddr' &&
    b?.payload?.base === 'th' &&
    b.payload.offset === 96 &&
    b.payload.len === 24
  );
}

/**
 * The set's elements as pairs; undefined when one is not an (IPv4, VNI) pair. nft 1.0.6
 * renders an element as {concat: [addr, vni]}; with element options it wraps it in
 * {elem: {val: …}}.
 */
function parseSources(elems: readonly unknown[]): VxlanSource[] | undefined {
  const out: VxlanSource[] = [];
  for (const e of elems) {
    const val = (e as { elem?: { val?: unknown } }).elem?.val ?? e;
    const c = (val as { concat?: unknown[] }).concat;
    if (!Array.isArray(c) || c.length !== 2) return undefined;
    const [address, vni] = c;
    if (typeof address !== 'string' || !/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) return undefined;
    if (typeof vni !== 'number' || !Number.isInteger(vni)) return undefined;
    out.push({ address, vni });
  }
  return vxlanSources(out);
}

/**
 * Parses `nft -j list table inet l2fed`. Pure. The marker says which tunnel and port the
 * table was built for and the set which (peer, VNI) pairs it admits; `intact` checks that
 * both chains, the set and all four rules are there (someone may have deleted a rule by
 * hand), loosely enough to survive nft version differences in the JSON rendering.
 * @throws ParseError when the text is not nft JSON.
 */
export function parseNftTable(text: string): ObservedFirewall {
  let objects: NftObject[];
  try {
    objects = (JSON.parse(text) as { nftables: NftObject[] }).nftables;
    if (!Array.isArray(objects)) throw new Error('no "nftables" array');
  } catch (err) {
    throw new ParseError('nft -j list table', 'not nftables JSON', { cause: err });
  }
  const chains = objects.flatMap((o) => (o.chain ? [o.chain] : []));
  const rules = objects.flatMap((o) => (o.rule ? [o.rule] : []));
  const sets = objects.flatMap((o) => (o.set ? [o.set] : []));
  const set = sets.length === 1 && sets[0]!.name === VXLAN_FROM_SET ? sets[0] : undefined;
  const setType = JSON.stringify(set?.type);
  const vxlanFrom =
    setType === JSON.stringify(['ipv4_addr', 'integer'])
      ? parseSources(set?.elem ?? [])
      : undefined;
  const marked = rules.find((r) => r.comment && MARKER.test(r.comment));
  const m = marked?.comment ? MARKER.exec(marked.comment) : null;
  // Without a readable set the table admits an unknown set of peers: no spec, not intact.
  const spec = m && vxlanFrom ? { wgIfname: m[2]!, vxlanPort: Number(m[3]), vxlanFrom } : undefined;
  // With exactly two chains, finding both names means each is there once.
  const chainOk = (name: 'input' | 'output') => {
    const c = chains.find((x) => x.name === name);
    return c?.type === 'filter' && c.hook === name && c.prio === -10 && c.policy === 'accept';
  };
  type Rule = (typeof rules)[number];
  const drops = (r: Rule) => (r.expr ?? []).some((e) => 'drop' in e);
  // Each rule: drop, the tunnel excepted, plus its one distinguishing match.
  const guards = (r: Rule | undefined, s: FirewallSpec, dev: (l: unknown) => boolean) =>
    r !== undefined && drops(r) && hasMatch(r.expr ?? [], '!=', dev, s.wgIfname);
  const input = rules.filter((r) => r.chain === 'input');
  const output = rules.filter((r) => r.chain === 'output');
  const fromPeers = (r: Rule | undefined, s: FirewallSpec) => {
    const e = r?.expr ?? [];
    return (
      e.some((x) => 'accept' in x) &&
      hasMatch(e, '==', isIifname, s.wgIfname) &&
      hasMatch(e, '==', isUdpDport, s.vxlanPort) &&
      hasMatch(e, '==', isSourceKey, `@${VXLAN_FROM_SET}`)
    );
  };
  // The last rule drops the port unconditionally: exactly a port match and a drop.
  const dropsPort = (r: Rule | undefined, s: FirewallSpec) =>
    r?.expr?.length === 2 && drops(r) && hasMatch(r.expr, '==', isUdpDport, s.vxlanPort);
  const intact =
    spec !== undefined &&
    chains.length === 2 &&
    chainOk('input') &&
    chainOk('output') &&
    input.length === 3 &&
    output.length === 1 &&
    guards(input[0], spec, isIifname) &&
    hasMatch(input[0]!.expr ?? [], '==', isIifname, `${VXLAN_PREFIX}*`) &&
    fromPeers(input[1], spec) &&
    dropsPort(input[2], spec) &&
    guards(output[0], spec, isOifname) &&
    hasMatch(output[0]!.expr ?? [], '==', isOifname, `${VXLAN_PREFIX}*`);
  return { version: m ? Number(m[1]) : undefined, spec, intact };
}

/**
 * The guard's backend. read() is side-effect free; set() replaces the whole table in
 * one transaction, or with `elements` changes only those pairs of its set (one
 * transaction too); remove() deletes it and is a no-op when it is absent.
 */
export interface FirewallBackend {
  /** undefined = no table. */
  read(): Promise<ObservedFirewall | undefined>;
  /** @param elements only these pairs change (the table is otherwise current: vxlanSourceChange) */
  set(spec: FirewallSpec, elements?: VxlanSourceChange): Promise<void>;
  remove(): Promise<void>;
}
