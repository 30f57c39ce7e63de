/** In-memory Sysctl for unit tests: starts from `initial`; records every write. */
import type { Sysctl } from './sysctl.js';

export class FakeSysctl implements Sysctl {
  readonly values: Map<string, string>;
  readonly writes: { key: string; value: string }[] = [];

  constructor(initial: Record<string, string | number> = {}) {
    this.values = new Map(Object.entries(initial).map(([k, v]) => [k, String(v)]));
  }

  read(key: string): Promise<string> {
    const v = this.values.get(key);
    return v === undefined ? Promise.reject(new Error(`no sysctl ${key}`)) : Promise.resolve(v);
  }

  write(key: string, value: string): Promise<void> {
    this.writes.push({ key, value });
    this.values.set(key, value);
    return Promise.resolve();
  }
}
