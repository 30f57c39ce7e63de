import test from 'ava';
import { DEFAULT_VXLAN_PORT, parseGatewayConfig } from './config.js';
import { PreconditionError } from './errors.js';
import { FIREWALL_VERSION } from './firewall.js';
import { VXLAN_FDB_LIMIT } from './links.js';
import { desiredState, type ObservedDataplane, type ObservedTunnel } from './model.js';
import { describeStep, planSteps } from './plan.js';
import { KEY_B, KEY_C, madridConfig, PRIV } from '../test/fixtures/gateway-over-fakes.js';

const config = parseGatewayConfig(
  madridConfig('/k', [
    {
      name: 'cdn',
      vni: 100,
      segment: { type: 'linux-bridge', bridge: 'br-cdn' },
      peers: ['b', 'c'],
    },
  ]),
);
const desired = desiredState(config, PRIV);

const tunnel: ObservedTunnel = {
  ifname: 'l2fa',
  up: true,
  mtu: 1420,
  addresses: ['198.19.255.1/24'],
  privateKey: PRIV,
  publicKey: 'x',
  listenPort: 51820,
  peers: desired.tunnel.peers.map((p) => ({
    publicKey: p.publicKey,
    endpoint: p.endpoint,
    allowedIps: p.allowedIps,
    latestHandshake: 0,
    rxBytes: 0,
    txBytes: 0,
    persistentKeepalive: 25,
  })),
};

const NOARP = `no ARP on l2fv100 (the gateway's stack answers nothing through it)`;
const GUARD = `guard vxlan port ${DEFAULT_VXLAN_PORT}: only through l2fa, only from 198.19.255.2 vni 100, 198.19.255.3 vni 100, nothing to the stack through vxlan devices (nft table inet l2fed)`;
const CDN_FROM = [
  { address: '198.19.255.2', vni: 100 },
  { address: '198.19.255.3', vni: 100 },
];
const firewall = {
  version: FIREWALL_VERSION,
  spec: { wgIfname: 'l2fa', vxlanPort: DEFAULT_VXLAN_PORT, vxlanFrom: CDN_FROM },
  intact: true,
};

/** The observed state that matches `desired` exactly. */
const converged: ObservedDataplane = {
  firewall,
  tunnel,
  vxlans: [
    {
      name: 'l2fv100',
      vni: 100,
      local: '198.19.255.1',
      dstport: DEFAULT_VXLAN_PORT,
      learning: true,
      limit: VXLAN_FDB_LIMIT,
      noarp: true,
      mtu: 1370,
      up: true,
      remotes: ['198.19.255.2', '198.19.255.3'],
      learned: [],
    },
  ],
  segments: {
    bridges: { ovs: [], 'linux-bridge': ['br-cdn'] },
    attachments: [{ port: 'l2fv100', segment: { type: 'linux-bridge', bridge: 'br-cdn' } }],
  },
};

const empty: ObservedDataplane = {
  firewall: undefined,
  tunnel: undefined,
  vxlans: [],
  segments: { bridges: { ovs: [], 'linux-bridge': ['br-cdn'] }, attachments: [] },
};

/** The steps that build network cdn's device from nothing (or after a delete). */
const BUILD_CDN = [
  `create vxlan l2fv100 id 100 local 198.19.255.1 dstport ${DEFAULT_VXLAN_PORT} learning maxaddress 4096`,
  'flood l2fv100 to 198.19.255.2',
  'flood l2fv100 to 198.19.255.3',
  'set mtu of l2fv100 to 1370',
  NOARP,
  'plug l2fv100 into linux-bridge:br-cdn',
  'set l2fv100 up',
];

type Case = { name: string; observed: ObservedDataplane; want: string[] };

const cases: Case[] = [
  { name: 'converged state needs nothing', observed: converged, want: [] },
  {
    name: 'fresh host builds everything',
    observed: empty,
    want: [
      GUARD,
      'create tunnel l2fa',
      'set private key of l2fa from /k',
      'set listen port of l2fa to 51820',
      `set peer b (${KEY_B}) on l2fa: endpoint 198.18.0.2:51820, allowed 198.19.255.2/32, keepalive 25`,
      `set peer c (${KEY_C}) on l2fa: endpoint 198.18.0.3:51820, allowed 198.19.255.3/32, keepalive 25`,
      'add address 198.19.255.1/24 to l2fa',
      'set mtu of l2fa to 1420',
      'set l2fa up',
      ...BUILD_CDN,
    ],
  },
  {
    name: 'a missing guard is set before anything else',
    observed: { ...converged, firewall: undefined },
    want: [GUARD],
  },
  {
    name: 'a guard for another tunnel name is replaced',
    observed: {
      ...converged,
      firewall: { ...firewall, spec: { ...firewall.spec, wgIfname: 'l2fx' } },
    },
    want: [GUARD],
  },
  {
    name: 'a guard for another port is replaced',
    observed: {
      ...converged,
      firewall: { ...firewall, spec: { ...firewall.spec, vxlanPort: 8472 } },
    },
    want: [GUARD],
  },
  {
    name: 'a guard that admits a peer for a VNI it does not carry loses that pair (only)',
    observed: {
      ...converged,
      firewall: {
        ...firewall,
        spec: { ...firewall.spec, vxlanFrom: [...CDN_FROM, { address: '198.19.255.3', vni: 200 }] },
      },
    },
    want: [
      `guard vxlan port ${DEFAULT_VXLAN_PORT}: stop admitting 198.19.255.3 vni 200 (nft set inet l2fed vxlan_from, those elements only)`,
    ],
  },
  {
    name: 'a guard that lacks a pair gets that pair (only)',
    observed: {
      ...converged,
      firewall: { ...firewall, spec: { ...firewall.spec, vxlanFrom: CDN_FROM.slice(1) } },
    },
    want: [
      `guard vxlan port ${DEFAULT_VXLAN_PORT}: admit 198.19.255.2 vni 100 (nft set inet l2fed vxlan_from, those elements only)`,
    ],
  },
  {
    name: 'the same pairs read back in another order need nothing',
    observed: {
      ...converged,
      firewall: { ...firewall, spec: { ...firewall.spec, vxlanFrom: [...CDN_FROM].reverse() } },
    },
    want: [],
  },
  {
    name: 'a guard of an older version is replaced',
    observed: { ...converged, firewall: { ...firewall, version: 0 } },
    want: [GUARD],
  },
  {
    name: 'a guard with a rule missing is replaced',
    observed: { ...converged, firewall: { ...firewall, intact: false } },
    want: [GUARD],
  },
  {
    name: 'the guard goes up before a removal and a recreated device',
    observed: {
      ...converged,
      firewall: undefined,
      vxlans: [{ ...converged.vxlans[0]!, learning: false }],
    },
    want: [GUARD, 'unplug l2fv100 from linux-bridge:br-cdn', 'delete vxlan l2fv100', ...BUILD_CDN],
  },
  {
    name: 'a stray peer is removed, nothing else',
    observed: {
      ...converged,
      tunnel: {
        ...tunnel,
        peers: [...tunnel.peers, { ...tunnel.peers[0]!, publicKey: PRIV }],
      },
    },
    want: [`remove peer ${PRIV} from l2fa`],
  },
  {
    name: 'a roamed endpoint among the configured ones is kept',
    observed: {
      ...converged,
      tunnel: {
        ...tunnel,
        peers: [{ ...tunnel.peers[0]!, endpoint: '198.18.0.2:51820' }, tunnel.peers[1]!],
      },
    },
    want: [],
  },
  {
    name: 'a changed endpoint is reset',
    observed: {
      ...converged,
      tunnel: {
        ...tunnel,
        peers: [{ ...tunnel.peers[0]!, endpoint: '198.18.9.9:1' }, tunnel.peers[1]!],
      },
    },
    want: [
      `set peer b (${KEY_B}) on l2fa: endpoint 198.18.0.2:51820, allowed 198.19.255.2/32, keepalive 25`,
    ],
  },
  {
    name: 'a stale flood entry is removed and a missing one added',
    observed: {
      ...converged,
      vxlans: [{ ...converged.vxlans[0]!, remotes: ['198.19.255.2', '198.19.255.9'] }],
    },
    // Append first: the all-zero entry never disappears (see plan.ts).
    want: ['flood l2fv100 to 198.19.255.3', 'stop flooding l2fv100 to 198.19.255.9'],
  },
  {
    name: 'a nolearning VXLAN device of an older version is recreated and re-plugged',
    observed: {
      ...converged,
      vxlans: [{ ...converged.vxlans[0]!, learning: false, limit: 0 }],
    },
    want: ['unplug l2fv100 from linux-bridge:br-cdn', 'delete vxlan l2fv100', ...BUILD_CDN],
  },
  {
    // The kernel cannot change maxaddress on a live device (EOPNOTSUPP).
    name: 'a learning VXLAN device without the bound is recreated and re-plugged',
    observed: { ...converged, vxlans: [{ ...converged.vxlans[0]!, limit: 0 }] },
    want: ['unplug l2fv100 from linux-bridge:br-cdn', 'delete vxlan l2fv100', ...BUILD_CDN],
  },
  {
    name: "MACs learned from the network's peers are the kernel's: nothing to do",
    observed: {
      ...converged,
      vxlans: [
        {
          ...converged.vxlans[0]!,
          learned: [
            { mac: '02:00:00:00:00:0b', dst: '198.19.255.2' },
            { mac: '02:00:00:00:00:0c', dst: '198.19.255.3' },
          ],
        },
      ],
    },
    want: [],
  },
  {
    name: 'a MAC learned from a peer that no longer carries the network is forgotten',
    observed: {
      ...converged,
      vxlans: [
        {
          ...converged.vxlans[0]!,
          remotes: ['198.19.255.2', '198.19.255.3', '198.19.255.9'],
          learned: [
            { mac: '02:00:00:00:00:0b', dst: '198.19.255.2' },
            { mac: '02:00:00:00:00:99', dst: '198.19.255.9' },
          ],
        },
      ],
    },
    want: [
      'stop flooding l2fv100 to 198.19.255.9',
      'forget 02:00:00:00:00:99 on l2fv100, learned from 198.19.255.9',
    ],
  },
  {
    // Kernels before 6.13 learn invalid source MACs; such an entry would capture the
    // group's (or the broadcast) traffic for one peer.
    name: 'a learned group or all-zero MAC is forgotten, even from a peer of the network',
    observed: {
      ...converged,
      vxlans: [
        {
          ...converged.vxlans[0]!,
          learned: [
            { mac: '00:00:00:00:00:00', dst: '198.19.255.2' },
            { mac: '33:33:00:00:00:01', dst: '198.19.255.2' },
            { mac: 'ff:ff:ff:ff:ff:ff', dst: '198.19.255.3' },
          ],
        },
      ],
    },
    want: [
      'forget 00:00:00:00:00:00 on l2fv100, learned from 198.19.255.2',
      'forget 33:33:00:00:00:01 on l2fv100, learned from 198.19.255.2',
      'forget ff:ff:ff:ff:ff:ff on l2fv100, learned from 198.19.255.3',
    ],
  },
  {
    name: 'an unwanted network is unplugged and deleted',
    observed: {
      ...converged,
      vxlans: [...converged.vxlans, { ...converged.vxlans[0]!, name: 'l2fv7', vni: 7 }],
      segments: {
        ...converged.segments,
        attachments: [
          ...converged.segments.attachments,
          { port: 'l2fv7', segment: { type: 'linux-bridge', bridge: 'br-old' } },
        ],
      },
    },
    want: ['unplug l2fv7 from linux-bridge:br-old', 'delete vxlan l2fv7'],
  },
  {
    name: 'ARP turned back on behind the gateway is turned off again',
    observed: { ...converged, vxlans: [{ ...converged.vxlans[0]!, noarp: false }] },
    want: [NOARP],
  },
  {
    name: 'a wrong MTU and a down link are fixed',
    observed: { ...converged, tunnel: { ...tunnel, mtu: 1500, up: false } },
    want: ['set mtu of l2fa to 1420', 'set l2fa up'],
  },
  {
    name: 'a foreign address on the tunnel is replaced',
    observed: { ...converged, tunnel: { ...tunnel, addresses: ['198.19.255.7/24'] } },
    want: ['remove address 198.19.255.7/24 from l2fa', 'add address 198.19.255.1/24 to l2fa'],
  },
  {
    name: 'a new key is set from the file',
    observed: { ...converged, tunnel: { ...tunnel, privateKey: KEY_B } },
    want: ['set private key of l2fa from /k'],
  },
];

for (const c of cases) {
  test(`plan - ${c.name}`, (t) => {
    t.deepEqual(planSteps(desired, c.observed).map(describeStep), c.want);
  });
}

test('plan - a missing segment bridge fails before any step', (t) => {
  const observed = {
    ...empty,
    segments: { ...empty.segments, bridges: { ovs: [], 'linux-bridge': [] } },
  };
  const err = t.throws(() => planSteps(desired, observed), { instanceOf: PreconditionError });
  t.regex(err?.message ?? '', /network cdn: segment linux-bridge:br-cdn does not exist/);
});

test('plan - another VXLAN/Geneve device on our port is refused before any step', (t) => {
  // Calico's and Antrea's VXLAN port, set here on purpose.
  const on4789 = desiredState(parseGatewayConfig({ ...config, vxlanPort: 4789 }), PRIV);
  const calico = { name: 'vxlan.calico', kind: 'vxlan', port: 4789 };
  const err = t.throws(() => planSteps(on4789, { ...empty, foreignTunnels: [calico] }), {
    instanceOf: PreconditionError,
  });
  t.regex(err?.message ?? '', /vxlanPort: vxlan device vxlan\.calico already uses UDP 4789/);
  t.regex(err?.message ?? '', /set vxlanPort to a port nothing else uses/);
  // On another port it is none of the gateway's business.
  const flannel = { name: 'flannel.1', kind: 'vxlan', port: 8472 };
  t.deepEqual(planSteps(desired, { ...converged, foreignTunnels: [flannel] }), []);
  // Moving l2fed off the port clears it: guard and devices follow the new port.
  const moved = desiredState(parseGatewayConfig({ ...config, vxlanPort: 4790 }), PRIV);
  const steps = planSteps(moved, { ...converged, foreignTunnels: [calico] }).map(describeStep);
  t.is(steps[0], GUARD.replace(`port ${DEFAULT_VXLAN_PORT}:`, 'port 4790:'));
  t.true(steps.includes('delete vxlan l2fv100'));
  t.true(
    steps.includes(
      'create vxlan l2fv100 id 100 local 198.19.255.1 dstport 4790 learning maxaddress 4096',
    ),
  );
});

test("plan - the default port sits beside the CNIs' VXLAN and Geneve devices", (t) => {
  // The member-cluster gateway runs in the node's namespace: Calico and Antrea (VXLAN)
  // use 4789, Flannel, Canal and Cilium 8472, Geneve CNIs 6081, Liqo 6091.
  const cni = [
    { name: 'vxlan.calico', kind: 'vxlan', port: 4789 },
    { name: 'flannel.1', kind: 'vxlan', port: 8472 },
    { name: 'genev_sys_6081', kind: 'geneve', port: 6081 },
    { name: 'liqo.geneve', kind: 'geneve', port: 6091 },
  ];
  t.deepEqual(planSteps(desired, { ...converged, foreignTunnels: cni }), []);
  t.deepEqual(
    planSteps(desired, { ...empty, foreignTunnels: cni }).map(describeStep),
    planSteps(desired, empty).map(describeStep),
  );
});

test('plan - a listenPort another socket holds is refused before any step', (t) => {
  // A CNI's WireGuard (Calico, Flannel, Antrea: 51820) on the port, in this namespace.
  const port = desired.tunnel.listenPort;
  const held = {
    ...empty,
    listenPortHolders: [
      { local: `0.0.0.0:${port}`, processes: [{ name: 'calico-node', pid: 42 }] },
    ],
  };
  const err = t.throws(() => planSteps(desired, held), { instanceOf: PreconditionError });
  t.is(err?.subject, 'wireguard.listenPort');
  t.regex(
    err?.message ?? '',
    new RegExp(`UDP ${port} is already in use .*calico-node \\(pid 42\\)`),
  );
  t.regex(err?.message ?? '', /set wireguard\.listenPort to a free port/);
  // A kernel socket (or a process in another PID namespace) shows no process: said so.
  const kernel = { ...empty, listenPortHolders: [{ local: `[::]:${port}`, processes: [] }] };
  t.throws(() => planSteps(desired, kernel), {
    instanceOf: PreconditionError,
    message: /a socket with no process in sight \(a kernel one, such as another WireGuard device's/,
  });
  // Moving a running tunnel onto a held port: refused too.
  t.throws(
    () =>
      planSteps(desired, {
        ...converged,
        tunnel: { ...tunnel, listenPort: 1 },
        listenPortHolders: held.listenPortHolders,
      }),
    {
      instanceOf: PreconditionError,
    },
  );
  // The tunnel's own socket on its own port is no clash.
  t.deepEqual(planSteps(desired, { ...converged, listenPortHolders: held.listenPortHolders }), []);
});

test('plan - no step ever prints the private key', (t) => {
  const text = planSteps(desired, empty).map(describeStep).join('\n');
  t.false(text.includes(PRIV));
});

test('plan - the guard admits each peer only for the VNIs it carries with us', (t) => {
  // b carries cdn and vod, c only cdn: c may not send vod's VNI.
  const two = parseGatewayConfig({
    ...config,
    networks: [
      ...config.networks,
      { name: 'vod', vni: 200, segment: { type: 'linux-bridge', bridge: 'br-vod' }, peers: ['b'] },
    ],
  });
  t.deepEqual(desiredState(two, PRIV).firewall.vxlanFrom, [
    { address: '198.19.255.2', vni: 100 },
    { address: '198.19.255.2', vni: 200 },
    { address: '198.19.255.3', vni: 100 },
  ]);
  // A network carried to nobody admits nobody; no network, no pair.
  const alone = parseGatewayConfig({
    ...config,
    networks: [{ ...config.networks[0]!, peers: [] }],
  });
  t.deepEqual(desiredState(alone, PRIV).firewall.vxlanFrom, []);
  // Granting vod to c changes the guard, and only the guard is re-set first.
  const before = {
    ...converged,
    firewall: { ...firewall, spec: desiredState(two, PRIV).firewall },
  };
  const granted = parseGatewayConfig({
    ...two,
    networks: two.networks.map((n) => (n.name === 'vod' ? { ...n, peers: ['b', 'c'] } : n)),
  });
  const steps = planSteps(desiredState(granted, PRIV), {
    ...before,
    segments: { ...before.segments, bridges: { ovs: [], 'linux-bridge': ['br-cdn', 'br-vod'] } },
  });
  t.is(steps[0]?.kind, 'firewall-set');
  t.deepEqual(steps[0]?.kind === 'firewall-set' ? steps[0].vxlanFrom : [], [
    { address: '198.19.255.2', vni: 100 },
    { address: '198.19.255.2', vni: 200 },
    { address: '198.19.255.3', vni: 100 },
    { address: '198.19.255.3', vni: 200 },
  ]);
});

test('plan - a peer re-set for another reason keeps the listed endpoint in use', (t) => {
  const two = parseGatewayConfig({
    ...config,
    peers: [{ ...config.peers[0]!, endpoints: ['198.18.0.9:51820', '198.18.0.2:51820'] }],
    networks: [],
  });
  const want = desiredState(two, PRIV);
  const peer = { ...tunnel.peers[0]!, endpoint: '198.18.0.2:51820' };
  const observed: ObservedDataplane = {
    ...converged,
    firewall: { ...firewall, spec: want.firewall },
    vxlans: [],
    segments: empty.segments,
  };
  // Fail-over moved it to the second endpoint: converged, nothing to do.
  t.deepEqual(planSteps(want, { ...observed, tunnel: { ...tunnel, peers: [peer] } }), []);
  // The keepalive differs: the peer is re-set, on the endpoint it uses.
  const steps = planSteps(want, {
    ...observed,
    tunnel: { ...tunnel, peers: [{ ...peer, persistentKeepalive: 0 }] },
  });
  t.deepEqual(steps.map(describeStep), [
    `set peer b (${KEY_B}) on l2fa: endpoint 198.18.0.2:51820, allowed 198.19.255.2/32, keepalive 25`,
  ]);
  // An endpoint that is not listed goes back to the first one.
  const reset = planSteps(want, {
    ...observed,
    tunnel: { ...tunnel, peers: [{ ...peer, endpoint: '198.18.7.7:1' }] },
  });
  t.deepEqual(reset.map(describeStep), [
    `set peer b (${KEY_B}) on l2fa: endpoint 198.18.0.9:51820, allowed 198.19.255.2/32, keepalive 25`,
  ]);
});
