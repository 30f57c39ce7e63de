/**
 * Segment backend on Open vSwitch: the VXLAN device becomes a port of the network's OVS
 * bridge (optionally an access port on a VLAN). Works with the kernel datapath and with
 * the userspace `netdev` datapath, where OVS reads the device through AF_PACKET, or,
 * with the `interface` option, through AF_XDP (`type=afxdp`, see docs/gateway.md).
 */
import type { SegmentConfig } from './config.js';
import { ParseError } from './errors.js';
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
  /** Devices that exist (from the reconciler's link read). */
  readonly devices: ReadonlySet<string>;
}

/**
 * Builds the view from `list Bridge` (name, ports) and `list Port` (_uuid, name, tag). Pure.
 * With `iface`, a gateway port whose device exists but whose Interface settings differ
 * from the wanted ones is left out of the attachments, so the plan re-attaches it (and
 * attach sets them). A port whose device is gone is always reported, so it can be unplugged.
 */
export function parseOvsView(
  bridgeJson: string,
  portJson: string,
  iface?: OvsInterfaceCheck,
): SegmentView {
  const interfaces = new Map(
    iface
      ? rows(iface.json, 'Interface').map((r) => [
          String(r.name),
          { type: String(r.type), options: mapOf(r.options) },
        ])
      : [],
  );
  const ports = new Map(
    rows(portJson, 'Port').map((r) => {
      const tag = elements(r.tag)[0];
      return [uuidOf(r._uuid), { name: String(r.name), tag: tag as number | undefined }];
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
      if (iface && have && iface.devices.has(p.name) && !interfaceMatches(have, iface.want)) {
        continue;
      }
      const segment: SegmentConfig =
        p.tag === undefined ? { type: 'ovs', bridge } : { type: 'ovs', bridge, vlan: p.tag };
      attachments.push({ port: p.name, segment });
    }
  }
  return { bridges, attachments };
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

/** `-- set Interface PORT type=… options:k=v` arguments for attach. */
function interfaceArgs(port: string, want: OvsInterfaceSettings | undefined): string[] {
  if (!want) return [];
  const options = Object.entries(want.options ?? {}).map(([k, v]) => `options:${k}=${v}`);
  return ['--', 'set', 'Interface', port, `type=${want.type}`, ...options];
}

export class OvsSegment implements SegmentBackend {
  readonly type = 'ovs' as const;
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
    const [b, p, i] = await Promise.all([
      list('Bridge', 'name,ports'),
      list('Port', '_uuid,name,tag'),
      want ? list('Interface', 'name,type,options') : undefined,
    ]);
    const devices = new Set(links.map((l) => l.name));
    return parseOvsView(
      b.stdout,
      p.stdout,
      i && want ? { json: i.stdout, want, devices } : undefined,
    );
  }

  async attach(port: string, segment: SegmentConfig): Promise<void> {
    const tag = segment.type === 'ovs' && segment.vlan !== undefined ? [`tag=${segment.vlan}`] : [];
    await change(
      this.host,
      this.vsctl(
        '--may-exist',
        'add-port',
        segment.bridge,
        port,
        ...tag,
        ...interfaceArgs(port, this.options.interface),
      ),
    );
  }

  async detach(port: string, segment: SegmentConfig): Promise<void> {
    await change(this.host, this.vsctl('--if-exists', 'del-port', segment.bridge, port));
  }
}
