import test from 'ava';
import { computePeerMap, type ClusterInputs } from './peer-map.js';
import type { ClusterRecord, CordonRecord } from './records.js';

const CORDON: CordonRecord = { by: 'cn:admin', reason: 'maintenance', at: '2026-01-01T00:00:00Z' };
const rec = (id: string, cordoned = false): ClusterRecord => ({
  id,
  publicKey: `${id}-key`,
  endpoints: [`${id}.example.org:51820`],
  capabilities: [],
  transitAddress: `100.64.0.${id.charCodeAt(0) - 96}`,
  registeredAt: '2026-01-01T00:00:00Z',
  nonce: 'n',
  ...(cordoned ? { cordon: CORDON } : {}),
});
const mutual = (id: string, peers: string[], cordoned = false) =>
  ({
    cluster: rec(id, cordoned),
    networks: [{ name: 'cdn', vni: 10 }],
    peerings: peers.map((remoteCluster) => ({ remoteCluster })),
  }) satisfies ClusterInputs;

test('peer map cordon - a cordoned cluster lists no peers but keeps its networks', (t) => {
  const x = mutual('x', ['y'], true);
  const map = computePeerMap(x, new Map([['y', mutual('y', ['x'])]]));
  t.deepEqual(map.peers, []);
  t.deepEqual(map.networks, [{ name: 'cdn', vni: 10 }]);
  t.is(map.transitAddress, x.cluster.transitAddress);
});

test('peer map cordon - nobody lists a cordoned cluster, other peers stay', (t) => {
  const map = computePeerMap(
    mutual('x', ['y', 'z']),
    new Map([
      ['y', mutual('y', ['x'], true)],
      ['z', mutual('z', ['x'])],
    ]),
  );
  t.deepEqual(
    map.peers.map((p) => [p.cluster, p.networks.map((n) => n.name)]),
    [['z', ['cdn']]],
  );
});
