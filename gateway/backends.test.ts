import test from 'ava';
import { CommandError, MissingToolError } from '../lib/errors.js';
import { FakeRunner } from '../lib/runner-fake.js';
import {
  firewallMatches,
  firewallScript,
  parseNftTable,
  vxlanSourceChange,
  vxlanSourceChangeScript,
} from './firewall.js';
import { NftFirewall, requireNft } from './firewall-nft.js';
import { IpLinks, parseIpAddr, parseSsUdp } from './links-ip.js';
import { interfaceMatches, OvsSegment, parseOvsView } from './segment-ovs.js';
import { LinuxBridgeSegment } from './segment-linux-bridge.js';
import { parseWgDump } from './wireguard.js';
import { ParseError } from './errors.js';
import { KernelTunnel } from './tunnel-kernel.js';

const KEY_B = 'd8qybrWZ7bF7LGkGFhINlkloK0uydL5I6KvaA22Rjw8=';

test('wg dump - interface and peers parse, "(none)" and "off" become absent', (t) => {
  const d = parseWgDump(
    [
      'cLQ4P5JQ6UT3MtnA1w6/ZbP1/bWV3pN0ul5IwRUl3Eg=\tU9uE2cVR2J5ZkTJxpE0r0Y4jPSVbH8Q5YkNnx2XqkCc=\t51820\toff',
      `${KEY_B}\t(none)\t198.18.0.2:51820\t198.19.255.2/32\t1764130000\t1234\t5678\t25`,
      `${KEY_B.replace('d8', 'e8')}\t(none)\t(none)\t(none)\t0\t0\t0\toff`,
    ].join('\n'),
  );
  t.is(d.listenPort, 51820);
  t.deepEqual(d.peers[0], {
    publicKey: KEY_B,
    endpoint: '198.18.0.2:51820',
    allowedIps: ['198.19.255.2/32'],
    latestHandshake: 1764130000,
    rxBytes: 1234,
    txBytes: 5678,
    persistentKeepalive: 25,
  });
  t.is(d.peers[1]?.endpoint, undefined);
  t.deepEqual(d.peers[1]?.allowedIps, []);
  t.is(d.peers[1]?.persistentKeepalive, 0);
  t.throws(() => parseWgDump('garbage'), { instanceOf: ParseError });
});

test('wg dump - a parse error never quotes key material (private or preshared key)', (t) => {
  const priv = 'cLQ4P5JQ6UT3MtnA1w6/ZbP1/bWV3pN0ul5IwRUl3Eg=';
  const psk = 'U9uE2cVR2J5ZkTJxpE0r0Y4jPSVbH8Q5YkNnx2XqkCc=';
  const cases = [
    // A first line cut short (the private key, then nothing usable).
    `${priv}\t${KEY_B}`,
    // A good first line, then a peer line cut short after its preshared key.
    `${priv}\t${KEY_B}\t51820\toff\n${KEY_B}\t${psk}\t198.18.0.2:51820`,
  ];
  for (const text of cases) {
    const err = t.throws(() => parseWgDump(text), { instanceOf: ParseError });
    t.false(err.message.includes(priv), err.message);
    t.false(err.message.includes(psk), err.message);
    t.false(JSON.stringify(err, Object.getOwnPropertyNames(err)).includes(priv));
    t.regex(err.message, /line \d+.*fields/, 'says which line and what was wrong');
  }
});

const IP_JSON = JSON.stringify([
  {
    ifname: 'l2fv7',
    mtu: 1370,
    flags: ['BROADCAST', 'NOARP', 'UP'],
    master: 'brx',
    addr_info: [{ family: 'inet6', local: 'fe80::1', prefixlen: 64 }],
    linkinfo: {
      info_kind: 'vxlan',
      info_data: { id: 7, local: '198.19.255.1', port: 4789, learning: false },
    },
  },
  {
    ifname: 'brx',
    mtu: 1500,
    flags: ['BROADCAST'],
    linkinfo: { info_kind: 'bridge' },
    addr_info: [],
  },
  {
    ifname: 'l2fa',
    mtu: 1420,
    flags: ['UP'],
    addr_info: [{ family: 'inet', local: '198.19.255.1', prefixlen: 24 }],
  },
]);

test('ip addr - links, vxlan attributes and addresses (link-local skipped)', (t) => {
  const [vx, br, wg] = parseIpAddr(IP_JSON);
  t.deepEqual(vx?.vxlan, {
    vni: 7,
    local: '198.19.255.1',
    dstport: 4789,
    learning: false,
    limit: 0,
  });
  t.deepEqual([vx?.noarp, vx?.udpPort, wg?.noarp], [true, 4789, false]);
  t.true(vx?.up);
  t.deepEqual(vx?.addresses, []);
  t.is(br?.kind, 'bridge');
  t.deepEqual(wg?.addresses, ['198.19.255.1/24']);
});

test('ss - the UDP sockets on a port and who holds them (none: a kernel socket)', async (t) => {
  const text = [
    'UNCONN 0      0            0.0.0.0:51820      0.0.0.0:*    users:(("calico-node",pid=812,fd=31),("calico-node",pid=813,fd=31))',
    'UNCONN 0      0               [::]:51820         [::]:*',
    '',
  ].join('\n');
  const runner = new FakeRunner().on('ss -H -u -a -n -p sport = :51820', { stdout: text });
  const got = await new IpLinks({ runner, netns: 'l2fed-x' }).udpSockets(51820);
  t.deepEqual(got, [
    {
      local: '0.0.0.0:51820',
      processes: [
        { name: 'calico-node', pid: 812 },
        { name: 'calico-node', pid: 813 },
      ],
    },
    { local: '[::]:51820', processes: [] },
  ]);
  t.deepEqual(runner.mutatingCommands(), [], 'a read');
  t.deepEqual(parseSsUdp(''), []);
});

test('bridge fdb - only all-zero entries count as flood targets', async (t) => {
  const text = JSON.stringify([
    { mac: '0e:6c:f5:ad:22:3d', master: 'brx' },
    { mac: '00:00:00:00:00:00', dst: '198.19.255.3', flags: ['self'], state: 'permanent' },
    { mac: '00:00:00:00:00:00', dst: '198.19.255.2', flags: ['self'], state: 'permanent' },
  ]);
  const runner = new FakeRunner().on('bridge -j fdb show dev l2fv7', { stdout: text });
  const fdb = await new IpLinks({ runner, netns: undefined }).fdb('l2fv7');
  t.deepEqual(fdb.remotes, ['198.19.255.2', '198.19.255.3']);
});

test('bridge fdb - one read of every device: entries grouped by device, bridge entries and other devices left out', async (t) => {
  // `bridge -j fdb show` without `dev` names each entry's device (`ifname`).
  const text = JSON.stringify([
    { mac: '33:33:00:00:00:01', ifname: 'brx', flags: ['self'], state: 'permanent' },
    { mac: '0e:6c:f5:ad:22:3d', ifname: 'l2fv7', master: 'brx', state: '' },
    {
      mac: '00:00:00:00:00:00',
      ifname: 'l2fv7',
      dst: '198.19.255.3',
      flags: ['self'],
      state: 'permanent',
    },
    { mac: '02:00:00:00:aa:01', ifname: 'l2fv7', dst: '198.19.255.3', flags: ['self'], state: '' },
    {
      mac: '00:00:00:00:00:00',
      ifname: 'l2fv7',
      dst: '198.19.255.2',
      flags: ['self'],
      state: 'permanent',
    },
    {
      mac: '00:00:00:00:00:00',
      ifname: 'l2fv9',
      dst: '198.19.255.2',
      flags: ['self'],
      state: 'permanent',
    },
    {
      mac: '00:00:00:00:00:00',
      ifname: 'flannel.1',
      dst: '10.0.0.9',
      flags: ['self'],
      state: 'permanent',
    },
  ]);
  const runner = new FakeRunner().on('bridge -j fdb show', { stdout: text });
  const all = await new IpLinks({ runner, netns: undefined }).fdbAll(['l2fv7', 'l2fv9', 'l2fv11']);
  t.deepEqual(Object.fromEntries(all), {
    l2fv7: {
      remotes: ['198.19.255.2', '198.19.255.3'],
      learned: [{ mac: '02:00:00:00:aa:01', dst: '198.19.255.3' }],
    },
    l2fv9: { remotes: ['198.19.255.2'], learned: [] },
    l2fv11: { remotes: [], learned: [] },
  });
  t.deepEqual(
    runner.calls.map((c) => c.argv.join(' ')),
    ['bridge -j fdb show'],
  );
});

test('linux bridge - attachments come from the master of l2fv ports only', async (t) => {
  const seg = new LinuxBridgeSegment({ runner: new FakeRunner(), netns: undefined });
  const view = await seg.read(parseIpAddr(IP_JSON));
  t.deepEqual(view.bridges, ['brx']);
  t.deepEqual(view.attachments, [
    { port: 'l2fv7', segment: { type: 'linux-bridge', bridge: 'brx' } },
  ]);
});

/** `ovs-vsctl --format=json list` output: a table of headings and rows. */
const ovsTable = (headings: string[], data: unknown[][]) => JSON.stringify({ headings, data });
/** An OVSDB set of port uuids, as in a Bridge's `ports` column. */
const uuids = (...ids: string[]) => ['set', ids.map((id) => ['uuid', id])];
const EMPTY = ['set', []];

test('ovs - bridges, ports and VLAN tags from ovs-vsctl JSON', (t) => {
  const bridges = ovsTable(
    ['name', 'ports'],
    [
      ['br-cdn', uuids('p1', 'p2')],
      ['br-vod', ['uuid', 'p3']],
    ],
  );
  const ports = ovsTable(
    ['_uuid', 'name', 'tag', 'vlan_mode'],
    [
      [['uuid', 'p1'], 'l2fv100', 10, 'access'],
      [['uuid', 'p2'], 'br-cdn', EMPTY, EMPTY],
      // The untagged network: an access port of VLAN 0.
      [['uuid', 'p3'], 'l2fv200', 0, 'access'],
    ],
  );
  t.deepEqual(parseOvsView(bridges, ports), {
    bridges: ['br-cdn', 'br-vod'],
    attachments: [
      { port: 'l2fv100', segment: { type: 'ovs', bridge: 'br-cdn', vlan: 10 } },
      { port: 'l2fv200', segment: { type: 'ovs', bridge: 'br-vod' } },
    ],
  });
});

test('ovs - a port of ours that is not an access port with a tag is not attached (a trunk carries every VLAN)', (t) => {
  const bridges = ovsTable(['name', 'ports'], [['br-shared', uuids('p1', 'p2', 'p3', 'p4')]]);
  const ports = ovsTable(
    ['_uuid', 'name', 'tag', 'vlan_mode'],
    [
      [['uuid', 'p1'], 'l2fv120', 20, 'access'],
      // As gateways before this check plugged an untagged network: a trunk.
      [['uuid', 'p2'], 'l2fv130', EMPTY, EMPTY],
      // Tagged but a trunk for other VLANs too.
      [['uuid', 'p3'], 'l2fv140', 30, 'native-untagged'],
      // Access without a tag: not how the gateway plugs a port.
      [['uuid', 'p4'], 'l2fv150', EMPTY, 'access'],
    ],
  );
  const all = new Set(['l2fv120', 'l2fv130', 'l2fv140', 'l2fv150']);
  t.deepEqual(parseOvsView(bridges, ports, undefined, all).attachments, [
    { port: 'l2fv120', segment: { type: 'ovs', bridge: 'br-shared', vlan: 20 } },
  ]);
  // Devices gone: every port is reported, so the plan unplugs it.
  t.is(parseOvsView(bridges, ports, undefined, new Set()).attachments.length, 4);
});

test('ovs - attach plugs an access port: the VLAN, or VLAN 0 for an untagged network', async (t) => {
  const runner = new FakeRunner().on(() => true, { stdout: '' });
  const ovs = new OvsSegment({ runner, netns: undefined });
  await ovs.attach('l2fv130', { type: 'ovs', bridge: 'br-shared' });
  await ovs.attach('l2fv120', { type: 'ovs', bridge: 'br-shared', vlan: 20 });
  t.deepEqual(runner.mutatingCommands(), [
    'ovs-vsctl --timeout=10 -- --if-exists del-port l2fv130 -- add-port br-shared l2fv130 vlan_mode=access tag=0',
    'ovs-vsctl --timeout=10 -- --if-exists del-port l2fv120 -- add-port br-shared l2fv120 vlan_mode=access tag=20',
  ]);
});

test('real backends - argv, netns and mutates flags', async (t) => {
  const runner = new FakeRunner().on(() => true, { stdout: '' });
  const host = { runner, netns: 'l2fed-x' };
  await new IpLinks(host).createVxlan('l2fv7', 7, '198.19.255.1', 4789);
  await new IpLinks(host).floodAppend('l2fv7', '198.19.255.2');
  await new IpLinks(host).setNoArp('l2fv7');
  await new OvsSegment(host, { dbSocket: '/run/x/db.sock' }).attach('l2fv7', {
    type: 'ovs',
    bridge: 'br-cdn',
    vlan: 10,
  });
  await new KernelTunnel(host).setKey('l2fa', '/k');
  t.deepEqual(runner.mutatingCommands(), [
    'ip link add l2fv7 type vxlan id 7 local 198.19.255.1 dstport 4789 learning maxaddress 4096',
    'bridge fdb append 00:00:00:00:00:00 dev l2fv7 dst 198.19.255.2',
    'ip link set l2fv7 arp off',
    'ovs-vsctl --db=unix:/run/x/db.sock --timeout=10 -- --if-exists del-port l2fv7 -- add-port br-cdn l2fv7 vlan_mode=access tag=10',
    'wg set l2fa private-key /k',
  ]);
  t.true(runner.calls.every((c) => c.netns === 'l2fed-x'));
});

test('ovs - interface settings: a port with other settings is not attached while its device exists', (t) => {
  const bridges = ovsTable(['name', 'ports'], [['br-cdn', uuids('p1', 'p2')]]);
  const ports = ovsTable(
    ['_uuid', 'name', 'tag', 'vlan_mode'],
    [
      [['uuid', 'p1'], 'l2fv100', 0, 'access'],
      [['uuid', 'p2'], 'l2fv200', 0, 'access'],
    ],
  );
  const json = ovsTable(
    ['name', 'type', 'options'],
    [
      ['l2fv100', 'afxdp', ['map', [['xdp-mode', 'generic']]]],
      ['l2fv200', '', ['map', []]],
    ],
  );
  const want = { type: 'afxdp', options: { 'xdp-mode': 'generic' } };
  const view = parseOvsView(bridges, ports, { json, want }, new Set(['l2fv100', 'l2fv200']));
  t.deepEqual(view.attachments, [{ port: 'l2fv100', segment: { type: 'ovs', bridge: 'br-cdn' } }]);
  // A port whose device is gone is reported, so the plan can unplug it.
  const gone = parseOvsView(bridges, ports, { json, want }, new Set(['l2fv100']));
  t.is(gone.attachments.length, 2);
  t.true(interfaceMatches({ type: '', options: {} }, { type: 'system' }));
  t.false(interfaceMatches({ type: 'afxdp', options: {} }, want));
});

test('ovs - attach sets the interface type and options with the port', async (t) => {
  const runner = new FakeRunner().on(() => true, { stdout: '' });
  const want = { type: 'afxdp', options: { 'xdp-mode': 'generic' } };
  await new OvsSegment({ runner, netns: undefined }, { interface: want }).attach('l2fv7', {
    type: 'ovs',
    bridge: 'br-cdn',
  });
  t.deepEqual(runner.mutatingCommands(), [
    'ovs-vsctl --timeout=10 -- --if-exists del-port l2fv7 -- add-port br-cdn l2fv7 vlan_mode=access tag=0 -- set Interface l2fv7 type=afxdp options:xdp-mode=generic',
  ]);
});

test('ovs - read lists Interface only when interface settings are managed', async (t) => {
  const empty = ovsTable(['name'], []);
  const runner = new FakeRunner().on(() => true, { stdout: empty });
  await new OvsSegment({ runner, netns: undefined }).read([]);
  t.false(runner.calls.some((c) => c.argv.includes('Interface')));
  const managed = new FakeRunner()
    .on((a) => a.includes('Open_vSwitch'), {
      stdout: ovsTable(['iface_types'], [[['set', ['afxdp', 'system']]]]),
    })
    .on(() => true, { stdout: empty });
  await new OvsSegment(
    { runner: managed, netns: undefined },
    { interface: { type: 'afxdp' } },
  ).read([]);
  t.true(managed.calls.some((c) => c.argv.includes('Interface')));
});

// Captured from nft 1.0.6 after `nft -f -` of firewallScript(SPEC).
const NFT_JSON = JSON.stringify({
  nftables: [
    { metainfo: { version: '1.0.6', release_name: 'Lester Gooch #5', json_schema_version: 1 } },
    { table: { family: 'inet', name: 'l2fed', handle: 2 } },
    {
      set: {
        family: 'inet',
        name: 'vxlan_from',
        table: 'l2fed',
        type: ['ipv4_addr', 'integer'],
        handle: 3,
        elem: [
          { concat: ['198.19.255.2', 100] },
          { concat: ['198.19.255.3', 100] },
          { concat: ['198.19.255.2', 200] },
        ],
      },
    },
    {
      chain: {
        family: 'inet',
        table: 'l2fed',
        name: 'input',
        handle: 1,
        type: 'filter',
        hook: 'input',
        prio: -10,
        policy: 'accept',
      },
    },
    {
      chain: {
        family: 'inet',
        table: 'l2fed',
        name: 'output',
        handle: 2,
        type: 'filter',
        hook: 'output',
        prio: -10,
        policy: 'accept',
      },
    },
    {
      rule: {
        family: 'inet',
        table: 'l2fed',
        chain: 'input',
        handle: 4,
        comment: 'l2fed v4 wg=l2fabc port=4789',
        expr: [
          { match: { op: '==', left: { meta: { key: 'iifname' } }, right: 'l2fv*' } },
          { match: { op: '!=', left: { meta: { key: 'iifname' } }, right: 'l2fabc' } },
          { drop: null },
        ],
      },
    },
    {
      rule: {
        family: 'inet',
        table: 'l2fed',
        chain: 'input',
        handle: 5,
        expr: [
          { match: { op: '==', left: { meta: { key: 'iifname' } }, right: 'l2fabc' } },
          {
            match: {
              op: '==',
              left: { payload: { protocol: 'udp', field: 'dport' } },
              right: 4789,
            },
          },
          {
            match: {
              op: '==',
              left: {
                concat: [
                  { payload: { protocol: 'ip', field: 'saddr' } },
                  { payload: { base: 'th', offset: 96, len: 24 } },
                ],
              },
              right: '@vxlan_from',
            },
          },
          { accept: null },
        ],
      },
    },
    {
      rule: {
        family: 'inet',
        table: 'l2fed',
        chain: 'input',
        handle: 6,
        expr: [
          {
            match: {
              op: '==',
              left: { payload: { protocol: 'udp', field: 'dport' } },
              right: 4789,
            },
          },
          { drop: null },
        ],
      },
    },
    {
      rule: {
        family: 'inet',
        table: 'l2fed',
        chain: 'output',
        handle: 7,
        expr: [
          { match: { op: '==', left: { meta: { key: 'oifname' } }, right: 'l2fv*' } },
          { match: { op: '!=', left: { meta: { key: 'oifname' } }, right: 'l2fabc' } },
          { drop: null },
        ],
      },
    },
  ],
});

const SPEC = {
  wgIfname: 'l2fabc',
  vxlanPort: 4789,
  vxlanFrom: [
    { address: '198.19.255.2', vni: 100 },
    { address: '198.19.255.2', vni: 200 },
    { address: '198.19.255.3', vni: 100 },
  ],
};

test('nft - the table parses to its marker and set, and a missing rule is not intact', (t) => {
  t.deepEqual(parseNftTable(NFT_JSON), { version: 4, spec: SPEC, intact: true });
  t.true(firewallMatches(SPEC, parseNftTable(NFT_JSON)));
  t.false(firewallMatches({ ...SPEC, wgIfname: 'l2fx' }, parseNftTable(NFT_JSON)));
  const parsed = JSON.parse(NFT_JSON) as { nftables: unknown[] };
  // Any one set, rule or chain deleted by hand: not intact.
  for (let i = 2; i < parsed.nftables.length; i++) {
    const without = JSON.stringify({ nftables: parsed.nftables.filter((_, j) => j !== i) });
    t.false(parseNftTable(without).intact, `without object ${i}`);
  }
  const unmarked = NFT_JSON.replace('l2fed v4 wg=l2fabc port=4789', 'hand-made');
  t.deepEqual(parseNftTable(unmarked), { version: undefined, spec: undefined, intact: false });
  // The marker claims another tunnel than the rule drops for: not intact.
  const lying = NFT_JSON.replace('wg=l2fabc', 'wg=l2fother');
  t.false(parseNftTable(lying).intact);
  t.throws(() => parseNftTable('garbage'), { instanceOf: ParseError });
});

test('nft - the set is compared pair by pair: one added or missing pair does not match', (t) => {
  const table = JSON.parse(NFT_JSON) as {
    nftables: { set?: { elem?: unknown[] }; rule?: { expr: unknown[] } }[];
  };
  const set = table.nftables.find((o) => o.set)!.set!;
  const elems = set.elem!;
  // Site .3 given VNI 200 by hand: the table no longer matches the config.
  set.elem = [...elems, { concat: ['198.19.255.3', 200] }];
  const widened = parseNftTable(JSON.stringify(table));
  t.true(widened.intact);
  t.false(firewallMatches(SPEC, widened));
  set.elem = elems.slice(1);
  t.false(firewallMatches(SPEC, parseNftTable(JSON.stringify(table))));
  // Wrapped elements (nft renders element options so) parse the same.
  set.elem = elems.map((e) => ({ elem: { val: e, comment: 'x' } }));
  t.true(firewallMatches(SPEC, parseNftTable(JSON.stringify(table))));
  // An element that is not (IPv4, VNI): the set is unreadable, the table not ours.
  set.elem = [...elems, { concat: ['fe80::1', 100] }];
  t.deepEqual(parseNftTable(JSON.stringify(table)).spec, undefined);
  set.elem = elems;
  // The final drop made conditional by hand (here: only through the tunnel): not intact.
  const last = table.nftables.filter((o) => o.rule).at(-2)!.rule!;
  last.expr = [
    { match: { op: '!=', left: { meta: { key: 'iifname' } }, right: 'l2fabc' } },
    ...last.expr,
  ];
  t.false(parseNftTable(JSON.stringify(table)).intact);
});

test('nft - an older table (v3: any VNI through the tunnel; v2: no output chain) is replaced', (t) => {
  // v3 had no set and dropped the port only outside the tunnel.
  const v3 = parseNftTable(
    JSON.stringify({
      nftables: (
        JSON.parse(NFT_JSON.replace('l2fed v4', 'l2fed v3')) as { nftables: unknown[] }
      ).nftables.filter((o) => !JSON.stringify(o).includes('vxlan_from')),
    }),
  );
  t.deepEqual([v3.version, v3.intact], [3, false]);
  t.false(firewallMatches(SPEC, v3));
  // The VXLAN-device rule without the tunnel exception is not intact even under a v4 marker.
  const v4 = JSON.parse(NFT_JSON) as {
    nftables: { rule?: { comment?: string; expr: { match?: { op: string } }[] } }[];
  };
  const marked = v4.nftables.find((o) => o.rule?.comment)!.rule!;
  marked.expr = marked.expr.filter((e) => e.match?.op !== '!=');
  t.false(parseNftTable(JSON.stringify(v4)).intact);
});

test('nft - one atomic script: empty table, delete, the whole table', (t) => {
  t.is(
    firewallScript(SPEC),
    [
      'table inet l2fed {}',
      'delete table inet l2fed',
      'table inet l2fed {',
      '  set vxlan_from {',
      '    typeof ip saddr . @th,96,24',
      '    elements = { 198.19.255.2 . 100, 198.19.255.2 . 200, 198.19.255.3 . 100 }',
      '  }',
      '  chain input {',
      '    type filter hook input priority filter - 10; policy accept;',
      '    iifname "l2fv*" iifname != "l2fabc" drop comment "l2fed v4 wg=l2fabc port=4789"',
      '    iifname "l2fabc" udp dport 4789 ip saddr . @th,96,24 @vxlan_from accept',
      '    udp dport 4789 drop',
      '  }',
      '  chain output {',
      '    type filter hook output priority filter - 10; policy accept;',
      '    oifname "l2fv*" oifname != "l2fabc" drop',
      '  }',
      '}',
      '',
    ].join('\n'),
  );
  // No pair (no network carried to anyone): an empty set, so VXLAN is dropped from all.
  const none = firewallScript({ ...SPEC, vxlanFrom: [] });
  t.false(none.includes('elements'));
  t.true(none.includes('    udp dport 4789 drop'));
  // Pairs in any order and repeated give one script.
  t.is(
    firewallScript({ ...SPEC, vxlanFrom: [...SPEC.vxlanFrom, ...SPEC.vxlanFrom].reverse() }),
    firewallScript(SPEC),
  );
});

test('nft - a set that alone differs changes by its elements: one transaction, deletes and adds', async (t) => {
  const have = { version: 4, spec: SPEC, intact: true };
  const want = {
    ...SPEC,
    vxlanFrom: [
      { address: '198.19.255.2', vni: 100 },
      { address: '198.19.255.4', vni: 200 },
      { address: '198.19.255.4', vni: 100 },
    ],
  };
  const change = vxlanSourceChange(want, have);
  t.deepEqual(change, {
    add: [
      { address: '198.19.255.4', vni: 100 },
      { address: '198.19.255.4', vni: 200 },
    ],
    del: [
      { address: '198.19.255.2', vni: 200 },
      { address: '198.19.255.3', vni: 100 },
    ],
  });
  t.is(
    vxlanSourceChangeScript(change!),
    [
      'delete element inet l2fed vxlan_from { 198.19.255.2 . 200, 198.19.255.3 . 100 }',
      'add element inet l2fed vxlan_from { 198.19.255.4 . 100, 198.19.255.4 . 200 }',
      '',
    ].join('\n'),
  );
  // Anything else differs: the whole table is replaced, not patched.
  t.is(vxlanSourceChange(want, { ...have, intact: false }), undefined);
  t.is(vxlanSourceChange(want, { ...have, version: 3 }), undefined);
  t.is(vxlanSourceChange({ ...want, vxlanPort: 4790 }, have), undefined);
  t.is(vxlanSourceChange({ ...want, wgIfname: 'l2fx' }, have), undefined);
  t.is(vxlanSourceChange(SPEC, have), undefined, 'nothing differs');
  const inputs: (string | undefined)[] = [];
  const runner = new FakeRunner().on('/usr/sbin/nft -f -', (_a, o) => {
    inputs.push(o.input);
    return {};
  });
  await new NftFirewall({ runner, netns: 'ns1' }).set(want, change);
  t.deepEqual(inputs, [vxlanSourceChangeScript(change!)]);
  t.deepEqual(runner.mutatingCommands(), ['/usr/sbin/nft -f -']);
});

test('nft backend - argv, stdin, netns, mutates; an absent table is undefined', async (t) => {
  const inputs: (string | undefined)[] = [];
  const runner = new FakeRunner()
    .once('nft -j list table inet l2fed', {
      exitCode: 1,
      stderr: 'Error: No such file or directory\nlist table inet l2fed\n                ^^^^^',
    })
    .on('nft -j list table inet l2fed', { stdout: NFT_JSON })
    .on('nft -f -', (_argv, o) => {
      inputs.push(o.input);
      return {};
    });
  const fw = new NftFirewall({ runner, netns: 'l2fed-x' }, 'nft');
  t.is(await fw.read(), undefined);
  t.true((await fw.read())?.intact);
  await fw.set(SPEC);
  await fw.remove();
  t.deepEqual(runner.mutatingCommands(), ['nft -f -', 'nft -f -']);
  t.is(inputs[0], firewallScript(SPEC));
  t.is(inputs[1], 'table inet l2fed {}\ndelete table inet l2fed\n');
  t.true(runner.calls.every((c) => c.netns === 'l2fed-x'));
  t.false(runner.calls.slice(0, 2).some((c) => c.mutates));
});

test('nft backend - any other failure is an error, not "absent"', async (t) => {
  const runner = new FakeRunner().on('nft -j list table inet l2fed', {
    exitCode: 1,
    stderr: 'Error: Could not process rule: Operation not permitted',
  });
  await t.throwsAsync(new NftFirewall({ runner, netns: undefined }, 'nft').read(), {
    instanceOf: CommandError,
    message: /Operation not permitted/,
  });
});

test('nft - missing nft names the package and the install command', async (t) => {
  const err = await t.throwsAsync(
    requireNft(() => Promise.resolve(undefined)),
    {
      instanceOf: MissingToolError,
    },
  );
  t.regex(err?.message ?? '', /apt-get install --no-install-recommends nftables/);
  t.is(await requireNft(() => Promise.resolve('/usr/sbin/nft')), '/usr/sbin/nft');
});
