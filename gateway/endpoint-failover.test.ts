import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeRunner } from '../lib/runner-fake.js';
import { FakeDataPlane } from './dataplane-fake.js';
import fc from 'fast-check';
import {
  DEFAULT_FAILOVER_POLICY,
  decideFailover,
  dwellFor,
  failoverSettled,
  type FailoverState,
} from './endpoint-failover.js';
import { Gateway } from './gateway.js';
import { HealthMonitor } from './health-monitor.js';
import { GatewayMetrics } from './metrics.js';

const A = '198.18.0.2:51820';
const B = '198.18.0.12:51820';
const C = '198.18.0.22:51820';
const X = '203.0.113.7:40000'; // unlisted (NAT / resolved DNS name)

/** [now, endpoint WireGuard reports, latest handshake (0 = never), expected switch, probe failed] */
type Tick = [number, string | undefined, number, string | undefined, boolean?];

const cases: { name: string; endpoints: string[]; ticks: Tick[]; failovers: number }[] = [
  {
    name: 'one endpoint never moves',
    endpoints: [A],
    ticks: [
      [1000, A, 0, undefined],
      [1020, A, 0, undefined],
      [1500, A, 0, undefined],
    ],
    failovers: 0,
  },
  {
    name: 'no handshake: the first endpoint gets 15 s, then the next',
    endpoints: [A, B],
    ticks: [
      [1000, A, 0, undefined],
      [1010, A, 0, undefined],
      [1014, A, 0, undefined],
      [1015, A, 0, B],
    ],
    failovers: 1,
  },
  {
    name: 'after a switch the new endpoint gets its own 15 s; round robin wraps',
    endpoints: [A, B],
    ticks: [
      [1000, A, 0, undefined],
      [1015, A, 0, B],
      [1020, B, 0, undefined],
      [1029, B, 0, undefined],
      [1030, B, 0, A],
    ],
    failovers: 2,
  },
  {
    name: 'a handshake on the new endpoint: it stays there',
    endpoints: [A, B],
    ticks: [
      [1000, A, 0, undefined],
      [1015, A, 0, B],
      [1020, B, 1018, undefined],
      [1100, B, 1018, undefined],
      [1198, B, 1018, undefined], // 180 s: still a session
      [1300, B, 1290, undefined],
    ],
    failovers: 1,
  },
  {
    name: 'a working tunnel with a handshake older than 15 s is never moved',
    endpoints: [A, B],
    ticks: [
      [1000, A, 900, undefined],
      [1030, A, 900, undefined],
      [1080, A, 900, undefined], // 180 s old
    ],
    failovers: 0,
  },
  {
    name: 'a handshake older than 180 s is no session: 15 s later, the next endpoint',
    endpoints: [A, B],
    ticks: [
      [1000, A, 990, undefined],
      [1170, A, 990, undefined], // last seen working
      [1175, A, 990, undefined],
      [1184, A, 990, undefined],
      [1185, A, 990, B],
    ],
    failovers: 1,
  },
  {
    name: 'a path that breaks under a live session: probe dead, no re-handshake for 20 s, 15 s later the next',
    endpoints: [A, B],
    ticks: [
      [1000, A, 990, undefined, false],
      [1010, A, 990, undefined, true], // 20 s: WireGuard may still be re-handshaking
      [1011, A, 990, undefined, true], // 21 s and nothing back: broken
      [1024, A, 990, undefined, true],
      [1025, A, 990, B, true],
    ],
    failovers: 1,
  },
  {
    name: 'a lost probe with a recent handshake is no broken path',
    endpoints: [A, B],
    ticks: [
      [1000, A, 995, undefined, true],
      [1030, A, 1020, undefined, true],
      [1060, A, 1050, undefined, true],
    ],
    failovers: 0,
  },
  {
    name: 'three endpoints in order',
    endpoints: [A, B, C],
    ticks: [
      [1000, A, 0, undefined],
      [1015, A, 0, B],
      [1030, B, 0, C],
      [1045, C, 0, A],
    ],
    failovers: 3,
  },
  {
    name: 'every full round without a handshake doubles the wait, up to 120 s',
    endpoints: [A, B],
    ticks: [
      [1000, A, 0, undefined],
      [1015, A, 0, B],
      [1030, B, 0, A],
      [1059, A, 0, undefined],
      [1060, A, 0, B], // 30 s
      [1090, B, 0, A],
      [1149, A, 0, undefined],
      [1150, A, 0, B], // 60 s
      [1210, B, 0, A],
      [1329, A, 0, undefined],
      [1330, A, 0, B], // 120 s
      [1450, B, 0, A],
      [1569, A, 0, undefined],
      [1570, A, 0, B], // still 120 s
    ],
    failovers: 9,
  },
  {
    name: 'success resets the back-off',
    endpoints: [A, B],
    ticks: [
      [1000, A, 0, undefined],
      [1015, A, 0, B],
      [1030, B, 0, A],
      [1040, A, 1039, undefined],
      [1219, A, 1039, undefined], // last seen working
      [1233, A, 1039, undefined],
      [1234, A, 1039, B], // 15 s is the dwell again
    ],
    failovers: 3,
  },
  {
    name: 'WireGuard roamed to another listed endpoint: that one gets a full chance',
    endpoints: [A, B, C],
    ticks: [
      [1000, A, 0, undefined],
      [1010, B, 0, undefined],
      [1024, B, 0, undefined],
      [1025, B, 0, C],
    ],
    failovers: 1,
  },
  {
    name: 'an unlisted endpoint at the start counts as the first (a resolved DNS name)',
    endpoints: [A, B],
    ticks: [
      [1000, X, 0, undefined],
      [1015, X, 0, B],
      [1030, B, 0, A],
    ],
    failovers: 2,
  },
  {
    name: 'an unlisted endpoint later keeps our position',
    endpoints: [A, B, C],
    ticks: [
      [1000, A, 0, undefined],
      [1015, A, 0, B],
      [1020, X, 0, undefined],
      [1030, X, 0, C],
    ],
    failovers: 2,
  },
  {
    name: 'no endpoint at all: the first one',
    endpoints: [A, B],
    ticks: [
      [1000, undefined, 0, undefined],
      [1015, undefined, 0, A],
    ],
    failovers: 1,
  },
];

for (const c of cases) {
  test(`endpoint fail-over - ${c.name}`, (t) => {
    let state: FailoverState | undefined;
    for (const [now, current, latestHandshake, want, probeFailed] of c.ticks) {
      const d = decideFailover(state, {
        now,
        endpoints: c.endpoints,
        current,
        latestHandshake,
        probeFailed,
      });
      t.is(d.switchTo, want, `at ${now}`);
      state = d.state;
    }
    t.is(state?.failovers, c.failovers);
  });
}

test('endpoint fail-over - a new endpoint list starts over and keeps the count', (t) => {
  let d = decideFailover(undefined, { now: 0, endpoints: [A, B], current: A, latestHandshake: 0 });
  d = decideFailover(d.state, { now: 15, endpoints: [A, B], current: A, latestHandshake: 0 });
  t.is(d.switchTo, B);
  // The list changes (and the apply set its first endpoint): a fresh 15 s.
  d = decideFailover(d.state, { now: 20, endpoints: [C, A], current: C, latestHandshake: 0 });
  t.is(d.switchTo, undefined);
  d = decideFailover(d.state, { now: 34, endpoints: [C, A], current: C, latestHandshake: 0 });
  t.is(d.switchTo, undefined);
  d = decideFailover(d.state, { now: 35, endpoints: [C, A], current: C, latestHandshake: 0 });
  t.is(d.switchTo, A);
  t.is(d.state.failovers, 2);
});

const dwells: [attempts: number, n: number, seconds: number][] = [
  [0, 2, 15],
  [1, 2, 15],
  [2, 2, 30],
  [4, 2, 60],
  [6, 2, 120],
  [100, 2, 120],
  [2, 3, 15],
  [3, 3, 30],
];
for (const [attempts, n, seconds] of dwells) {
  test(`endpoint fail-over - dwell after ${attempts} switches among ${n}: ${seconds} s`, (t) => {
    t.is(dwellFor(attempts, n, DEFAULT_FAILOVER_POLICY), seconds);
  });
}

const KEY_B = 'd8qybrWZ7bF7LGkGFhINlkloK0uydL5I6KvaA22Rjw8=';

async function setup(t: ExecutionContext, endpoints: string[], failover?: false) {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const plane = new FakeDataPlane({ linuxBridge: ['br-cdn'] });
  let answering = false; // the peer answers the in-tunnel probe once hands are shaken
  const runner = new FakeRunner()
    .on('wg genkey', { stdout: 'cLQ4P5JQ6UT3MtnA1w6/ZbP1/bWV3pN0ul5IwRUl3Eg=' })
    .on('wg pubkey', { stdout: 'U9uE2cVR2J5ZkTJxpE0r0Y4jPSVbH8Q5YkNnx2XqkCc=' })
    .on(
      (a) => a[0] === 'ping',
      () => ({
        stdout: answering
          ? '3 packets transmitted, 3 received, 0% packet loss\nrtt min/avg/max/mdev = 0.1/0.2/0.3/0.1 ms'
          : '3 packets transmitted, 0 received, 100% packet loss',
      }),
    )
    .on('ip -s -j link show', { stdout: '[]' });
  const metrics = new GatewayMetrics('madrid');
  const gateway = new Gateway({ runner, backends: () => plane.backends(), metrics });
  const config = {
    identity: 'madrid',
    wireguard: { ifname: 'l2fa', listenPort: 51820, privateKeyFile: join(dir, 'k') },
    transitAddress: '198.19.255.1/24',
    peers: [{ name: 'bristol', publicKey: KEY_B, endpoints, transitAddress: '198.19.255.2' }],
    networks: [],
  };
  await gateway.apply(config);
  let clock = 1000;
  const monitor = new HealthMonitor({ gateway, runner, metrics, failover, now: () => clock });
  const shakeHands = (at: number) => {
    answering = true;
    const peers = plane.tunnel.devices.get('l2fa')!.peers;
    peers.set(KEY_B, { ...peers.get(KEY_B)!, latestHandshake: at });
  };
  const check = async (at: number) => {
    clock = at;
    return (await monitor.check())!.peers[0]!;
  };
  return { plane, gateway, metrics, config, check, shakeHands };
}

test('endpoint fail-over - the health check moves a dead peer once, then stays', async (t) => {
  const { plane, gateway, metrics, config, check, shakeHands } = await setup(t, [A, B]);
  plane.log.clear();
  let p = await check(1000);
  t.is(p.endpoint, A);
  t.is(p.endpointFailovers, 0);
  t.is((await check(1010)).endpoint, A);
  t.deepEqual(plane.log.mutations, []);

  p = await check(1015);
  t.is(p.endpoint, B, 'the report shows the endpoint switched to');
  t.is(p.endpointFailovers, 1);
  t.deepEqual(plane.log.mutations, [`tunnel set-endpoint l2fa ${KEY_B} ${B}`]);
  t.is(plane.tunnel.devices.get('l2fa')!.peers.get(KEY_B)?.endpoint, B);
  t.deepEqual(plane.tunnel.devices.get('l2fa')!.peers.get(KEY_B)?.allowedIps, ['198.19.255.2/32']);
  t.regex(
    await metrics.registry.metrics(),
    /l2fed_gateway_endpoint_failovers_total\{peer="bristol",gateway="madrid"\} 1/,
  );

  // B answers: from now on the peer stays, however long the checks go on.
  shakeHands(1017);
  plane.log.clear();
  for (const at of [1020, 1040, 1100, 1190]) {
    p = await check(at);
    t.is(p.endpoint, B);
  }
  t.is(p.endpointFailovers, 1);
  t.deepEqual(plane.log.mutations, []);

  // Re-applying the same config keeps B (one of the listed endpoints): nothing runs.
  const again = await gateway.apply(config);
  t.deepEqual(again.steps, []);
  t.deepEqual(plane.log.mutations, []);
});

test('endpoint fail-over - one endpoint, or turned off: the health check changes nothing', async (t) => {
  const one = await setup(t, [A]);
  one.plane.log.clear();
  for (const at of [1000, 1015, 1030, 1100]) t.is((await one.check(at)).endpointFailovers, 0);
  t.deepEqual(one.plane.log.mutations, []);
  t.regex(
    await one.metrics.registry.metrics(),
    /l2fed_gateway_endpoint_failovers_total\{peer="bristol",gateway="madrid"\} 0/,
  );
  const off = await setup(t, [A, B], false);
  off.plane.log.clear();
  for (const at of [1000, 1015, 1030, 1100]) t.is((await off.check(at)).endpoint, A);
  t.deepEqual(off.plane.log.mutations, []);
});

test('endpoint fail-over - a failed switch is retried at the next check', async (t) => {
  const { plane, check } = await setup(t, [A, B]);
  await check(1000);
  plane.log.failNext('tunnel set-endpoint');
  const p = await check(1015);
  t.is(p.endpoint, A);
  t.is(p.endpointFailovers, 0);
  t.is((await check(1016)).endpoint, B);
});

test('failoverSettled: whenever it holds, decideFailover keeps the state as it is and switches nothing (the health check skips such peers)', (t) => {
  const endpoint = fc.constantFrom('192.0.2.1:51820', '192.0.2.2:51820', '[2001:db8::1]:51820');
  const echoes = fc.option(
    fc.record({
      answered: fc.boolean(),
      lost: fc.integer({ min: 0, max: 20 }),
      lostSince: fc.integer({ min: 0, max: 2000 }),
    }),
    { nil: undefined },
  );
  // The settled case built directly (one endpoint, in use, the state's), with everything
  // else random: a generator that stumbles on it hit it ~5 times in 3,000.
  fc.assert(
    fc.property(
      endpoint,
      fc.record({
        since: fc.integer({ min: 0, max: 2000 }),
        attempts: fc.integer({ min: 0, max: 5 }),
        failovers: fc.integer({ min: 0, max: 5 }),
      }),
      fc.integer({ min: 0, max: 2000 }),
      fc.integer({ min: 0, max: 2000 }),
      fc.boolean(),
      echoes,
      (e, rest, now, latestHandshake, probeFailed, run) => {
        const prev: FailoverState = { endpoints: [e], index: 0, ...rest };
        t.true(failoverSettled(prev, [e], e));
        const d = decideFailover(prev, {
          now,
          endpoints: [e],
          current: e,
          latestHandshake,
          probeFailed,
          ...(run ? { echoes: run } : {}),
        });
        t.is(d.state, prev);
        t.is(d.switchTo, undefined);
      },
    ),
    { numRuns: 1000 },
  );
  // And it never holds where decideFailover may act: a random input that it accepts is
  // also kept as it is.
  fc.assert(
    fc.property(
      fc.array(endpoint, { minLength: 0, maxLength: 3 }),
      fc.option(endpoint, { nil: undefined }),
      fc.record({
        endpoints: fc.array(endpoint, { minLength: 0, maxLength: 3 }),
        index: fc.integer({ min: -1, max: 2 }),
        since: fc.integer({ min: 0, max: 2000 }),
        attempts: fc.integer({ min: 0, max: 5 }),
        failovers: fc.integer({ min: 0, max: 5 }),
      }),
      fc.integer({ min: 0, max: 2000 }),
      echoes,
      (endpoints, current, prev, now, run) => {
        if (!failoverSettled(prev, endpoints, current)) return;
        const d = decideFailover(prev, {
          now,
          endpoints,
          current,
          latestHandshake: 0,
          ...(run ? { echoes: run } : {}),
        });
        t.is(d.state, prev);
        t.is(d.switchTo, undefined);
      },
    ),
    { numRuns: 1000 },
  );
  const s: FailoverState = {
    endpoints: ['192.0.2.1:51820'],
    index: 0,
    since: 0,
    attempts: 0,
    failovers: 0,
  };
  t.false(failoverSettled(undefined, ['192.0.2.1:51820'], '192.0.2.1:51820'), 'no state yet');
  t.false(failoverSettled(s, ['192.0.2.1:51820'], '198.51.100.7:4000'), 'roamed (NAT)');
  t.false(failoverSettled(s, ['192.0.2.2:51820'], '192.0.2.2:51820'), 'list changed');
  t.false(
    failoverSettled({ ...s, index: -1 }, ['192.0.2.1:51820'], '192.0.2.1:51820'),
    'was roamed',
  );
  t.false(
    failoverSettled(s, ['192.0.2.1:51820', '192.0.2.2:51820'], '192.0.2.1:51820'),
    'two endpoints',
  );
});
