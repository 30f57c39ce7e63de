/**
 * deploy/network-attachments/*.yaml are generated (scripts/gen-nads.ts): they must match
 * what the generator makes from deploy/examples today, MTUs included.
 */
import test from 'ava';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { exampleNads, NAD_DIR } from '../scripts/gen-nads.js';

test('network attachments - generated from deploy/examples and up to date', async (t) => {
  const want = await exampleNads();
  t.deepEqual(
    (await readdir(NAD_DIR)).filter((f) => f.endsWith('.yaml')).sort(),
    [...want.keys()].map((id) => `${id}.yaml`).sort(),
  );
  for (const [id, text] of want) {
    t.is(
      await readFile(join(NAD_DIR, `${id}.yaml`), 'utf8'),
      text,
      `deploy/network-attachments/${id}.yaml is stale: run npx tsx scripts/gen-nads.ts`,
    );
  }
  // The example networks say telemetry is 1350 (madrid and bristol): so do the NADs.
  t.regex(want.get('madrid')!, /"name":"telemetry".*"mtu":1350/);
});
