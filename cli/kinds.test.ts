import test from 'ava';
import { checkClusterFilter, kindNamed } from './kinds.js';

test('kinds - --cluster is refused for kinds it cannot narrow, naming those it can', (t) => {
  t.throws(() => checkClusterFilter(kindNamed('clusters'), 'madrid'), {
    message:
      '--cluster narrows only networks, peerings, tunnels, not clusters; for one cluster: l2fed describe cluster madrid',
  });
  t.throws(() => checkClusterFilter(kindNamed('audit'), 'madrid'), {
    message: /--cluster narrows only networks, peerings, tunnels, not audit$/,
  });
  for (const k of ['networks', 'peerings', 'tunnels', 'clusters', 'audit'])
    t.notThrows(() => checkClusterFilter(kindNamed(k), undefined), k);
  for (const k of ['networks', 'peerings', 'tunnels'])
    t.notThrows(() => checkClusterFilter(kindNamed(k), 'madrid'), k);
});
