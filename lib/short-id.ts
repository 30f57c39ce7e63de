/**
 * A short random id of [0-9a-z] for names that must not collide between runs on one
 * machine (namespace prefixes, WireGuard interface names, lab ids). Not for secrets.
 */
export function shortId(len = 4): string {
  return Math.random()
    .toString(36)
    .slice(2, 2 + len)
    .padEnd(len, '0');
}
