/** In-memory TunnelBackend for unit tests: keeps one WireGuard config per interface. */
import { readFileSync } from 'node:fs';
import type { FakeLog } from '../lib/log-fake.js';
import type { DesiredPeer, ObservedPeer } from './model.js';
import type { TunnelBackend } from './tunnel.js';
import type { WgDump } from './tunnel.js';

interface FakeDevice {
  privateKey: string | undefined;
  listenPort: number;
  peers: Map<string, ObservedPeer>;
}

export class FakeTunnel implements TunnelBackend {
  readonly kind = 'fake' as const;
  readonly devices = new Map<string, FakeDevice>();
  constructor(
    private readonly log: FakeLog,
    /** Called on create/destroy so the fake link list can follow. */
    private readonly onDevice: (ifname: string, exists: boolean) => void = () => undefined,
  ) {}

  read(ifname: string): Promise<WgDump | undefined> {
    const d = this.devices.get(ifname);
    return Promise.resolve(
      d && {
        privateKey: d.privateKey,
        publicKey: d.privateKey && `pub(${d.privateKey.slice(0, 6)})`,
        listenPort: d.listenPort,
        peers: [...d.peers.values()],
      },
    );
  }

  private dev(ifname: string): FakeDevice {
    const d = this.devices.get(ifname);
    if (!d) throw new Error(`fake tunnel: no device ${ifname}`);
    return d;
  }

  create(ifname: string): Promise<void> {
    this.log.record(`tunnel create ${ifname}`);
    this.devices.set(ifname, { privateKey: undefined, listenPort: 0, peers: new Map() });
    this.onDevice(ifname, true);
    return Promise.resolve();
  }

  destroy(ifname: string): Promise<void> {
    if (this.devices.delete(ifname)) {
      this.log.record(`tunnel destroy ${ifname}`);
      this.onDevice(ifname, false);
    }
    return Promise.resolve();
  }

  setKey(ifname: string, file: string): Promise<void> {
    this.log.record(`tunnel set-key ${ifname} ${file}`);
    // Like wg: the key is read from the file, never passed around.
    this.dev(ifname).privateKey = readFileSync(file, 'utf8').trim();
    return Promise.resolve();
  }

  setPort(ifname: string, port: number): Promise<void> {
    this.log.record(`tunnel set-port ${ifname} ${port}`);
    this.dev(ifname).listenPort = port;
    return Promise.resolve();
  }

  setPeer(ifname: string, p: DesiredPeer): Promise<void> {
    this.log.record(`tunnel set-peer ${ifname} ${p.name}`);
    const old = this.dev(ifname).peers.get(p.publicKey);
    this.dev(ifname).peers.set(p.publicKey, {
      publicKey: p.publicKey,
      endpoint: p.endpoint,
      allowedIps: [...p.allowedIps],
      latestHandshake: old?.latestHandshake ?? 0,
      rxBytes: old?.rxBytes ?? 0,
      txBytes: old?.txBytes ?? 0,
      persistentKeepalive: p.persistentKeepalive,
    });
    return Promise.resolve();
  }

  setPeerEndpoint(ifname: string, publicKey: string, endpoint: string): Promise<void> {
    this.log.record(`tunnel set-endpoint ${ifname} ${publicKey} ${endpoint}`);
    const d = this.dev(ifname);
    const old = d.peers.get(publicKey);
    // Like wg: a missing peer is created, with nothing but the endpoint.
    d.peers.set(publicKey, {
      publicKey,
      endpoint,
      allowedIps: old?.allowedIps ?? [],
      latestHandshake: old?.latestHandshake ?? 0,
      rxBytes: old?.rxBytes ?? 0,
      txBytes: old?.txBytes ?? 0,
      persistentKeepalive: old?.persistentKeepalive ?? 0,
    });
    return Promise.resolve();
  }

  /** Records `tunnel renew-peer`; the entry starts again without a handshake. */
  renewPeer(ifname: string, p: DesiredPeer): Promise<void> {
    this.log.record(`tunnel renew-peer ${ifname} ${p.name}`);
    this.dev(ifname).peers.set(p.publicKey, {
      publicKey: p.publicKey,
      endpoint: p.endpoint,
      allowedIps: [...p.allowedIps],
      latestHandshake: 0,
      rxBytes: 0,
      txBytes: 0,
      persistentKeepalive: p.persistentKeepalive,
    });
    return Promise.resolve();
  }

  /** Test hook: the peer completed a handshake at `unixSeconds`. */
  handshake(ifname: string, publicKey: string, unixSeconds: number): void {
    const d = this.dev(ifname);
    const p = d.peers.get(publicKey);
    if (p) d.peers.set(publicKey, { ...p, latestHandshake: unixSeconds });
  }

  /** Test hook: `bytes` more received from the peer (its frames came through the tunnel). */
  received(ifname: string, publicKey: string, bytes: number): void {
    const d = this.dev(ifname);
    const p = d.peers.get(publicKey);
    if (p) d.peers.set(publicKey, { ...p, rxBytes: p.rxBytes + bytes });
  }

  removePeer(ifname: string, publicKey: string): Promise<void> {
    this.log.record(`tunnel remove-peer ${ifname} ${publicKey}`);
    this.dev(ifname).peers.delete(publicKey);
    return Promise.resolve();
  }
}
