import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { validate } from '../cluster-agent/validate.js';
import { generateFederation } from './generate.js';
import { planLab } from './plan.js';
import { expectedChecks } from './expectations.js';

test('lab generate - N clusters in a full mesh, M pods each, valid and all reachable', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-gen-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await generateFederation(dir, 4, 2);
  const report = await validate(dir);
  t.true(report.ok, JSON.stringify(report.problems));
  t.is(report.clusters.length, 4);
  const plan = planLab(
    report.clusters.map((c) => ({ id: c.id, state: c.state! })),
    { id: 'gen1', segmentKind: 'bridge' },
  );
  const checks = expectedChecks(plan);
  // 8 pods, each pings the 7 others over IPv4 and IPv6.
  t.is(checks.length, 8 * 7 * 2);
  t.true(checks.every((c) => c.expect === 'reach'));
});

test('lab generate - 32 clusters (the scale of issue 18): valid, planned with unique interface names, all reachable', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-gen-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await generateFederation(dir, 32, 1);
  const report = await validate(dir);
  t.true(report.ok, JSON.stringify(report.problems));
  const plan = planLab(
    report.clusters.map((c) => ({ id: c.id, state: c.state! })),
    { id: 'gen1', segmentKind: 'bridge' },
  );
  t.is(new Set(plan.clusters.map((c) => c.wgIfname)).size, 32);
  t.is(expectedChecks(plan).length, 32 * 31 * 2);
});

test('lab generate - sizes out of range are refused with the allowed range', async (t) => {
  await t.throwsAsync(generateFederation('/nonexistent', 1, 1), {
    message: /--clusters must be an integer from 2 to 64/,
  });
  await t.throwsAsync(generateFederation('/nonexistent', 65, 1), {
    message: /--clusters must be an integer from 2 to 64 \(got 65\)/,
  });
  await t.throwsAsync(generateFederation('/nonexistent', 3, 99), {
    message: /--pods-per-cluster must be/,
  });
});
