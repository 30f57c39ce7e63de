import test from 'ava';
import fc from 'fast-check';
import { checkProperty, isLongFuzzRun } from '../test/fixtures/property.js';
import { parseGatewayConfig, type GatewayConfigInput } from './config.js';
import { ConfigError } from './errors.js';

const KEY_B = 'd8qybrWZ7bF7LGkGFhINlkloK0uydL5I6KvaA22Rjw8=';
const KEY_C = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';

const base = (): GatewayConfigInput => ({
  identity: 'madrid',
  wireguard: { ifname: 'l2fa', listenPort: 51820, privateKeyFile: '/var/lib/l2fed/wg.key' },
  transitAddress: '198.19.255.1/24',
  peers: [
    {
      name: 'bristol',
      publicKey: KEY_B,
      endpoints: ['198.18.0.2:51820'],
      transitAddress: '198.19.255.2',
    },
  ],
  networks: [
    { name: 'cdn', vni: 100, segment: { type: 'ovs', bridge: 'br-cdn' }, peers: ['bristol'] },
  ],
});

test('config - a good config gets defaults', (t) => {
  const c = parseGatewayConfig(base());
  t.is(c.underlayMtu, 1500);
  t.is(c.networks[0]?.mtu, 'auto');
  t.is(c.peers[0]?.persistentKeepalive, 25);
});

test("config - the default VXLAN port is no network plugin's and not ephemeral", (t) => {
  // Default UDP ports on a Kubernetes node's host namespace (sources: docs/install.md,
  // "The VXLAN port"): a VXLAN socket on any of them clashes or is cut off by the guard.
  const taken = new Map([
    [4789, 'VXLAN (IANA): Calico, Antrea, Kube-OVN, OVN-Kubernetes hybrid overlay'],
    [4790, 'VXLAN-GPE (IANA)'],
    [4791, 'RoCEv2 (IANA)'],
    [4490, 'Submariner NAT discovery'],
    [4500, 'IPsec NAT-T: Submariner, Antrea IPsec'],
    [4800, 'Submariner intra-cluster VXLAN'],
    [6081, 'Geneve: Antrea, Cilium, OVN-Kubernetes, Kube-OVN'],
    [6091, 'Liqo Geneve'],
    [6783, 'Weave Net'],
    [6784, 'Weave Net fast datapath'],
    [8285, 'Flannel UDP backend'],
    [8472, 'Flannel, Canal, Cilium VXLAN'],
    [51820, 'WireGuard: Calico, Flannel, Antrea'],
    [51821, 'WireGuard: Calico IPv6, Antrea Multi-cluster'],
    [51840, 'Liqo gateway'],
    [51871, 'Cilium WireGuard'],
  ]);
  const port = parseGatewayConfig(base()).vxlanPort;
  t.is(taken.get(port), undefined, `default vxlanPort ${port} is ${taken.get(port)}'s`);
  // net.ipv4.ip_local_port_range defaults to 32768-60999: outside it, no outgoing socket
  // is ever bound to the port before the gateway's VXLAN device is.
  t.true(port >= 1024 && port < 32_768, `default vxlanPort ${port} is outside 1024-32767`);
});

type Case = [title: string, edit: (c: GatewayConfigInput) => unknown, path: string, msg: RegExp];

const cases: Case[] = [
  ['bad peer key', (c) => (c.peers![0]!.publicKey = 'abc'), 'peers[0].publicKey', /WireGuard key/],
  ['vni 0', (c) => (c.networks![0]!.vni = 0), 'networks[0].vni', /out of range/],
  ['vni 2^24', (c) => (c.networks![0]!.vni = 16_777_216), 'networks[0].vni', /out of range/],
  [
    'duplicate vni',
    (c) =>
      c.networks!.push({ ...c.networks![0]!, name: 'vod', segment: { type: 'ovs', bridge: 'b2' } }),
    'networks[1].vni',
    /duplicate vni 100/,
  ],
  [
    'missing segment',
    (c) => delete (c.networks![0] as { segment?: unknown }).segment,
    'networks[0].segment',
    /segment is required/,
  ],
  [
    'unknown segment type',
    (c) => ((c.networks![0] as { segment: unknown }).segment = { type: 'vpp', bridge: 'x' }),
    'networks[0].segment.type',
    /"ovs" or "linux-bridge"/,
  ],
  ['network mtu too small', (c) => (c.networks![0]!.mtu = 1200), 'networks[0].mtu', /too small/],
  [
    'network mtu too large',
    (c) => (c.networks![0]!.mtu = 1400),
    'networks[0].mtu',
    /too large.*1370/,
  ],
  ['underlay mtu too small', (c) => (c.underlayMtu = 1400), 'underlayMtu', /at least 1410/],
  [
    'unknown peer',
    (c) => (c.networks![0]!.peers = ['lisbon']),
    'networks[0].peers[0]',
    /unknown peer "lisbon"/,
  ],
  ['unknown field', (c) => ((c as Record<string, unknown>).colour = 'red'), '', /colour/],
  ['bad ifname', (c) => (c.wireguard.ifname = 'wg0'), 'wireguard.ifname', /start with "l2f"/],
  ['vxlan port 0', (c) => ((c as { vxlanPort?: number }).vxlanPort = 0), 'vxlanPort', /\b1\b/],
  [
    'ifname of a VXLAN device',
    (c) => (c.wireguard.ifname = 'l2fv100'),
    'wireguard.ifname',
    /names of the VXLAN devices/,
  ],
  [
    'relative key path',
    (c) => (c.wireguard.privateKeyFile = 'wg.key'),
    'wireguard.privateKeyFile',
    /absolute/,
  ],
  [
    'bad endpoint',
    (c) => (c.peers![0]!.endpoints = ['198.18.0.2']),
    'peers[0].endpoints[0]',
    /host:port/,
  ],
  ['no endpoint', (c) => (c.peers![0]!.endpoints = []), 'peers[0].endpoints', /at least one/],
  [
    'nine endpoints',
    (c) => (c.peers![0]!.endpoints = Array.from({ length: 9 }, (_, i) => `198.18.0.${i + 2}:1`)),
    'peers[0].endpoints',
    /at most 8/,
  ],
  [
    'peer outside transit subnet',
    (c) => (c.peers![0]!.transitAddress = '198.19.254.2'),
    'peers[0].transitAddress',
    /outside the transit subnet/,
  ],
  [
    'duplicate peer key',
    (c) => c.peers!.push({ ...c.peers![0]!, name: 'lisbon', transitAddress: '198.19.255.3' }),
    'peers[2].publicKey',
    /duplicate publicKey/,
  ],
  [
    'two networks on one segment',
    (c) => c.networks!.push({ ...c.networks![0]!, name: 'vod', vni: 200 }),
    'networks[1].segment',
    /duplicate segment br-cdn/,
  ],
  ['identity not a label', (c) => (c.identity = 'Madrid_1'), 'identity', /DNS-1123/],
  [
    'the VXLAN port equal to the WireGuard port',
    (c) => (c.vxlanPort = c.wireguard.listenPort),
    'vxlanPort',
    /also wireguard\.listenPort.*own UDP port/,
  ],
];

for (const [title, edit, path, msg] of cases) {
  test(`config - rejects ${title}`, (t) => {
    const c = base();
    c.peers!.push({
      name: 'spare',
      publicKey: KEY_C,
      endpoints: ['198.18.0.3:51820'],
      transitAddress: '198.19.255.9',
    });
    edit(c);
    const err = t.throws(() => parseGatewayConfig(c), { instanceOf: ConfigError });
    const issue = err?.issues.find((i) => i.path === path && msg.test(i.message));
    t.truthy(issue, `want ${path} ~ ${msg}, got ${JSON.stringify(err?.issues)}`);
  });
}

test('config - a duplicate peer key is reported at every holder, naming the other peer', (t) => {
  const c = base();
  c.peers!.push({ ...c.peers![0]!, name: 'lisbon', transitAddress: '198.19.255.3' });
  const err = t.throws(() => parseGatewayConfig(c), { instanceOf: ConfigError });
  t.deepEqual(
    err?.issues.filter((i) => /publicKey/.test(i.path)).map((i) => i.path),
    ['peers[0].publicKey', 'peers[1].publicKey'],
  );
  t.regex(err?.issues[0]?.message ?? '', /bristol shares it with peers\[1\] lisbon/);
  t.regex(err?.issues[1]?.message ?? '', /lisbon shares it with peers\[0\] bristol/);
});

/** A JSON path like `peers[0].publicKey`. */
const pathText = (path: readonly (string | number)[]) =>
  path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');

/** Every field of `value` (objects and arrays, depth first), as paths. */
function fieldsOf(value: unknown, at: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== 'object') return [at];
  const entries = Array.isArray(value)
    ? value.map((v, i) => [i, v] as const)
    : Object.entries(value as Record<string, unknown>);
  return [at, ...entries.flatMap(([k, v]) => fieldsOf(v, [...at, k]))].filter((p) => p.length > 0);
}

function withField(root: unknown, path: readonly (string | number)[], value: unknown): unknown {
  const copy = structuredClone(root) as Record<string | number, unknown>;
  let at = copy;
  for (const p of path.slice(0, -1)) at = at[p] as Record<string | number, unknown>;
  if (value === DELETE) delete at[path.at(-1)!];
  else at[path.at(-1)!] = value;
  return copy;
}
const DELETE = Symbol('delete');

const fieldJunk = fc.oneof(
  fc.string({ maxLength: 70 }),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(DELETE),
  fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 2 }),
  fc.constantFrom(KEY_B, KEY_C, 'bristol', 'spare', '198.19.255.1', '198.19.255.2', 100, 0, -1),
);

function twoPeers(): GatewayConfigInput {
  const c = base();
  c.peers!.push({
    name: 'spare',
    publicKey: KEY_C,
    endpoints: ['198.18.0.3:51820'],
    transitAddress: '198.19.255.9',
  });
  return c;
}

/** A valid config with one field replaced or removed, and that field's path. */
const oneFieldMutated = fc
  .constantFrom(...fieldsOf(twoPeers()))
  .chain((path) =>
    fieldJunk.map((value) => ({ path, value, config: withField(twoPeers(), path, value) })),
  );

test('config property - junk and one-field-mutated configs: a ConfigError naming the field or a valid config, never anything else; the input untouched', async (t) => {
  t.timeout(isLongFuzzRun() ? 600_000 : 60_000);
  const input = fc.oneof(
    fc.anything(),
    fc.jsonValue(),
    oneFieldMutated.map((m) => m.config),
  );
  await checkProperty(
    t,
    'gateway configs through parseGatewayConfig',
    fc.property(input, (c) => {
      const before = JSON.stringify(c);
      try {
        parseGatewayConfig(c);
      } catch (err) {
        if (!(err instanceof ConfigError)) throw new Error(`not a ConfigError: ${String(err)}`);
        if (err.issues.length === 0 || err.issues.some((i) => !i.message)) {
          throw new Error(`an issue without a message: ${err.message}`);
        }
      }
      if (JSON.stringify(c) !== before) throw new Error('the input was changed');
    }),
  );
  await checkProperty(
    t,
    'one field mutated names that field (or its list entry)',
    fc.property(oneFieldMutated, ({ path, config }) => {
      let err: unknown;
      try {
        parseGatewayConfig(config);
        return; // the new value happened to be valid
      } catch (e) {
        err = e;
      }
      if (!(err instanceof ConfigError)) throw new Error(`not a ConfigError: ${String(err)}`);
      const field = pathText(path);
      // A renamed or removed peer is reported where the networks still name it; a duplicate at
      // both holders; an unknown field at its parent.
      const entry = pathText(path.slice(0, 2));
      const parent = pathText(path.slice(0, -1));
      const ok = err.issues.some(
        (i) =>
          i.path.startsWith(field) ||
          (path.length > 1 && i.path.startsWith(entry)) ||
          i.path === parent ||
          (path[0] === 'peers' &&
            (path.length === 1 || path[2] === 'name') &&
            i.path.startsWith('networks')) ||
          (path[0] === 'transitAddress' && i.path.startsWith('peers')) ||
          (path[0] === 'underlayMtu' && /^networks\[\d+\]\.mtu$/.test(i.path)),
      );
      if (!ok)
        throw new Error(`${field} mutated, issues at ${err.issues.map((i) => i.path).join(', ')}`);
    }),
  );
});
