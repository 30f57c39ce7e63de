import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validate } from '../cluster-agent/validate.js';
import { FakeSysctl } from '../lib/sysctl-fake.js';
import { generateFederation } from './generate.js';
import { ensureNeighbourLimits, neighbourEntriesNeeded, raisedLimits } from './neighbour-table.js';
import { planLab } from './plan.js';

// Linux defaults (Documentation/networking/ip-sysctl.rst).
const DEFAULTS = {
  'net.ipv4.neigh.default.gc_thresh2': 512,
  'net.ipv4.neigh.default.gc_thresh3': 1024,
  'net.ipv6.neigh.default.gc_thresh2': 512,
  'net.ipv6.neigh.default.gc_thresh3': 1024,
};

async function generatedPlan(clusters: number, pods: number) {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-gen-'));
  try {
    await generateFederation(dir, clusters, pods);
    const report = await validate(dir);
    return planLab(
      report.clusters.map((c) => ({ id: c.id, state: c.state! })),
      { id: 'nt01', segmentKind: 'bridge' },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('neighbour table - 32 clusters need more IPv4 entries than the default limit holds (issue 18)', async (t) => {
  const plan = await generatedPlan(32, 1);
  const need = neighbourEntriesNeeded(plan);
  // Per gateway 31 underlay + 31 tunnel entries; per pod 31 others, on one network.
  t.is(need.ipv4, 32 * 62 + 32 * 31);
  t.is(need.ipv6, 2 * 32 * 31);
  t.true(need.ipv4 > DEFAULTS['net.ipv4.neigh.default.gc_thresh3']);
});

test('neighbour table - the limits are raised to twice the need, hard limit first, and never lowered', async (t) => {
  const plan = await generatedPlan(32, 1);
  const sysctl = new FakeSysctl(DEFAULTS);
  const lines = await ensureNeighbourLimits(plan, sysctl);
  t.deepEqual(
    sysctl.writes.map((w) => w.key),
    [
      'net.ipv4.neigh.default.gc_thresh3',
      'net.ipv4.neigh.default.gc_thresh2',
      'net.ipv6.neigh.default.gc_thresh3',
      'net.ipv6.neigh.default.gc_thresh2',
    ],
  );
  const v = (k: keyof typeof DEFAULTS) => Number(sysctl.values.get(k));
  const need = neighbourEntriesNeeded(plan);
  t.true(v('net.ipv4.neigh.default.gc_thresh3') >= 2 * need.ipv4);
  t.true(v('net.ipv4.neigh.default.gc_thresh2') >= need.ipv4);
  t.true(v('net.ipv4.neigh.default.gc_thresh2') <= v('net.ipv4.neigh.default.gc_thresh3'));
  t.is(lines.length, 2);
  t.regex(lines[0]!, /ipv4 neighbour table: up to 2976 entries needed; raised gc_thresh3 1024 -> /);
  // A second lab (or a second call) finds the limits high enough: nothing written.
  const again = new FakeSysctl(Object.fromEntries(sysctl.values));
  t.deepEqual(await ensureNeighbourLimits(plan, again), []);
  t.deepEqual(again.writes, []);
  // Limits already above the need stay as they are.
  t.is(raisedLimits({ gcThresh2: 50_000, gcThresh3: 100_000 }, 2976), undefined);
  t.deepEqual(raisedLimits({ gcThresh2: 512, gcThresh3: 100_000 }, 2976), {
    gcThresh2: 6144,
    gcThresh3: 100_000,
  });
});

test('neighbour table - the 3-cluster examples fit in the default limits: nothing is written', async (t) => {
  const report = await validate('deploy/examples');
  const plan = planLab(
    report.clusters.map((c) => ({ id: c.id, state: c.state! })),
    { id: 'nt02', segmentKind: 'bridge' },
  );
  const sysctl = new FakeSysctl(DEFAULTS);
  t.deepEqual(await ensureNeighbourLimits(plan, sysctl), []);
  t.deepEqual(sysctl.writes, []);
});

test('neighbour table - a limit that cannot be written fails the lab with the command to run', async (t) => {
  const plan = await generatedPlan(32, 1);
  const sysctl = new FakeSysctl(DEFAULTS);
  sysctl.write = (key: string) =>
    Promise.reject(new Error(`cannot set ${key}: EACCES: permission denied`));
  await t.throwsAsync(ensureNeighbourLimits(plan, sysctl), {
    message:
      /needs up to 2976 ipv4 neighbour entries.*EACCES.*sysctl -w net\.ipv4\.neigh\.default\.gc_thresh3=12288 net\.ipv4\.neigh\.default\.gc_thresh2=6144/s,
  });
});
