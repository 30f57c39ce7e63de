/**
 * Schemas for the small values every message carries: DNS-1123 names, endpoints,
 * WireGuard public keys. Shared by requests, KV records and the broker config.
 */
import { isIP } from 'node:net';
import { z } from 'zod';

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// 32 bytes in base64: 43 significant chars, the last one carries 4 bits, then "=".
const WG_KEY = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** VXLAN network identifiers are 24 bit; 0 is never handed out. */
export const VNI_MIN = 1;
export const VNI_MAX = 16_777_215;

/** True when s is a DNS-1123 label (lower case, digits, '-', 1–63 chars). */
export function isDns1123Label(s: string): boolean {
  return s.length >= 1 && s.length <= 63 && DNS1123_LABEL.test(s);
}

/** A DNS-1123 label: cluster ids, network names, capabilities. */
export const dns1123Label = z
  .string()
  .max(63, 'must be at most 63 characters (a DNS-1123 label)')
  .regex(
    DNS1123_LABEL,
    'must be a DNS-1123 label: lower-case letters, digits and "-", starting and ending alphanumeric',
  );

/** Parses "host:port" (IPv6 in brackets); undefined when malformed. */
export function parseEndpoint(s: string): { host: string; port: number } | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const rawHost = m[1]!;
  const port = Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  if (rawHost.startsWith('[')) {
    const host = rawHost.slice(1, -1);
    return isIP(host) === 6 ? { host, port } : undefined;
  }
  if (isIP(rawHost) === 4) return { host: rawHost, port };
  if (rawHost.length <= 253 && DNS1123_SUBDOMAIN.test(rawHost)) return { host: rawHost, port };
  return undefined;
}

/** A gateway endpoint "host:port": IPv4, [IPv6] or DNS name; port 1–65535. */
export const endpoint = z
  .string()
  .max(262)
  .refine(
    (s) => parseEndpoint(s) !== undefined,
    'must be host:port with an IPv4 address, a [bracketed IPv6] address or a DNS name, and a port 1-65535',
  );

/** A WireGuard public key (base64 of 32 bytes, as printed by `wg pubkey`). */
export const wireguardPublicKey = z
  .string()
  .regex(
    WG_KEY,
    'must be a WireGuard public key: 44 base64 characters ending in "=" (output of wg pubkey)',
  );

/** A list without duplicates, with a message naming the duplicate. */
export function uniqueList<T extends z.ZodType<string>>(item: T, max: number, what: string) {
  return z
    .array(item)
    .max(max, `at most ${max} ${what} per request`)
    .superRefine((list, ctx) => {
      const seen = new Set<string>();
      list.forEach((v, i) => {
        if (seen.has(v))
          ctx.addIssue({
            code: 'custom',
            message: `duplicate "${v}"; list each of the ${what} once`,
            path: [i],
          });
        seen.add(v);
      });
    });
}
