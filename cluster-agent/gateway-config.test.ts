import test from 'ava';
import { LIMITS } from '../broker/protocol.js';
import type { PeerMap } from '../broker/records.js';
import { makeState } from './desired-state.js';
import {
  bootstrapGatewayConfig,
  buildGatewayConfig,
  type BuildGatewayConfigResult,
  type GatewaySettings,
  type PeerProblemReason,
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
    name: 'peer outside the transit prefix: that peer dropped (agent transitPrefixLength wrong)',
    networks: [],
    map: map([], [{ ...BRISTOL, transitAddress: '100.65.0.2' }, ATHENS]),
    want: { peers: ['athens'] },
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
    // Each message names the network the case expects (not the one the code reported).
    (c.want.skipped ?? []).forEach(([network], i) =>
      t.regex(r.skipped[i]?.message ?? '', new RegExp(`\\b${network}\\b`)),
    );
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

const KEY_D = 'mB1ZsTJ5fY0yq7VbC3d8k2Lr9hWx4nQe6uPo1aZcXw0=';
const OSLO = {
  cluster: 'oslo',
  endpoints: ['198.18.0.4:51820'],
  publicKey: KEY_D,
  transitAddress: '100.64.0.4',
  networks: [{ name: 'cdn', vni: 4096 }],
};

/** Builds with madrid peering every peer in `peers`, exporting cdn on br-cdn. */
function buildWith(peers: PeerMap['peers'], ownKeys: string[] = []) {
  return buildGatewayConfig(
    makeState(
      [net('cdn', { linuxBridge: 'br-cdn' })],
      peers.map((p) => peering(p.cluster)),
    ),
    map([{ name: 'cdn', vni: 4096 }], peers),
    SETTINGS,
    ownKeys,
  );
}

test('gateway config - two peers sharing a public key: both dropped with a problem naming both, the other peers stay', (t) => {
  const r = buildWith([BRISTOL, { ...OSLO, publicKey: KEY_B }, ATHENS]);
  if (!r.ok) return t.fail(r.message);
  t.deepEqual(
    (r.config.peers ?? []).map((p) => p.name),
    ['athens'],
  );
  t.deepEqual(r.config.networks?.[0]?.peers, []);
  t.deepEqual(
    r.peerProblems.map((p) => [p.peer, p.reason]),
    [
      ['bristol', 'DuplicatePublicKey'],
      ['oslo', 'DuplicatePublicKey'],
    ],
  );
  t.regex(r.peerProblems[0]!.message, /bristol's public key .* also the key of oslo/);
  t.regex(r.peerProblems[1]!.message, /oslo's public key .* also the key of bristol/);
});

const BAD_PEERS: [string, Partial<PeerMap['peers'][number]>, PeerProblemReason, RegExp][] = [
  ['a malformed key', { publicKey: 'not-a-key' }, 'InvalidPublicKey', /not a WireGuard key/],
  [
    'a key of the wrong length',
    { publicKey: 'x'.repeat(43) + '=' },
    'InvalidPublicKey',
    /not a WireGuard key/,
  ],
  ['no endpoint', { endpoints: [] }, 'InvalidEndpoint', /0 endpoints/],
  ['a bad endpoint', { endpoints: ['198.18.0.4:99999'] }, 'InvalidEndpoint', /99999.*port/],
  [
    "more endpoints than the broker's limit",
    { endpoints: Array(LIMITS.endpoints + 1).fill('198.18.0.4:1') },
    'InvalidEndpoint',
    new RegExp(`${LIMITS.endpoints + 1} endpoints`),
  ],
  [
    'a transit address that is not IPv4',
    { transitAddress: 'x' },
    'InvalidTransitAddress',
    /not an IPv4/,
  ],
  ['our transit address', { transitAddress: '100.64.0.1' }, 'TransitAddressConflict', /own/],
  [
    "bristol's transit address",
    { transitAddress: '100.64.0.2' },
    'TransitAddressConflict',
    /also that of bristol/,
  ],
  [
    'a transit address outside the subnet',
    { transitAddress: '100.65.0.4' },
    'TransitOutsideSubnet',
    /outside the transit subnet 100.64.0.1\/16.*transitPrefixLength/,
  ],
];

for (const [what, change, reason, message] of BAD_PEERS) {
  test(`gateway config - a peer with ${what} is dropped alone (${reason})`, (t) => {
    const r = buildWith([BRISTOL, { ...OSLO, ...change }, ATHENS]);
    if (!r.ok) return t.fail(r.message);
    const left =
      reason === 'TransitAddressConflict' && /bristol/.test(what)
        ? ['athens']
        : ['athens', 'bristol'];
    t.deepEqual(
      (r.config.peers ?? []).map((p) => p.name),
      left,
    );
    const p = r.peerProblems.find((x) => x.peer === 'oslo');
    t.is(p?.reason, reason);
    t.regex(p?.message ?? '', message);
    t.regex(p?.message ?? '', /oslo/);
  });
}

test("gateway config - a peer using this gateway's own key is dropped (OwnPublicKey)", (t) => {
  const r = buildWith([BRISTOL, OSLO], [KEY_D]);
  if (!r.ok) return t.fail(r.message);
  t.deepEqual(
    (r.config.peers ?? []).map((p) => p.name),
    ['bristol'],
  );
  t.deepEqual(
    r.peerProblems.map((p) => [p.peer, p.reason]),
    [['oslo', 'OwnPublicKey']],
  );
});

test('gateway config - a peer network whose VNI disagrees with ours is not carried to it; its tunnel stays', (t) => {
  const r = buildWith([BRISTOL, { ...OSLO, networks: [{ name: 'cdn', vni: 777 }] }]);
  if (!r.ok) return t.fail(r.message);
  t.deepEqual(
    (r.config.peers ?? []).map((p) => p.name),
    ['bristol', 'oslo'],
  );
  t.deepEqual(r.config.networks?.[0]?.peers, ['bristol']);
  t.like(r.peerProblems, [{ peer: 'oslo', reason: 'VniMismatch', network: 'cdn' }]);
  t.regex(r.peerProblems[0]!.message, /VNI 777, but ours is 4096/);
});

test('gateway config - a peer listed twice is dropped (DuplicatePeer)', (t) => {
  const r = buildWith([BRISTOL, OSLO, { ...OSLO, publicKey: KEY_C, transitAddress: '100.64.0.9' }]);
  if (!r.ok) return t.fail(r.message);
  t.deepEqual(
    (r.config.peers ?? []).map((p) => p.name),
    ['bristol'],
  );
  t.is(r.peerProblems[0]?.reason, 'DuplicatePeer');
});

test('gateway config - a peer the gateway parser still refuses is dropped with its words (RefusedByGateway)', (t) => {
  // Manifests refuse such a name; a DesiredState built without them may not.
  const odd = { ...OSLO, cluster: 'Oslo_1' };
  const r = buildWith([BRISTOL, odd]);
  if (!r.ok) return t.fail(r.message);
  t.deepEqual(
    (r.config.peers ?? []).map((p) => p.name),
    ['bristol'],
  );
  t.deepEqual(r.config.networks?.[0]?.peers, ['bristol']);
  t.like(r.peerProblems, [{ peer: 'Oslo_1', reason: 'RefusedByGateway' }]);
  t.regex(r.peerProblems[0]!.message, /peers\[\d\]\.name: peer name must be a DNS-1123 label/);
});

test('gateway config - the peer map listing this cluster as a peer: that entry dropped (SelfPeer)', (t) => {
  const r = buildWith([BRISTOL, { ...OSLO, cluster: 'madrid' }]);
  if (!r.ok) return t.fail(r.message);
  t.deepEqual(
    (r.config.peers ?? []).map((p) => p.name),
    ['bristol'],
  );
  t.like(r.peerProblems, [{ peer: 'madrid', reason: 'SelfPeer' }]);
});

test("gateway config - a peer with as many endpoints as the broker allows is carried (the gateway's limit is the broker's)", (t) => {
  const endpoints = Array.from({ length: LIMITS.endpoints }, (_, i) => `198.18.0.4:${i + 1}`);
  const r = buildWith([BRISTOL, { ...OSLO, endpoints }]);
  if (!r.ok) return t.fail(r.message);
  t.deepEqual(r.peerProblems, []);
  t.deepEqual(r.config.peers?.find((p) => p.name === 'oslo')?.endpoints, endpoints);
});

test('gateway config - the broadcast bound of the settings reaches the gateway config; unset leaves the default', (t) => {
  const state = makeState([net('cdn', { linuxBridge: 'br-cdn' })], [peering('bristol')]);
  const peers = map([{ name: 'cdn', vni: 4096 }], [BRISTOL]);
  const bound = { packetsPerSecond: 300, burst: 30 };
  const r = buildGatewayConfig(state, peers, { ...SETTINGS, bumLimit: bound });
  t.deepEqual(r.ok && r.config.bumLimit, bound);
  t.deepEqual(
    bootstrapGatewayConfig({ ...SETTINGS, bumLimit: bound }, '192.0.0.8/32').bumLimit,
    bound,
  );
  const plain = buildGatewayConfig(state, peers, SETTINGS);
  t.is(plain.ok && plain.config.bumLimit, undefined);
});
