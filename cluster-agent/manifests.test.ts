import test from 'ava';
import { parseManifests } from './manifests.js';
import { parseNetworkSelections } from './multus.js';
import { formatProblem } from './problems.js';
import { mergeConditions } from './conditions.js';
import { makeState } from './desired-state.js';
import { segmentOf, type FederatedNetwork } from './schema-network.js';

const pod = (annotation: string) => `apiVersion: v1
kind: Pod
metadata:
  name: web
  annotations:
    k8s.v1.cni.cncf.io/networks: '${annotation}'
`;

test('manifests - multi-document file: every document is checked and located', (t) => {
  const text = `# a comment before the first --- belongs to document 1
---
apiVersion: l2fed.io/v1alpha1
kind: FederatedNetwork
metadata: {name: cdn}
spec:
  segment: {ovsBridge: br-cdn, vlan: 5000}
---
kind: Service
---
apiVersion: l2fed.io/v1alpha1
kind: ClusterPeering
metadata: {name: bristol}
spec: {remoteCluster: bristol}
---
key: [unclosed
`;
  const r = parseManifests(text, 'madrid/all.yaml');
  t.deepEqual(
    r.manifests.map((m) => [m.kind, m.origin.document, m.origin.line]),
    [['ClusterPeering', 3, 11]],
  );
  const lines = r.problems.map(formatProblem);
  t.is(
    lines[0],
    'madrid/all.yaml:7 (document 1, FederatedNetwork/cdn): spec.segment.vlan: Too big: expected number to be <=4094, got 5000. Fix: use a value within the allowed range',
  );
  t.regex(
    lines[1]!,
    /^madrid\/all\.yaml:9 \(document 2\): kind: unsupported kind "Service"\. Fix: use one of FederatedNetwork, ClusterPeering, Pod$/,
  );
  t.regex(lines[2]!, /^madrid\/all\.yaml:\d+ \(document 4\): YAML syntax error/);
  t.is(r.problems.length, 3);
});

test('manifests - mtu defaults to auto, as the CRD default does', (t) => {
  const r = parseManifests(
    'apiVersion: l2fed.io/v1alpha1\nkind: FederatedNetwork\nmetadata: {name: cdn}\nspec: {segment: {l2smNetwork: cdn-net}}\n',
    'x.yaml',
  );
  const fn = r.manifests[0]?.object as FederatedNetwork;
  t.is(fn.spec.mtu, 'auto');
  t.deepEqual(segmentOf(fn.spec.segment), { type: 'l2smNetwork', network: 'cdn-net' });
});

const MULTUS: [string, string, boolean, unknown][] = [
  [
    'json list',
    '[{"name":"cdn","ips":["10.10.0.11/24","fd00::1/64"],"interface":"cdn0","mac":"02:00:00:00:00:01"}]',
    true,
    [
      {
        name: 'cdn',
        ips: ['10.10.0.11/24', 'fd00::1/64'],
        interface: 'cdn0',
        mac: '02:00:00:00:00:01',
      },
    ],
  ],
  [
    'short form',
    'cdn, lab/telemetry@tel0',
    true,
    [
      { name: 'cdn', ips: [] },
      { name: 'telemetry', namespace: 'lab', interface: 'tel0', ips: [] },
    ],
  ],
  [
    'address without prefix',
    '[{"name":"cdn","ips":["10.10.0.11"]}]',
    false,
    /ips\[0\]: must be an address with prefix length/,
  ],
  ['bad octet', '[{"name":"cdn","ips":["10.10.0.300/24"]}]', false, /ips\[0\]/],
  ['upper-case name', '[{"name":"CDN"}]', false, /\[0\]\.name: must be a DNS-1123 label/],
  [
    'typo key',
    '[{"name":"cdn","ip":["10.10.0.1/24"]}]',
    false,
    /\[0\]\.ip: unknown field "ip" \(supported: name, namespace, interface, ips, mac\)/,
  ],
  [
    'multicast mac',
    '[{"name":"cdn","mac":"01:00:5e:00:00:01"}]',
    false,
    /mac: must be a unicast MAC/,
  ],
  [
    'same interface twice',
    '[{"name":"cdn","interface":"n1"},{"name":"tel","interface":"n1"}]',
    false,
    /\[1\]\.interface: interface n1 is already used by entry 0/,
  ],
  ['object, not list', '{"name":"cdn"}', false, /must be a JSON list/],
  ['broken json', '[{"name":', false, /is not valid JSON/],
  ['empty short entry', 'cdn,,tel', false, /\[1\]\.name/],
];

for (const [title, value, ok, want] of MULTUS) {
  test(`multus annotation - ${ok ? 'accept' : 'reject'}: ${title}`, (t) => {
    const direct = parseNetworkSelections(value);
    t.is(direct.ok, ok);
    const r = parseManifests(pod(value), 'pods.yaml');
    if (ok) {
      t.deepEqual(r.problems, []);
      const m = r.manifests[0];
      t.deepEqual(m?.kind === 'Pod' ? m.object.networks : undefined, want);
    } else {
      t.is(r.manifests.length, 0);
      const line = r.problems.map(formatProblem).join('\n');
      t.regex(
        line,
        /^pods\.yaml:6 \(document 1, Pod\/web\): metadata\.annotations\["k8s\.v1\.cni\.cncf\.io\/networks"\]/,
      );
      t.regex(line, want as RegExp);
    }
  });
}

test('desired state - version ignores key order and status, follows spec', (t) => {
  const a = {
    apiVersion: 'l2fed.io/v1alpha1',
    kind: 'FederatedNetwork',
    metadata: { name: 'cdn' },
    spec: { segment: { ovsBridge: 'br0' }, mtu: 'auto' },
  } as const;
  const b = {
    kind: 'FederatedNetwork',
    apiVersion: 'l2fed.io/v1alpha1',
    metadata: { resourceVersion: '9', name: 'cdn' },
    spec: { mtu: 'auto', segment: { ovsBridge: 'br0' } },
    status: { vni: 3 },
  } as const;
  t.is(makeState([a], []).version, makeState([b], []).version);
  t.not(
    makeState([a], []).version,
    makeState([{ ...a, spec: { ...a.spec, mtu: 1500 } }], []).version,
  );
});

test('conditions - lastTransitionTime moves only when status changes', (t) => {
  const t0 = new Date('2026-01-01T00:00:00Z');
  const t1 = new Date('2026-01-01T00:01:00Z');
  const first = mergeConditions(
    undefined,
    [{ type: 'Ready', status: 'True', reason: 'Programmed', message: 'a' }],
    1,
    t0,
  );
  t.deepEqual(first, [
    {
      type: 'Ready',
      status: 'True',
      reason: 'Programmed',
      message: 'a',
      lastTransitionTime: '2026-01-01T00:00:00Z',
      observedGeneration: 1,
    },
  ]);
  const same = mergeConditions(
    first,
    [{ type: 'Ready', status: 'True', reason: 'Programmed', message: 'b' }],
    2,
    t1,
  );
  t.is(same[0]?.lastTransitionTime, '2026-01-01T00:00:00Z');
  t.is(same[0]?.observedGeneration, 2);
  const flipped = mergeConditions(
    same,
    [{ type: 'Ready', status: 'False', reason: 'TunnelDown', message: 'c' }],
    2,
    t1,
  );
  t.is(flipped[0]?.lastTransitionTime, '2026-01-01T00:01:00Z');
});
