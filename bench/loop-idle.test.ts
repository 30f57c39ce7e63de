/** The loop phase's figures from samples (bench/loop-idle.ts). */
import test from 'ava';
import { loopFigures, type LoopSample } from './loop-idle.js';

const sample = (
  run: number,
  mode: LoopSample['mode'],
  paths: number,
  msPerCheck: number,
  wholeReads = 0,
): LoopSample => ({
  run,
  mode,
  paths,
  checks: 10,
  cpuMs: msPerCheck * 10,
  helperMs: msPerCheck * 5,
  wholeReads,
  starts: 0,
});

test('loop figures - whole / sets per peer count and run, growth per mode, steady whole reads and starts against 0', (t) => {
  const samples = [
    sample(0, 'sets', 1, 1),
    sample(0, 'whole', 1, 2, 10),
    sample(0, 'sets', 100, 1.5),
    sample(0, 'whole', 100, 30, 10),
    sample(1, 'sets', 1, 2),
    sample(1, 'whole', 1, 2, 10),
    sample(1, 'sets', 100, 2),
    sample(1, 'whole', 100, 20, 10),
    sample(2, 'sets', 100, 1), // no 1-path partner in run 2: no growth ratio from it
  ];
  const f = new Map(loopFigures(samples, [1, 100]).map((x) => [x.id, x]));
  t.deepEqual(f.get('loop-whole-vs-sets-1')?.stat.median, 1.5);
  t.deepEqual(f.get('loop-whole-vs-sets-100')?.stat.median, 15); // 20 and 10: run 2 has no whole
  t.is(f.get('loop-growth-sets')?.stat.median, 1.25); // 1.5 and 1
  t.is(f.get('loop-growth-whole')?.stat.median, 12.5); // 15 and 10
  t.is(f.get('loop-whole-reads-sets')?.target?.met, true);
  t.is(f.get('loop-starts')?.target?.met, true);
  const reading = loopFigures([...samples, sample(3, 'sets', 1, 1, 5)], [1, 100]);
  t.is(reading.find((x) => x.id === 'loop-whole-reads-sets')?.stat.max, 0.5);
  t.deepEqual(loopFigures([], [1, 100]), [], 'no samples, no figures');
});
