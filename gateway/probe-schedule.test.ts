/** Which peers a health check probes (probe-schedule.ts): the tunnel's vouching rules. */
import test from 'ava';
import fc from 'fast-check';
import {
  peersToProbe,
  type LastProbe,
  type LastRx,
  type ProbeCandidate,
} from './probe-schedule.js';

const NOW = 1_000_000;

/** A peer the tunnel vouches for, unless `over` changes that. */
function vouched(
  name: string,
  over: Partial<ProbeCandidate> = {},
  last: Partial<LastProbe> = {},
  rx: Partial<LastRx> = {},
): { peer: ProbeCandidate; last: LastProbe; rx: LastRx } {
  return {
    peer: {
      name,
      publicKey: `k-${name}`,
      rxBytes: 2000,
      latestHandshake: NOW - 30,
      needed: 1420,
      switched: false,
      endpoint: '192.0.2.1:17820',
      transitAddress: '198.19.0.2',
      ...over,
    },
    last: {
      publicKey: `k-${name}`,
      needed: 1420,
      endpoint: '192.0.2.1:17820',
      transitAddress: '198.19.0.2',
      check: 1,
      up: true,
      ...last,
    },
    rx: { publicKey: `k-${name}`, rxBytes: 1000, ...rx },
  };
}

function choose(rows: ReturnType<typeof vouched>[], refresh: number): string[] {
  const last = new Map(rows.map((r) => [r.peer.name, r.last]));
  const rx = new Map(rows.map((r) => [r.peer.name, r.rx]));
  return [
    ...peersToProbe(
      rows.map((r) => r.peer),
      last,
      rx,
      NOW,
      refresh,
    ).keys(),
  ].sort();
}

test('probe schedule - a peer the tunnel vouches for is skipped when the refresh is spent', (t) => {
  const rows = [vouched('a', {}, { check: 1 }), vouched('b', {}, { check: 2 })];
  t.deepEqual(choose(rows, 1), ['a'], 'the one probed longest ago');
  t.deepEqual(choose([vouched('a')], 1), ['a'], 'as many as the refresh: all');
  t.deepEqual(choose([vouched('a')], 0), [], 'none in turn');
});

const notVouched: [string, ReturnType<typeof vouched>][] = [
  ['never probed', { ...vouched('a'), last: undefined as unknown as LastProbe }],
  ['last probe not up', vouched('a', {}, { up: false })],
  [
    'its key changed since the probe',
    vouched('a', { publicKey: 'k-new' }, {}, { publicKey: 'k-new' }),
  ],
  ['its networks need another size (an MTU changed)', vouched('a', { needed: 9050 })],
  ['moved to another endpoint in this check', vouched('a', { switched: true })],
  [
    'on another endpoint than when probed (fast fail-over between checks, roam, NAT rebind)',
    vouched('a', { endpoint: '203.0.113.9:17820' }),
  ],
  ['its transit address changed', vouched('a', { transitAddress: '198.19.0.99' })],
  ['its last liveness echo went unanswered', vouched('a', { liveAnswered: false })],
  ['no handshake', vouched('a', { latestHandshake: 0 })],
  ['handshake older than 180 s', vouched('a', { latestHandshake: NOW - 181 })],
  ['not in the tunnel', vouched('a', { rxBytes: undefined })],
  ['nothing received since the last check', vouched('a', { rxBytes: 1000 })],
  ['receive counter went back (tunnel re-created)', vouched('a', { rxBytes: 10 })],
  ['no counter from the last check', { ...vouched('a'), rx: undefined as unknown as LastRx }],
  ['the last counter was of another key', vouched('a', {}, {}, { publicKey: 'k-old' })],
];
for (const [why, row] of notVouched) {
  test(`probe schedule - probed every check when ${why}`, (t) => {
    t.deepEqual(choose([row], 0), ['a']);
  });
}

test('probe schedule - the refresh takes the peers probed longest ago, ties in config order', (t) => {
  const rows = [
    vouched('a', {}, { check: 5 }),
    vouched('b', {}, { check: 2 }),
    vouched('c', {}, { check: 2 }),
    vouched('d', {}, { check: 9 }),
  ];
  t.deepEqual(choose(rows, 2), ['b', 'c']);
  t.deepEqual(choose(rows, 3), ['a', 'b', 'c']);
});

test('probe schedule - properties: every peer not vouched for is probed; at most `refresh` others', (t) => {
  const row = fc.record({
    rxGrew: fc.boolean(),
    up: fc.boolean(),
    fresh: fc.boolean(),
    check: fc.nat(50),
  });
  fc.assert(
    fc.property(fc.array(row, { maxLength: 40 }), fc.nat(12), (spec, refresh) => {
      const rows = spec.map((s, i) =>
        vouched(
          `p${i}`,
          { rxBytes: s.rxGrew ? 2000 : 1000, latestHandshake: s.fresh ? NOW - 5 : 0 },
          { up: s.up, check: s.check },
        ),
      );
      const chosen = new Set(choose(rows, refresh));
      const must = spec.flatMap((s, i) => (s.rxGrew && s.up && s.fresh ? [] : [`p${i}`]));
      for (const m of must) if (!chosen.has(m)) return false;
      const others = [...chosen].filter((n) => !must.includes(n));
      const vouchedCount = spec.length - must.length;
      return others.length === Math.min(refresh, vouchedCount);
    }),
  );
  t.pass();
});

test('probe schedule - property: the refresh takes exactly the vouched-for peers a stable sort by last check puts first', (t) => {
  const row = fc.record({ vouch: fc.boolean(), check: fc.nat(6) });
  fc.assert(
    // Refresh up to 40: both the selection (≤ 16) and the sort above it.
    fc.property(fc.array(row, { maxLength: 60 }), fc.nat(40), (spec, refresh) => {
      const rows = spec.map((s, i) =>
        vouched(`p${i}`, s.vouch ? {} : { rxBytes: 1000 }, { check: s.check }),
      );
      const got = peersToProbe(
        rows.map((r) => r.peer),
        { get: (name) => rows.find((r) => r.peer.name === name)?.last },
        { get: (name) => rows.find((r) => r.peer.name === name)?.rx },
        NOW,
        refresh,
      );
      const well = spec.flatMap((s, i) => (s.vouch ? [{ name: `p${i}`, check: s.check }] : []));
      if (well.length <= refresh) return [...got.values()].every((k) => k === 'must');
      const want = [...well]
        .sort((a, b) => a.check - b.check)
        .slice(0, refresh)
        .map((w) => w.name)
        .sort();
      const inTurn = [...got].flatMap(([n, k]) => (k === 'refresh' ? [n] : [])).sort();
      return JSON.stringify(inTurn) === JSON.stringify(want);
    }),
    { numRuns: 500 },
  );
  t.pass();
});

test('probe schedule - says which peers are probed because they must be and which in turn', (t) => {
  const rows = [
    vouched('a', { latestHandshake: 0 }),
    vouched('b', {}, { check: 1 }),
    vouched('c', {}, { check: 2 }),
  ];
  const by = (n: string) => rows.find((r) => r.peer.name === n);
  const got = (refresh: number) => [
    ...peersToProbe(
      rows.map((r) => r.peer),
      { get: (n) => by(n)?.last },
      { get: (n) => by(n)?.rx },
      NOW,
      refresh,
    ),
  ];
  t.deepEqual(got(1), [
    ['a', 'must'],
    ['b', 'refresh'],
  ]);
  // No more vouched-for peers than the refresh: all probed, as peers that must be (a
  // failing helper then costs each a ping, as before the schedule).
  t.deepEqual(got(2), [
    ['a', 'must'],
    ['b', 'must'],
    ['c', 'must'],
  ]);
});
