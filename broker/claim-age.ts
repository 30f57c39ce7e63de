/**
 * The one test of whether a claim may still be between its write and its binding write
 * (the cluster record, `net.<name>`): younger than the broker's claimGraceMs. The
 * allocators leave such a claim alone, and so does the admin API's release. An
 * unreadable `claimedAt` counts as old (NaN compares false), so a damaged claim can be
 * reclaimed.
 */
export function claimIsFresh(claimedAt: string, now: number, claimGraceMs: number): boolean {
  return now - Date.parse(claimedAt) < claimGraceMs;
}
