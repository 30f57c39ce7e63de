/**
 * Every object `kubectl kustomize` renders from deploy/kubernetes/* is accepted by a real
 * kube-apiserver in a server-side dry run with strict field validation (Deployments,
 * Services, PDBs, RBAC, ConfigMaps, CRDs: full API validation and admission, nothing
 * stored). Only the Namespaces are created for real, because a dry run of a namespaced
 * object needs its namespace to exist.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments, stringify } from 'yaml';
import {
  controlPlaneUnmet,
  startKubeControlPlane,
  type KubeControlPlane,
} from '../fixtures/kube-control-plane.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith<{ kube: KubeControlPlane }>({
  tools: ['openssl'],
  check: controlPlaneUnmet,
});

const BASES = new URL('../../deploy/kubernetes/', import.meta.url).pathname;

test.before(async (t) => {
  t.context.kube = await startKubeControlPlane();
  t.log(`control plane ready in ${t.context.kube.startMs} ms`);
});

test.after.always(async (t) => {
  await t.context.kube?.dispose();
});

interface Obj {
  kind: string;
  metadata: { name: string; namespace?: string };
}

const bases = readdirSync(BASES, { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name)
  .sort();

test('kube kustomize - deploy/kubernetes has the bases this test expects', (t) => {
  t.deepEqual(bases, ['broker', 'cluster', 'nats']);
});

for (const base of bases) {
  test.serial(
    `kube kustomize - every object of deploy/kubernetes/${base} passes a server-side dry run`,
    async (t) => {
      t.timeout(90_000);
      const { kube } = t.context;
      const rendered = (await kube.kubectl(['kustomize', join(BASES, base)])).stdout;
      const objects = parseAllDocuments(rendered)
        .map((d) => d.toJS() as Obj | null)
        .filter((o): o is Obj => o !== null);
      t.true(objects.length > 0);
      const namespaces = objects.filter((o) => o.kind === 'Namespace');
      if (namespaces.length > 0) {
        await kube.kubectl(['apply', '-f', '-'], {
          input: namespaces.map((o) => stringify(o)).join('---\n'),
        });
      }
      const res = await kube.kubectl(
        ['apply', '--dry-run=server', '--validate=strict', '-f', '-'],
        { input: rendered, allowFailure: true },
      );
      t.is(res.exitCode, 0, res.stderr);
      t.log(res.stdout);
      // One "(server dry run)" line per object, and no warning (e.g. a deprecated field).
      const lines = res.stdout.split('\n').filter((l) => l.endsWith('(server dry run)'));
      t.is(lines.length, objects.length, res.stdout);
      for (const o of objects) {
        t.true(
          lines.some((l) => l.includes(`/${o.metadata.name} `)),
          `${o.kind}/${o.metadata.name} not in ${res.stdout}`,
        );
      }
      t.notRegex(res.stderr, /Warning/, res.stderr);
    },
  );
}
