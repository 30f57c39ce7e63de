/**
 * The build rules' promise, as a property: for generated federation folders, whatever
 * `l2fed validate` accepts (for the lab's segment kind) plans into a lab that `ip`, the
 * kernel and OVS can build (test/fixtures/manifest-gen.ts checks the plan independently),
 * and whatever it refuses is refused with file, field and fix.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { validate } from '../cluster-agent/validate.js';
import { formatProblem } from '../cluster-agent/problems.js';
import { checkProperty, isLongFuzzRun } from '../test/fixtures/property.js';
import { federationArb, unbuildable, writeFederation } from '../test/fixtures/manifest-gen.js';
import { LAB_UNDERLAY_MTU, planLab } from './plan.js';

test('lab plan property - what validate accepts plans into a buildable lab', async (t) => {
  if (isLongFuzzRun()) t.timeout(3_600_000);
  const root = await mkdtemp(join(tmpdir(), 'l2fed-planprop-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  let n = 0;
  let accepted = 0;
  await checkProperty(
    t,
    'generated federations',
    fc.asyncProperty(federationArb, async (fed) => {
      const dir = join(root, String(n++));
      await writeFederation(dir, fed);
      try {
        const report = await validate(dir, {
          segments: fed.segmentKind,
          underlayMtu: LAB_UNDERLAY_MTU,
        });
        if (!report.ok) {
          for (const p of report.problems.filter((q) => q.severity === 'error')) {
            if (!p.file || !p.reason || !p.hint) throw new Error(`unlocated: ${formatProblem(p)}`);
          }
          return;
        }
        accepted++;
        const plan = planLab(
          report.clusters.map((c) => ({ id: c.id, state: c.state! })),
          { id: 'ab12', segmentKind: fed.segmentKind },
        );
        const why = unbuildable(plan);
        if (why.length) {
          throw new Error(`validate accepted an unbuildable lab:\n  ${why.join('\n  ')}`);
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    }),
  );
  t.log(`${accepted} of ${n} generated folders accepted`);
  t.true(accepted > n / 10, `too few accepted (${accepted}/${n}): the generator tests little`);
  t.true(accepted < n, 'some refused: the generator reaches the rules');
});
