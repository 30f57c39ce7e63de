import test from 'ava';
import { validate } from '../cluster-agent/validate.js';
import { FakeRunner } from '../lib/runner-fake.js';
import type { CommandRunner } from '../lib/runner.js';
import { expectedChecks } from './expectations.js';
import { planLab } from './plan.js';
import {
  ISOLATION_PACKETS,
  expectedTunnels,
  renderMatrix,
  runChecks,
  runTunnelChecks,
  verificationOk,
} from './verify.js';

async function examplesPlan() {
  const report = await validate('deploy/examples');
  if (!report.ok) throw new Error('examples must validate');
  return planLab(
    report.clusters.map((c) => ({ id: c.id, state: c.state! })),
    { id: 'ab12', segmentKind: 'bridge' },
  );
}

const countOf = (argv: readonly string[]) => Number(argv[argv.indexOf('-c') + 1]);

test('verify - a leak that answers one ping in five is not called isolated', async (t) => {
  const plan = await examplesPlan();
  const leak = expectedChecks(plan).find(
    (c) => c.expect === 'isolated' && c.from.cluster === 'athens' && c.to.cluster === 'bristol',
  )!;
  // The leaking path answers once enough packets are sent; every other ping is answered.
  const runner = new FakeRunner().on(
    (a) => a[0] === 'ping',
    (argv) => ({ exitCode: argv.at(-1) === leak.address && countOf(argv) < 5 ? 1 : 0 }),
  );
  const [r] = await runChecks(runner, [leak]);
  t.true(r!.reached, 'the leak is seen');
  t.false(r!.ok);
  t.is(countOf(runner.calls.at(-1)!.argv), ISOLATION_PACKETS);
});

test('verify - a leak that answers only while the reach checks run is seen (issue 17)', async (t) => {
  const plan = await examplesPlan();
  const checks = expectedChecks(plan);
  const leak = checks.find(
    (c) => c.expect === 'isolated' && c.from.cluster === 'athens' && c.to.cluster === 'bristol',
  )!;
  const base = checks.find((c) => c.expect === 'reach')!;
  const reach = Array.from({ length: 6 }, (_, i) => ({ ...base, address: `10.9.2.${i + 1}` }));
  // Reach paths answer from their second try; the leak answers until the last reach path
  // has answered, and never after (a path that closes once the federation converges).
  const tries = new Map<string, number>();
  let reachDone = 0;
  const runner = new FakeRunner().on(
    (a) => a[0] === 'ping',
    (argv) => {
      const key = argv.at(-1)!;
      if (key === leak.address) return { exitCode: reachDone < reach.length ? 0 : 1 };
      const n = (tries.get(key) ?? 0) + 1;
      tries.set(key, n);
      if (n === 2) reachDone++;
      return { exitCode: n >= 2 ? 0 : 1 };
    },
  );
  const results = await runChecks(runner, [...reach, leak], { retryMs: 10_000 });
  t.true(
    results.slice(0, reach.length).every((r) => r.ok),
    'every reach path answered',
  );
  const r = results.at(-1)!;
  t.true(r.reached, 'the leak during the reach window is seen');
  t.false(r.ok);
});

test('verify - the isolation stream runs only after every reach check is done', async (t) => {
  const plan = await examplesPlan();
  const checks = expectedChecks(plan);
  const reach = checks.filter((c) => c.expect === 'reach').slice(0, 3);
  const isolated = checks.filter((c) => c.expect === 'isolated');
  t.is(isolated.length, 2, 'the examples keep athens and bristol apart (both ways)');
  const tries = new Map<string, number>();
  const runner = new FakeRunner().on(
    (a) => a[0] === 'ping',
    (argv) => {
      const key = `${argv.at(-3)} ${argv.at(-1)}`;
      const n = (tries.get(key) ?? 0) + 1;
      tries.set(key, n);
      // A reach path converges on the third try; isolated paths never answer.
      const isolatedPath = isolated.some((c) => c.address === argv.at(-1));
      return { exitCode: isolatedPath ? 1 : n >= 3 ? 0 : 1 };
    },
  );
  // Interleaved on purpose: the order of the input must not matter.
  const results = await runChecks(
    runner,
    [isolated[0]!, reach[0]!, isolated[1]!, reach[1]!, reach[2]!],
    {
      retryMs: 10_000,
    },
  );
  t.true(results.every((r) => r.ok));
  const kinds = runner.calls.map((c) => (countOf(c.argv) === ISOLATION_PACKETS ? 'iso' : 'reach'));
  t.is(kinds.lastIndexOf('reach') < kinds.indexOf('iso'), true, kinds.join(','));
  t.deepEqual(
    results.map((r) => r.check.expect),
    ['isolated', 'reach', 'isolated', 'reach', 'reach'],
    'results keep the input order',
  );
});

test('verify - WireGuard peers: required for active peerings, forbidden for the others', async (t) => {
  const plan = await examplesPlan();
  const checks = expectedTunnels(plan);
  t.deepEqual(
    checks.map((c) => `${c.a.id}-${c.b.id}:${c.expect}`),
    ['athens-bristol:no-peer', 'athens-madrid:peer', 'bristol-madrid:peer'],
  );
  const key = (id: string) => `${id.padEnd(43, 'K')}=`;
  const peersOf: Record<string, string[]> = {
    athens: [key('madrid'), key('bristol')], // a stale peer athens must not hold
    bristol: [key('madrid')],
    madrid: [key('athens'), key('bristol')],
  };
  const runner = new FakeRunner().on(
    (a) => a[0] === 'wg',
    (argv, o) => {
      const id = plan.clusters.find((c) => c.ns === o.netns)!.id;
      return { stdout: argv[3] === 'public-key' ? `${key(id)}\n` : peersOf[id]!.join('\n') };
    },
  );
  const results = await runTunnelChecks(runner, checks);
  t.deepEqual(
    results.map((r) => [r.check.a.id, r.check.b.id, r.aHasB, r.bHasA, r.ok]),
    [
      ['athens', 'bristol', true, false, false],
      ['athens', 'madrid', true, true, true],
      ['bristol', 'madrid', true, true, true],
    ],
  );
  t.true(runner.calls.every((c) => plan.clusters.some((x) => x.ns === c.netns)));
  const v = { pings: [], tunnels: results };
  t.false(verificationOk(v));
  t.regex(
    renderMatrix(v),
    /✘ athens <-> bristol: one-sided WireGuard peer \(athens only\) — expected none: peering inactive/,
  );
  t.regex(renderMatrix(v), /connectivity: 1 of 3 checks differ from the manifests/);

  // A gateway whose device is gone holds no peer: fine for no-peer, a failure for peer.
  const down = new FakeRunner().on((a) => a[0] === 'wg', { exitCode: 1, stderr: 'No such device' });
  t.deepEqual(
    (await runTunnelChecks(down, checks)).map((r) => r.ok),
    [true, false, false],
  );
});

/** The runner, with every command taking `ms` (a loaded machine; many checks). */
function slow(runner: FakeRunner, ms: number): CommandRunner {
  return {
    run: async (argv, o) => {
      await new Promise((r) => setTimeout(r, ms));
      return runner.run(argv, o);
    },
  };
}

test('verify - a reach check late in a long run still gets its retries (issue 18)', async (t) => {
  const plan = await examplesPlan();
  const base = expectedChecks(plan).find((c) => c.expect === 'reach')!;
  // 40 paths that each answer from their second ping on; the first pass over them
  // (40 × 20 ms, 4 at once ≥ 200 ms) outlasts the 100 ms retry window.
  const checks = Array.from({ length: 40 }, (_, i) => ({ ...base, address: `10.9.0.${i + 1}` }));
  const tries = new Map<string, number>();
  const fake = new FakeRunner().on(
    (a) => a[0] === 'ping',
    (argv) => {
      const n = (tries.get(argv.at(-1)!) ?? 0) + 1;
      tries.set(argv.at(-1)!, n);
      return { exitCode: n >= 2 ? 0 : 1 };
    },
  );
  const results = await runChecks(slow(fake, 20), checks, { retryMs: 100 });
  t.deepEqual(
    results.filter((r) => !r.ok).map((r) => r.check.address),
    [],
    'every path answered its second ping',
  );
});

test('verify - paths that never answer are each retried once more, then the run ends', async (t) => {
  const plan = await examplesPlan();
  const base = expectedChecks(plan).find((c) => c.expect === 'reach')!;
  const checks = Array.from({ length: 20 }, (_, i) => ({ ...base, address: `10.9.1.${i + 1}` }));
  const fake = new FakeRunner().on((a) => a[0] === 'ping', { exitCode: 1 });
  const results = await runChecks(slow(fake, 10), checks, { retryMs: 50 });
  t.true(results.every((r) => !r.reached && !r.ok));
  const per = new Map<string, number>();
  for (const c of fake.calls) per.set(c.argv.at(-1)!, (per.get(c.argv.at(-1)!) ?? 0) + 1);
  t.true(
    [...per.values()].every((n) => n >= 2),
    'each tried again after the first pass',
  );
});
