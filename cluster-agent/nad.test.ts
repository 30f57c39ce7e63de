import test from 'ava';
import { nadFor } from './nad.js';
import type { FederatedNetwork } from './schema-network.js';

const net = (segment: FederatedNetwork['spec']['segment'], mtu: 'auto' | number = 'auto') =>
  ({
    apiVersion: 'l2fed.io/v1alpha1',
    kind: 'FederatedNetwork',
    metadata: { name: 'cdn' },
    spec: { segment, mtu },
  }) as const;

const CASES = [
  [
    'ovs bridge with vlan → ovs-cni',
    net({ ovsBridge: 'br-cdn', vlan: 20 }),
    { mtu: 1370, namespace: 'web' },
    {
      cniVersion: '0.4.0',
      name: 'cdn',
      type: 'ovs',
      bridge: 'br-cdn',
      vlan: 20,
      mtu: 1370,
      ipam: { type: 'static' },
    },
  ],
  [
    'linux bridge → bridge plugin, fixed mtu from the spec',
    net({ linuxBridge: 'br-cdn' }, 1300),
    {},
    {
      cniVersion: '0.4.0',
      name: 'cdn',
      type: 'bridge',
      bridge: 'br-cdn',
      mtu: 1300,
      ipam: { type: 'static' },
    },
  ],
] as const;

for (const [title, input, opts, config] of CASES) {
  test(`nad - ${title}`, (t) => {
    const r = nadFor(input, opts);
    if (r.type !== 'nad') return t.fail();
    t.is(r.nad.metadata.name, 'cdn');
    t.is(r.nad.metadata.namespace, 'namespace' in opts ? opts.namespace : undefined);
    t.deepEqual(JSON.parse(r.nad.spec.config), config);
  });
}

test("nad - an L2S-M network uses L2S-M's own NAD", (t) => {
  const r = nadFor(net({ l2smNetwork: 'cdn-net' }));
  t.is(r.type, 'external');
  if (r.type === 'external') t.regex(r.reason, /cdn-net/);
});

test("nad - without an explicit mtu, the network's agreed MTU from status.effectiveMTU (issue 12)", (t) => {
  // spec auto would be 1370 here, but another member asks 1280: the agent reports 1280.
  const r = nadFor({ ...net({ linuxBridge: 'br-cdn' }), status: { effectiveMTU: 1280 } });
  if (r.type !== 'nad') return t.fail();
  t.is((JSON.parse(r.nad.spec.config) as { mtu?: number }).mtu, 1280);
});
