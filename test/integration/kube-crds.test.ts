/**
 * The CRDs in deploy/crds against a real kube-apiserver (test/fixtures/kube-control-plane.ts):
 * they install and become Established, kubectl shows their printer columns, every l2fed
 * object in deploy/examples is accepted, and a table of broken manifests is refused by the
 * server AND by `l2fed validate` (the zod schemas), both naming the same field.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import { validate } from '../../cluster-agent/validate.js';
import {
  controlPlaneUnmet,
  startKubeControlPlane,
  type KubeControlPlane,
} from '../fixtures/kube-control-plane.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith<{ kube: KubeControlPlane }>({ tools: ['openssl'], check: controlPlaneUnmet });

const ROOT = new URL('../../', import.meta.url).pathname;
const EXAMPLES = join(ROOT, 'deploy/examples');
const CRD_NAMES = ['federatednetworks.l2fed.io', 'clusterpeerings.l2fed.io'];

test.before(async (t) => {
  const kube = await startKubeControlPlane();
  t.context.kube = kube;
  t.log(`control plane ready in ${kube.startMs} ms`);
  // Every test needs the CRDs; Established is what makes them servable.
  await kube.kubectl(['apply', '-k', join(ROOT, 'deploy/crds')]);
  await kube.kubectl(
    ['wait', '--for=condition=Established', '--timeout=30s', ...CRD_NAMES.map((n) => `crd/${n}`)],
    { timeoutMs: 40_000 },
  );
});

test.after.always(async (t) => {
  await t.context.kube?.dispose();
});

test.serial('kube crds - both CRDs are Established and NamesAccepted', async (t) => {
  const { kube } = t.context;
  for (const name of CRD_NAMES) {
    const crd = await kube.api<{ status: { conditions: { type: string; status: string }[] } }>(
      'GET',
      `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`,
    );
    const status = Object.fromEntries(crd.status.conditions.map((c) => [c.type, c.status]));
    t.is(status.Established, 'True', name);
    t.is(status.NamesAccepted, 'True', name);
  }
});

/** The objects of one example cluster (all kinds, or only `kinds`), each as YAML. */
async function exampleObjects(cluster: string, kinds?: readonly string[]): Promise<string[]> {
  const docs: string[] = [];
  const dir = join(EXAMPLES, cluster);
  for (const file of (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort()) {
    for (const doc of parseAllDocuments(await readFile(join(dir, file), 'utf8'))) {
      const obj = doc.toJS() as { kind?: string } | null;
      if (obj && (!kinds || kinds.includes(obj.kind ?? ''))) docs.push(stringify(obj));
    }
  }
  return docs;
}
const L2FED_KINDS = ['FederatedNetwork', 'ClusterPeering'];

test.serial('kube crds - every manifest in deploy/examples is accepted (strict)', async (t) => {
  t.timeout(120_000);
  const { kube } = t.context;
  const clusters = (await readdir(EXAMPLES, { withFileTypes: true }))
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
  t.deepEqual(clusters, ['athens', 'bristol', 'madrid']);
  // What kube-controller-manager (not run here) creates in every namespace; Pods need it.
  await kube.kubectl(['create', 'serviceaccount', 'default', '-n', 'default']);
  for (const cluster of clusters) {
    // One server stands for one cluster at a time: the clusters reuse names (cdn).
    const docs = await exampleObjects(cluster);
    const input = docs.join('---\n');
    t.true(docs.length > 0, cluster);
    const applied = await kube.kubectl(['apply', '--validate=strict', '-f', '-'], { input });
    t.is(applied.stdout.split('\n').filter((l) => l.endsWith(' created')).length, docs.length);
    // Stored as given: l2fed objects and the Pods (never scheduled: there are no nodes).
    const listed = await kube.kubectl(['get', 'fednet,cpeer,pods', '-o', 'name']);
    t.is(
      listed.stdout.split('\n').filter(Boolean).length,
      docs.length,
      `${cluster}: ${listed.stdout}`,
    );
    await kube.kubectl(['delete', '-f', '-', '--wait=true'], { input, timeoutMs: 60_000 });
  }
});

test.serial(
  'kube crds - kubectl get fednet,clusterpeering shows the printer columns',
  async (t) => {
    t.timeout(60_000);
    const { kube } = t.context;
    const input = (await exampleObjects('madrid', L2FED_KINDS)).join('---\n');
    await kube.kubectl(['apply', '-f', '-'], { input });
    t.teardown(() => kube.kubectl(['delete', '-f', '-'], { input, allowFailure: true }));
    // Status as the agent writes it, through the status subresource.
    await kube.kubectl([
      'patch',
      'fednet',
      'cdn',
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({
        status: {
          vni: 4096,
          effectiveMTU: 1280,
          mtuSetBy: 'athens',
          members: ['athens', 'madrid'],
        },
      }),
    ]);
    await kube.kubectl([
      'patch',
      'clusterpeering',
      'athens',
      '--subresource=status',
      '--type=merge',
      '-p',
      JSON.stringify({ status: { active: true, reason: 'Active', rtt: '1.5ms' } }),
    ]);
    const out = (await kube.kubectl(['get', 'fednet,clusterpeering'])).stdout;
    t.log(out);
    const lines = out.split('\n');
    t.deepEqual(
      lines.filter((l) => l.startsWith('NAME')).map((l) => l.split(/\s+/)),
      [
        ['NAME', 'VNI', 'MTU', 'MEMBERS', 'READY', 'AGE'],
        ['NAME', 'REMOTE', 'ACTIVE', 'STATE', 'RTT', 'AGE'],
      ],
    );
    const row = (name: string) => lines.find((l) => l.startsWith(`${name} `))?.split(/\s+/);
    t.deepEqual(row('federatednetwork.l2fed.io/cdn')?.slice(0, 4), [
      'federatednetwork.l2fed.io/cdn',
      '4096',
      '1280',
      '["athens","madrid"]',
    ]);
    // Who set the network's MTU (issue 12) shows with -o wide.
    const fednetWide = (await kube.kubectl(['get', 'fednet', 'cdn', '-o', 'wide'])).stdout;
    const [head, cdn] = fednetWide.split('\n').map((l) => l.split(/\s+/));
    t.is(cdn?.[(head ?? []).indexOf('MTU-SET-BY')], 'athens', fednetWide);
    t.deepEqual(row('clusterpeering.l2fed.io/athens')?.slice(0, 5), [
      'clusterpeering.l2fed.io/athens',
      'athens',
      'true',
      'Active',
      '1.5ms',
    ]);
    // The short names from the CRDs work too; Handshake shows only with -o wide (priority 1).
    const wide = (await kube.kubectl(['get', 'cpeer', '-o', 'wide'])).stdout;
    t.regex(wide.split('\n')[0] ?? '', /HANDSHAKE/);
  },
);

const fn = (spec: unknown, name = 'cdn') => ({
  apiVersion: 'l2fed.io/v1alpha1',
  kind: 'FederatedNetwork',
  metadata: { name },
  spec,
});
const cp = (spec: unknown) => ({
  apiVersion: 'l2fed.io/v1alpha1',
  kind: 'ClusterPeering',
  metadata: { name: 'bristol' },
  spec,
});
const br0 = { ovsBridge: 'br0' };

/** Broken manifests and the one field both the server and `l2fed validate` must name. */
const BROKEN: [title: string, obj: Record<string, unknown>, field: string][] = [
  ['bad name', fn({ segment: br0 }, 'Cdn_1'), 'metadata.name'],
  ['name of 64 characters', fn({ segment: br0 }, 'a'.repeat(64)), 'metadata.name'],
  ['unknown spec field', fn({ segment: br0, vni: 7 }), 'spec.vni'],
  ['unknown segment field', fn({ segment: { ...br0, stp: true } }), 'spec.segment.stp'],
  ['two segments (CEL)', fn({ segment: { ...br0, linuxBridge: 'br1' } }), 'spec.segment'],
  ['no segment', fn({ mtu: 'auto' }), 'spec.segment'],
  ['empty segment (CEL)', fn({ segment: {} }), 'spec.segment'],
  ['mtu below 1280 (CEL)', fn({ segment: br0, mtu: 1279 }), 'spec.mtu'],
  ['mtu above 9000 (CEL)', fn({ segment: br0, mtu: 9001 }), 'spec.mtu'],
  ['mtu numeric string (CEL)', fn({ segment: br0, mtu: '1500' }), 'spec.mtu'],
  ['vlan 0', fn({ segment: { ...br0, vlan: 0 } }), 'spec.segment.vlan'],
  ['vlan 4095', fn({ segment: { ...br0, vlan: 4095 } }), 'spec.segment.vlan'],
  [
    'vlan on a linux bridge (CEL)',
    fn({ segment: { linuxBridge: 'br0', vlan: 10 } }),
    'spec.segment.vlan',
  ],
  [
    'bridge name too long',
    fn({ segment: { ovsBridge: 'br-0123456789abc' } }),
    'spec.segment.ovsBridge',
  ],
  ['peering without remote', cp({ networks: ['cdn'] }), 'spec.remoteCluster'],
  ['peering bad remote', cp({ remoteCluster: '-bristol' }), 'spec.remoteCluster'],
  ['peering empty network list', cp({ remoteCluster: 'bristol', networks: [] }), 'spec.networks'],
  [
    'peering duplicate networks',
    cp({ remoteCluster: 'bristol', networks: ['cdn', 'cdn'] }),
    'spec.networks[1]',
  ],
  ['peering unknown field', cp({ remoteCluster: 'bristol', vni: 3 }), 'spec.vni'],
];

interface Status {
  kind?: string;
  code?: number;
  message?: string;
  details?: { causes?: { field?: string; message?: string; reason?: string }[] };
}

/** The fields a refusal names: structured causes, or the strict decoder's unknown field. */
function serverFields(status: Status): string[] {
  const fields = (status.details?.causes ?? []).flatMap((c) => {
    if (c.field) return [c.field.replace(/^\./, '')];
    const unknown = /unknown field "([^"]+)"/.exec(c.message ?? '');
    return unknown ? [unknown[1]!] : [];
  });
  for (const m of (status.message ?? '').matchAll(/unknown field "([^"]+)"/g)) fields.push(m[1]!);
  return fields;
}

for (const [title, obj, field] of BROKEN) {
  test(`kube crds - refused by the server and by l2fed validate, both naming ${field}: ${title}`, async (t) => {
    t.timeout(30_000);
    const { kube } = t.context;
    const plural = obj.kind === 'FederatedNetwork' ? 'federatednetworks' : 'clusterpeerings';
    // Server: a dry-run create with strict field validation, as kubectl apply sends it.
    const res = await kube.request(
      'POST',
      `/apis/l2fed.io/v1alpha1/${plural}?dryRun=All&fieldValidation=Strict`,
      obj,
    );
    const status = JSON.parse(res.body) as Status;
    t.true(res.status === 422 || res.status === 400, `server accepted it: HTTP ${res.status}`);
    t.is(status.kind, 'Status');
    t.true(
      serverFields(status).includes(field),
      `server names ${JSON.stringify(serverFields(status))}, not ${field}: ${status.message}`,
    );

    // l2fed validate on a cluster folder holding just this manifest.
    const dir = await mkdtemp(join(tmpdir(), 'l2fed-kube-validate-'));
    t.teardown(() => rm(dir, { recursive: true, force: true }));
    await writeFile(join(dir, 'object.yaml'), stringify(obj));
    const report = await validate(dir, { clusterId: 'madrid' });
    t.false(report.ok);
    const paths = report.problems.filter((p) => p.severity === 'error').map((p) => p.path);
    t.true(paths.includes(field), `l2fed validate names ${JSON.stringify(paths)}, not ${field}`);
  });
}
