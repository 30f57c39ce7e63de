/**
 * The VXLAN guard: an nftables table in the data-plane namespace that lets VXLAN in only
 * through the WireGuard interface and lets nothing reach the gateway's own IP stack
 * through a VXLAN device. Linux binds VXLAN sockets to INADDR_ANY:<dstport>, so without
 * it a pod could send a hand-made VXLAN packet to the transit address (through its own
 * segment and the gateway's VXLAN device) and inject frames into any other network.
 * See docs/gateway.md, "VXLAN only through the tunnel".
 *
 * The pure parts live here (spec, script, parser); firewall-nft.ts runs `nft`.
 */
import { ParseError } from './errors.js';
import { VXLAN_PREFIX } from './model.js';

/** Bumped when the rule set changes, so an older table is replaced on the next apply. */
export const FIREWALL_VERSION = 2;

/** Family and name of the table the gateway owns; nothing else in nftables is touched. */
export const FIREWALL_FAMILY = 'inet';
export const FIREWALL_TABLE = 'l2fed';

/** What the guard protects: the tunnel interface VXLAN must arrive on, and its port. */
export interface FirewallSpec {
  readonly wgIfname: string;
  readonly vxlanPort: number;
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

/** True when the observed table is exactly the desired one. */
export function firewallMatches(want: FirewallSpec, have: ObservedFirewall | undefined): boolean {
  return (
    have !== undefined &&
    have.intact &&
    have.version === FIREWALL_VERSION &&
    have.spec?.wgIfname === want.wgIfname &&
    have.spec.vxlanPort === want.vxlanPort
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
  return [
    `table ${t} {}`,
    `delete table ${t}`,
    `table ${t} {`,
    '  chain input {',
    '    type filter hook input priority filter - 10; policy accept;',
    // Nothing reaches the gateway's stack through a VXLAN device (OVS netdev leaves
    // the kernel stack seeing decapsulated frames: ARP for the transit address, IPv6).
    // nft has only prefix wildcards, and a tunnel may be named `l2fv…` too (l2fvienna),
    // so the tunnel is excepted by name: without it such a gateway drops all its traffic.
    `    iifname "${VXLAN_PREFIX}*" iifname != "${spec.wgIfname}" drop comment "${firewallMarker(spec)}"`,
    // VXLAN only through the tunnel.
    `    udp dport ${spec.vxlanPort} iifname != "${spec.wgIfname}" drop`,
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
}
interface NftObject {
  chain?: { name?: string; type?: string; hook?: string; prio?: unknown; policy?: string };
  rule?: { chain?: string; comment?: string; expr?: NftMatch[] };
}

function isIifname(left: unknown): boolean {
  return (left as { meta?: { key?: string } } | undefined)?.meta?.key === 'iifname';
}

function isUdpDport(left: unknown): boolean {
  const p = (left as { payload?: { protocol?: string; field?: string } } | undefined)?.payload;
  return p?.protocol === 'udp' && p.field === 'dport';
}

function hasMatch(expr: NftMatch[], op: string, left: (l: unknown) => boolean, right: unknown) {
  return expr.some(
    (e) => e.match && (e.match.op ?? '==') === op && left(e.match.left) && e.match.right === right,
  );
}

/**
 * Parses `nft -j list table inet l2fed`. Pure. The marker says which spec the table was
 * built for; `intact` checks that the chain and both rules are really there (someone
 * may have deleted a rule by hand), loosely enough to survive nft version differences
 * in the JSON rendering.
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
  const marked = rules.find((r) => r.comment && MARKER.test(r.comment));
  const m = marked?.comment ? MARKER.exec(marked.comment) : null;
  const spec = m ? { wgIfname: m[2]!, vxlanPort: Number(m[3]) } : undefined;
  const chain = chains.length === 1 ? chains[0] : undefined;
  const chainOk =
    chain?.name === 'input' &&
    chain.type === 'filter' &&
    chain.hook === 'input' &&
    chain.prio === -10 &&
    chain.policy === 'accept';
  const dropsVxlanDevices = (r: (typeof rules)[number], s: FirewallSpec) =>
    (r.expr ?? []).some((e) => 'drop' in e) &&
    hasMatch(r.expr ?? [], '==', isIifname, `${VXLAN_PREFIX}*`) &&
    hasMatch(r.expr ?? [], '!=', isIifname, s.wgIfname);
  const dropsForeignVxlan = (r: (typeof rules)[number], s: FirewallSpec) =>
    (r.expr ?? []).some((e) => 'drop' in e) &&
    hasMatch(r.expr ?? [], '==', isUdpDport, s.vxlanPort) &&
    hasMatch(r.expr ?? [], '!=', isIifname, s.wgIfname);
  const intact =
    spec !== undefined &&
    chainOk &&
    rules.length === 2 &&
    rules.every((r) => r.chain === 'input') &&
    dropsVxlanDevices(rules[0]!, spec) &&
    dropsForeignVxlan(rules[1]!, spec);
  return { version: m ? Number(m[1]) : undefined, spec, intact };
}

/**
 * The guard's backend. read() is side-effect free; set() replaces the whole table in
 * one transaction; remove() deletes it and is a no-op when it is absent.
 */
export interface FirewallBackend {
  /** undefined = no table. */
  read(): Promise<ObservedFirewall | undefined>;
  set(spec: FirewallSpec): Promise<void>;
  remove(): Promise<void>;
}
