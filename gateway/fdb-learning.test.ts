/**
 * Known unicast goes only to the peer behind the MAC (issue 11 item 7): the VXLAN
 * devices learn from the tunnel, bounded; the reconciler leaves learned entries alone
 * except those that point outside the network. Fakes and parsers only; the data path
 * itself is tested in test/integration/gateway-unicast.test.ts.
 */
import test, { type ExecutionContext } from 'ava';
import { join } from 'node:path';
import { FakeRunner } from '../lib/runner-fake.js';
import { DEFAULT_VXLAN_PORT, type GatewayConfigInput } from './config.js';
import { IpLinks, parseFdb, parseIpAddr } from './links-ip.js';
import { VXLAN_FDB_LIMIT } from './links.js';
import { gatewayOverFakes, madridConfig } from '../test/fixtures/gateway-over-fakes.js';

async function setup(t: ExecutionContext) {
  const { dir, plane, gw } = await gatewayOverFakes(t, { linuxBridge: ['br-cdn'] });
  const config = (peers = ['b', 'c']): GatewayConfigInput =>
    madridConfig(join(dir, 'wg.key'), [
      { name: 'cdn', vni: 100, segment: { type: 'linux-bridge', bridge: 'br-cdn' }, peers },
    ]);
  return { plane, gw, config };
}

test('fdb - the planned VXLAN device learns from the tunnel, bounded', async (t) => {
  const { plane, gw, config } = await setup(t);
  const r = await gw.apply(config());
  const create = r.steps.find((s) => s.kind === 'vxlan-create');
  t.truthy(create);
  t.deepEqual(plane.links.links.get('l2fv100')?.vxlan, {
    vni: 100,
    local: '198.19.255.1',
    dstport: DEFAULT_VXLAN_PORT,
    learning: true,
    limit: VXLAN_FDB_LIMIT,
  });
  // The real backend asks the kernel for exactly that.
  const runner = new FakeRunner().on(() => true, { stdout: '' });
  await new IpLinks({ runner, netns: 'l2fed-x' }).createVxlan(
    'l2fv100',
    100,
    '198.19.255.1',
    DEFAULT_VXLAN_PORT,
  );
  t.deepEqual(runner.calls[0]?.argv.slice(-3), ['learning', 'maxaddress', String(VXLAN_FDB_LIMIT)]);
});

test('fdb - learned entries are not touched: re-apply runs zero mutations', async (t) => {
  const { plane, gw, config } = await setup(t);
  await gw.apply(config());
  // The kernel learned one MAC behind each peer.
  plane.links.learned.set('l2fv100', [
    { mac: '02:00:00:00:00:0b', dst: '198.19.255.2' },
    { mac: '02:00:00:00:00:0c', dst: '198.19.255.3' },
  ]);
  plane.log.clear();
  const again = await gw.apply(config());
  t.deepEqual(again.steps, []);
  t.deepEqual(plane.log.mutations, []);
  t.is(plane.links.learned.get('l2fv100')?.length, 2);
});

test('fdb - dropping a peer from a network forgets what was learned from it', async (t) => {
  const { plane, gw, config } = await setup(t);
  await gw.apply(config());
  plane.links.learned.set('l2fv100', [
    { mac: '02:00:00:00:00:0b', dst: '198.19.255.2' },
    { mac: '02:00:00:00:00:0c', dst: '198.19.255.3' },
  ]);
  plane.log.clear();
  await gw.apply(config(['b']));
  t.deepEqual(plane.log.mutations, [
    'firewall set-elements +0 -1', // the guard stops admitting it first
    'fdb del l2fv100 198.19.255.3',
    'fdb forget l2fv100 02:00:00:00:00:0c 198.19.255.3',
  ]);
  t.deepEqual(plane.links.learned.get('l2fv100'), [
    { mac: '02:00:00:00:00:0b', dst: '198.19.255.2' },
  ]);
  plane.log.clear();
  t.deepEqual((await gw.apply(config(['b']))).steps, []);
});

test('fdb - a device of an older version (nolearning, no bound) is recreated once', async (t) => {
  const { plane, gw, config } = await setup(t);
  await gw.apply(config());
  const dev = plane.links.links.get('l2fv100')!;
  dev.vxlan = { ...dev.vxlan!, learning: false, limit: 0 };
  plane.log.clear();
  const r = await gw.apply(config());
  t.deepEqual(r.steps.map((s) => s.kind).slice(0, 3), [
    'segment-detach',
    'vxlan-delete',
    'vxlan-create',
  ]);
  t.deepEqual(plane.links.links.get('l2fv100')?.vxlan?.learning, true);
  t.deepEqual((await gw.apply(config())).steps, []);
});

// What `bridge -j fdb show dev l2fvN` prints (iproute2 6.1, Linux 6.18) for a device on
// a Linux bridge: the bridge's entries (master), the flood list, one learned MAC.
const FDB_JSON = JSON.stringify([
  { mac: '6e:1a:44:00:00:01', master: 'br-cdn', state: 'permanent', flags: [] },
  { mac: '26:5c:04:15:3a:c1', dst: '198.19.255.2', flags: ['self'], state: '' },
  { mac: '00:00:00:00:00:00', dst: '198.19.255.3', flags: ['self'], state: 'permanent' },
  { mac: '00:00:00:00:00:00', dst: '198.19.255.2', flags: ['self'], state: 'permanent' },
  { mac: '00:00:00:00:00:00', dst: '198.19.255.7', flags: ['self'], state: '' },
  { mac: '02:00:00:00:00:0e', dst: '198.19.255.3', flags: ['self'], state: 'stale' },
]);

test('fdb - parse: static all-zero entries are the flood list; the rest was learned', (t) => {
  t.deepEqual(parseFdb(FDB_JSON), {
    remotes: ['198.19.255.2', '198.19.255.3'],
    learned: [
      // A learned all-zero entry (old kernels) is never a flood target.
      { mac: '00:00:00:00:00:00', dst: '198.19.255.7' },
      { mac: '02:00:00:00:00:0e', dst: '198.19.255.3' },
      { mac: '26:5c:04:15:3a:c1', dst: '198.19.255.2' },
    ],
  });
  t.throws(() => parseFdb('{'), { message: /bridge -j fdb.*not JSON/ });
});

test('fdb - parse: learning and maxaddress of a VXLAN device', (t) => {
  const [dev] = parseIpAddr(
    JSON.stringify([
      {
        ifname: 'l2fv100',
        mtu: 1370,
        flags: ['UP'],
        linkinfo: {
          info_kind: 'vxlan',
          info_data: { id: 100, local: '198.19.255.1', port: 4789, learning: true, limit: 4096 },
        },
      },
    ]),
  );
  t.deepEqual(dev?.vxlan, {
    vni: 100,
    local: '198.19.255.1',
    dstport: 4789,
    learning: true,
    limit: 4096,
  });
});

test('fdb - forgetting an entry that aged out meanwhile is no error', async (t) => {
  const gone = new FakeRunner().on(() => true, {
    exitCode: 2,
    stderr: 'RTNETLINK answers: No such file or directory',
  });
  const links = new IpLinks({ runner: gone, netns: 'l2fed-x' });
  await t.notThrowsAsync(links.forgetLearned('l2fv100', '02:00:00:00:00:0b', '198.19.255.2'));
  t.deepEqual(gone.calls[0]?.argv, [
    'bridge',
    'fdb',
    'del',
    '02:00:00:00:00:0b',
    'dev',
    'l2fv100',
    'dst',
    '198.19.255.2',
  ]);
  const busy = new FakeRunner().on(() => true, { exitCode: 2, stderr: 'Operation not permitted' });
  await t.throwsAsync(
    new IpLinks({ runner: busy, netns: 'l2fed-x' }).forgetLearned('l2fv100', 'x', 'y'),
    { message: /Operation not permitted/ },
  );
});
