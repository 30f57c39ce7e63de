import { ExecaRunner } from '../../lib/runner.js';
import { listNamespaces } from '../../lib/netns.js';
import { validate } from '../../cluster-agent/validate.js';
import { planLab, type LabPlan } from '../../lab/plan.js';
import { LabTopology } from '../../lab/topology.js';
import { runChecks } from '../../lab/verify.js';
import { expectedChecks } from '../../lab/expectations.js';
import { testWith } from '../fixtures/privileges.js';
import { makeRunDir, runId } from '../fixtures/run-dir.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'ping', 'ovs-vsctl', 'ovs-vswitchd', 'ovsdb-server', 'ethtool'],
});

async function examples(kind: 'ovs' | 'bridge'): Promise<LabPlan> {
  const report = await validate('deploy/examples');
  return planLab(
    report.clusters.map((c) => ({ id: c.id, state: c.state! })),
    { id: runId(4), segmentKind: kind, prefix: `l2fed-tl${runId(4)}` },
  );
}

for (const kind of ['ovs', 'bridge'] as const) {
  test(`lab topology (${kind}) - pods share their local segment; nothing crosses without gateways`, async (t) => {
    const plan = await examples(kind);
    const dir = await makeRunDir('tlab');
    const runner = new ExecaRunner();
    const topo = new LabTopology(runner, plan, dir.path);
    t.teardown(async () => {
      await topo.destroy();
      await dir.remove();
    });
    await topo.build();
    const checks = expectedChecks(plan);
    const local = checks.filter((c) => c.from.cluster === c.to.cluster);
    const remote = checks.filter((c) => c.from.cluster !== c.to.cluster).slice(0, 4);
    t.true(local.length >= 2, 'examples have same-cluster pairs');
    const results = await runChecks(runner, [...local, ...remote], { retryMs: 5000 });
    for (const r of results) {
      const c = r.check;
      const label = `${c.from.cluster}/${c.from.name} -> ${c.to.cluster}/${c.to.name} ${c.address}`;
      // Same cluster: one segment. Other clusters: no gateway runs yet, so no path at all.
      t.is(r.reached, c.from.cluster === c.to.cluster, label);
    }

    // Every lab namespace carries the plan's prefix; destroy removes all of them.
    const names = await listNamespaces(runner, plan.prefix);
    t.is(names.length, 1 + plan.clusters.length + plan.clusters.flatMap((c) => c.pods).length);
    await topo.destroy();
    t.deepEqual(await listNamespaces(runner, plan.prefix), []);
  });
}

test('lab topology - sync adds and removes pods without touching the others', async (t) => {
  const plan = await examples('bridge');
  const dir = await makeRunDir('tlab');
  const runner = new ExecaRunner();
  const topo = new LabTopology(runner, plan, dir.path);
  t.teardown(async () => {
    await topo.destroy();
    await dir.remove();
  });
  await topo.build();
  const madrid = plan.clusters.find((c) => c.id === 'madrid')!;
  const [web, collector] = [
    madrid.pods.find((p) => p.name === 'web')!,
    madrid.pods.find((p) => p.name === 'collector')!,
  ];
  // Next plan: madrid loses "collector" and gains "db" on cdn.
  const db = {
    ...web,
    name: 'db',
    ns: `${madrid.ns}.db`,
    interfaces: [{ ...web.interfaces[0]!, hostIfname: 'ldbtest-0', ips: ['10.10.0.19/24'] }],
  };
  const next: LabPlan = {
    ...plan,
    clusters: plan.clusters.map((c) => (c.id === 'madrid' ? { ...c, pods: [web, db] } : c)),
  };
  const changes = await topo.sync(next);
  t.deepEqual(changes.sort(), [
    'cluster madrid: added pod db',
    'cluster madrid: removed pod collector',
  ]);
  const names = await listNamespaces(runner, plan.prefix);
  t.true(names.includes(db.ns));
  t.false(names.includes(collector.ns));
  const ping = await runner.run(['ping', '-c', '1', '-W', '2', '10.10.0.19'], {
    netns: web.ns,
    allowFailure: true,
  });
  t.is(ping.exitCode, 0, 'web reaches the new pod on the same segment');
  t.deepEqual(await topo.sync(next), [], 'a second sync changes nothing');
});
