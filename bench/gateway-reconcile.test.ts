import test from 'ava';
import { run } from './gateway-reconcile.js';
import { sectionSchema } from './report.js';

test('gateway-reconcile section: every figure has a unit, every target is met, the chart has 10, 50 and 100 peers', async (t) => {
  const lines: string[] = [];
  const s = await run({ quick: true, log: (l) => lines.push(l), prefix: 'l2fed-bgrtest' });
  t.is(s.id, 'gateway-reconcile');
  t.notThrows(() => sectionSchema.parse(s), 'the shape the report reads');
  t.true(lines.length > 0);
  t.true(s.figures.every((f) => f.stat.unit.length > 0 && f.stat.n > 0));
  t.deepEqual(
    s.figures.filter((f) => f.target && !f.target.met).map((f) => `${f.id} ${f.stat.median}`),
    [],
  );
  const noop = s.figures.find((f) => f.id === 'no-op-commands');
  t.is(noop?.stat.max, 0);
  const chart = s.charts.find((c) => c.id === 'gateway-reconcile-commands-vs-peers');
  t.deepEqual([...new Set(chart?.rows.map((r) => r.peers))], [10, 50, 100]);
  // From empty grows with the peers; a one-peer change does not.
  const at = (peers: number, kase: string) =>
    chart?.rows.find((r) => r.peers === peers && r.case === kase)?.commands;
  t.true(Number(at(100, 'apply from empty')) > Number(at(10, 'apply from empty')));
  t.is(at(100, 'one peer removed'), at(10, 'one peer removed'));
});
