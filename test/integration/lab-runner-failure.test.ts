/**
 * `lab up` refuses what it cannot build before building anything, with file, field and
 * fix; and when the lab runner fails anyway, it says why (the runner's error and the
 * last lines of its log) and keeps the run folder with the log, naming it; `lab down`
 * removes it.
 */
import { cp, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ExecaRunner } from '../../lib/runner.js';
import { listNamespaces } from '../../lib/netns.js';
import { testWith } from '../fixtures/privileges.js';
import { makeRunDir, runId } from '../fixtures/run-dir.js';

const test = testWith({ netAdmin: true, tools: ['ip'] });

test.serial('lab up - a runner failure prints the reason and keeps the log', async (t) => {
  t.timeout(120_000);
  const id = runId(4);
  const dir = await makeRunDir(`lrf${id}`);
  // The runner copies the manifests into its run folder; here the run folder lies inside
  // the manifest folder, which the copy refuses ("a subdirectory of self"). lab up's own
  // checks pass: the run folder does not exist yet when it validates.
  const manifests = join(dir.path, 'fed');
  for (const c of ['athens', 'bristol', 'madrid']) {
    await cp(join('deploy/examples', c), join(manifests, c), { recursive: true });
  }
  process.env.L2FED_LAB_DIR = join(manifests, 'l2fed-lab');
  process.env.L2FED_LAB_PREFIX = `l2fed-tf${id}`;
  const { labUp } = await import('../../lab/up.js');
  const { labDown } = await import('../../lab/down.js');
  const { labPaths } = await import('../../lab/paths.js');
  t.teardown(async () => {
    await labDown({ quiet: true });
    await dir.remove();
  });
  const lines: string[] = [];
  const code = await labUp({ manifests, segmentKind: 'bridge', out: (l) => lines.push(l) });
  const text = lines.join('\n');
  t.log(text);
  t.is(code, 1, text);
  // The reason, from the runner, not just its exit code.
  t.regex(text, /subdirectory of self/, text);
  const paths = labPaths();
  t.true(text.includes(paths.log), `names the log: ${text}`);
  t.true((await stat(paths.log)).isFile(), 'the log is kept');
  t.regex(await readFile(paths.log, 'utf8'), /subdirectory of self/);
  // lab down removes what was kept.
  await labDown({ quiet: true });
  await t.throwsAsync(stat(paths.dir), { code: 'ENOENT' });
});

test.serial(
  'lab up - a folder the lab cannot build is refused before anything is built',
  async (t) => {
    t.timeout(60_000);
    const id = runId(4);
    const dir = await makeRunDir(`lrf${id}`);
    const manifests = join(dir.path, 'fed');
    for (const c of ['athens', 'bristol', 'madrid']) {
      await cp(join('deploy/examples', c), join(manifests, c), { recursive: true });
    }
    // Two OVS networks on one bridge, VLAN 20 and untagged: fine with OVS, merged with
    // --segment bridge; and a pod interface named lo.
    await writeFile(
      join(manifests, 'madrid', 'networks.yaml'),
      (await readFile(join(manifests, 'madrid', 'networks.yaml'), 'utf8')).replace(
        'ovsBridge: br-lab',
        'ovsBridge: br-cdn',
      ),
    );
    await writeFile(
      join(manifests, 'bristol', 'pods.yaml'),
      (await readFile(join(manifests, 'bristol', 'pods.yaml'), 'utf8')).replace(
        '"interface":"tel0"',
        '"interface":"lo"',
      ),
    );
    process.env.L2FED_LAB_DIR = join(dir.path, 'l2fed-lab');
    process.env.L2FED_LAB_PREFIX = `l2fed-tf${id}`;
    const { labUp } = await import('../../lab/up.js');
    const { labDown } = await import('../../lab/down.js');
    t.teardown(async () => {
      await labDown({ quiet: true });
      await dir.remove();
    });
    const runner = new ExecaRunner();
    const lines: string[] = [];
    const code = await labUp({ manifests, segmentKind: 'bridge', out: (l) => lines.push(l) });
    const text = lines.join('\n');
    t.is(code, 1, text);
    t.regex(
      text,
      /madrid\/networks\.yaml:\d+ .*FederatedNetwork\/\w+\): spec\.segment\.ovsBridge: .*--segment bridge.*Fix: /,
    );
    t.regex(text, /bristol\/pods\.yaml:\d+ .*\]\.interface: interface lo is reserved.*Fix: /);
    t.false(text.includes('building the lab'), text);
    t.deepEqual(await listNamespaces(runner, process.env.L2FED_LAB_PREFIX), []);
  },
);
