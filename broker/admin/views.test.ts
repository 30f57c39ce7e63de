import test from 'ava';
import type { FederationSnapshot, ClusterHealthRecord } from './snapshot.js';
import type { ClusterRecord, PeerMap } from '../records.js';
import { peeringOf } from './peerings.js';
import { tunnelHealthOf } from './health.js';
import { PeeringState, TunnelState } from '../../proto/gen/l2fed/admin/v1/federation.js';

const NOW = Date.parse('2026-01-01T00:10:00Z');
const rec = (id: string, cordoned = false): ClusterRecord => ({
  id,
  publicKey: `${id}-key`,
  endpoints: [`${id}:51820`],
  capabilities: [],
  transitAddress: '100.64.0.1',
  registeredAt: '2026-01-01T00:00:00Z',
  nonce: 'n',
  ...(cordoned ? { cordon: { by: 'cn:ops', reason: 'maint', at: '2026-01-01T00:00:00Z' } } : {}),
});
const map = (id: string, peers: string[]): PeerMap => ({
  cluster: id,
  transitAddress: '100.64.0.1',
  networks: [],
  peers: peers.map((cluster) => ({
    cluster,
    endpoints: [],
    publicKey: '',
    transitAddress: '',
    networks: [],
  })),
});

function snap(o: {
  clusters: ClusterRecord[];
  exports?: Record<string, string[]>;
  peerings?: Record<string, string[]>;
  maps?: PeerMap[];
  health?: Record<string, ClusterHealthRecord>;
}): FederationSnapshot {
  return {
    clusters: new Map(o.clusters.map((c) => [c.id, c])),
    exports: new Map(
      Object.entries(o.exports ?? {}).map(([id, ns]) => [
        id,
        { networks: ns.map((name, i) => ({ name, vni: 100 + i })) },
      ]),
    ),
    peerings: new Map(
      Object.entries(o.peerings ?? {}).map(([id, ps]) => [
        id,
        { peerings: ps.map((remoteCluster) => ({ remoteCluster })) },
      ]),
    ),
    networks: new Map(),
    members: new Map(),
    peerMaps: new Map((o.maps ?? []).map((m) => [m.cluster, m])),
    health: new Map(Object.entries(o.health ?? {})),
  };
}

const CASES = [
  {
    name: 'one side declares',
    s: snap({ clusters: [rec('a'), rec('b')], peerings: { a: ['b'] } }),
    state: PeeringState.PEERING_STATE_WAITING_FOR_CONSENT,
    reason: 'waiting for b to declare a',
  },
  {
    name: 'remote not registered',
    s: snap({ clusters: [rec('a')], peerings: { a: ['b'] } }),
    state: PeeringState.PEERING_STATE_CLUSTER_MISSING,
    reason: 'b is not registered',
  },
  {
    name: 'cordoned side',
    s: snap({ clusters: [rec('a'), rec('b', true)], peerings: { a: ['b'], b: ['a'] } }),
    state: PeeringState.PEERING_STATE_CORDONED,
    reason: 'b is cordoned by cn:ops: maint',
  },
  {
    name: 'mutual, nothing in common',
    s: snap({
      clusters: [rec('a'), rec('b')],
      exports: { a: ['x'], b: ['y'] },
      peerings: { a: ['b'], b: ['a'] },
    }),
    state: PeeringState.PEERING_STATE_NO_COMMON_NETWORK,
    reason: 'no common exported network: a offers x, b offers y',
  },
  {
    name: 'mutual, maps not refreshed yet',
    s: snap({
      clusters: [rec('a'), rec('b')],
      exports: { a: ['x'], b: ['x'] },
      peerings: { a: ['b'], b: ['a'] },
    }),
    state: PeeringState.PEERING_STATE_ACTIVE,
    reason: 'consent is mutual but the peer maps are not updated yet; retry shortly',
  },
  {
    name: 'mutual, VXLAN ports differ',
    s: snap({
      clusters: [
        { ...rec('a'), vxlanPort: 4789 },
        { ...rec('b'), vxlanPort: 4797 },
      ],
      exports: { a: ['x'], b: ['x'] },
      peerings: { a: ['b'], b: ['a'] },
    }),
    state: PeeringState.PEERING_STATE_VXLAN_PORT_MISMATCH,
    reason:
      'VXLAN ports differ: a uses 4789, b uses 4797, and frames sent to one port reach no ' +
      "VXLAN device listening on the other; set the same vxlanPort in both agents' config " +
      '(every cluster of a federation uses one port)',
  },
  {
    name: 'mutual, one VXLAN port not sent (an older agent): not a mismatch',
    s: snap({
      clusters: [{ ...rec('a'), vxlanPort: 4789 }, rec('b')],
      exports: { a: ['x'], b: ['x'] },
      peerings: { a: ['b'], b: ['a'] },
    }),
    state: PeeringState.PEERING_STATE_ACTIVE,
    reason: 'consent is mutual but the peer maps are not updated yet; retry shortly',
  },
] as const;

for (const c of CASES)
  test(`admin views - peering: ${c.name}`, (t) => {
    const p = peeringOf(c.s, 'b', 'a')!;
    t.is(p.name, 'a:b');
    t.is(p.state, c.state);
    t.is(p.reason, c.reason);
  });

test('admin views - tunnel health: worst view wins, stale reports count as unknown', (t) => {
  const fresh = '2026-01-01T00:09:50Z';
  const s = snap({
    clusters: [rec('a'), rec('b')],
    maps: [map('a', ['b']), map('b', ['a'])],
    health: {
      a: { reportedAt: fresh, peers: [{ cluster: 'b', state: 'up', rttMs: 1 }] },
      b: { reportedAt: fresh, peers: [{ cluster: 'a', state: 'down', reason: 'no handshake' }] },
    },
  });
  const h = tunnelHealthOf(s, 'a', 'b', { now: NOW, staleAfterMs: 60_000 });
  t.is(h.state, TunnelState.TUNNEL_STATE_DOWN);
  t.true(h.expected);
  t.is(h.reason, 'b sees the tunnel to a down: no handshake');
  const stale = tunnelHealthOf(s, 'a', 'b', { now: NOW + 120_000, staleAfterMs: 60_000 });
  t.is(stale.state, TunnelState.TUNNEL_STATE_UNKNOWN);
  t.true(stale.viewA!.stale && stale.viewB!.stale);
  const none = tunnelHealthOf(snap({ clusters: [rec('a'), rec('b')] }), 'a', 'b', {
    now: NOW,
    staleAfterMs: 60_000,
  });
  t.is(none.state, TunnelState.TUNNEL_STATE_UNKNOWN);
  t.regex(
    none.reason,
    /^a and b are not peered .*; a has sent no health report; b has sent no health report$/,
  );
});
