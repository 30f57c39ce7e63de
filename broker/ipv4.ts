/** Minimal IPv4 CIDR arithmetic for the transit pool (no dependency needed). */

export interface Ipv4Pool {
  readonly cidr: string;
  /** First usable address as a 32-bit integer (network address skipped). */
  readonly first: number;
  /** Number of usable addresses (network and broadcast skipped for prefixes < 31). */
  readonly size: number;
  readonly prefixLength: number;
}

export function ipv4ToInt(s: string): number | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^(0|[1-9]\d{0,2})$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export function intToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Parses "a.b.c.d/len"; undefined when malformed or not aligned to its prefix. */
export function parseIpv4Pool(cidr: string): Ipv4Pool | undefined {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(cidr);
  if (!m) return undefined;
  const base = ipv4ToInt(m[1]!);
  const len = Number(m[2]);
  if (base === undefined || len < 8 || len > 30) return undefined;
  const total = 2 ** (32 - len);
  if (base % total !== 0) return undefined;
  return { cidr, first: base + 1, size: total - 2, prefixLength: len };
}

/** The i-th usable address of the pool (0-based, wraps). */
export function poolAddress(pool: Ipv4Pool, i: number): string {
  return intToIpv4(pool.first + (((i % pool.size) + pool.size) % pool.size));
}

/** FNV-1a 32-bit: a stable start point for probing, so equal inputs probe alike. */
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}
