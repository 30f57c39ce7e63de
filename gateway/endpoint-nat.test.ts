/**
 * Issue 12: a peer endpoint WireGuard roamed to (the peer is behind a port-translating
 * NAT) and proved by a recent handshake is never rewritten to the advertised one; once it
 * is stale the advertised endpoint comes back. The pure decision (endpointToKeep), the
 * planner over it (property), the Gateway over fakes (resync, restart, config changes)
 * and the health monitor (report, fail-over back to the advertised endpoint).
 */
import test from 'ava';
import fc from 'fast-check';
import {
  endpointSource,
  endpointToKeep,
  REJECT_AFTER_TIME_SECONDS,
  decideFailover,
} from './endpoint-failover.js';
import { parseGatewayConfig } from './config.js';
import { FIREWALL_VERSION } from './firewall.js';
import { Gateway } from './gateway.js';
import { HealthMonitor } from './health-monitor.js';
import { desiredState, type ObservedDataplane, type ObservedPeer } from './model.js';
import { planSteps } from './plan.js';
import { checkProperty } from '../test/fixtures/property.js';
import {
  gatewayOverFakes,
  KEY_B,
  KEY_C,
  madridConfig,
  PRIV,
} from '../test/fixtures/gateway-over-fakes.js';

const ADVERTISED = '198.18.0.2:51820';
const ADVERTISED_NEW = '198.18.0.9:51820';
const ROAMED = '203.0.113.7:40012'; // the NAT's translated source of the peer
const REMAPPED = '203.0.113.7:41090'; // the NAT picked another port mid-session
const NOW = 1_000_000;
const STALE = REJECT_AFTER_TIME_SECONDS;

// [what, endpoints, in use, handshake (0 = never), endpoint to keep]
const keeps: [string, string[], string | undefined, number, string | undefined][] = [
  ['roamed, handshake just now', [ADVERTISED], ROAMED, NOW, ROAMED],
  [
    'roamed, handshake 180 s ago (the last second of the session)',
    [ADVERTISED],
    ROAMED,
    NOW - STALE,
    ROAMED,
  ],
  ['roamed, handshake 181 s ago: stale', [ADVERTISED], ROAMED, NOW - STALE - 1, undefined],
  ['roamed, never a handshake (set by hand, not proven)', [ADVERTISED], ROAMED, 0, undefined],
  [
    'listed in use, stale: still kept (fail-over chose it)',
    [ADVERTISED, ADVERTISED_NEW],
    ADVERTISED_NEW,
    0,
    ADVERTISED_NEW,
  ],
  [
    'advertised list changed, roamed still proven: roamed wins',
    [ADVERTISED_NEW],
    ROAMED,
    NOW - 60,
    ROAMED,
  ],
  [
    'old advertised endpoint in use, proven: kept until stale',
    [ADVERTISED_NEW],
    ADVERTISED,
    NOW - 60,
    ADVERTISED,
  ],
  [
    'old advertised endpoint in use, stale: the new one',
    [ADVERTISED_NEW],
    ADVERTISED,
    NOW - 200,
    undefined,
  ],
  ['no endpoint at all', [ADVERTISED], undefined, NOW, undefined],
];
for (const [what, endpoints, endpoint, latestHandshake, want] of keeps) {
  test(`endpoint NAT - keep: ${what}`, (t) => {
    t.is(endpointToKeep(endpoints, { endpoint, latestHandshake }, NOW), want);
  });
}

test('endpoint NAT - source: advertised, roamed or none', (t) => {
  t.is(endpointSource([ADVERTISED], ADVERTISED), 'advertised');
  t.is(endpointSource([ADVERTISED], ROAMED), 'roamed');
  t.is(endpointSource([ADVERTISED], undefined), 'none');
});

const config = parseGatewayConfig(madridConfig('/k', []));
const want = desiredState(config, PRIV);

/** The converged data plane of `config`, with peer b as given. */
function observedWith(b: Partial<ObservedPeer>): ObservedDataplane {
  const peer = (p: (typeof want.tunnel.peers)[number]): ObservedPeer => ({
    publicKey: p.publicKey,
    endpoint: p.endpoint,
    allowedIps: p.allowedIps,
    latestHandshake: NOW - 5,
    rxBytes: 0,
    txBytes: 0,
    persistentKeepalive: p.persistentKeepalive,
  });
  const [pb, pc] = want.tunnel.peers as [
    (typeof want.tunnel.peers)[0],
    (typeof want.tunnel.peers)[0],
  ];
  return {
    firewall: { version: FIREWALL_VERSION, spec: want.firewall, intact: true },
    tunnel: {
      ifname: 'l2fa',
      up: true,
      mtu: want.tunnel.mtu,
      addresses: [want.tunnel.address],
      privateKey: PRIV,
      publicKey: undefined,
      listenPort: 51820,
      peers: [{ ...peer(pb), ...b }, peer(pc)],
    },
    vxlans: [],
    segments: { bridges: { ovs: [], 'linux-bridge': [] }, attachments: [] },
  };
}

test('endpoint NAT - plan: a proven roamed endpoint is converged, a stale one goes back to the advertised', (t) => {
  const fresh = observedWith({ endpoint: ROAMED, latestHandshake: NOW - 100 });
  t.deepEqual(planSteps(want, fresh, NOW), []);
  const stale = observedWith({ endpoint: ROAMED, latestHandshake: NOW - STALE - 1 });
  const steps = planSteps(want, stale, NOW);
  t.deepEqual(
    steps.map((s) => (s.kind === 'tunnel-set-peer' ? `${s.peer.name} ${s.peer.endpoint}` : s.kind)),
    [`b ${ADVERTISED}`],
  );
  // Re-set for another reason (keepalive): on the roamed endpoint while it is proven.
  const other = planSteps(
    want,
    {
      ...fresh,
      tunnel: {
        ...fresh.tunnel!,
        peers: fresh.tunnel!.peers.map((p) =>
          p.publicKey === KEY_B ? { ...p, persistentKeepalive: 0 } : p,
        ),
      },
    },
    NOW,
  );
  t.deepEqual(
    other.map((s) => (s.kind === 'tunnel-set-peer' ? `${s.peer.name} ${s.peer.endpoint}` : s.kind)),
    [`b ${ROAMED}`],
  );
});

test('endpoint NAT - plan property: no step ever moves a peer off an endpoint a recent handshake proved', async (t) => {
  const endpointArb = fc.constantFrom(ADVERTISED, ADVERTISED_NEW, ROAMED, REMAPPED, undefined);
  await checkProperty(
    t,
    'proven endpoints survive planning',
    fc.property(
      fc.subarray([ADVERTISED, ADVERTISED_NEW, '198.18.0.10:51820'], { minLength: 1 }),
      endpointArb,
      fc.oneof(fc.constant(0), fc.integer({ min: NOW - 2 * STALE, max: NOW + 5 })),
      fc.boolean(),
      (endpoints, endpoint, latestHandshake, keepaliveDiffers) => {
        const cfg = parseGatewayConfig({
          ...madridConfig('/k', []),
          peers: madridConfig('/k', []).peers!.map((p) =>
            p.publicKey === KEY_B ? { ...p, endpoints } : p,
          ),
        });
        const desired = desiredState(cfg, PRIV);
        const observed = observedWith({
          endpoint,
          latestHandshake,
          persistentKeepalive: keepaliveDiffers ? 7 : 25,
        });
        const steps = planSteps(desired, observed, NOW);
        const setB = steps.flatMap((s) =>
          s.kind === 'tunnel-set-peer' && s.peer.publicKey === KEY_B ? [s.peer.endpoint] : [],
        );
        const proven =
          endpoint !== undefined && latestHandshake > 0 && NOW - latestHandshake <= STALE;
        const listed = endpoint !== undefined && endpoints.includes(endpoint);
        if (proven || listed) {
          // Kept: either no step at all, or a re-set on the very same endpoint.
          if (setB.some((e) => e !== endpoint))
            throw new Error(`moved off ${endpoint}: ${setB.join(',')}`);
          if (!keepaliveDiffers && setB.length > 0) throw new Error('re-set a converged peer');
        } else if (setB.length !== 1 || setB[0] !== endpoints[0]) {
          throw new Error(
            `unproven ${String(endpoint)} should go to ${endpoints[0]}: ${setB.join(',')}`,
          );
        }
        // Peer c is converged and never touched.
        if (steps.some((s) => s.kind === 'tunnel-set-peer' && s.peer.publicKey === KEY_C)) {
          throw new Error('touched c');
        }
      },
    ),
  );
});

test('endpoint NAT - gateway: resyncs, a restart, config changes and a NAT remap keep the roamed endpoint; stale, the advertised one returns', async (t) => {
  let clock = NOW;
  const { dir, plane, runner } = await gatewayOverFakes(t, { linuxBridge: [] });
  const make = () => new Gateway({ runner, backends: () => plane.backends(), now: () => clock });
  let gw = make();
  const base = madridConfig(`${dir}/k`, []);
  const withB = (patch: object) => ({
    ...base,
    peers: base.peers!.map((p) => (p.publicKey === KEY_B ? { ...p, ...patch } : p)),
  });
  // The keepalive of the step before, and b advertises another endpoint.
  const moved = withB({ persistentKeepalive: 10, endpoints: [ADVERTISED_NEW] });
  await gw.apply(base);
  const peers = plane.tunnel.devices.get('l2fa')!.peers;
  const roam = (endpoint: string, at: number) => {
    peers.set(KEY_B, { ...peers.get(KEY_B)!, endpoint, latestHandshake: at });
  };
  roam(ROAMED, clock); // b's handshake came through its NAT
  plane.log.clear();

  clock += 30;
  t.deepEqual((await gw.apply(base)).steps, [], 'resync');
  gw = make(); // restart with the same config
  t.deepEqual((await gw.apply(base)).steps, [], 'restart');
  t.deepEqual((await gw.plan(base)).steps, [], 'dry run');
  const keepalive = await gw.apply(withB({ persistentKeepalive: 10 }));
  t.deepEqual(
    keepalive.steps.map((s) => (s.kind === 'tunnel-set-peer' ? s.peer.endpoint : s.kind)),
    [ROAMED],
  );
  t.deepEqual((await gw.apply(moved)).steps, [], 'advertised changed');
  t.is(peers.get(KEY_B)?.endpoint, ROAMED);

  const remapAt = clock + 10;
  roam(REMAPPED, remapAt); // the NAT remapped; WireGuard roamed again
  clock += 60;
  t.deepEqual((await gw.apply(moved)).steps, []);
  t.is(peers.get(KEY_B)?.endpoint, REMAPPED);

  // 181 s after the last handshake: stale, back to the (new) advertised endpoint.
  clock = remapAt + STALE;
  t.deepEqual((await gw.apply(moved)).steps, [], '180 s: still proven');
  clock = remapAt + STALE + 1;
  const back = await gw.apply(moved);
  t.deepEqual(
    back.steps.map((s) => (s.kind === 'tunnel-set-peer' ? s.peer.endpoint : s.kind)),
    [ADVERTISED_NEW],
  );
  t.is(peers.get(KEY_B)?.endpoint, ADVERTISED_NEW);
});

test('endpoint NAT - health: the report says roamed; a roamed endpoint that stops working goes back to the advertised one', async (t) => {
  let clock = NOW;
  let answering = true;
  const { dir, plane, runner, gw } = await gatewayOverFakes(
    t,
    { linuxBridge: [] },
    { now: () => clock },
  );
  runner
    .on(
      (a) => a[0] === 'ping',
      () => ({
        stdout: answering
          ? '3 packets transmitted, 3 received, 0% packet loss\nrtt min/avg/max/mdev = 0.1/0.2/0.3/0.1 ms'
          : '3 packets transmitted, 0 received, 100% packet loss',
      }),
    )
    .on('ip -s -j link show', { stdout: '[]' });
  await gw.apply(madridConfig(`${dir}/k`, []));
  const peers = plane.tunnel.devices.get('l2fa')!.peers;
  peers.set(KEY_B, { ...peers.get(KEY_B)!, endpoint: ROAMED, latestHandshake: NOW });
  const monitor = new HealthMonitor({ gateway: gw, runner, now: () => clock, prober: false });
  const b = async (at: number) => {
    clock = at;
    return (await monitor.check())!.peers.find((p) => p.publicKey === KEY_B)!;
  };
  plane.log.clear();
  let p = await b(NOW + 1);
  t.is(p.endpoint, ROAMED);
  t.is(p.endpointSource, 'roamed');
  t.is(p.status, 'up');
  for (const at of [NOW + 60, NOW + 120]) t.is((await b(at)).endpoint, ROAMED, 'working: stays');
  t.deepEqual(plane.log.mutations, []);

  // The NAT path breaks: probes fail and no handshake for longer than a re-handshake
  // takes. After the dwell the peer goes back to its advertised endpoint.
  answering = false;
  t.is((await b(NOW + 130)).endpoint, ROAMED);
  t.is((await b(NOW + 140)).endpoint, ROAMED, 'dwell');
  p = await b(NOW + 146);
  t.is(p.endpoint, ADVERTISED);
  t.is(p.endpointSource, 'advertised');
  t.deepEqual(plane.log.mutations, [`tunnel set-endpoint l2fa ${KEY_B} ${ADVERTISED}`]);
  // From there, one endpoint and it is the listed one: nothing more moves.
  plane.log.clear();
  for (const at of [NOW + 200, NOW + 400]) t.is((await b(at)).endpoint, ADVERTISED);
  t.deepEqual(plane.log.mutations, []);
});

test('endpoint NAT - fail-over decision: one endpoint, roamed and broken, goes back after the dwell', (t) => {
  const input = {
    endpoints: [ADVERTISED],
    current: ROAMED,
    latestHandshake: NOW - 100,
    probeFailed: true,
  };
  let d = decideFailover(undefined, { ...input, now: NOW });
  t.is(d.switchTo, undefined);
  t.false(d.working);
  d = decideFailover(d.state, { ...input, now: NOW + 14 });
  t.is(d.switchTo, undefined);
  d = decideFailover(d.state, { ...input, now: NOW + 15 });
  t.is(d.switchTo, ADVERTISED);
  // Working (probe answered, handshake fresh): a roamed endpoint is never moved.
  const ok = decideFailover(undefined, {
    ...input,
    probeFailed: false,
    latestHandshake: NOW + 995,
    now: NOW + 1000,
  });
  t.true(ok.working);
  t.is(
    decideFailover(ok.state, {
      ...input,
      probeFailed: false,
      latestHandshake: NOW + 1995,
      now: NOW + 2000,
    }).switchTo,
    undefined,
  );
});

test('endpoint NAT - handshake watch: every renewal after a key rotation keeps the proven roamed endpoint', async (t) => {
  const NEXT_PRIV = 'aMKMzV+dDlD2mRfyA1d1MZn8lkqGmYlGZ5NMkmJ4F0I=';
  const NEXT_PUB = 'eQ0yYfXh3vXz0mB8m0mJ7kQyq3cM3n6JtWcX0b5c1Fs='; // this side retries for c
  const clock = NOW;
  const { dir, plane, runner, gw } = await gatewayOverFakes(
    t,
    { linuxBridge: [] },
    { handshakeWatch: { intervalMs: 20, forMs: 2000 }, now: () => clock },
  );
  t.teardown(() => gw.teardown());
  const config = madridConfig(`${dir}/k`, []);
  await gw.apply(config);
  const peers = plane.tunnel.devices.get('l2fa')!.peers;
  peers.set(KEY_C, { ...peers.get(KEY_C)!, endpoint: ROAMED, latestHandshake: NOW - 30 });
  runner.once('wg genkey', { stdout: NEXT_PRIV }).once('wg pubkey', { stdout: NEXT_PUB });
  await gw.rotateKey();
  plane.log.clear();
  runner.once('wg pubkey', { stdout: NEXT_PUB });
  await gw.apply(config);
  const endpoints: string[] = [];
  for (let i = 0; i < 6; i++) {
    await new Promise((r) => setTimeout(r, 25));
    endpoints.push(peers.get(KEY_C)?.endpoint ?? '(none)');
  }
  const renewed = plane.log.mutations.filter((m) => m === 'tunnel renew-peer l2fa c');
  t.true(renewed.length >= 2, `renewed ${renewed.length} times`);
  t.deepEqual([...new Set(endpoints)], [ROAMED]);
});
