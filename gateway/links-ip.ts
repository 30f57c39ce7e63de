/** LinkBackend on iproute2 (`ip -d -j addr`, `bridge -j fdb`). */
import { ParseError } from './errors.js';
import { change, read, type Host } from './host.js';
import { ZERO_MAC, type LinkBackend, type LinkInfo } from './links.js';

interface IpAddrJson {
  ifname: string;
  mtu: number;
  flags?: string[];
  master?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
  linkinfo?: {
    info_kind?: string;
    info_data?: { id?: number; local?: string; port?: number; learning?: boolean };
  };
}

/** Parses `ip -d -j addr show`. Pure. */
export function parseIpAddr(text: string): LinkInfo[] {
  let parsed: IpAddrJson[];
  try {
    parsed = JSON.parse(text || '[]') as IpAddrJson[];
  } catch (err) {
    throw new ParseError('ip -d -j addr', 'not JSON', { cause: err });
  }
  return parsed.map((l) => {
    const kind = l.linkinfo?.info_kind;
    const d = l.linkinfo?.info_data;
    return {
      name: l.ifname,
      kind,
      mtu: l.mtu,
      up: (l.flags ?? []).includes('UP'),
      noarp: (l.flags ?? []).includes('NOARP'),
      addresses: (l.addr_info ?? [])
        .filter((a) => a.family === 'inet' || (a.family === 'inet6' && !a.local.startsWith('fe80')))
        .map((a) => `${a.local}/${a.prefixlen}`),
      master: l.master,
      ...((kind === 'vxlan' || kind === 'geneve') && d?.port !== undefined
        ? { udpPort: d.port }
        : {}),
      vxlan:
        kind === 'vxlan'
          ? {
              vni: d?.id ?? 0,
              local: d?.local,
              dstport: d?.port ?? 0,
              learning: d?.learning ?? true,
            }
          : undefined,
    };
  });
}

/** Parses `bridge -j fdb show dev X` into the sorted all-zero destinations. Pure. */
export function parseFloodList(text: string): string[] {
  const entries = JSON.parse(text || '[]') as { mac: string; dst?: string }[];
  return entries
    .filter((e) => e.mac === ZERO_MAC && e.dst)
    .map((e) => e.dst!)
    .sort();
}

export class IpLinks implements LinkBackend {
  constructor(private readonly host: Host) {}

  async list(): Promise<LinkInfo[]> {
    return parseIpAddr((await read(this.host, ['ip', '-d', '-j', 'addr', 'show'])).stdout);
  }

  async floodList(dev: string): Promise<string[]> {
    const r = await read(this.host, ['bridge', '-j', 'fdb', 'show', 'dev', dev]);
    return parseFloodList(r.stdout);
  }

  async createVxlan(name: string, vni: number, local: string, dstport: number): Promise<void> {
    await change(this.host, [
      'ip',
      'link',
      'add',
      name,
      'type',
      'vxlan',
      'id',
      String(vni),
      'local',
      local,
      'dstport',
      String(dstport),
      'nolearning',
    ]);
  }

  async deleteLink(name: string): Promise<void> {
    await change(this.host, ['ip', 'link', 'del', name]);
  }

  async setMtu(name: string, mtu: number): Promise<void> {
    await change(this.host, ['ip', 'link', 'set', name, 'mtu', String(mtu)]);
  }

  async setUp(name: string): Promise<void> {
    await change(this.host, ['ip', 'link', 'set', name, 'up']);
  }

  async setNoArp(name: string): Promise<void> {
    await change(this.host, ['ip', 'link', 'set', name, 'arp', 'off']);
  }

  async addAddress(name: string, cidr: string): Promise<void> {
    await change(this.host, ['ip', 'addr', 'add', cidr, 'dev', name]);
  }

  async delAddress(name: string, cidr: string): Promise<void> {
    await change(this.host, ['ip', 'addr', 'del', cidr, 'dev', name]);
  }

  async floodAppend(dev: string, dst: string): Promise<void> {
    await change(this.host, ['bridge', 'fdb', 'append', ZERO_MAC, 'dev', dev, 'dst', dst]);
  }

  async floodDelete(dev: string, dst: string): Promise<void> {
    await change(this.host, ['bridge', 'fdb', 'del', ZERO_MAC, 'dev', dev, 'dst', dst]);
  }
}
