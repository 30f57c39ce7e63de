import test, { type ExecutionContext } from 'ava';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { MissingToolError } from '../lib/errors.js';
import { DEFAULT_VXLAN_PORT, type GatewayConfigInput } from './config.js';
import { ApplyError, ConfigError, PreconditionError } from './errors.js';
import { Gateway } from './gateway.js';
import {
  gatewayOverFakes,
  KEY_C,
  keyRunner,
  madridConfig,
  PUB,
} from '../test/fixtures/gateway-over-fakes.js';

async function setup(t: ExecutionContext) {
  const { dir, plane, runner, gw } = await gatewayOverFakes(t, {
    ovs: ['br-cdn'],
    linuxBridge: ['br-vod'],
  });
  const config = (over: Partial<GatewayConfigInput> = {}): GatewayConfigInput => ({
    ...madridConfig(join(dir, 'wg.key'), [
      {
        name: 'cdn',
        vni: 100,
        segment: { type: 'ovs', bridge: 'br-cdn', vlan: 10 },
        peers: ['b', 'c'],
      },
      { name: 'vod', vni: 200, segment: { type: 'linux-bridge', bridge: 'br-vod' }, peers: ['b'] },
    ]),
    ...over,
  });
  return { dir, plane, runner, gw, config };
}

test('gateway - first apply builds, second apply changes nothing', async (t) => {
  const { plane, gw, config, dir } = await setup(t);
  const first = await gw.apply(config());
  t.true(first.steps.length > 0);
  t.is(first.report.publicKey, PUB);
  t.deepEqual(
    first.report.networks.map((n) => [n.name, n.device, n.mtu]),
    [
      ['cdn', 'l2fv100', 1370],
      ['vod', 'l2fv200', 1370],
    ],
  );
  t.is((await stat(join(dir, 'wg.key'))).mode & 0o777, 0o600);
  t.deepEqual(plane.ovs.ports.get('l2fv100')?.segment, { type: 'ovs', bridge: 'br-cdn', vlan: 10 });

  // The guard is the first change, before any VXLAN device exists.
  t.is(first.steps[0]?.kind, 'firewall-set');
  t.deepEqual(plane.firewall.table?.spec, {
    wgIfname: 'l2fa',
    vxlanPort: DEFAULT_VXLAN_PORT,
    // c carries only cdn (100), b also vod (200).
    vxlanFrom: [
      { address: '198.19.255.2', vni: 100 },
      { address: '198.19.255.2', vni: 200 },
      { address: '198.19.255.3', vni: 100 },
    ],
  });

  plane.log.clear();
  const second = await gw.apply(config());
  t.deepEqual(second.steps, []);
  t.deepEqual(plane.log.mutations, []);
});

test('gateway - a guard removed behind its back is restored by exactly one step', async (t) => {
  const { plane, gw, config } = await setup(t);
  await gw.apply(config());
  plane.firewall.table = undefined;
  plane.log.clear();
  const r = await gw.apply(config());
  t.deepEqual(
    r.steps.map((s) => s.kind),
    ['firewall-set'],
  );
  t.deepEqual(plane.log.mutations, [`firewall set wg=l2fa port=${DEFAULT_VXLAN_PORT}`]);
});

test('gateway - a failed guard stops the apply before any VXLAN device exists', async (t) => {
  const { plane, gw, config } = await setup(t);
  plane.log.failNext('firewall set');
  await t.throwsAsync(gw.apply(config()), { instanceOf: ApplyError, message: /guard vxlan/ });
  t.deepEqual(plane.log.mutations, []);
  t.is(plane.links.links.size, 0);
});

test('gateway - without nft the first apply fails before any command runs', async (t) => {
  const runner = keyRunner();
  const gw = new Gateway({ runner, findTool: () => Promise.resolve(undefined) });
  const err = await t.throwsAsync(
    gw.apply({
      identity: 'madrid',
      wireguard: { ifname: 'l2fa', listenPort: 51820, privateKeyFile: '/nonexistent/wg.key' },
      transitAddress: '198.19.255.1/24',
      peers: [],
      networks: [],
    }),
    { instanceOf: MissingToolError },
  );
  t.regex(
    err?.message ?? '',
    /nft is not installed.*apt-get install --no-install-recommends nftables/,
  );
  t.deepEqual(runner.calls, []);
});

test('gateway - a new Gateway object adopts the existing data plane', async (t) => {
  const { plane, runner, gw, config } = await setup(t);
  await gw.apply(config());
  plane.log.clear();
  const restarted = new Gateway({ runner, backends: () => plane.backends() });
  t.deepEqual((await restarted.plan(config())).lines, []);
  t.deepEqual((await restarted.apply(config())).steps, []);
  t.deepEqual(plane.log.mutations, []);
  t.is(runner.mutatingCommands().length, 0);
});

test('gateway - removing a peer removes exactly its state', async (t) => {
  const { plane, gw, config } = await setup(t);
  await gw.apply(config());
  plane.log.clear();
  const c = config();
  c.peers = c.peers!.filter((p) => p.name !== 'c');
  c.networks![0]!.peers = ['b'];
  await gw.apply(c);
  // The guard first stops admitting c's VXLAN (its one pair, not the whole table).
  t.deepEqual(plane.log.mutations, [
    'firewall set-elements +0 -1',
    `tunnel remove-peer l2fa ${KEY_C}`,
    'fdb del l2fv100 198.19.255.3',
  ]);
});

test('gateway - removing a network removes exactly its device and port', async (t) => {
  const { plane, gw, config } = await setup(t);
  await gw.apply(config());
  plane.log.clear();
  const c = config();
  c.networks = c.networks!.filter((n) => n.name !== 'cdn');
  await gw.apply(c);
  t.deepEqual(plane.log.mutations, [
    'firewall set-elements +0 -2', // cdn's pairs: b and c
    'segment detach l2fv100 br-cdn',
    'link del l2fv100',
  ]);
});

test('gateway - moving a network to another segment re-plugs only its port', async (t) => {
  const { plane, gw, config } = await setup(t);
  await gw.apply(config());
  plane.log.clear();
  const c = config();
  c.networks![0]!.segment = { type: 'ovs', bridge: 'br-cdn', vlan: 11 };
  await gw.apply(c);
  t.deepEqual(plane.log.mutations, [
    'segment detach l2fv100 br-cdn',
    'segment attach l2fv100 br-cdn',
  ]);
});

test('gateway - bad config runs no command and changes nothing', async (t) => {
  const { plane, runner, gw, config } = await setup(t);
  await gw.apply(config());
  plane.log.clear();
  runner.calls.length = 0;
  const c = config();
  c.networks![1]!.vni = 100;
  const err = await t.throwsAsync(gw.apply(c), { instanceOf: ConfigError });
  t.regex(err?.message ?? '', /networks\[1\]\.vni: duplicate vni 100/);
  t.deepEqual(runner.calls, []);
  t.deepEqual(plane.log.mutations, []);
});

test('gateway - a missing segment bridge fails before any change', async (t) => {
  const { plane, gw, config } = await setup(t);
  plane.linuxBridge.bridges.delete('br-vod');
  await t.throwsAsync(gw.apply(config()), { instanceOf: PreconditionError, message: /br-vod/ });
  t.deepEqual(plane.log.mutations, []);
});

test('gateway - a failed step is reported and the next apply converges', async (t) => {
  const { plane, gw, config } = await setup(t);
  plane.log.failNext('fdb append l2fv100');
  const err = await t.throwsAsync(gw.apply(config()), { instanceOf: ApplyError });
  t.regex(err?.message ?? '', /flood l2fv100 to 198\.19\.255\.2/);
  t.true((err?.done.length ?? 0) > 0);
  const retry = await gw.apply(config());
  t.true(retry.steps.length > 0);
  plane.log.clear();
  t.deepEqual((await gw.apply(config())).steps, []);
});

test('gateway - concurrent applies are serialised', async (t) => {
  const { plane, gw, config } = await setup(t);
  const [a, b] = await Promise.all([gw.apply(config()), gw.apply(config())]);
  t.true(a.steps.length > 0);
  t.deepEqual(b.steps, []);
  t.is(plane.tunnel.devices.size, 1);
});

test('gateway - teardown removes everything it owns and nothing else', async (t) => {
  const { plane, gw, config } = await setup(t);
  await gw.apply(config());
  plane.log.clear();
  await gw.teardown();
  t.deepEqual(plane.log.mutations, [
    'segment detach l2fv100 br-cdn',
    'segment detach l2fv200 br-vod',
    'link del l2fv100',
    'link del l2fv200',
    'tunnel destroy l2fa',
    'firewall remove',
  ]);
  t.deepEqual([...plane.ovs.bridges], ['br-cdn']);
});

test('gateway - key rotation: a new key file, switched by exactly one step at the next apply', async (t) => {
  const { plane, runner, gw, config, dir } = await setup(t);
  await gw.apply(config());
  const NEXT = 'aMKMzV+dDlD2mRfyA1d1MZn8lkqGmYlGZ5NMkmJ4F0I=';
  runner.once('wg genkey', { stdout: NEXT }).once('wg pubkey', { stdout: KEY_C });
  const before = gw.lastReport?.publicKey;
  t.is(gw.pendingPublicKey, undefined);
  t.deepEqual(await gw.rotateKey(), { publicKey: KEY_C });
  t.is(gw.pendingPublicKey, KEY_C, 'the new key is pending until the tunnel uses it');
  t.is(gw.lastReport?.publicKey, before, 'the report still names the active key');
  t.is((await readFile(join(dir, 'wg.key'), 'utf8')).trim(), NEXT);
  t.is((await stat(join(dir, 'wg.key'))).mode & 0o777, 0o600);
  plane.log.clear();
  runner.once('wg pubkey', { stdout: KEY_C });
  const r = await gw.apply(config());
  t.deepEqual(
    r.steps.map((s) => s.kind),
    ['tunnel-set-key'],
  );
  t.is(plane.tunnel.devices.get('l2fa')?.privateKey, NEXT);
  t.is(gw.pendingPublicKey, undefined);
  t.is(r.report.publicKey, KEY_C);
});
