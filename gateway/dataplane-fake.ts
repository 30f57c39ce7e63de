/**
 * A whole fake data plane for unit tests: the fake backends over one mutation log,
 * wired so that creating the tunnel also makes its link appear (as wireguard-go's TUN does).
 */
import { FakeLog } from '../lib/log-fake.js';
import { FakeFirewall } from './firewall-fake.js';
import { FakeLinks } from './links-fake.js';
import type { Backends } from './backends.js';
import { FakeSegment } from './segment-fake.js';
import { FakeTunnel } from './tunnel-fake.js';

export class FakeDataPlane {
  readonly log = new FakeLog();
  readonly links = new FakeLinks(this.log);
  readonly firewall = new FakeFirewall(this.log);
  readonly tunnel = new FakeTunnel(this.log, (ifname, exists) => {
    if (exists) this.links.seed({ name: ifname, kind: 'tun', mtu: 1420 });
    else this.links.links.delete(ifname);
  });
  readonly ovs: FakeSegment;
  readonly linuxBridge: FakeSegment;

  constructor(bridges: { ovs?: string[]; linuxBridge?: string[] } = {}) {
    this.ovs = new FakeSegment('ovs', this.log, bridges.ovs);
    this.linuxBridge = new FakeSegment('linux-bridge', this.log, bridges.linuxBridge);
  }

  /** The backends, for GatewayOptions.backends. The same objects on every call. */
  backends(): Backends {
    return {
      firewall: this.firewall,
      tunnel: this.tunnel,
      links: this.links,
      segments: { ovs: this.ovs, 'linux-bridge': this.linuxBridge },
    };
  }
}
