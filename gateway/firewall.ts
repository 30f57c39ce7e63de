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
import { VXLAN_PREFIX } from './names.js';

/** Bumped when the rule set changes, so an older table is replaced on the next apply. */
export const FIREWALL_VERSION = 3;

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
}
interface NftObject {
  chain?: { name?: string; type?: string; hook?: string; prio?: unknown; policy?: string };
  rule?: { chain?: string; comment?: string; expr?: NftMatch[] };
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

/**
 * Parses `nft -j list table inet l2fed`. Pure. The marker says which spec the table was
 * built for; `intact` checks that both chains and all three rules are there (someone
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
  const intact =
    spec !== undefined &&
    chains.length === 2 &&
    chainOk('input') &&
    chainOk('output') &&
    input.length === 2 &&
    output.length === 1 &&
    guards(input[0], spec, isIifname) &&
    hasMatch(input[0]!.expr ?? [], '==', isIifname, `${VXLAN_PREFIX}*`) &&
    guards(input[1], spec, isIifname) &&
    hasMatch(input[1]!.expr ?? [], '==', isUdpDport, spec.vxlanPort) &&
    guards(output[0], spec, isOifname) &&
    hasMatch(output[0]!.expr ?? [], '==', isOifname, `${VXLAN_PREFIX}*`);
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
