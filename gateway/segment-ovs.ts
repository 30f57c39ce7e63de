/**
 * Segment backend on Open vSwitch: the VXLAN device becomes a port of the network's OVS
 * bridge (optionally an access port on a VLAN). Works with the kernel datapath and with
 * the userspace `netdev` datapath, where OVS reads the device through AF_PACKET.
 */
import type { SegmentConfig } from './config.js';
import { ParseError } from './errors.js';
import { change, read, type Host } from './host.js';
import { VXLAN_PREFIX, type ObservedAttachment } from './model.js';
import type { SegmentBackend, SegmentView } from './segment.js';

type OvsAtom = string | number | ['uuid', string] | ['set', unknown[]];

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

/** Builds the view from `list Bridge` (name, ports) and `list Port` (_uuid, name, tag). Pure. */
export function parseOvsView(bridgeJson: string, portJson: string): SegmentView {
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

  async read(): Promise<SegmentView> {
    const list = (table: string, columns: string) =>
      read(this.host, this.vsctl('--format=json', `--columns=${columns}`, 'list', table));
    const [b, p] = await Promise.all([
      list('Bridge', 'name,ports'),
      list('Port', '_uuid,name,tag'),
    ]);
    return parseOvsView(b.stdout, p.stdout);
  }

  async attach(port: string, segment: SegmentConfig): Promise<void> {
    const tag = segment.type === 'ovs' && segment.vlan !== undefined ? [`tag=${segment.vlan}`] : [];
    await change(this.host, this.vsctl('--may-exist', 'add-port', segment.bridge, port, ...tag));
  }

  async detach(port: string, segment: SegmentConfig): Promise<void> {
    await change(this.host, this.vsctl('--if-exists', 'del-port', segment.bridge, port));
  }
}
