/** In-memory FirewallBackend for unit tests: the table is one spec (or none), as read back. */
import type { FakeLog } from '../lib/log-fake.js';
import {
  FIREWALL_VERSION,
  type FirewallBackend,
  type FirewallSpec,
  type ObservedFirewall,
  vxlanSources,
} from './firewall.js';

export class FakeFirewall implements FirewallBackend {
  /** The installed table; tests may replace it (e.g. `{ …, intact: false }`). */
  table: ObservedFirewall | undefined;

  constructor(private readonly log: FakeLog) {}

  read(): Promise<ObservedFirewall | undefined> {
    return Promise.resolve(this.table && { ...this.table });
  }

  set(spec: FirewallSpec): Promise<void> {
    this.log.record(`firewall set wg=${spec.wgIfname} port=${spec.vxlanPort}`);
    this.table = {
      version: FIREWALL_VERSION,
      spec: { ...spec, vxlanFrom: vxlanSources(spec.vxlanFrom) },
      intact: true,
    };
    return Promise.resolve();
  }

  remove(): Promise<void> {
    this.log.record('firewall remove');
    this.table = undefined;
    return Promise.resolve();
  }
}
