import test from 'ava';
import type { PeerMap } from '../broker/records.js';
import { CDN_WITH_BRISTOL } from './source-fake.js';
import type { HealthReport } from '../gateway/client.js';
import { bristolHealth } from '../test/fixtures/agent-settings.js';
import { buildGatewayConfig } from './gateway-config.js';
import { buildStatuses, formatRtt, type StatusInputs } from './status-builder.js';

const KEY_B = 'pD4zZ1M5bZ1cV6qvbQbJzJf1wq7WmG0Gq8q0aVq0aVo=';
const desired = CDN_WITH_BRISTOL;
const mapWith = (peers: PeerMap['peers']): PeerMap => ({
  cluster: 'madrid',
  transitAddress: '100.64.0.1',
  networks: [{ name: 'cdn', vni: 4096 }],
  peers,
});
const BRISTOL = {
  cluster: 'bristol',
  endpoints: ['198.18.0.2:51820'],
  publicKey: KEY_B,
  transitAddress: '100.64.0.2',
  networks: [{ name: 'cdn', vni: 4096 }],
};
const WITHHELD = {
  cluster: 'bristol',
  reason: 'VxlanPortMismatch',
  message: 'VXLAN ports differ: madrid uses 4797, bristol uses 4789, …',
};
const SETTINGS = {
  clusterId: 'madrid',
  wireguard: { ifname: 'l2fmad', listenPort: 51820, privateKeyFile: '/k' },
  transitPrefixLength: 16,
  underlayMtu: 1500,
  l2sm: {},
};
const REPORT = {
  identity: 'madrid',
  publicKey: KEY_B,
  tunnelKind: 'wireguard-go',
  tunnelIfname: 'l2fmad',
  tunnelMtu: 1420,
  networks: [{ name: 'cdn', vni: 4096, device: 'l2fv4096', mtu: 1370 }],
};
const health = (status: 'up' | 'down', age?: number): HealthReport =>
  bristolHealth({
    status,
    at: '2026-01-31T12:00:00.000Z',
    rttMs: 1.25,
    handshakeAgeSeconds: age,
    bytes: 0,
  });

function inputs(over: Partial<StatusInputs>): StatusInputs {
  const peerMap = 'peerMap' in over ? over.peerMap : mapWith([BRISTOL]);
  return {
    clusterId: 'madrid',
    desired,
    peerMap,
    published: true,
    build: peerMap ? buildGatewayConfig(desired, peerMap, SETTINGS) : undefined,
    applied: { ok: true, report: REPORT },
    health: undefined,
    now: new Date('2026-01-31T12:00:10Z'),
    ...over,
  };
}

const CASES: [string, Partial<StatusInputs>, string, Record<string, string>][] = [
  [
    'no map, no cache',
    { peerMap: undefined, applied: undefined },
    'PeerMapUnknown',
    { Mutual: 'Unknown' },
  ],
  [
    'not yet published',
    { peerMap: mapWith([]), published: false },
    'Publishing',
    { Mutual: 'Unknown' },
  ],
  ['one-sided', { peerMap: mapWith([]) }, 'RemoteNotDeclared', { Mutual: 'False', Ready: 'False' }],
  [
    'mutual, withheld by the broker (VXLAN ports differ)',
    { peerMap: { ...mapWith([]), withheld: [WITHHELD] } },
    'VxlanPortMismatch',
    { Mutual: 'False', TunnelHealthy: 'Unknown', Ready: 'False' },
  ],
  [
    'withheld with a reason Kubernetes would refuse: a generic one, the message kept',
    { peerMap: { ...mapWith([]), withheld: [{ ...WITHHELD, reason: 'not a reason!' }] } },
    'Withheld',
    { Mutual: 'False', Ready: 'False' },
  ],
  ['mutual, not checked', {}, 'Connecting', { Mutual: 'True', TunnelHealthy: 'Unknown' }],
  [
    'mutual, up',
    { health: health('up', 3) },
    'Established',
    { TunnelHealthy: 'True', Ready: 'True' },
  ],
  [
    'mutual, peer silent',
    { health: health('down', 40) },
    'Degraded',
    { TunnelHealthy: 'False', Ready: 'False' },
  ],
  [
    'mutual, nothing common',
    { peerMap: mapWith([{ ...BRISTOL, networks: [] }]) },
    'NoCommonNetwork',
    { Ready: 'False' },
  ],
  [
    'mutual, but left out of the gateway config (bad key)',
    { peerMap: mapWith([{ ...BRISTOL, publicKey: 'junk' }]) },
    'InvalidPublicKey',
    { Mutual: 'True', Configured: 'False', TunnelHealthy: 'Unknown', Ready: 'False' },
  ],
  [
    'mutual, its network VNI disagrees with ours',
    { peerMap: mapWith([{ ...BRISTOL, networks: [{ name: 'cdn', vni: 9 }] }]) },
    'NoCommonNetwork',
    { Configured: 'False', Ready: 'False' },
  ],
  [
    'newest peer map refused: said, Ready unaffected',
    { health: health('up', 3), peerMapError: 'peer map from the broker refused: peers: …' },
    'Established',
    { PeerMapValid: 'False', Ready: 'True' },
  ],
];

for (const [title, over, reason, conds] of CASES) {
  test(`status - peering: ${title}`, (t) => {
    const p = buildStatuses(inputs(over)).peerings.get('bristol')!;
    t.is(p.status.reason, reason);
    for (const [type, status] of Object.entries(conds)) {
      t.is(String(p.status.conditions.find((c) => c.type === type)?.status), status, type);
    }
    for (const c of p.status.conditions) t.regex(c.reason, /^[A-Z][A-Za-z]+$/);
    if (over.peerMap?.withheld)
      t.is(
        p.status.conditions.find((c) => c.type === 'Mutual')?.message,
        WITHHELD.message,
        "the broker's message, as sent",
      );
  });
}

test('status - established peering carries rtt and last handshake', (t) => {
  const p = buildStatuses(inputs({ health: health('up', 3) })).peerings.get('bristol')!;
  t.is(p.status.rtt, '1.25ms');
  t.is(p.status.lastHandshake, '2026-01-31T12:00:07Z');
  t.like(p.tunnel, { state: 'up', rttMs: 1.25, lossPct: 0, lastHandshakeAgeSec: 3 });
  t.is(formatRtt(0.4), '400us');
});

test('status - network: allocated and programmed, or why not', (t) => {
  const ok = buildStatuses(inputs({})).networks.get('cdn')!;
  t.like(ok, { vni: 4096, effectiveMTU: 1370, members: ['bristol', 'madrid'] });
  t.is(ok.conditions.find((c) => c.type === 'Ready')?.status, 'True');
  const failed = buildStatuses(
    inputs({ applied: { ok: false, error: 'bridge br-cdn missing' } }),
  ).networks.get('cdn')!;
  t.like(
    failed.conditions.find((c) => c.type === 'Ready'),
    { status: 'False', reason: 'ApplyFailed' },
  );
  const unpublished = buildStatuses(
    inputs({ peerMap: { ...mapWith([]), networks: [] }, published: false, applied: undefined }),
  ).networks.get('cdn')!;
  t.like(
    unpublished.conditions.find((c) => c.type === 'Allocated'),
    {
      status: 'False',
      reason: 'BrokerUnreachable',
    },
  );
});

test('status - path MTU too small for cdn: PathMTU False names measured and needed, Ready False', (t) => {
  const h = health('up', 3);
  const short: HealthReport = {
    ...h,
    peers: [
      {
        ...h.peers[0]!,
        status: 'degraded',
        reason: 'path MTU to bristol is 1328 B inside the tunnel, 1420 B needed',
        pathMtu: 1328,
        pathMtuNeeded: 1420,
        pathMtuShortNetworks: ['cdn'],
      },
    ],
  };
  const p = buildStatuses(inputs({ health: short })).peerings.get('bristol')!;
  const c = p.status.conditions.find((x) => x.type === 'PathMTU');
  t.is(c?.status, 'False');
  t.is(c?.reason, 'PathMTUTooSmall');
  t.regex(
    c?.message ?? '',
    /path MTU to bristol is 1328 B .* 1420 B needed: full-size frames of cdn/,
  );
  t.is(p.status.conditions.find((x) => x.type === 'Ready')?.status, 'False');
  // Not "check that bristol's gateway runs": the tunnel works, only big frames are lost.
  const tunnel = p.status.conditions.find((x) => x.type === 'TunnelHealthy');
  t.is(tunnel?.reason, 'PathMTUTooSmall');
  t.notRegex(tunnel?.message ?? '', /gateway runs/);
  // A path that fits carries no PathMTU condition.
  const fits = buildStatuses(inputs({ health: h })).peerings.get('bristol')!;
  t.is(
    fits.status.conditions.find((x) => x.type === 'PathMTU'),
    undefined,
  );
});
