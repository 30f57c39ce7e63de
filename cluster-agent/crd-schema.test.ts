/**
 * The CRDs (deploy/crds/) and the zod schemas must accept and reject the same objects. Two
 * checks: the CRDs carry exactly the constants zod is built from, and a table of good and
 * bad manifests gets the same verdict from zod and from the CRD's OpenAPI schema.
 */
import test from 'ava';
import { CEL_MIRRORS, crdSchema, loadCrd } from '../test/fixtures/crds.js';
import { checkOpenApi, walkSchema, type Schema } from '../test/fixtures/openapi-check.js';
import {
  API_GROUP,
  API_VERSION,
  CEL,
  CONDITION,
  DNS1123_LABEL_MAX,
  DNS1123_LABEL_PATTERN,
  DURATION_PATTERN,
  IFNAME_MAX,
  IFNAME_PATTERN,
  KINDS,
  MTU,
  VLAN,
  VNI,
  type CustomKind,
} from './constants.js';
import { checkObject } from './manifests.js';

const CRDS = {
  FederatedNetwork: loadCrd('FederatedNetwork'),
  ClusterPeering: loadCrd('ClusterPeering'),
};
const schemaOf = (kind: CustomKind) => crdSchema(kind);

function nodeAt(kind: CustomKind, path: string): Schema {
  const found = [...walkSchema(schemaOf(kind))].find(([p]) => p === path);
  if (!found) throw new Error(`no schema node ${path} in ${kind}`);
  return found[1];
}

for (const kind of ['FederatedNetwork', 'ClusterPeering'] as const) {
  test(`crd ${kind} - names, scope, version and status subresource match the constants`, (t) => {
    const { spec } = CRDS[kind];
    t.is(spec.group, API_GROUP);
    t.is(spec.scope, 'Cluster');
    t.is(spec.names.kind, KINDS[kind].kind);
    t.is(spec.names.plural, KINDS[kind].plural);
    t.deepEqual(
      spec.versions.map((v) => v.name),
      [API_VERSION],
    );
    t.deepEqual(spec.versions[0]!.subresources?.status, {});
  });

  test(`crd ${kind} - structural: no preserve-unknown-fields, every object lists its properties`, (t) => {
    const raw = JSON.stringify(schemaOf(kind));
    t.false(raw.includes('x-kubernetes-preserve-unknown-fields'));
    t.false(raw.includes('additionalProperties'));
    for (const [path, node] of walkSchema(schemaOf(kind))) {
      if (node.type === 'object') t.truthy(node.properties, `${path} has no properties`);
      if (node['x-kubernetes-int-or-string'] !== true && path !== '<root>')
        t.truthy(node.type, `${path} has no type`);
    }
  });

  test(`crd ${kind} - every pattern and CEL rule is one zod is built from`, (t) => {
    const patterns = new Set<string>([
      DNS1123_LABEL_PATTERN,
      IFNAME_PATTERN,
      CONDITION.typePattern,
      CONDITION.reasonPattern,
      DURATION_PATTERN,
    ]);
    const rules = new Map<string, string>(Object.values(CEL).map((c) => [c.rule, c.message]));
    const fieldPaths = new Map<string, string | undefined>(
      Object.values(CEL).map((c) => [c.rule, 'fieldPath' in c ? c.fieldPath : undefined]),
    );
    for (const [path, node] of walkSchema(schemaOf(kind))) {
      if (node.pattern !== undefined)
        t.true(patterns.has(node.pattern), `${path}: unknown pattern ${node.pattern}`);
      for (const v of node['x-kubernetes-validations'] ?? []) {
        t.is(
          rules.get(v.rule),
          v.message,
          `${path}: CEL rule not from constants.ts or message differs`,
        );
        t.is(
          v.fieldPath,
          fieldPaths.get(v.rule),
          `${path}: CEL fieldPath differs from constants.ts`,
        );
      }
      if (node.pattern === DNS1123_LABEL_PATTERN) t.is(node.maxLength, DNS1123_LABEL_MAX, path);
      if (node.pattern === IFNAME_PATTERN) t.is(node.maxLength, IFNAME_MAX, path);
    }
  });
}

test('crd FederatedNetwork - ranges equal the constants', (t) => {
  const vlan = nodeAt('FederatedNetwork', 'spec.segment.vlan');
  t.deepEqual([vlan.minimum, vlan.maximum], [VLAN.min, VLAN.max]);
  const vni = nodeAt('FederatedNetwork', 'status.vni');
  t.deepEqual([vni.minimum, vni.maximum], [VNI.min, VNI.max]);
  const mtu = nodeAt('FederatedNetwork', 'spec.mtu');
  t.true(mtu['x-kubernetes-int-or-string']);
  t.is(mtu.default, MTU.auto);
  t.deepEqual(
    mtu['x-kubernetes-validations']?.map((v) => v.rule),
    [CEL.mtuRange.rule],
  );
  t.deepEqual(
    nodeAt('FederatedNetwork', 'spec.segment')['x-kubernetes-validations']?.map((v) => v.rule),
    [CEL.segmentExactlyOne.rule, CEL.vlanNeedsOvs.rule],
  );
  t.is(nodeAt('ClusterPeering', 'spec.networks')['x-kubernetes-list-type'], 'set');
  t.is(nodeAt('FederatedNetwork', 'status.members')['x-kubernetes-list-type'], 'set');
});

const fn = (spec: unknown, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'l2fed.io/v1alpha1',
  kind: 'FederatedNetwork',
  metadata: { name: 'cdn' },
  spec,
  ...extra,
});
const cp = (spec: unknown, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'l2fed.io/v1alpha1',
  kind: 'ClusterPeering',
  metadata: { name: 'bristol' },
  spec,
  ...extra,
});
const cond = {
  type: 'Ready',
  status: 'True',
  reason: 'Programmed',
  message: 'ok',
  lastTransitionTime: '2026-01-31T12:00:00Z',
};

const SAMPLES: [string, boolean, Record<string, unknown>][] = [
  ['ovs bridge, mtu auto', true, fn({ segment: { ovsBridge: 'br-cdn' }, mtu: 'auto' })],
  ['ovs bridge with vlan', true, fn({ segment: { ovsBridge: 'br-cdn', vlan: 4094 }, mtu: 1500 })],
  ['linux bridge, mtu min', true, fn({ segment: { linuxBridge: 'br0' }, mtu: MTU.min })],
  ['l2sm network, mtu max', true, fn({ segment: { l2smNetwork: 'cdn-net' }, mtu: MTU.max })],
  [
    'full status',
    true,
    fn(
      { segment: { ovsBridge: 'br0' }, mtu: 'auto' },
      {
        status: {
          vni: 4096,
          effectiveMTU: 1370,
          members: ['madrid', 'bristol'],
          observedGeneration: 2,
          conditions: [cond],
        },
      },
    ),
  ],
  ['no segment', false, fn({ mtu: 'auto' })],
  ['two segments', false, fn({ segment: { ovsBridge: 'br0', linuxBridge: 'br1' }, mtu: 'auto' })],
  ['empty segment', false, fn({ segment: {}, mtu: 'auto' })],
  ['vlan 0', false, fn({ segment: { ovsBridge: 'br0', vlan: 0 }, mtu: 'auto' })],
  ['vlan 4095', false, fn({ segment: { ovsBridge: 'br0', vlan: 4095 }, mtu: 'auto' })],
  ['vlan on linux bridge', false, fn({ segment: { linuxBridge: 'br0', vlan: 10 }, mtu: 'auto' })],
  ['vlan as string', false, fn({ segment: { ovsBridge: 'br0', vlan: '10' }, mtu: 'auto' })],
  ['bridge name too long', false, fn({ segment: { ovsBridge: 'br-0123456789abc' }, mtu: 'auto' })],
  ['bridge name with slash', false, fn({ segment: { ovsBridge: 'br/0' }, mtu: 'auto' })],
  ['l2sm name upper case', false, fn({ segment: { l2smNetwork: 'CDN' }, mtu: 'auto' })],
  ['mtu too small', false, fn({ segment: { ovsBridge: 'br0' }, mtu: MTU.min - 1 })],
  ['mtu too big', false, fn({ segment: { ovsBridge: 'br0' }, mtu: MTU.max + 1 })],
  ['mtu numeric string', false, fn({ segment: { ovsBridge: 'br0' }, mtu: '1500' })],
  ['mtu fraction', false, fn({ segment: { ovsBridge: 'br0' }, mtu: 1500.5 })],
  ['unknown spec field', false, fn({ segment: { ovsBridge: 'br0' }, mtu: 'auto', vni: 7 })],
  ['unknown segment field', false, fn({ segment: { ovsBridge: 'br0', stp: true }, mtu: 'auto' })],
  [
    'unknown top-level field',
    false,
    fn({ segment: { ovsBridge: 'br0' }, mtu: 'auto' }, { extra: 1 }),
  ],
  [
    'bad name',
    false,
    { ...fn({ segment: { ovsBridge: 'br0' }, mtu: 'auto' }), metadata: { name: 'Cdn_1' } },
  ],
  [
    'name 64 chars',
    false,
    { ...fn({ segment: { ovsBridge: 'br0' }, mtu: 'auto' }), metadata: { name: 'a'.repeat(64) } },
  ],
  ['vni 0', false, fn({ segment: { ovsBridge: 'br0' }, mtu: 'auto' }, { status: { vni: 0 } })],
  [
    'vni above 24 bits',
    false,
    fn({ segment: { ovsBridge: 'br0' }, mtu: 'auto' }, { status: { vni: 2 ** 24 } }),
  ],
  [
    'duplicate members',
    false,
    fn({ segment: { ovsBridge: 'br0' }, mtu: 'auto' }, { status: { members: ['a', 'a'] } }),
  ],
  [
    'condition bad status',
    false,
    fn(
      { segment: { ovsBridge: 'br0' }, mtu: 'auto' },
      { status: { conditions: [{ ...cond, status: 'Yes' }] } },
    ),
  ],
  [
    'condition missing reason',
    false,
    fn(
      { segment: { ovsBridge: 'br0' }, mtu: 'auto' },
      {
        status: {
          conditions: [{ ...cond, reason: undefined }].map(
            (c) => JSON.parse(JSON.stringify(c)) as object,
          ),
        },
      },
    ),
  ],
  [
    'duplicate condition type',
    false,
    fn({ segment: { ovsBridge: 'br0' }, mtu: 'auto' }, { status: { conditions: [cond, cond] } }),
  ],
  ['peering all networks', true, cp({ remoteCluster: 'bristol' })],
  [
    'peering listed networks',
    true,
    cp({ remoteCluster: 'bristol', networks: ['cdn', 'telemetry'] }),
  ],
  [
    'peering status',
    true,
    cp(
      { remoteCluster: 'bristol' },
      {
        status: {
          active: false,
          reason: 'RemoteNotDeclared',
          rtt: '1.5ms',
          lastHandshake: '2026-01-31T12:00:00Z',
          activeNetworks: ['cdn'],
          conditions: [cond],
        },
      },
    ),
  ],
  ['peering without remote', false, cp({ networks: ['cdn'] })],
  ['peering empty network list', false, cp({ remoteCluster: 'bristol', networks: [] })],
  ['peering duplicate networks', false, cp({ remoteCluster: 'bristol', networks: ['cdn', 'cdn'] })],
  ['peering bad network name', false, cp({ remoteCluster: 'bristol', networks: ['CDN'] })],
  ['peering bad remote', false, cp({ remoteCluster: '-bristol' })],
  ['peering unknown field', false, cp({ remoteCluster: 'bristol', vni: 3 })],
  ['peering bad rtt', false, cp({ remoteCluster: 'bristol' }, { status: { rtt: '3 ms' } })],
  [
    'peering bad handshake time',
    false,
    cp({ remoteCluster: 'bristol' }, { status: { lastHandshake: 'yesterday' } }),
  ],
  [
    'peering active as string',
    false,
    cp({ remoteCluster: 'bristol' }, { status: { active: 'true' } }),
  ],
];

for (const [title, valid, sample] of SAMPLES) {
  test(`crd vs zod - ${valid ? 'accept' : 'reject'}: ${title}`, (t) => {
    const kind = sample.kind as CustomKind;
    const crd = checkOpenApi(schemaOf(kind), sample, CEL_MIRRORS);
    const zod = checkObject(sample, { file: 'sample.yaml' });
    t.is(crd.length === 0, valid, `CRD verdict: ${crd.join('; ') || 'valid'}`);
    t.is(
      zod.ok,
      valid,
      `zod verdict: ${zod.ok ? 'valid' : zod.problems.map((p) => `${p.path}: ${p.reason}`).join('; ')}`,
    );
  });
}
