import test from 'ava';
import { computePeerMap, withPeer, type ClusterInputs } from './peer-map.js';
import type { ClusterRecord, NetworkRef, PeeringDecl } from './records.js';

const VNI: Record<string, number> = { a: 10, b: 11, c: 12, d: 13 };
const rec = (id: string): ClusterRecord => ({
  id,
  publicKey: `${id}-key`,
  endpoints: [`${id}.example.org:51820`],
  capabilities: [],
  transitAddress: `100.64.0.${id.charCodeAt(0) - 96}`,
  registeredAt: '2026-01-01T00:00:00Z',
  nonce: 'n',
});
const nets = (...names: string[]): NetworkRef[] => names.map((name) => ({ name, vni: VNI[name]! }));
const inputs = (
  id: string,
  exports: string[],
  peerings: PeeringDecl[],
  registered = true,
  vxlanPort?: number,
): ClusterInputs => ({
  cluster: registered
    ? { ...rec(id), ...(vxlanPort === undefined ? {} : { vxlanPort }) }
    : undefined,
  networks: nets(...exports),
  peerings,
});

interface Case {
  readonly name: string;
  readonly self: ClusterInputs;
  readonly remotes: ClusterInputs[];
  /** peer id -> carried network names */
  readonly want: Record<string, string[]>;
}

const CASES: Case[] = [
  {
    name: 'one-sided declaration gives no peer',
    self: inputs('x', ['a'], [{ remoteCluster: 'y' }]),
    remotes: [inputs('y', ['a'], [])],
    want: {},
  },
  {
    name: 'mutual declaration, omitted lists = all own exports, intersection of exports',
    self: inputs('x', ['a', 'b'], [{ remoteCluster: 'y' }]),
    remotes: [inputs('y', ['b', 'c'], [{ remoteCluster: 'x' }])],
    want: { y: ['b'] },
  },
  {
    name: 'listed networks narrow the set on either side',
    self: inputs('x', ['a', 'b', 'c'], [{ remoteCluster: 'y', networks: ['a', 'b'] }]),
    remotes: [inputs('y', ['a', 'b', 'c'], [{ remoteCluster: 'x', networks: ['b', 'c'] }])],
    want: { y: ['b'] },
  },
  {
    name: 'a network listed but not exported by the remote is not carried',
    self: inputs('x', ['a', 'd'], [{ remoteCluster: 'y', networks: ['a', 'd'] }]),
    remotes: [inputs('y', ['a'], [{ remoteCluster: 'x', networks: ['a', 'd'] }])],
    want: { y: ['a'] },
  },
  {
    name: 'mutual peering with nothing in common is an entry with no networks',
    self: inputs('x', ['a'], [{ remoteCluster: 'y' }]),
    remotes: [inputs('y', ['b'], [{ remoteCluster: 'x' }])],
    want: { y: [] },
  },
  {
    name: 'unregistered remote is left out',
    self: inputs('x', ['a'], [{ remoteCluster: 'y' }]),
    remotes: [inputs('y', ['a'], [{ remoteCluster: 'x' }], false)],
    want: {},
  },
  {
    name: 'VXLAN ports that differ: no entry (frames to one port reach no device on the other)',
    self: inputs('x', ['a'], [{ remoteCluster: 'y' }, { remoteCluster: 'z' }], true, 4797),
    remotes: [
      inputs('y', ['a'], [{ remoteCluster: 'x' }], true, 4789),
      inputs('z', ['a'], [{ remoteCluster: 'x' }], true, 4797),
    ],
    want: { z: ['a'] },
  },
  {
    name: 'a VXLAN port not sent (an older agent) is not a mismatch, on either side',
    self: inputs('x', ['a'], [{ remoteCluster: 'y' }, { remoteCluster: 'z' }], true, 4797),
    remotes: [
      inputs('y', ['a'], [{ remoteCluster: 'x' }]),
      inputs('z', ['a'], [{ remoteCluster: 'x' }], true, 4789),
    ],
    want: { y: ['a'] },
  },
  {
    name: 'several peers, sorted, each with its own intersection',
    self: inputs('x', ['a', 'b', 'c'], [{ remoteCluster: 'z' }, { remoteCluster: 'y' }]),
    remotes: [
      inputs('y', ['a'], [{ remoteCluster: 'x' }]),
      inputs('z', ['c', 'b'], [{ remoteCluster: 'x', networks: ['c'] }]),
    ],
    want: { y: ['a'], z: ['c'] },
  },
];

for (const c of CASES) {
  test(`peer map - ${c.name}`, (t) => {
    const remotes = new Map(c.remotes.map((r) => [r.cluster?.id ?? 'y', r]));
    const map = computePeerMap({ ...c.self, cluster: c.self.cluster! }, remotes);
    // Consent is symmetric: each remote's own map agrees on whether it lists self.
    for (const r of c.remotes.filter((x) => x.cluster)) {
      const back = computePeerMap(
        { ...r, cluster: r.cluster! },
        new Map([[c.self.cluster!.id, c.self]]),
      );
      t.is(back.peers.length === 1, r.cluster!.id in c.want, `${r.cluster!.id}'s map`);
    }
    const got = Object.fromEntries(
      map.peers.map((p) => [p.cluster, p.networks.map((n) => n.name)]),
    );
    t.deepEqual(got, c.want);
    t.deepEqual(Object.keys(got), Object.keys(c.want).sort(), 'peers sorted by id');
    for (const p of map.peers) {
      t.is(p.publicKey, `${p.cluster}-key`);
      for (const n of p.networks) t.is(n.vni, VNI[n.name]!);
    }
  });
}

test('peer map - deterministic: equal inputs give byte-equal JSON', (t) => {
  const self = inputs('x', ['b', 'a'], [{ remoteCluster: 'z' }, { remoteCluster: 'y' }]);
  const remotes = new Map([
    ['y', inputs('y', ['a', 'b'], [{ remoteCluster: 'x' }])],
    ['z', inputs('z', ['b'], [{ remoteCluster: 'x' }])],
  ]);
  const one = JSON.stringify(computePeerMap({ ...self, cluster: self.cluster! }, remotes));
  const reversed = {
    ...self,
    networks: [...self.networks].reverse(),
    peerings: [...self.peerings].reverse(),
  };
  const two = JSON.stringify(computePeerMap({ ...reversed, cluster: self.cluster! }, remotes));
  t.is(one, two);
});

test('peer map - a mutual peer left out for its VXLAN port is listed as withheld, with why; withPeer agrees', (t) => {
  const self = inputs('x', ['a'], [{ remoteCluster: 'y' }, { remoteCluster: 'z' }], true, 4797);
  const y = inputs('y', ['a'], [{ remoteCluster: 'x' }], true, 4789);
  const z = inputs('z', ['a'], [], true, 4789); // no consent back: not withheld, just absent
  const remotes = new Map([
    ['y', y],
    ['z', z],
  ]);
  const map = computePeerMap({ ...self, cluster: self.cluster! }, remotes);
  t.deepEqual(map.peers, []);
  t.deepEqual(map.withheld, [
    {
      cluster: 'y',
      reason: 'VxlanPortMismatch',
      message:
        'VXLAN ports differ: x uses 4797, y uses 4789, and frames sent to one port reach no ' +
        "VXLAN device listening on the other; set the same vxlanPort in both agents' config " +
        '(every cluster of a federation uses one port)',
    },
  ]);
  // y moves to x's port: the incremental refresh lists it and drops the withheld entry.
  const fixed = inputs('y', ['a'], [{ remoteCluster: 'x' }], true, 4797);
  const next = withPeer(map, { ...self, cluster: self.cluster! }, 'y', fixed);
  t.deepEqual(
    next,
    computePeerMap({ ...self, cluster: self.cluster! }, new Map([...remotes, ['y', fixed]])),
  );
  t.deepEqual(
    next.peers.map((p) => p.cluster),
    ['y'],
  );
  t.false('withheld' in next, 'absent when none: such maps stay byte-equal to older ones');
  // And back: withPeer withholds it again.
  t.deepEqual(withPeer(next, { ...self, cluster: self.cluster! }, 'y', y), map);
  // A cordoned self withholds nothing (it has no peers at all).
  const cordoned = {
    ...self,
    cluster: {
      ...self.cluster!,
      cordon: { by: 'cn:ops', reason: 'r', at: '2026-01-01T00:00:00Z' },
    },
  };
  t.false('withheld' in computePeerMap(cordoned, remotes));
  t.false('withheld' in withPeer(map, cordoned, 'z', z));
});
