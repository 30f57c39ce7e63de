/**
 * Kernel parameters (sysctl) read and written through /proc/sys, behind a small
 * interface so callers can be tested on the fake (sysctl-fake.ts).
 */
import { readFile, writeFile } from 'node:fs/promises';

export interface Sysctl {
  /** The value of `key` (dotted, e.g. `net.ipv4.neigh.default.gc_thresh3`) as text. */
  read(key: string): Promise<string>;
  /** Writes `value`; throws the kernel's error (EACCES, EINVAL, ENOENT) with the key named. */
  write(key: string, value: string): Promise<void>;
}

const pathOf = (key: string) => `/proc/sys/${key.replaceAll('.', '/')}`;

export class ProcSysctl implements Sysctl {
  async read(key: string): Promise<string> {
    return (await readFile(pathOf(key), 'utf8')).trim();
  }

  async write(key: string, value: string): Promise<void> {
    try {
      await writeFile(pathOf(key), `${value}\n`);
    } catch (e) {
      throw new Error(`cannot set ${key} = ${value}: ${(e as Error).message}`, { cause: e });
    }
  }
}
