import test from 'ava';
import fc from 'fast-check';
import { tmpdir } from 'node:os';
import { checkProperty } from '../test/fixtures/property.js';
import {
  assemble,
  cdfRows,
  firstArrivalAfter,
  lastArrival,
  parseArrival,
  sectionNames,
  streamLoss,
  type Arrival,
} from './control-plane.js';

const at = (seq: number, recvMs: number, sentMs = recvMs - 1): Arrival => ({ seq, sentMs, recvMs });

test('parseArrival reads the receiver line in ns and gives ms; other lines are not arrivals', (t) => {
  t.deepEqual(parseArrival('r 7 1700000000000000000 1700000000012500000'), {
    seq: 7,
    sentMs: 1_700_000_000_000,
    recvMs: 1_700_000_000_012.5,
  });
  t.is(parseArrival('ready'), undefined);
  t.is(parseArrival('sent 10 0 1 2 3'), undefined);
  t.is(parseArrival('r 7 12'), undefined);
});

test('firstArrivalAfter and lastArrival go by receive time, not by order or sequence', (t) => {
  const xs = [at(3, 130), at(1, 110), at(2, 125), at(0, 90)];
  t.deepEqual(firstArrivalAfter(xs, 100), at(1, 110));
  t.deepEqual(firstArrivalAfter(xs, 110), at(1, 110), 'at the instant counts');
  t.is(firstArrivalAfter(xs, 131), undefined);
  t.deepEqual(lastArrival(xs), at(3, 130));
  t.is(lastArrival([]), undefined);
});

test('streamLoss: a clean stream loses nothing and its gap is the probe interval', (t) => {
  const xs = [0, 1, 2, 3, 4].map((k) => at(k, 1000 + k * 10 + 1));
  t.deepEqual(streamLoss(xs, 5, 1000, 1040), { received: 5, lost: 0, longestGapMs: 10 });
});

test('streamLoss: a hole in the middle, duplicates and frames past `sent` do not count twice', (t) => {
  // seqs 2..5 lost: the gap is from seq 1's arrival (1011) to seq 6's (1061).
  const xs = [0, 1, 6, 7].map((k) => at(k, 1000 + k * 10 + 1));
  xs.push(at(6, 1062), at(9, 1200));
  t.deepEqual(streamLoss(xs, 8, 1000, 1070), { received: 4, lost: 4, longestGapMs: 50 });
});

test('streamLoss: lost head and tail count as gaps up to the first and from the last send', (t) => {
  const head = [3, 4].map((k) => at(k, 1000 + k * 10 + 1));
  t.is(streamLoss(head, 5, 1000, 1040).longestGapMs, 31, 'first send (1000) to first arrival');
  const tail = [0, 1].map((k) => at(k, 1000 + k * 10 + 1));
  t.is(streamLoss(tail, 5, 1000, 1040).longestGapMs, 29, 'last arrival (1011) to last send');
  t.deepEqual(streamLoss([], 5, 1000, 1040), { received: 0, lost: 5, longestGapMs: 40 });
  t.deepEqual(streamLoss([], 0, 1000, 1000), { received: 0, lost: 0, longestGapMs: 0 });
  t.throws(() => streamLoss([], -1, 0, 0), { message: /bad sent count -1/ });
});

test('streamLoss: loss and gap match runs of missing frames (property)', async (t) => {
  await checkProperty(
    t,
    'stream loss',
    fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 300 }), (got) => {
      // Frame k sent at 10k ms, received 1 ms later when got[k].
      const xs = got.flatMap((g, k) => (g ? [at(k, k * 10 + 1)] : []));
      const r = streamLoss(xs, got.length, 0, (got.length - 1) * 10);
      // Oracle: the longest run of missing frames, in intervals, with the edges spelled out.
      let worst = 0;
      let run = 0;
      let seenAny = false;
      for (const g of got) {
        if (g) {
          worst = Math.max(worst, seenAny ? (run + 1) * 10 : run * 10 + 1);
          seenAny = true;
          run = 0;
        } else run++;
      }
      if (!seenAny) worst = (got.length - 1) * 10;
      else if (run > 0) worst = Math.max(worst, run * 10 - 1);
      const lost = got.filter((g) => !g).length;
      if (r.lost !== lost || r.received !== got.length - lost)
        throw new Error(`lost ${r.lost}, expected ${lost}`);
      if (r.longestGapMs !== worst) throw new Error(`gap ${r.longestGapMs}, expected ${worst}`);
    }),
  );
});

test('cdfRows: one row per sample, rounded to 0.1 ms; the report derives the fraction', (t) => {
  t.deepEqual(cdfRows('s', [300.04, 100, 200.06]), [
    { series: 's', ms: 300 },
    { series: 's', ms: 100 },
    { series: 's', ms: 200.1 },
  ]);
  t.deepEqual(cdfRows('s', []), []);
});

test('assemble: figures with n, p50/p99 and targets; charts; no figure for an empty series', (t) => {
  const s = assemble({
    peeringMs: [900, 1100, 1000],
    withdrawMs: [500, 2500, 600],
    attachMs: [],
    restarts: [
      { kind: 'gateway restart (SIGTERM)', gapMs: 10, lost: 0, senderPauseMs: 11 },
      { kind: 'gateway restart (SIGTERM)', gapMs: 30, lost: 2, senderPauseMs: 12 },
    ],
    rotations: [{ kind: 'key rotation', gapMs: 400, lost: 20, senderPauseMs: 10 }],
    upMs: 30_000,
    notes: ['x'],
    started: Date.now(),
  });
  t.is(s.id, 'control-plane');
  const f = Object.fromEntries(s.figures.map((x) => [x.id, x]));
  t.deepEqual(Object.keys(f).sort(), [
    'gateway-restart-sigterm-longest-gap-ms',
    'gateway-restart-sigterm-lost-probes',
    'key-rotation-longest-gap-ms',
    'key-rotation-lost-probes',
    'peering-first-frame-ms',
    'peering-withdrawn-last-frame-ms',
  ]);
  t.like(f['peering-first-frame-ms']!.stat, { median: 1000, min: 900, max: 1100, n: 3 });
  t.deepEqual(f['peering-first-frame-ms']!.stat.percentiles, { p50: 1000, p99: 1100 });
  t.deepEqual(f['peering-withdrawn-last-frame-ms']!.target, { op: '<=', value: 2000, met: true });
  t.deepEqual(f['gateway-restart-sigterm-lost-probes']!.target, { op: '<=', value: 0, met: false });
  t.is(f['gateway-restart-sigterm-lost-probes']!.stat.median, 1);
  t.deepEqual(f['key-rotation-longest-gap-ms']!.target, { op: '<=', value: 1000, met: true });
  const cdf = s.charts.find((c) => c.id === 'control-plane-convergence')!;
  t.is(cdf.kind, 'cdf');
  t.is(cdf.rows.length, 6, 'peering and withdrawal, three each; attach had none');
  const gaps = s.charts.find((c) => c.id === 'control-plane-gaps')!;
  t.deepEqual(gaps.rows, [
    { event: 'gateway restart (SIGTERM)', stat: 'median', ms: 20 },
    { event: 'gateway restart (SIGTERM)', stat: 'max', ms: 30 },
    { event: 'key rotation', stat: 'median', ms: 400 },
    { event: 'key rotation', stat: 'max', ms: 400 },
  ]);
  t.true(s.notes!.includes('x'));
});

test('sectionNames: the lab lives under the run prefix; the manifests are out of reach of the lab cleanup', (t) => {
  const n = sectionNames('l2fed-bab12');
  t.is(n.prefix, 'l2fed-bab12-cp');
  const base = (p: string) => p.slice(tmpdir().length + 1);
  // lab up starts with lab down, whose cleanup removes every temp dir named like the lab
  // prefix: the work dir (manifests) must not be one of them, or lab up finds none.
  t.false(base(n.workPrefix).startsWith(n.prefix), `${n.workPrefix} starts with ${n.prefix}`);
  t.true(base(n.workPrefix).startsWith('l2fed-bab12'));
  t.true(base(n.labDir).startsWith(n.prefix), 'the lab dir is found by its own cleanup');
});

test('assemble: figures are rounded to 0.1 ms (the median of an even count is a mean)', (t) => {
  const s = assemble({
    peeringMs: [603.8, 649.9, 468.7, 651.8],
    withdrawMs: [],
    attachMs: [],
    restarts: [],
    rotations: [],
    upMs: 0,
    notes: [],
    started: Date.now(),
  });
  t.like(s.figures[0]!.stat, { median: 626.8, min: 468.7, max: 651.8 });
});
