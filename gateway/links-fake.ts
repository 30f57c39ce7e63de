/** In-memory LinkBackend for unit tests: devices, addresses, flood lists, learned MACs. */
import type { FakeLog } from '../lib/log-fake.js';
import {
  VXLAN_FDB_LIMIT,
  type LearnedFdbEntry,
  type LinkBackend,
  type LinkInfo,
  type UdpSocketHolder,
  type VxlanFdb,
} from './links.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

export class FakeLinks implements LinkBackend {
  readonly links = new Map<string, Mutable<LinkInfo>>();
  readonly flood = new Map<string, string[]>();
  /** What each VXLAN device learned; tests write here as the kernel would. */
  readonly learned = new Map<string, LearnedFdbEntry[]>();

  /** UDP sockets by port that are not the tunnel's (a CNI's WireGuard); tests write here. */
  readonly udp = new Map<number, UdpSocketHolder[]>();

  constructor(private readonly log: FakeLog) {}

  udpSockets(port: number): Promise<UdpSocketHolder[]> {
    return Promise.resolve([...(this.udp.get(port) ?? [])]);
  }

  /** Adds a device the gateway did not make (a bridge, a pod port, the tunnel's TUN). */
  seed(link: Partial<LinkInfo> & { name: string }): void {
    this.links.set(link.name, {
      kind: undefined,
      mtu: 1500,
      up: false,
      addresses: [],
      master: undefined,
      vxlan: undefined,
      ...link,
    });
  }

  list(): Promise<LinkInfo[]> {
    return Promise.resolve([...this.links.values()].map((l) => ({ ...l })));
  }

  fdb(dev: string): Promise<VxlanFdb> {
    return Promise.resolve({
      remotes: [...(this.flood.get(dev) ?? [])].sort(),
      learned: [...(this.learned.get(dev) ?? [])].sort((a, b) => a.mac.localeCompare(b.mac)),
    });
  }

  async fdbAll(devs: readonly string[]): Promise<Map<string, VxlanFdb>> {
    return new Map(await Promise.all(devs.map(async (d) => [d, await this.fdb(d)] as const)));
  }

  private link(name: string): Mutable<LinkInfo> {
    const l = this.links.get(name);
    if (!l) throw new Error(`fake links: no device ${name}`);
    return l;
  }

  createVxlan(name: string, vni: number, local: string, dstport: number): Promise<void> {
    this.log.record(`link add ${name} vxlan ${vni}`);
    if (this.links.has(name)) throw new Error(`fake links: ${name} exists`);
    this.seed({
      name,
      kind: 'vxlan',
      vxlan: { vni, local, dstport, learning: true, limit: VXLAN_FDB_LIMIT },
    });
    return Promise.resolve();
  }

  deleteLink(name: string): Promise<void> {
    this.log.record(`link del ${name}`);
    this.link(name);
    this.links.delete(name);
    this.flood.delete(name);
    this.learned.delete(name);
    return Promise.resolve();
  }

  setMtu(name: string, mtu: number): Promise<void> {
    this.log.record(`link mtu ${name} ${mtu}`);
    this.link(name).mtu = mtu;
    return Promise.resolve();
  }

  setUp(name: string): Promise<void> {
    this.log.record(`link up ${name}`);
    this.link(name).up = true;
    return Promise.resolve();
  }

  setNoArp(name: string): Promise<void> {
    this.log.record(`link noarp ${name}`);
    this.link(name).noarp = true;
    return Promise.resolve();
  }

  addAddress(name: string, cidr: string): Promise<void> {
    this.log.record(`addr add ${name} ${cidr}`);
    const l = this.link(name);
    l.addresses = [...l.addresses, cidr];
    return Promise.resolve();
  }

  delAddress(name: string, cidr: string): Promise<void> {
    this.log.record(`addr del ${name} ${cidr}`);
    const l = this.link(name);
    l.addresses = l.addresses.filter((a) => a !== cidr);
    return Promise.resolve();
  }

  floodAppend(dev: string, dst: string): Promise<void> {
    this.log.record(`fdb append ${dev} ${dst}`);
    this.link(dev);
    this.flood.set(dev, [...(this.flood.get(dev) ?? []), dst]);
    return Promise.resolve();
  }

  floodDelete(dev: string, dst: string): Promise<void> {
    this.log.record(`fdb del ${dev} ${dst}`);
    this.flood.set(
      dev,
      (this.flood.get(dev) ?? []).filter((d) => d !== dst),
    );
    return Promise.resolve();
  }

  forgetLearned(dev: string, mac: string, dst: string): Promise<void> {
    this.log.record(`fdb forget ${dev} ${mac} ${dst}`);
    this.learned.set(
      dev,
      (this.learned.get(dev) ?? []).filter((e) => e.mac !== mac || e.dst !== dst),
    );
    return Promise.resolve();
  }
}
