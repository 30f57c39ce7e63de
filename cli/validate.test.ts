/**
 * `l2fed validate DIR` as a user runs it (spawned CLI): inputs the lab cannot build are
 * refused with exit 1, each problem naming file, field, what is wrong and the fix.
 */
import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { makeRunDir } from '../test/fixtures/run-dir.js';

const root = fileURLToPath(new URL('..', import.meta.url));

function validateCli(
  dir: string,
  extra: readonly string[] = [],
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import=tsx', 'cli/main.ts', 'validate', dir, ...extra],
      {
        cwd: root,
        env: { ...process.env, NO_COLOR: '1' },
        timeout: 60_000,
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

const network = (name: string, bridge: string) =>
  [
    'apiVersion: l2fed.io/v1alpha1',
    'kind: FederatedNetwork',
    'metadata:',
    `  name: ${name}`,
    'spec:',
    '  segment:',
    `    linuxBridge: ${bridge}`,
  ].join('\n');

const peering = (remote: string) =>
  [
    'apiVersion: l2fed.io/v1alpha1',
    'kind: ClusterPeering',
    'metadata:',
    `  name: ${remote}`,
    'spec:',
    `  remoteCluster: ${remote}`,
  ].join('\n');

const pod = (name: string, networks: unknown, namespace?: string) =>
  [
    'apiVersion: v1',
    'kind: Pod',
    'metadata:',
    `  name: ${name}`,
    ...(namespace ? [`  namespace: ${namespace}`] : []),
    '  annotations:',
    `    k8s.v1.cni.cncf.io/networks: '${typeof networks === 'string' ? networks : JSON.stringify(networks)}'`,
  ].join('\n');

/** Writes one cluster folder with networks cdn and tel plus the given pods. */
async function cluster(dir: string, docs: string[]): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, 'networks.yaml'),
    [network('cdn', 'br-cdn'), network('tel', 'br-tel')].join('\n---\n') + '\n',
  );
  await writeFile(join(dir, 'pods.yaml'), docs.join('\n---\n') + '\n');
  return join(dir, 'pods.yaml');
}

async function tempDir(t: { teardown(f: () => Promise<void>): void }) {
  const dir = await makeRunDir('cli-validate');
  t.teardown(() => dir.remove());
  return dir.path;
}

test('validate CLI - explicit net2 next to a network that gets net2 by default is refused', async (t) => {
  const dir = join(await tempDir(t), 'madrid');
  // Entry 0 names net2; entry 1 has no interface, so Multus and the lab call it net2 too.
  const file = await cluster(dir, [pod('web', 'cdn@net2,tel')]);
  const r = await validateCli(dir);
  t.is(r.code, 1, r.out);
  t.true(r.out.includes(file), r.out);
  t.regex(
    r.out,
    /Pod\/web\): metadata\.annotations\["k8s\.v1\.cni\.cncf\.io\/networks"\]\[1\]\.interface: .*net2.*entry 0.*Fix: /,
  );
});

for (const name of ['lo', 'eth0', 'all']) {
  test(`validate CLI - interface: ${name} is refused (reserved in the pod)`, async (t) => {
    const dir = join(await tempDir(t), 'madrid');
    const file = await cluster(dir, [pod('web', [{ name: 'cdn', interface: name }])]);
    const r = await validateCli(dir);
    t.is(r.code, 1, r.out);
    t.true(r.out.includes(file), r.out);
    t.regex(
      r.out,
      new RegExp(
        `metadata\\.annotations\\["k8s\\.v1\\.cni\\.cncf\\.io/networks"\\]\\[0\\]\\.interface: .*${name}.*reserved.*Fix: `,
      ),
    );
  });
}

test('validate CLI - two pods with one name in different namespaces are refused', async (t) => {
  const dir = join(await tempDir(t), 'madrid');
  const file = await cluster(dir, [
    pod('web', [{ name: 'cdn', ips: ['10.0.0.1/24'] }], 'team-a'),
    pod('web', [{ name: 'cdn', ips: ['10.0.0.2/24'] }], 'team-b'),
  ]);
  const r = await validateCli(dir);
  t.is(r.code, 1, r.out);
  t.true(r.out.includes(file), r.out);
  t.regex(r.out, /document 2, Pod\/web\): metadata\.name: .*web.*team-a.*Fix: /);
});

test('validate CLI - one MAC on pods of two clusters in one network is an error', async (t) => {
  const fed = await tempDir(t);
  const mac = '02:00:00:00:00:aa';
  await cluster(join(fed, 'bristol'), [
    peering('madrid'),
    pod('web', [{ name: 'cdn', ips: ['10.0.0.2/24'], mac }]),
  ]);
  const madrid = await cluster(join(fed, 'madrid'), [
    peering('bristol'),
    pod('db', [{ name: 'cdn', ips: ['10.0.0.1/24'], mac: mac.toUpperCase() }]),
  ]);
  const r = await validateCli(fed);
  t.is(r.code, 1, r.out);
  t.true(r.out.includes(madrid), r.out);
  t.regex(
    r.out,
    /Pod\/db\): metadata\.annotations\["k8s\.v1\.cni\.cncf\.io\/networks"\]\[0\]\.mac: .*02:00:00:00:00:aa.*bristol\/web.*Fix: /i,
  );
  t.notRegex(r.out, /warning: [^\n]*mac/i, 'an error, not a warning');
});

test('validate CLI - the all-zero MAC and one address twice on an interface are refused', async (t) => {
  const dir = join(await tempDir(t), 'madrid');
  await cluster(dir, [
    pod('web', [{ name: 'cdn', ips: ['10.0.0.1/24', '10.0.0.1/24'], mac: '00:00:00:00:00:00' }]),
  ]);
  const r = await validateCli(dir);
  t.is(r.code, 1, r.out);
  t.regex(r.out, /\[0\]\.mac: .*all-zero.*Fix: /);
  t.regex(r.out, /\[0\]\.ips\[1\]: .*10\.0\.0\.1.*Fix: /);
});

test('validate CLI - a bridge named like a device the gateway or lab owns is refused', async (t) => {
  const dir = join(await tempDir(t), 'madrid');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'networks.yaml'), network('cdn', 'ul0') + '\n');
  const r = await validateCli(dir);
  t.is(r.code, 1, r.out);
  t.regex(r.out, /FederatedNetwork\/cdn\): spec\.segment\.linuxBridge: .*ul0.*Fix: /);
});

test('validate CLI - deploy/examples still validate', async (t) => {
  const r = await validateCli('deploy/examples');
  t.is(r.code, 0, r.out);
});

test('validate CLI - --segment bridge refuses OVS VLANs sharing a bridge; ovs accepts them', async (t) => {
  const dir = join(await tempDir(t), 'madrid');
  await mkdir(dir, { recursive: true });
  await writeFile(
    join(dir, 'networks.yaml'),
    [
      'apiVersion: l2fed.io/v1alpha1\nkind: FederatedNetwork\nmetadata:\n  name: red\nspec:\n  segment:\n    ovsBridge: br-shared\n    vlan: 20',
      'apiVersion: l2fed.io/v1alpha1\nkind: FederatedNetwork\nmetadata:\n  name: blue\nspec:\n  segment:\n    ovsBridge: br-shared',
    ].join('\n---\n') + '\n',
  );
  t.is((await validateCli(dir)).code, 0);
  const r = await validateCli(dir, ['--segment', 'bridge']);
  t.is(r.code, 1, r.out);
  t.regex(r.out, /FederatedNetwork\/red\): spec\.segment\.ovsBridge: .*--segment bridge.*Fix: /);
  t.is((await validateCli(dir, ['--segment', 'vlan'])).code, 2);
});

test('validate CLI - a network MTU the underlay cannot carry is refused; --underlay-mtu says the underlay is larger', async (t) => {
  const dir = join(await tempDir(t), 'madrid');
  await cluster(dir, [pod('web', 'cdn')]);
  const file = join(dir, 'jumbo.yaml');
  await writeFile(file, `${network('jumbo', 'br-jumbo')}\n  mtu: 9000\n`);
  const r = await validateCli(dir);
  t.is(r.code, 1, r.out);
  t.true(r.out.includes(file), r.out);
  t.regex(
    r.out,
    /FederatedNetwork\/jumbo\): spec\.mtu: MTU 9000 does not fit an underlay MTU of 1500: the largest network MTU it carries is 1370.*Fix: set spec\.mtu to at most 1370/,
  );
  const jumbo = await validateCli(dir, ['--underlay-mtu', '9130']);
  t.is(jumbo.code, 0, jumbo.out);
  const bad = await validateCli(dir, ['--underlay-mtu', 'big']);
  t.is(bad.code, 2, bad.out);
  t.regex(bad.out, /--underlay-mtu must be a whole number of bytes/);
});
