import test from 'ava';
import { validate } from '../cluster-agent/validate.js';
import { FakeRunner } from '../lib/runner-fake.js';
import { makeRunDir } from '../test/fixtures/run-dir.js';
import { writeLabVlans } from '../test/fixtures/lab-vlans.js';
import { expectedChecks } from './expectations.js';
import { planLab } from './plan.js';
import { ISOLATION_PACKETS, renderMatrix, runChecks } from './verify.js';

async function vlansPlan() {
  const dir = await makeRunDir('expv');
  try {
    const report = await validate(await writeLabVlans(dir.path));
    if (!report.ok) throw new Error('the lab-vlans federation must validate');
    return planLab(
      report.clusters.map((c) => ({ id: c.id, state: c.state! })),
      { id: 'ab12', segmentKind: 'ovs' },
    );
  } finally {
    await dir.remove();
  }
}

const label = (c: ReturnType<typeof expectedChecks>[number]) =>
  `${c.from.cluster}/${c.from.name}>${c.to.cluster}/${c.to.name}:${c.address}`;

test('lab expectations - two networks in one subnet on one OVS bridge: each reaches its peer, never the other', async (t) => {
  const plan = await vlansPlan();
  const madrid = plan.clusters.find((c) => c.id === 'madrid')!;
  const vlans = madrid.pods
    .flatMap((p) => p.interfaces)
    .filter((i) => i.bridge === 'br-lab')
    .map((i) => `${i.network}:${i.vlan}`);
  t.deepEqual([...new Set(vlans)].sort(), ['metrics:30', 'telemetry:20']);

  const checks = expectedChecks(plan);
  const on = (from: string, to: string) =>
    checks.filter((c) => c.from.name === from && c.to.name === to).map((c) => c.expect);
  t.deepEqual(on('meter', 'gauge'), ['reach', 'reach'], 'metrics reaches its peer (IPv4, IPv6)');
  t.deepEqual(on('collector', 'sensor'), ['reach', 'reach'], 'telemetry too');
  // Every pod on one network, to every pod on the other, in both clusters and both ways.
  const crossing = checks.filter((c) => c.toNetwork !== undefined);
  t.deepEqual(crossing.map(label).sort(), [
    'bristol/gauge>bristol/sensor:10.20.0.21',
    'bristol/gauge>bristol/sensor:fd00:20::21',
    'bristol/gauge>madrid/collector:10.20.0.11',
    'bristol/gauge>madrid/collector:fd00:20::11',
    'bristol/sensor>bristol/gauge:10.20.0.22',
    'bristol/sensor>bristol/gauge:fd00:20::22',
    'bristol/sensor>madrid/meter:10.20.0.12',
    'bristol/sensor>madrid/meter:fd00:20::12',
    'madrid/collector>bristol/gauge:10.20.0.22',
    'madrid/collector>bristol/gauge:fd00:20::22',
    'madrid/collector>madrid/meter:10.20.0.12',
    'madrid/collector>madrid/meter:fd00:20::12',
    'madrid/meter>bristol/sensor:10.20.0.21',
    'madrid/meter>bristol/sensor:fd00:20::21',
    'madrid/meter>madrid/collector:10.20.0.11',
    'madrid/meter>madrid/collector:fd00:20::11',
  ]);
  t.true(crossing.every((c) => c.expect === 'isolated' && c.network !== c.toNetwork));
  // Addresses in other subnets are not on-link: a ping there proves nothing, so no check.
  t.false(checks.some((c) => c.fromIf === 'cdn0' && c.address.startsWith('10.20.')));
});

test('lab expectations - a reply across two networks in one subnet fails the matrix, named', async (t) => {
  const plan = await vlansPlan();
  const checks = expectedChecks(plan);
  const leak = checks.find(
    (c) => c.from.name === 'meter' && c.to.name === 'collector' && c.family === 4,
  )!;
  // Only the crossing answers (an L2 leak between the VLANs); everything else as declared.
  const runner = new FakeRunner().on(
    (a) => a[0] === 'ping',
    (argv, o) => {
      const c = checks.find((x) => x.from.ns === o.netns && x.address === argv.at(-1))!;
      return { exitCode: c === leak || c.expect === 'reach' ? 0 : 1 };
    },
  );
  const pings = await runChecks(runner, checks, { retryMs: 1000 });
  const bad = pings.filter((r) => !r.ok);
  t.deepEqual(
    bad.map((r) => label(r.check)),
    ['madrid/meter>madrid/collector:10.20.0.11'],
  );
  // The leak answered in the reach window; every other isolated path also got the stream.
  const streamed = (c: (typeof checks)[number]) =>
    runner.calls.some(
      (x) =>
        x.netns === c.from.ns &&
        x.argv.at(-1) === c.address &&
        x.argv[x.argv.indexOf('-c') + 1] === String(ISOLATION_PACKETS),
    );
  t.true(checks.filter((c) => c.expect === 'isolated' && c !== leak).every(streamed));
  t.true(runner.calls.some((x) => x.netns === leak.from.ns && x.argv.at(-1) === leak.address));
  t.regex(
    renderMatrix({ pings, tunnels: [] }),
    /✘ madrid\/meter reaches madrid\/collector on metrics -> telemetry \(IPv4 10\.20\.0\.11\) — expected isolated: metrics and telemetry are different networks in one subnet/,
  );
});
