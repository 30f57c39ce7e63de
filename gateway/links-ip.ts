/** LinkBackend on iproute2 (`ip -d -j addr`, `bridge -j fdb`). */
import { CommandError } from '../lib/errors.js';
import { ParseError } from './errors.js';
import { change, read, type Host } from './host.js';
import {
  VXLAN_FDB_LIMIT,
  ZERO_MAC,
  type LinkBackend,
  type LinkInfo,
  type UdpSocketHolder,
  type VxlanFdb,
} from './links.js';

interface IpAddrJson {
  ifname: string;
  mtu: number;
  flags?: string[];
  master?: string;
  addr_info?: { family: string; local: string; prefixlen: number }[];
  linkinfo?: {
    info_kind?: string;
    info_data?: {
      id?: number;
      local?: string;
      port?: number;
      learning?: boolean;
      limit?: number;
    };
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
              limit: d?.limit ?? 0,
            }
          : undefined,
    };
  });
}

interface FdbJson {
  mac: string;
  /** Present only in a dump of every device (no `dev` filter). */
  ifname?: string;
  dst?: string;
  master?: string;
  state?: string;
}

function fdbJson(text: string): FdbJson[] {
  try {
    return JSON.parse(text || '[]') as FdbJson[];
  } catch (err) {
    throw new ParseError('bridge -j fdb', 'not JSON', { cause: err });
  }
}

/**
 * Parses `bridge -j fdb show dev X` into the device's own entries (those with a `dst`;
 * entries of a bridge it is plugged into carry `master` instead). Static ones (`state`
 * permanent or static: written by `bridge fdb`) with the all-zero MAC are the flood
 * list; every other state (`""` reachable, `stale`) is one the kernel learned. A learned
 * all-zero entry (old kernels learn invalid source MACs) is never taken for a remote.
 * Pure.
 * @throws ParseError when the text is not JSON.
 */
export function parseFdb(text: string): VxlanFdb {
  return splitFdb(fdbJson(text));
}

/**
 * Parses `bridge -j fdb show` (every device) into the FDB of each of `devs`, by the
 * entries' `ifname`, as parseFdb would for each device alone. Pure.
 * @throws ParseError when the text is not JSON.
 */
export function parseFdbAll(text: string, devs: readonly string[]): Map<string, VxlanFdb> {
  const byDev = new Map<string, FdbJson[]>(devs.map((d) => [d, []]));
  for (const e of fdbJson(text)) if (e.ifname) byDev.get(e.ifname)?.push(e);
  return new Map([...byDev].map(([dev, entries]) => [dev, splitFdb(entries)]));
}

function splitFdb(entries: readonly FdbJson[]): VxlanFdb {
  const own = entries.filter((e) => e.dst && !e.master);
  const isStatic = (e: FdbJson) => e.state === 'permanent' || e.state === 'static';
  return {
    remotes: own
      .filter((e) => isStatic(e) && e.mac === ZERO_MAC)
      .map((e) => e.dst!)
      .sort(),
    learned: own
      .filter((e) => !isStatic(e))
      .map((e) => ({ mac: e.mac, dst: e.dst! }))
      .sort((a, b) => a.mac.localeCompare(b.mac) || a.dst.localeCompare(b.dst)),
  };
}

/**
 * Parses `ss -H -u -a -n -p` lines: `STATE RECV-Q SEND-Q LOCAL PEER [users:(("name",pid=N,fd=M),…)]`.
 * A socket without `users:` is the kernel's (a WireGuard or VXLAN device's) or one whose
 * process `ss` cannot see (another PID namespace: the gateway container does not share
 * the node's). Pure.
 */
export function parseSsUdp(text: string): UdpSocketHolder[] {
  return text
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length >= 5)
    .map((f) => ({
      local: f[3]!,
      processes: [
        ...f
          .slice(5)
          .join(' ')
          .matchAll(/\("([^"]*)",pid=(\d+)/g),
      ].map((m) => ({
        name: m[1]!,
        pid: Number(m[2]),
      })),
    }));
}

export class IpLinks implements LinkBackend {
  constructor(private readonly host: Host) {}

  async list(): Promise<LinkInfo[]> {
    return parseIpAddr((await read(this.host, ['ip', '-d', '-j', 'addr', 'show'])).stdout);
  }

  async udpSockets(port: number): Promise<UdpSocketHolder[]> {
    const r = await read(this.host, ['ss', '-H', '-u', '-a', '-n', '-p', 'sport', '=', `:${port}`]);
    return parseSsUdp(r.stdout);
  }

  async fdb(dev: string): Promise<VxlanFdb> {
    const r = await read(this.host, ['bridge', '-j', 'fdb', 'show', 'dev', dev]);
    return parseFdb(r.stdout);
  }

  async fdbAll(devs: readonly string[]): Promise<Map<string, VxlanFdb>> {
    if (devs.length === 0) return new Map();
    // One device: its own dump is smaller than the whole namespace's (a node's bridges).
    if (devs.length === 1) return new Map([[devs[0]!, await this.fdb(devs[0]!)]]);
    const r = await read(this.host, ['bridge', '-j', 'fdb', 'show']);
    return parseFdbAll(r.stdout, devs);
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
      'learning',
      'maxaddress',
      String(VXLAN_FDB_LIMIT),
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

  async forgetLearned(dev: string, mac: string, dst: string): Promise<void> {
    const argv = ['bridge', 'fdb', 'del', mac, 'dev', dev, 'dst', dst];
    const r = await change(this.host, argv, { allowFailure: true });
    // Learned entries age out on their own: one gone since observe is what we wanted.
    if (r.exitCode !== 0 && !/No such file or directory/.test(r.stderr)) {
      throw new CommandError(argv, r.exitCode, r.stderr, false, { netns: this.host.netns });
    }
  }
}
