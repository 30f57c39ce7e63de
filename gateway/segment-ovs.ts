/**
 * Segment backend on Open vSwitch: the VXLAN device becomes an access port of the
 * network's OVS bridge, on the network's VLAN or, for an untagged network, on VLAN 0.
 * Never a trunk: an OVS port without a tag carries every VLAN of its bridge, so an
 * untagged network sharing a bridge with a VLAN network would carry that network's
 * frames (tagged) to its peers, and take tagged frames from them into it. An access
 * port sends frames untagged and drops any that arrive with a nonzero VLAN ID
 * (802.1Q or 802.1ad). Works with the kernel datapath and with the userspace `netdev`
 * datapath, where OVS reads the device through AF_PACKET, or, with the `interface`
 * option, through AF_XDP (`type=afxdp`, see docs/gateway.md).
 */
import type { SegmentConfig } from './config.js';
import { ParseError, PreconditionError } from './errors.js';
import { change, read, type Host } from './host.js';
import type { LinkInfo } from './links.js';
import { VXLAN_PREFIX, type ObservedAttachment } from './model.js';
import type { SegmentBackend, SegmentView } from './segment.js';

type OvsAtom = string | number | ['uuid', string] | ['set', unknown[]] | ['map', unknown[]];

interface OvsTable {
  headings: string[];
  data: OvsAtom[][];
}

/** Elements of an OVSDB column value: sets are ["set", [...]], singletons are bare. */
function elements(v: OvsAtom | undefined): unknown[] {
  if (Array.isArray(v) && v[0] === 'set') return v[1];
  return v === undefined ? [] : [v];
}

function uuidOf(v: unknown): string {
  return Array.isArray(v) && v[0] === 'uuid' ? String(v[1]) : String(v);
}

function rows(text: string, what: string): Record<string, OvsAtom>[] {
  let t: OvsTable;
  try {
    t = JSON.parse(text) as OvsTable;
  } catch (err) {
    throw new ParseError(`ovs-vsctl list ${what}`, 'not JSON', { cause: err });
  }
  return t.data.map((row) => Object.fromEntries(t.headings.map((h, i) => [h, row[i]!])));
}

function mapOf(v: OvsAtom | undefined): Record<string, string> {
  if (!Array.isArray(v) || v[0] !== 'map') return {};
  return Object.fromEntries((v[1] as [string, string][]).map(([k, x]) => [k, String(x)]));
}

/** Interface settings of the gateway's ports: OVS `Interface` type and options. */
export interface OvsInterfaceSettings {
  /** e.g. "afxdp" (PMD-polled AF_XDP), "afxdp-nonpmd", "system". */
  readonly type: string;
  /** Interface options that must hold, e.g. { "xdp-mode": "generic" }; others are left alone. */
  readonly options?: Readonly<Record<string, string>>;
}

/** Whether an observed Interface row (type "" = system) has the wanted settings. */
export function interfaceMatches(
  have: { type: string; options: Readonly<Record<string, string>> },
  want: OvsInterfaceSettings,
): boolean {
  const norm = (t: string) => (t === '' ? 'system' : t);
  if (norm(have.type) !== norm(want.type)) return false;
  return Object.entries(want.options ?? {}).every(([k, v]) => have.options[k] === v);
}

/** What parseOvsView needs to judge a port's Interface settings. */
export interface OvsInterfaceCheck {
  /** `list Interface` (name, type, options) as JSON. */
  readonly json: string;
  readonly want: OvsInterfaceSettings;
}

/**
 * Builds the view from `list Bridge` (name, ports) and `list Port` (_uuid, name, tag,
 * vlan_mode). Pure. A gateway port counts as attached only as the gateway plugs it: an
 * access port with a tag (0 = the untagged network) and, with `iface`, the wanted
 * Interface settings. Any other port of ours whose device exists (a trunk, say, from an
 * older gateway or a hand edit) is left out, so the plan re-attaches it and attach
 * re-plugs it. A port whose device is gone is always reported, so it can be unplugged.
 * @param devices devices that exist (from the reconciler's link read); default: every
 *   port's.
 */
export function parseOvsView(
  bridgeJson: string,
  portJson: string,
  iface?: OvsInterfaceCheck,
  devices?: ReadonlySet<string>,
): SegmentView {
  const exists = (port: string) => devices?.has(port) ?? true;
  const interfaces = new Map(
    iface
      ? rows(iface.json, 'Interface').map((r) => [
          String(r.name),
          {
            type: String(r.type),
            options: mapOf(r.options),
            // Set by vswitchd when it could not open the port (ofport -1).
            error: elements(r.error).map(String).join(''),
          },
        ])
      : [],
  );
  const ports = new Map(
    rows(portJson, 'Port').map((r) => {
      const tag = elements(r.tag)[0];
      const mode = elements(r.vlan_mode)[0];
      return [
        uuidOf(r._uuid),
        { name: String(r.name), tag: tag as number | undefined, mode: mode as string | undefined },
      ];
    }),
  );
  const bridges: string[] = [];
  const attachments: ObservedAttachment[] = [];
  for (const b of rows(bridgeJson, 'Bridge')) {
    const bridge = String(b.name);
    bridges.push(bridge);
    for (const uuid of elements(b.ports).map(uuidOf)) {
      const p = ports.get(uuid);
      if (!p?.name.startsWith(VXLAN_PREFIX)) continue;
      const have = interfaces.get(p.name);
      const ifaceOk = !iface || !have || (interfaceMatches(have, iface.want) && !have.error);
      const access = p.mode === 'access' && p.tag !== undefined;
      if (exists(p.name) && (!ifaceOk || !access)) continue;
      const segment: SegmentConfig = p.tag
        ? { type: 'ovs', bridge, vlan: p.tag }
        : { type: 'ovs', bridge };
      attachments.push({ port: p.name, segment });
    }
  }
  return { bridges, attachments };
}

/**
 * Why the OVS cannot carry ports of type `want.type`, or undefined when it can. `types`
 * is the Open_vSwitch row's `iface_types`, which ovs-vswitchd fills at start with what
 * its build and datapath support (afxdp only where built with AF_XDP). Pure.
 */
export function ovsPortTypeProblem(
  types: readonly string[],
  want: OvsInterfaceSettings,
): string | undefined {
  const type = want.type === '' ? 'system' : want.type;
  if (type === 'system') return undefined; // what every OVS port is by default
  if (types.length === 0) {
    return (
      'this Open vSwitch lists no port types (Open_vSwitch iface_types is empty): ' +
      'ovs-vswitchd has not started; start it, the next apply checks again'
    );
  }
  if (types.includes(type)) return undefined;
  const build = type.startsWith('afxdp')
    ? 'an Open vSwitch built with AF_XDP (configure --enable-afxdp, needs libxdp/libbpf)'
    : `an Open vSwitch that offers ${type} ports`;
  return (
    `"${type}" is not a port type of this Open vSwitch (iface_types: ${types.join(', ')}); ` +
    `remove ovsPorts from the gateway config to use the default (system) ports, or run ${build}`
  );
}

export interface OvsSegmentOptions {
  /** OVSDB socket path; default: ovs-vsctl's own default. */
  readonly dbSocket?: string;
  /**
   * Interface type/options for the gateway's VXLAN ports; default: not managed (OVS
   * `system` port). `{ type: 'afxdp', options: { 'xdp-mode': 'generic' } }` is the
   * measured-fastest setting on a netdev bridge (docs/gateway.md, Benchmark).
   */
  readonly interface?: OvsInterfaceSettings;
}

/**
 * vswitchd added a port but could not open it (Interface `error`, ofport -1): it would
 * carry nothing. Raised by attach; the plan re-plugs such a port, so it shows again.
 */
export class OvsPortError extends Error {
  override name = 'OvsPortError';
  constructor(
    readonly port: string,
    readonly settings: OvsInterfaceSettings | undefined,
    readonly reason: string | undefined,
  ) {
    const how = settings
      ? ` (type=${[settings.type, ...Object.entries(settings.options ?? {}).map(([k, v]) => `${k}=${v}`)].join(' ')})`
      : '';
    const fix = settings
      ? 'fix ovsPorts in the gateway config, or remove it to use the default (system) ports'
      : 'check that the device exists and the bridge datapath can open it';
    super(
      `OVS could not open port ${port}${how}: ${reason ?? 'no reason given'}; ${fix} (details in the ovs-vswitchd log)`,
    );
  }
}

/** `-- set Interface PORT type=… options:k=v` arguments for attach. */
function interfaceArgs(port: string, want: OvsInterfaceSettings | undefined): string[] {
  if (!want) return [];
  const options = Object.entries(want.options ?? {}).map(([k, v]) => `options:${k}=${v}`);
  return ['--', 'set', 'Interface', port, `type=${want.type}`, ...options];
}

export class OvsSegment implements SegmentBackend {
  readonly type = 'ovs' as const;
  /** The configured port type was found in iface_types (checked until it is). */
  private typeChecked = false;
  constructor(
    private readonly host: Host,
    private readonly options: OvsSegmentOptions = {},
  ) {}

  private vsctl(...args: string[]): string[] {
    const db = this.options.dbSocket ? [`--db=unix:${this.options.dbSocket}`] : [];
    return ['ovs-vsctl', ...db, '--timeout=10', ...args];
  }

  async read(links: readonly LinkInfo[] = []): Promise<SegmentView> {
    const list = (table: string, columns: string) =>
      read(this.host, this.vsctl('--format=json', `--columns=${columns}`, 'list', table));
    const want = this.options.interface;
    if (want && !this.typeChecked) await this.checkPortType(want);
    const [b, p, i] = await Promise.all([
      list('Bridge', 'name,ports'),
      list('Port', '_uuid,name,tag,vlan_mode'),
      want ? list('Interface', 'name,type,options,error') : undefined,
    ]);
    const devices = new Set(links.map((l) => l.name));
    return parseOvsView(
      b.stdout,
      p.stdout,
      i && want ? { json: i.stdout, want } : undefined,
      devices,
    );
  }

  /**
   * Refuses a port type this OVS does not offer, before the plan runs anything: else
   * ovs-vsctl would add the port and vswitchd fail to open it (a port that carries
   * nothing, its error only in the Interface row and the vswitchd log).
   * @throws PreconditionError naming `ovsPorts.type` and the fix
   */
  private async checkPortType(want: OvsInterfaceSettings): Promise<void> {
    if ((want.type === '' ? 'system' : want.type) === 'system') {
      this.typeChecked = true;
      return;
    }
    const r = await read(
      this.host,
      this.vsctl('--format=json', '--columns=iface_types', 'list', 'Open_vSwitch'),
    );
    const types = rows(r.stdout, 'Open_vSwitch').flatMap((row) =>
      elements(row.iface_types).map(String),
    );
    const problem = ovsPortTypeProblem(types, want);
    if (problem) throw new PreconditionError('ovsPorts.type', problem);
    this.typeChecked = true;
  }

  /**
   * Plugs the port as an access port of the network's VLAN, or VLAN 0 when it has none
   * (see the file comment). One transaction that first removes a port of that name from
   * any bridge, so a trunk left by an older gateway, or a port on another bridge, is
   * re-plugged too; the plan attaches only a port that is not plugged as wanted.
   */
  async attach(port: string, segment: SegmentConfig): Promise<void> {
    const vlan = segment.type === 'ovs' ? (segment.vlan ?? 0) : 0;
    const r = await change(
      this.host,
      this.vsctl(
        '--',
        '--if-exists',
        'del-port',
        port,
        '--',
        'add-port',
        segment.bridge,
        port,
        'vlan_mode=access',
        `tag=${vlan}`,
        ...interfaceArgs(port, this.options.interface),
      ),
    );
    // vswitchd could not open the port: ovs-vsctl says so on stderr but exits 0.
    const failed = /Error detected while setting up '[^']*'(?:: (.*?))?\. {2}See/.exec(r.stderr);
    if (failed) throw new OvsPortError(port, this.options.interface, failed[1]);
  }

  async detach(port: string, segment: SegmentConfig): Promise<void> {
    await change(this.host, this.vsctl('--if-exists', 'del-port', segment.bridge, port));
  }
}
