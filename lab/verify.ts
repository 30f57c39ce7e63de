/**
 * Runs the expected checks against the live lab with real pings from inside pod
 * namespaces, and renders the connectivity matrix. Bounded: every ping has a count and
 * a deadline, and "reach" checks retry only until the overall deadline.
 */
import type { CommandRunner } from '../lib/runner.js';
import type { PingCheck } from './expectations.js';

export interface CheckResult {
  readonly check: PingCheck;
  readonly reached: boolean;
  readonly ok: boolean;
}

async function pingOnce(runner: CommandRunner, c: PingCheck, count: number): Promise<boolean> {
  const argv = [
    'ping',
    c.family === 6 ? '-6' : '-4',
    '-c',
    String(count),
    '-i',
    '0.2',
    '-W',
    '1',
    '-I',
    c.fromIf,
    c.address,
  ];
  const r = await runner.run(argv, { netns: c.from.ns, allowFailure: true, timeoutMs: 10_000 });
  return r.exitCode === 0;
}

/** Runs checks, at most `parallel` at once; "reach" ones retry until `deadlineMs` from now. */
export async function runChecks(
  runner: CommandRunner,
  checks: readonly PingCheck[],
  opts: { deadlineMs?: number; parallel?: number } = {},
): Promise<CheckResult[]> {
  const deadline = Date.now() + (opts.deadlineMs ?? 30_000);
  const results: CheckResult[] = new Array<CheckResult>(checks.length);
  let next = 0;
  const worker = async () => {
    while (next < checks.length) {
      const i = next++;
      const c = checks[i]!;
      let reached = await pingOnce(runner, c, 2);
      while (!reached && c.expect === 'reach' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 500));
        reached = await pingOnce(runner, c, 1);
      }
      results[i] = { check: c, reached, ok: reached === (c.expect === 'reach') };
    }
  };
  await Promise.all(Array.from({ length: opts.parallel ?? 4 }, worker));
  return results;
}

/** One line per check, failures first, then a summary line. */
export function renderMatrix(results: readonly CheckResult[], color = false): string {
  const paint = (code: number, s: string) => (color ? `\u001b[${code}m${s}\u001b[0m` : s);
  const lines = [...results]
    .sort((a, b) => Number(a.ok) - Number(b.ok))
    .map((r) => {
      const c = r.check;
      const mark = r.ok ? paint(32, '\u2714') : paint(31, '\u2718');
      const got = r.reached ? 'reaches' : 'cannot reach';
      return `${mark} ${c.from.cluster}/${c.from.name} ${got} ${c.to.cluster}/${c.to.name} on ${c.network} (IPv${c.family} ${c.address}) \u2014 expected ${c.expect === 'reach' ? 'reach' : 'isolated'}: ${c.why}`;
    });
  const bad = results.filter((r) => !r.ok).length;
  const reach = results.filter((r) => r.check.expect === 'reach').length;
  lines.push(
    bad === 0
      ? paint(
          32,
          `connectivity: all ${results.length} checks as declared (${reach} reach, ${results.length - reach} isolated)`,
        )
      : paint(31, `connectivity: ${bad} of ${results.length} checks differ from the manifests`),
  );
  return lines.join('\n');
}
