import test from 'ava';
import type { PeerMap } from '../broker/records.js';
import { makeState } from './desired-state.js';
import {
  bootstrapGatewayConfig,
  buildGatewayConfig,
  type BuildGatewayConfigResult,
  type GatewaySettings,
} from './gateway-config.js';
import type { FederatedNetwork } from './schema-network.js';
import type { ClusterPeering } from './schema-peering.js';

function peering(remote: string, networks?: string[]): ClusterPeering {
  return {
    apiVersion: 'l2fed.io/v1alpha1',
    kind: 'ClusterPeering',
    metadata: { name: remote },
    spec: networks ? { remoteCluster: remote, networks } : { remoteCluster: remote },
  };
}

const KEY_B = 'x4gOZYP7gYK/0dBhgSvq7+nIu9ygrsAx6gqwmjXzT0I=';
const KEY_C = 'pD4zZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=';

const SETTINGS: GatewaySettings = {
  clusterId: 'madrid',
  netns: 'l2fed-x-g0',
  wireguard: { ifname: 'l2fmad', listenPort: 51820, privateKeyFile: '/var/lib/l2fed/wg.key' },
  transitPrefixLength: 16,
  underlayMtu: 1500,
  l2sm: { 'cdn-net': { bridge: 'brl2sm', vlan: 7 } },
};

function net(
  name: string,
  segment: FederatedNetwork['spec']['segment'],
  mtu: 'auto' | number = 'auto',
): FederatedNetwork {
  return {
    apiVersion: 'l2fed.io/v1alpha1',
    kind: 'FederatedNetwork',
    metadata: { name },
    spec: { segment, mtu },
  };
}

const BRISTOL = {
  cluster: 'bristol',
  endpoints: ['198.18.0.2:51820'],
  publicKey: KEY_B,
  transitAddress: '100.64.0.2',
  networks: [{ name: 'cdn', vni: 4096 }],
};
const ATHENS = {
  cluster: 'athens',
  endpoints: ['198.18.0.3:51820'],
  publicKey: KEY_C,
  transitAddress: '100.64.0.3',
  networks: [],
};

function map(networks: PeerMap['networks'], peers: PeerMap['peers']): PeerMap {
  return { cluster: 'madrid', transitAddress: '100.64.0.1', networks, peers };
}

interface Case {
  readonly name: string;
  readonly networks: FederatedNetwork[];
  readonly map: PeerMap;
  /** Local peerings; default: one with every peer in the map. */
  readonly peerings?: ClusterPeering[];
  readonly settings?: Partial<GatewaySettings>;
  /** Expected networks as [name, vni, segment, peers]; skipped as [name, reason]. */
  readonly want: {
    readonly networks?: [string, number, unknown, string[]][];
    readonly peers?: string[];
    readonly skipped?: [string, string][];
    readonly error?: RegExp;
  };
}

const CASES: Case[] = [
  {
    name: 'ovs bridge with vlan, carried to the peer that lists it',
    networks: [net('cdn', { ovsBridge: 'br-cdn', vlan: 20 })],
    map: map([{ name: 'cdn', vni: 4096 }], [BRISTOL]),
    want: {
      networks: [['cdn', 4096, { type: 'ovs', bridge: 'br-cdn', vlan: 20 }, ['bristol']]],
      peers: ['bristol'],
    },
  },
  {
    name: 'linux bridge; a mutual peer with no common network still gets a tunnel',
    networks: [net('cdn', { linuxBridge: 'br-cdn' })],
    map: map([{ name: 'cdn', vni: 4096 }], [BRISTOL, ATHENS]),
    want: {
      networks: [['cdn', 4096, { type: 'linux-bridge', bridge: 'br-cdn' }, ['bristol']]],
      peers: ['athens', 'bristol'],
    },
  },
  {
    name: 'l2sm network mapped by the agent config becomes an OVS segment',
    networks: [net('cdn', { l2smNetwork: 'cdn-net' })],
    map: map([{ name: 'cdn', vni: 4096 }], [BRISTOL]),
    want: { networks: [['cdn', 4096, { type: 'ovs', bridge: 'brl2sm', vlan: 7 }, ['bristol']]] },
  },
  {
    name: 'l2sm network without a mapping is skipped with a reason',
    networks: [net('cdn', { l2smNetwork: 'other' })],
    map: map([{ name: 'cdn', vni: 4096 }], [BRISTOL]),
    want: { networks: [], peers: ['bristol'], skipped: [['cdn', 'L2smNetworkNotMapped']] },
  },
  {
    name: 'exported but not yet allocated: skipped until the broker answers',
    networks: [net('cdn', { ovsBridge: 'br-cdn' }), net('tel', { ovsBridge: 'br-tel' })],
    map: map([{ name: 'cdn', vni: 4096 }], []),
    want: {
      networks: [['cdn', 4096, { type: 'ovs', bridge: 'br-cdn' }, []]],
      skipped: [['tel', 'NotAllocated']],
    },
  },
  {
    name: 'a VNI in the map for a network no longer desired is dropped',
    networks: [],
    map: map([{ name: 'cdn', vni: 4096 }], [BRISTOL]),
    want: { networks: [], peers: ['bristol'] },
  },
  {
    name: 'local withdrawal wins over a stale peer map: undeclared peer dropped',
    networks: [net('cdn', { linuxBridge: 'br-cdn' })],
    map: map([{ name: 'cdn', vni: 4096 }], [BRISTOL, ATHENS]),
    peerings: [peering('athens')],
    want: {
      networks: [['cdn', 4096, { type: 'linux-bridge', bridge: 'br-cdn' }, []]],
      peers: ['athens'],
    },
  },
  {
    name: 'a network the local peering no longer offers is not carried to that peer',
    networks: [net('cdn', { linuxBridge: 'br-cdn' }), net('tel', { linuxBridge: 'br-tel' })],
    map: map(
      [
        { name: 'cdn', vni: 4096 },
        { name: 'tel', vni: 4097 },
      ],
      [
        {
          ...BRISTOL,
          networks: [
            { name: 'cdn', vni: 4096 },
            { name: 'tel', vni: 4097 },
          ],
        },
      ],
    ),
    peerings: [peering('bristol', ['tel'])],
    want: {
      networks: [
        ['cdn', 4096, { type: 'linux-bridge', bridge: 'br-cdn' }, []],
        ['tel', 4097, { type: 'linux-bridge', bridge: 'br-tel' }, ['bristol']],
      ],
      peers: ['bristol'],
    },
  },
  {
    name: 'fixed MTU above the underlay limit is skipped, the rest applies',
    networks: [
      net('big', { linuxBridge: 'br-big' }, 9000),
      net('cdn', { linuxBridge: 'br-cdn' }, 1300),
    ],
    map: map(
      [
        { name: 'big', vni: 5000 },
        { name: 'cdn', vni: 4096 },
      ],
      [],
    ),
    want: {
      networks: [['cdn', 4096, { type: 'linux-bridge', bridge: 'br-cdn' }, []]],
      skipped: [['big', 'MtuTooLarge']],
    },
  },
  {
    name: 'two networks on one bridge: refused with the gateway message',
    networks: [net('a', { linuxBridge: 'br-x' }), net('b', { linuxBridge: 'br-x' })],
    map: map(
      [
        { name: 'a', vni: 1 },
        { name: 'b', vni: 2 },
      ],
      [],
    ),
    want: { error: /duplicate segment br-x/ },
  },
  {
    name: 'peer outside the transit prefix: refused (agent transitPrefixLength wrong)',
    networks: [],
    map: map([], [{ ...BRISTOL, transitAddress: '100.65.0.2' }]),
    want: { error: /outside the transit subnet 100.64.0.1\/16/ },
  },
];

for (const c of CASES) {
  test(`gateway config - ${c.name}`, (t) => {
    const desired = makeState(c.networks, c.peerings ?? c.map.peers.map((p) => peering(p.cluster)));
    const r: BuildGatewayConfigResult = buildGatewayConfig(desired, c.map, {
      ...SETTINGS,
      ...c.settings,
    });
    if (c.want.error) {
      t.false(r.ok);
      if (!r.ok) t.regex(r.message, c.want.error);
      return;
    }
    if (!r.ok) return t.fail(r.message);
    t.is(r.config.identity, 'madrid');
    t.is(r.config.netns, 'l2fed-x-g0');
    t.is(r.config.transitAddress, '100.64.0.1/16');
    if (c.want.networks) {
      t.deepEqual(
        (r.config.networks ?? []).map((n) => [n.name, n.vni, n.segment, n.peers]),
        c.want.networks,
      );
    }
    if (c.want.peers)
      t.deepEqual(
        (r.config.peers ?? []).map((p) => p.name),
        c.want.peers,
      );
    t.deepEqual(
      r.skipped.map((s) => [s.network, s.reason]),
      c.want.skipped ?? [],
    );
    for (const s of r.skipped) t.regex(s.message, new RegExp(s.network));
  });
}

test('gateway config - deterministic: peer and network order do not matter', (t) => {
  const a = buildGatewayConfig(
    makeState([net('cdn', { linuxBridge: 'br-cdn' })], [peering('bristol'), peering('athens')]),
    map([{ name: 'cdn', vni: 4096 }], [BRISTOL, ATHENS]),
    SETTINGS,
  );
  const b = buildGatewayConfig(
    makeState([net('cdn', { linuxBridge: 'br-cdn' })], [peering('athens'), peering('bristol')]),
    map([{ name: 'cdn', vni: 4096 }], [ATHENS, BRISTOL]),
    SETTINGS,
  );
  t.deepEqual(a, b);
  t.deepEqual(a.ok && a.config.peers?.map((p) => p.name), ['athens', 'bristol']);
});

test('gateway config - bootstrap config has no peers and no networks', (t) => {
  const c = bootstrapGatewayConfig(SETTINGS, '192.0.0.8/32');
  t.deepEqual(c.peers, []);
  t.deepEqual(c.networks, []);
  t.is(c.transitAddress, '192.0.0.8/32');
  t.is(c.wireguard.privateKeyFile, '/var/lib/l2fed/wg.key');
});
