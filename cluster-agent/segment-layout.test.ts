import test from 'ava';
import { buildDesiredState } from './desired-state.js';
import { parseManifests } from './manifests.js';

const network = (name: string, segment: string) =>
  `apiVersion: l2fed.io/v1alpha1\nkind: FederatedNetwork\nmetadata:\n  name: ${name}\nspec:\n  segment:\n${segment}`;

test('agent - desired state with two networks on one local segment is refused (both sources build it so)', (t) => {
  const text = [
    network('blue', '    ovsBridge: br-shared\n'),
    network('cyan', '    ovsBridge: br-shared\n'),
    network('red', '    ovsBridge: br-shared\n    vlan: 20\n'),
  ].join('---\n');
  const { manifests, problems } = parseManifests(text, 'networks.yaml');
  t.deepEqual(problems, []);
  // withPods: false is the Kubernetes source; the folder source and validate pass true.
  for (const withPods of [false, true]) {
    const built = buildDesiredState(manifests, { withPods });
    t.false(built.ok);
    if (built.ok) return;
    t.is(built.problems.length, 1);
    t.like(built.problems[0], {
      severity: 'error',
      file: 'networks.yaml',
      document: 2,
      object: 'FederatedNetwork/cyan',
      path: 'spec.segment',
      hint: 'give each federated network its own bridge or VLAN',
    });
    t.regex(
      built.problems[0]!.reason,
      /^network cyan uses the same local segment as blue \(OVS bridge br-shared, untagged\)/,
    );
  }
  // red (VLAN 20) beside blue (untagged) on one bridge is fine: isolated by plugging.
  const apart = parseManifests(
    [
      network('blue', '    ovsBridge: br-shared\n'),
      network('red', '    ovsBridge: br-shared\n    vlan: 20\n'),
    ].join('---\n'),
    'n.yaml',
  );
  t.true(buildDesiredState(apart.manifests, { withPods: false }).ok);
});
