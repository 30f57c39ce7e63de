/** In-memory FirewallBackend for unit tests: the table is one spec (or none), as read back. */
import type { FakeLog } from '../lib/log-fake.js';
import {
  FIREWALL_VERSION,
  type FirewallBackend,
  type FirewallSpec,
  type ObservedFirewall,
  type VxlanSource,
  type VxlanSourceChange,
  vxlanSources,
} from './firewall.js';

export class FakeFirewall implements FirewallBackend {
  /** The installed table; tests may replace it (e.g. `{ …, intact: false }`). */
  table: ObservedFirewall | undefined;

  constructor(private readonly log: FakeLog) {}

  read(): Promise<ObservedFirewall | undefined> {
    return Promise.resolve(this.table && { ...this.table });
  }

  set(spec: FirewallSpec, elements?: VxlanSourceChange): Promise<void> {
    if (elements) return this.setElements(elements);
    this.log.record(`firewall set wg=${spec.wgIfname} port=${spec.vxlanPort}`);
    this.table = {
      version: FIREWALL_VERSION,
      spec: { ...spec, vxlanFrom: vxlanSources(spec.vxlanFrom) },
      intact: true,
    };
    return Promise.resolve();
  }

  /** Like nft: deleting a pair the set does not hold fails the whole transaction. */
  private setElements(change: VxlanSourceChange): Promise<void> {
    const key = (p: VxlanSource) => `${p.address} ${p.vni}`;
    const spec = this.table?.spec;
    const held = new Set((spec?.vxlanFrom ?? []).map(key));
    const missing = change.del.find((p) => !held.has(key(p)));
    if (!spec || missing) {
      return Promise.reject(new Error(`fake firewall: no element ${missing && key(missing)}`));
    }
    this.log.record(`firewall set-elements +${change.add.length} -${change.del.length}`);
    const gone = new Set(change.del.map(key));
    this.table = {
      ...this.table!,
      spec: {
        ...spec,
        vxlanFrom: vxlanSources([
          ...spec.vxlanFrom.filter((p) => !gone.has(key(p))),
          ...change.add,
        ]),
      },
    };
    return Promise.resolve();
  }

  remove(): Promise<void> {
    this.log.record('firewall remove');
    this.table = undefined;
    return Promise.resolve();
  }
}
