/**
 * The cost of a health check (issue 18): process starts per check must not grow with the
 * number of peers; in-tunnel echoes and probe frames go through one long-lived helper.
 */
import test, { type ExecutionContext } from 'ava';
import { FakeDataPlane } from './dataplane-fake.js';
import { Gateway } from './gateway.js';
import { HealthMonitor } from './health-monitor.js';
import type { HealthReport } from './health.js';
import { SpawningFakeRunner } from './prober-fake.js';
import { jitteredDelay } from './prober.js';
import { PRIV, PUB } from '../test/fixtures/gateway-over-fakes.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const key = (i: number) => Buffer.alloc(32, i + 1).toString('base64');

/** madrid over fakes with `n` shaken-hands peers, all carrying network cdn (MTU known). */
async function rig(t: ExecutionContext, n: number, o: { probeRefreshPeers?: number } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const plane = new FakeDataPlane({ linuxBridge: ['br-cdn'] });
  const runner = new SpawningFakeRunner()
    .on('wg genkey', { stdout: PRIV })
    .on('wg pubkey', { stdout: PUB })
    .on((a) => a[0] === 'ping', {
      stdout: '3 packets transmitted, 3 received\nrtt min/avg/max/mdev = 1/2.0/3/0.5 ms',
    })
    .on((a) => a[0] === 'python3', { stdout: 'sent l2fv100\n' })
    .on('ip -s -j link show', {
      stdout: JSON.stringify([
        { ifname: 'l2fv100', flags: ['UP'], stats64: { rx: { packets: 1 }, tx: { packets: 1 } } },
      ]),
    });
  runner.helper.links = [{ ifname: 'l2fv100', up: true, rx: 1, tx: 1 }];
  const gw = new Gateway({ runner, backends: () => plane.backends() });
  const peers = Array.from({ length: n }, (_, i) => ({
    name: `p${i}`,
    publicKey: key(i),
    endpoints: [`198.18.${Math.floor(i / 200)}.${(i % 200) + 2}:51820`],
    transitAddress: `198.19.255.${i + 2}`,
  }));
  await gw.apply({
    identity: 'madrid',
    wireguard: { ifname: 'l2fa', listenPort: 51820, privateKeyFile: join(dir, 'k') },
    transitAddress: '198.19.255.1/24',
    peers,
    networks: [
      {
        name: 'cdn',
        vni: 100,
        segment: { type: 'linux-bridge', bridge: 'br-cdn' },
        peers: peers.map((p) => p.name),
      },
    ],
  });
  const clock = { now: 1_000_000 };
  for (const p of peers) plane.tunnel.handshake('l2fa', p.publicKey, clock.now - 5);
  const monitor = new HealthMonitor({ gateway: gw, runner, now: () => clock.now, ...o });
  t.teardown(() => monitor.stop());
  /** Every peer but `except` sent through the tunnel (as an idle peer's probe frames do). */
  const traffic = (except: readonly string[] = []) => {
    for (const p of peers)
      if (!except.includes(p.name)) plane.tunnel.received('l2fa', p.publicKey, 98);
  };
  return { runner, monitor, plane, peers, clock, traffic };
}

/** Process starts of each of checks 2..4 (the first may start the helper). */
async function startsPerCheck(t: ExecutionContext, n: number) {
  const { runner, monitor } = await rig(t, n);
  const h = await monitor.check();
  t.is(h?.peers.filter((p) => p.status === 'up').length, n);
  const counts: number[] = [];
  const batches0 = runner.helper.batches;
  for (let i = 0; i < 3; i++) {
    const before = runner.calls.length;
    await monitor.check();
    counts.push(runner.calls.length - before);
  }
  return { counts, runner, batches: runner.helper.batches - batches0 };
}

test('health cost - process starts per check do not grow with peers (1, 10, 50)', async (t) => {
  const one = await startsPerCheck(t, 1);
  for (const n of [10, 50]) {
    const many = await startsPerCheck(t, n);
    t.deepEqual(many.counts, one.counts, `${n} peers vs 1 peer`);
    t.is(many.runner.helper.started, 1, 'one helper, started once');
    t.is(many.batches, 3, 'one echo request per check for all peers');
  }
  t.true(
    one.counts.every((c) => c <= 1),
    `starts per check: ${one.counts.join(' ')}`,
  );
});

test('health cost - with the helper running a check starts no process: counters come from the helper', async (t) => {
  const { counts, runner } = await startsPerCheck(t, 10);
  t.deepEqual(counts, [0, 0, 0], 'process starts per check');
  t.true(runner.helper.linkReads >= 3, 'one counter read per check through the helper');
});

test('health cost - counters from the helper judge a network as ip -s -j link did', async (t) => {
  const { runner, monitor } = await rig(t, 1);
  const first = await monitor.check();
  t.like(first?.networks[0], { device: 'l2fv100', rxPackets: 1, txPackets: 1 });
  runner.helper.links = [{ ifname: 'l2fv100', up: false, rx: 5, tx: 7 }];
  const second = await monitor.check();
  t.like(second?.networks[0], { rxPackets: 5, txPackets: 7, status: 'down' });
});

test('health - tx_dropped of a VXLAN device (read by the helper) degrades its network while it grows', async (t) => {
  const { runner, monitor } = await rig(t, 1);
  runner.helper.links = [{ ifname: 'l2fv100', up: true, rx: 1, tx: 1, txd: 40 }];
  const first = await monitor.check();
  t.is(first?.networks[0]?.status, 'ok', "drops before the first read are not this check's");
  runner.helper.links = [{ ifname: 'l2fv100', up: true, rx: 9, tx: 9, txd: 52 }];
  const second = await monitor.check();
  t.is(second?.networks[0]?.status, 'degraded');
  t.regex(second?.networks[0]?.reason ?? '', /dropped 12 frames on their way to peers/);
  runner.helper.links = [{ ifname: 'l2fv100', up: true, rx: 20, tx: 20, txd: 52 }];
  t.is((await monitor.check())?.networks[0]?.status, 'ok', 'no new drops: ok again');
});

test('health cost - path MTU through the helper: same probes as with ping (needed DF, small, search from the last answer)', async (t) => {
  const { runner, monitor } = await rig(t, 1);
  const B = '198.19.255.2';
  runner.helper.answer = (_a, bytes) => bytes <= 1340;
  const h = await monitor.check();
  t.is(h?.peers[0]?.status, 'degraded');
  t.deepEqual(h?.peers[0]?.pathMtu, { needed: 1420, measured: 1340, cannotCarry: ['cdn'] });
  runner.helper.echoes.length = 0;
  await monitor.check();
  t.deepEqual(runner.helper.echoes, [`${B} 1420 DF`, `${B} 84`, `${B} 1340 DF`, `${B} 1341 DF`]);
  t.false(
    runner.calls.some((c) => c.argv[0] === 'ping'),
    'no ping process',
  );
  t.deepEqual(runner.helper.frames.at(-1), ['l2fv100']);
});

test('health cost - a helper that cannot run: one ping per echo and a python3 run, as before; not restarted every check', async (t) => {
  const { runner, monitor } = await rig(t, 2);
  runner.helper.refuse = '[Errno 1] Operation not permitted';
  const h = await monitor.check();
  t.is(h?.peers.filter((p) => p.status === 'up').length, 2);
  t.is(runner.calls.filter((c) => c.argv[0] === 'ping').length, 2);
  t.is(runner.calls.filter((c) => c.argv[0] === 'python3').length, 2, 'one spawn, one run');
  await monitor.check();
  t.is(runner.helper.started, 1, 'retried after a minute, not every check');
  t.is(runner.calls.filter((c) => c.argv[0] === 'ping').length, 4);
});

test('health cost - jitter: the next check comes 0.75..1 interval later, never later', (t) => {
  t.is(jitteredDelay(2000, 0), 2000);
  t.is(jitteredDelay(2000, 1), 1500);
  t.is(jitteredDelay(2000, 0.5, 0.1), 1900);
  t.is(jitteredDelay(2000, 7), 1500);
});

test('health cost - echoes failing in a running helper fall back to ping for that check', async (t) => {
  const { runner, monitor } = await rig(t, 3);
  await monitor.check();
  runner.helper.failEchoes = 'socket gone';
  const h = await monitor.check();
  t.is(h?.peers.filter((p) => p.status === 'up').length, 3);
  t.is(runner.calls.filter((c) => c.argv[0] === 'ping').length, 3);
});

test('health cost - the echo request to the helper costs ≤ 26 bytes per IPv4 peer (compact arrays, not objects)', async (t) => {
  // 1 and 100 peers: what a check writes to the helper grows with peers by this much only.
  const line = async (n: number) => {
    const { runner, monitor } = await rig(t, n);
    await monitor.check();
    runner.helper.echoLines.length = 0;
    await monitor.check();
    t.is(runner.helper.echoLines.length, 1, 'one echo request per check');
    return runner.helper.echoLines[0]!;
  };
  const one = await line(1);
  const many = await line(100);
  t.is(many.probes, 100);
  const perPeer = (many.bytes - one.bytes) / 99;
  // ["198.19.255.2",1392,1], is 24 B; {"addr":"198.19.255.2","data":1392,"df":true}, was 47.
  t.true(perPeer <= 26, `${perPeer.toFixed(1)} B per peer`);
});

/** Echo requests (one per probed peer) of one check, by address. */
async function echoesOf(
  runner: SpawningFakeRunner,
  check: () => Promise<unknown>,
): Promise<string[]> {
  const from = runner.helper.echoes.length;
  await check();
  return runner.helper.echoes.slice(from).map((e) => e.split(' ')[0]!);
}

test('health cost - echoes per check stop growing with peers once the tunnel vouches for them (8 at 8, 50 and 100 peers)', async (t) => {
  for (const n of [8, 50, 100]) {
    const { runner, monitor, traffic } = await rig(t, n);
    await monitor.check(); // every peer's first probe
    const counts: number[] = [];
    for (let i = 0; i < 4; i++) {
      traffic();
      counts.push((await echoesOf(runner, () => monitor.check())).length);
    }
    // Before probe-schedule.ts: n echoes per check.
    t.deepEqual(counts, [8, 8, 8, 8], `${n} peers`);
  }
});

test('health - with no more peers than the refresh count every peer is probed every check, traffic or not (small federations as before)', async (t) => {
  const { runner, monitor, traffic } = await rig(t, 5, { probeRefreshPeers: 8 });
  await monitor.check();
  traffic();
  t.is((await echoesOf(runner, () => monitor.check())).length, 5);
  t.is((await echoesOf(runner, () => monitor.check())).length, 5, 'no traffic');
});

test('health - without traffic through the tunnel every peer is probed every check', async (t) => {
  const { runner, monitor } = await rig(t, 30);
  await monitor.check();
  t.is((await echoesOf(runner, () => monitor.check())).length, 30);
});

test('health - a peer whose receive counter stops is probed in that same check: dead → down at once', async (t) => {
  const { runner, monitor, traffic, clock } = await rig(t, 100);
  await monitor.check();
  for (let i = 0; i < 3; i++) {
    clock.now += 10;
    traffic();
    await monitor.check();
  }
  const dead = '198.19.255.59'; // p57
  runner.helper.answer = (addr) => addr !== dead;
  clock.now += 10;
  traffic(['p57']);
  const sent: string[] = [];
  let h: HealthReport | undefined;
  sent.push(...(await echoesOf(runner, async () => (h = await monitor.check()))));
  t.true(sent.includes(dead), 'p57 probed');
  const p57 = h!.peers.find((p) => p.name === 'p57');
  t.like(p57, { status: 'down', probeAgeSeconds: 0 });
  t.regex(p57?.reason ?? '', /no answer/);
  t.is(h!.peers.filter((p) => p.status === 'up').length, 99);
  // A peer kept from an earlier check says how old its probe is.
  const kept = h!.peers.find(
    (p) => p.name !== 'p57' && !sent.includes(`198.19.255.${Number(p.name.slice(1)) + 2}`),
  );
  t.truthy(kept);
  t.true((kept?.probeAgeSeconds ?? 0) >= 10, `probeAgeSeconds ${kept?.probeAgeSeconds}`);
  // It stays probed every check while down, traffic or not.
  clock.now += 10;
  traffic();
  t.true((await echoesOf(runner, () => monitor.check())).includes(dead));
});

test('health - every peer is re-measured within ceil(peers / refresh) checks (RTT, loss, path MTU stay fresh)', async (t) => {
  const { runner, monitor, traffic, peers } = await rig(t, 100, { probeRefreshPeers: 8 });
  await monitor.check();
  const seen = new Set<string>();
  for (let i = 0; i < 13; i++) {
    traffic();
    for (const a of await echoesOf(runner, () => monitor.check())) seen.add(a);
  }
  t.is(seen.size, 100, `probed in 13 checks: ${seen.size} of ${peers.length}`);
});

test('health - a lossy peer the tunnel vouches for is degraded by its turn of the refresh at the latest', async (t) => {
  const { runner, monitor, traffic } = await rig(t, 20, { probeRefreshPeers: 4 });
  await monitor.check();
  const lossy = '198.19.255.15'; // p13
  runner.helper.answer = (addr, bytes) => addr !== lossy || bytes < 100; // needed size lost
  let status = 'up';
  let checks = 0;
  while (status === 'up' && checks < 10) {
    traffic();
    const h = await monitor.check();
    status = h?.peers.find((p) => p.name === 'p13')?.status ?? 'missing';
    checks++;
  }
  t.is(status, 'degraded');
  t.true(checks <= 5, `seen after ${checks} checks (20 peers / 4 per check)`);
});

test('health cost - a helper failing mid-check costs a ping only for the peers that must be probed, not for those probed in turn', async (t) => {
  const { runner, monitor, traffic, clock } = await rig(t, 100);
  await monitor.check();
  clock.now += 10;
  traffic();
  await monitor.check();
  runner.helper.failEchoes = 'probe helper: no answer in 10000 ms';
  clock.now += 10;
  traffic(['p3']); // p3's counter stops: it must be probed
  const pings0 = runner.calls.filter((c) => c.argv[0] === 'ping').length;
  const h = await monitor.check();
  const pings = runner.calls.filter((c) => c.argv[0] === 'ping').slice(pings0);
  // Before: one ping for p3 and one for each of the 8 peers probed in turn.
  t.deepEqual(
    pings.map((c) => c.argv.at(-1)),
    ['198.19.255.5'],
    'p3 only',
  );
  t.is(h?.peers.filter((p) => p.status === 'up').length, 100);
  t.is(
    h?.peers.filter((p) => p.probeAgeSeconds === 0).length,
    1,
    'p3 measured now, the others kept',
  );
});

test('health - a peer that dies right after answering its turn is probed and down in the next check (its replies are not taken for its traffic)', async (t) => {
  const { runner, monitor, traffic, clock, plane, peers } = await rig(t, 20);
  const byAddr = new Map(peers.map((p) => [p.transitAddress, p.publicKey]));
  const dead = new Set<string>();
  // As WireGuard counts them: an answered echo adds the reply's bytes to the peer's counter.
  runner.helper.answer = (addr, bytes) => {
    if (dead.has(addr)) return false;
    plane.tunnel.received('l2fa', byAddr.get(addr)!, bytes + 32);
    return true;
  };
  await monitor.check();
  clock.now += 10;
  traffic();
  const inTurn = await echoesOf(runner, () => monitor.check());
  t.is(inTurn.length, 8, 'probed in turn: 8 of 20');
  const victim = inTurn[0]!;
  dead.add(victim);
  clock.now += 10;
  traffic(peers.filter((p) => p.transitAddress === victim).map((p) => p.name));
  let h: HealthReport | undefined;
  const sent = await echoesOf(runner, async () => (h = await monitor.check()));
  t.true(sent.includes(victim), 'the victim is probed');
  // Before: vouched for by its own replies to the last check's echoes, reported up.
  t.like(
    h?.peers.find((p) => p.name === peers.find((x) => x.transitAddress === victim)?.name),
    { status: 'down', probeAgeSeconds: 0 },
  );
});

test('health - a peer on another endpoint than when probed is probed again (fast fail-over between checks, roam)', async (t) => {
  const { runner, monitor, traffic, clock, plane, peers } = await rig(t, 20);
  await monitor.check();
  clock.now += 10;
  traffic();
  await monitor.check();
  // In turn: p0..p7 in check 2, p8..p15 in check 3; p17 not before check 4.
  const p17 = peers[17]!;
  await plane.tunnel.setPeerEndpoint('l2fa', p17.publicKey, '203.0.113.9:51820');
  clock.now += 10;
  traffic();
  const sent = await echoesOf(runner, () => monitor.check());
  t.is(sent.length, 9, 'the 8 in turn and p17');
  t.true(sent.includes(p17.transitAddress), `probed: ${sent.join(' ')}`);
});

test('health - checks asked for at once run one after the other (a check keeps per-peer state on the monitor across its awaits)', async (t) => {
  const { monitor, plane } = await rig(t, 3);
  await monitor.check();
  // Each check reads the tunnel twice (at its start, and once its echoes are answered).
  const events: string[] = [];
  const read = plane.tunnel.read.bind(plane.tunnel);
  plane.tunnel.read = (ifname) => {
    events.push('read');
    return read(ifname);
  };
  const a = monitor.check().then(() => events.push('first done'));
  const b = monitor.check().then(() => events.push('second done'));
  await Promise.all([a, b]);
  t.deepEqual(events, ['read', 'read', 'first done', 'read', 'read', 'second done']);
});
