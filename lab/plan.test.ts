import test from 'ava';
import { validate } from '../cluster-agent/validate.js';
import { planLab, hostIfname, LAB_PREFIX } from './plan.js';
import { expectedChecks, peeringVerdict } from './expectations.js';
import { makeState } from '../cluster-agent/desired-state.js';

async function examplesPlan(segmentKind: 'ovs' | 'bridge' = 'ovs') {
  const report = await validate('deploy/examples');
  if (!report.ok) throw new Error('examples must validate');
  const clusters = report.clusters.map((c) => ({ id: c.id, state: c.state! }));
  return planLab(clusters, { id: 'ab12', segmentKind });
}

test('lab plan - examples: stable addresses, names and segments', async (t) => {
  const plan = await examplesPlan();
  t.deepEqual(
    plan.clusters.map((c) => [c.id, c.ns, c.underlayAddress, c.wgIfname]),
    [
      ['athens', `${LAB_PREFIX}-athens`, '198.18.0.1', 'l2fwab120'],
      ['bristol', `${LAB_PREFIX}-bristol`, '198.18.0.2', 'l2fwab121'],
      ['madrid', `${LAB_PREFIX}-madrid`, '198.18.0.3', 'l2fwab122'],
    ],
  );
  const madrid = plan.clusters.find((c) => c.id === 'madrid')!;
  const collector = madrid.pods.find((p) => p.name === 'collector')!;
  t.is(collector.ns, `${LAB_PREFIX}-madrid.collector`);
  const tel = collector.interfaces.find((i) => i.network === 'telemetry')!;
  t.is(tel.vlan, 20);
  t.is(tel.mtu, 1350); // declared
  t.is(collector.interfaces.find((i) => i.network === 'cdn')!.mtu, 1370); // auto: 1500-80-50
  for (const c of plan.clusters) {
    for (const p of c.pods) for (const i of p.interfaces) t.true(i.hostIfname.length <= 15);
  }
});

test('lab plan - bridge mode turns every segment into a Linux bridge without VLAN', async (t) => {
  const plan = await examplesPlan('bridge');
  for (const c of plan.clusters) {
    t.true(c.segments.every((s) => s.type === 'linux-bridge'));
    for (const p of c.pods) t.true(p.interfaces.every((i) => i.vlan === undefined));
  }
});

test('lab plan - a pod interface name does not depend on other pods', (t) => {
  // echo -n web | sha256sum → 4b5e57f6…: the name depends on the pod name and index only.
  t.is(hostIfname('web', 0), 'l4b5e57f6-0');
  t.is(hostIfname('web', 3), 'l4b5e57f6-3');
  t.not(hostIfname('web', 0), hostIfname('web', 1));
  t.not(hostIfname('web', 0), hostIfname('db', 0));
});

test('lab expectations - examples: one-sided athens->bristol stays isolated', async (t) => {
  const plan = await examplesPlan();
  const [athens, bristol, madrid] = plan.clusters;
  const ab = peeringVerdict(athens!, bristol!);
  t.false(ab.active);
  t.regex(ab.reason, /bristol declares no ClusterPeering for athens/);
  t.deepEqual(peeringVerdict(madrid!, bristol!).networks, ['cdn', 'telemetry']);
  t.deepEqual(peeringVerdict(madrid!, athens!).networks, ['cdn']);

  const checks = expectedChecks(plan);
  const across = (a: string, b: string) =>
    checks.filter((c) => c.from.cluster === a && c.to.cluster === b);
  t.true(across('athens', 'bristol').length > 0);
  t.true(across('athens', 'bristol').every((c) => c.expect === 'isolated'));
  t.true(across('madrid', 'bristol').every((c) => c.expect === 'reach'));
  t.true(checks.some((c) => c.family === 6));
});

test("lab plan - pods take the network's one MTU across the lab's members (issue 12)", (t) => {
  const cdn = (mtu: 'auto' | number) =>
    makeState(
      [
        {
          apiVersion: 'l2fed.io/v1alpha1',
          kind: 'FederatedNetwork',
          metadata: { name: 'cdn' },
          spec: { segment: { linuxBridge: 'br-cdn' }, mtu },
        },
      ],
      [],
      [
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'web' },
          networks: [{ name: 'cdn', ips: ['198.51.100.1/24'] }],
        },
      ],
    );
  const plan = planLab(
    [
      { id: 'madrid', state: cdn(1280) },
      { id: 'bristol', state: cdn('auto') },
    ],
    { id: 'ab12', segmentKind: 'bridge' },
  );
  const mtus = plan.clusters.map((c) => [c.id, c.pods[0]?.interfaces[0]?.mtu]);
  t.deepEqual(mtus, [
    ['bristol', 1280], // auto alone would be 1370: lowered to madrid's request
    ['madrid', 1280],
  ]);
});
