import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { makeRunDir } from '../test/fixtures/run-dir.js';
import { formatProblem } from './problems.js';
import { FolderSource } from './source-folder.js';
import type { SourceEvent } from './source.js';
import { carriedNetworks } from './federation-checks.js';
import { formatReport, validate, VALIDATE_EXIT } from './validate.js';

const EXAMPLES = fileURLToPath(new URL('../deploy/examples', import.meta.url));

test('validate - deploy/examples is a valid federation of madrid, bristol and athens', async (t) => {
  const report = await validate(EXAMPLES);
  t.is(report.layout, 'federation');
  t.is(report.exitCode, VALIDATE_EXIT.ok, report.problems.map(formatProblem).join('\n'));
  t.regex(
    formatReport('deploy/examples', report),
    /\ndeploy\/examples: 3 clusters, 0 errors, 1 warning$/,
  );
  t.deepEqual(
    report.clusters.map((c) => c.id),
    ['athens', 'bristol', 'madrid'],
  );
  const state = Object.fromEntries(report.clusters.map((c) => [c.id, c.state!]));
  // cdn everywhere, telemetry in madrid and bristol only.
  t.deepEqual(
    state.madrid!.networks.map((n) => n.metadata.name),
    ['cdn', 'telemetry'],
  );
  t.deepEqual(
    state.bristol!.networks.map((n) => n.metadata.name),
    ['cdn', 'telemetry'],
  );
  t.deepEqual(
    state.athens!.networks.map((n) => n.metadata.name),
    ['cdn'],
  );
  t.deepEqual(carriedNetworks(state.madrid!, 'madrid', state.bristol!, 'bristol'), [
    'cdn',
    'telemetry',
  ]);
  t.deepEqual(carriedNetworks(state.madrid!, 'madrid', state.athens!, 'athens'), ['cdn']);
  t.deepEqual(carriedNetworks(state.athens!, 'athens', state.bristol!, 'bristol'), [], 'one-sided');
  const warnings = report.problems.filter((p) => p.severity === 'warning');
  t.is(warnings.length, 1);
  t.regex(warnings[0]!.reason, /one-sided: bristol declares no ClusterPeering for athens/);
  t.like(warnings[0], {
    file: join(EXAMPLES, 'athens', 'peering-bristol.yaml'),
    object: 'ClusterPeering/bristol',
  });
  // Every pod joins networks with addresses in the lab's private ranges (or none).
  for (const c of report.clusters) {
    for (const pod of c.state!.pods!) {
      t.true(pod.networks.length > 0, `${c.id}/${pod.metadata.name}`);
      for (const ip of pod.networks.flatMap((n) => n.ips)) t.regex(ip, /^(10\.(10|20)\.|fd00:)/);
    }
  }
});

test('validate - each example cluster folder validates on its own', async (t) => {
  for (const id of ['madrid', 'bristol', 'athens']) {
    const report = await validate(join(EXAMPLES, id));
    t.is(report.layout, 'cluster');
    t.is(report.exitCode, VALIDATE_EXIT.ok, id);
  }
});

test('validate - invalid folder exits 1 with located problems; missing folder too', async (t) => {
  const dir = await makeRunDir('validate');
  t.teardown(() => dir.remove());
  await writeFile(
    join(dir.path, 'bad.yaml'),
    'apiVersion: l2fed.io/v1alpha1\nkind: ClusterPeering\nmetadata:\n  name: x\nspec:\n  remoteCluster: Bristol\n  networkz: [cdn]\n',
  );
  const report = await validate(dir.path);
  t.is(report.exitCode, VALIDATE_EXIT.invalid);
  const lines = report.problems.map(formatProblem);
  t.true(
    lines.some((l) =>
      l.includes(
        'bad.yaml:6 (document 1, ClusterPeering/x): spec.remoteCluster: must be a DNS-1123 label',
      ),
    ),
    lines.join('\n'),
  );
  t.true(
    lines.some((l) =>
      l.includes(
        'bad.yaml:7 (document 1, ClusterPeering/x): spec.networkz: unknown field "networkz"',
      ),
    ),
    lines.join('\n'),
  );
  t.regex(formatReport(dir.path, report), /: 2 errors, 0 warnings$/);
  t.is((await validate(join(dir.path, 'nope'))).exitCode, VALIDATE_EXIT.invalid);
});

const network = (name: string, segment: string) =>
  `apiVersion: l2fed.io/v1alpha1\nkind: FederatedNetwork\nmetadata:\n  name: ${name}\nspec:\n  segment:\n${segment}`;

test('validate - two networks on one local segment are refused; one bridge with a VLAN and untagged is fine', async (t) => {
  const dir = await makeRunDir('validate-segments');
  t.teardown(() => dir.remove());
  // One segment, two networks: locally one broadcast domain, so each would leak into the other's peers.
  await writeFile(
    join(dir.path, 'networks.yaml'),
    [
      network('red', '    ovsBridge: br-shared\n    vlan: 20\n'),
      network('green', '    ovsBridge: br-shared\n    vlan: 20\n'),
      network('blue', '    ovsBridge: br-shared\n'),
      network('grey', '    ovsBridge: br-grey\n'),
      network('white', '    linuxBridge: br-grey\n'),
    ].join('---\n'),
  );
  const report = await validate(dir.path, { clusterId: 'madrid' });
  t.is(report.exitCode, VALIDATE_EXIT.invalid);
  const lines = report.problems.map(formatProblem);
  t.is(lines.length, 2, lines.join('\n'));
  t.regex(
    lines[0]!,
    /networks\.yaml:1 \(document 1, FederatedNetwork\/red\): spec\.segment: network red uses the same local segment as green \(OVS bridge br-shared, VLAN 20\)/,
  );
  t.regex(lines[0]!, /Fix: give each federated network its own bridge or VLAN/);
  t.regex(
    lines[1]!,
    /FederatedNetwork\/white\): spec\.segment: network white uses the same local segment as grey \(bridge br-grey\)/,
  );

  // The layout of issue 11 item 9: red on VLAN 20, blue untagged, one OVS bridge. The
  // gateway plugs blue as an access port of VLAN 0, so they stay apart: valid.
  await writeFile(
    join(dir.path, 'networks.yaml'),
    [
      network('red', '    ovsBridge: br-shared\n    vlan: 20\n'),
      network('blue', '    ovsBridge: br-shared\n'),
    ].join('---\n'),
  );
  const ok = await validate(dir.path, { clusterId: 'madrid' });
  t.is(ok.exitCode, VALIDATE_EXIT.ok, ok.problems.map(formatProblem).join('\n'));
});

test('validate - a folder that cannot be read says why, and what to check, in validate terms', async (t) => {
  const dir = await makeRunDir('validate-missing');
  t.teardown(() => dir.remove());
  const missing = join(dir.path, 'nope');
  const lines = (await validate(missing)).problems.map(formatProblem);
  t.deepEqual(lines, [
    `${missing}: cannot read manifest folder ${missing}: it does not exist. Fix: check the folder given to l2fed validate`,
  ]);
});

test('validate - bridge sharing: OVS VLANs on one bridge only for the ovs lab; never across kinds or cut L2S-M names', async (t) => {
  const dir = await makeRunDir('validate-bridges');
  t.teardown(() => dir.remove());
  await writeFile(
    join(dir.path, 'networks.yaml'),
    [
      network('red', '    ovsBridge: br-shared\n    vlan: 20\n'),
      network('blue', '    ovsBridge: br-shared\n'),
    ].join('---\n'),
  );
  t.is((await validate(dir.path, { segments: 'ovs' })).exitCode, VALIDATE_EXIT.ok);
  // `lab up --segment bridge` builds each OVS bridge as one Linux bridge: red and blue merge.
  const bridged = (await validate(dir.path, { segments: 'bridge' })).problems.map(formatProblem);
  t.is(bridged.length, 1, bridged.join('\n'));
  t.regex(
    bridged[0]!,
    /FederatedNetwork\/red\): spec\.segment\.ovsBridge: network red builds its segment as bridge br-shared, which network blue also uses .*--segment bridge.*Fix: /,
  );

  await writeFile(
    join(dir.path, 'networks.yaml'),
    [
      network('red', '    ovsBridge: br-x\n    vlan: 20\n'),
      network('white', '    linuxBridge: br-x\n'),
      // Both become the lab bridge "fabric-network-" (15 characters).
      network('aa', '    l2smNetwork: fabric-network-aa\n'),
      network('ab', '    l2smNetwork: fabric-network-ab\n'),
    ].join('---\n'),
  );
  const lines = (await validate(dir.path)).problems.map(formatProblem);
  t.is(lines.length, 2, lines.join('\n'));
  t.regex(
    lines[0]!,
    /FederatedNetwork\/ab\): spec\.segment\.l2smNetwork: network ab builds its segment as bridge fabric-network- \(the lab builds L2S-M network fabric-network-ab as bridge fabric-network-\), which network aa also uses/,
  );
  t.regex(lines[1]!, /FederatedNetwork\/white\): .*bridge br-x, which network red also uses/);
});

test("validate - the agent's folder source refuses what validate refuses, with the same problem", async (t) => {
  const dir = await makeRunDir('validate-agent');
  t.teardown(() => dir.remove());
  await writeFile(
    join(dir.path, 'all.yaml'),
    [
      network('cdn', '    linuxBridge: br-cdn\n'),
      `apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  annotations:\n    k8s.v1.cni.cncf.io/networks: cdn@lo\n`,
    ].join('---\n'),
  );
  const report = await validate(dir.path, { clusterId: 'madrid' });
  t.is(report.exitCode, VALIDATE_EXIT.invalid);
  const source = new FolderSource({ dir: dir.path, clusterId: 'madrid', resyncMs: 0 });
  const events: SourceEvent[] = [];
  source.subscribe((e) => events.push(e));
  t.teardown(() => source.stop());
  await source.start();
  const ev = events[0];
  t.is(ev?.type, 'error', 'no snapshot of a folder the lab cannot build');
  t.deepEqual(
    ev?.type === 'error' ? ev.problems.map(formatProblem) : [],
    report.problems.map(formatProblem),
  );
  t.regex(formatProblem(report.problems[0]!), /\[0\]\.interface: interface lo is reserved/);
});

test('validate - a federation folder with more clusters than the lab underlay holds is refused', async (t) => {
  const dir = await makeRunDir('validate-many');
  t.teardown(() => dir.remove());
  for (let i = 0; i < 255; i++) {
    await mkdir(join(dir.path, `c${i}`));
    await writeFile(join(dir.path, `c${i}`, 'n.yaml'), network('cdn', '    linuxBridge: br-cdn\n'));
  }
  const report = await validate(dir.path);
  t.is(report.exitCode, VALIDATE_EXIT.invalid);
  t.deepEqual(report.problems.map(formatProblem), [
    `${dir.path}: 255 cluster folders, more than the lab's 254 (its underlay is one /24). Fix: split the federation into folders of at most 254 clusters`,
  ]);
});
