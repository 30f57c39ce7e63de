/**
 * The dashboard layout (deploy/grafana/panels.ts): ids in order, rows on their own line,
 * panels left to right, a new line below the tallest panel when the next does not fit.
 */
import test from 'ava';
import { layout, stat, type Cell } from './panels.js';

const cell = (title: string, w: number, h: number): Cell => ({
  w,
  h,
  panel: stat({ title, description: '', unit: 'short', expr: 'up' }),
});

test('layout - panels fill a line of 24 and wrap below the tallest; rows take a line of 1', (t) => {
  const panels = layout([
    { title: 'r1', cells: [cell('a', 12, 8), cell('b', 8, 4), cell('c', 8, 6), cell('d', 16, 2)] },
    { title: 'r2', cells: [cell('e', 24, 3)] },
  ]) as { id: number; title: string; gridPos: unknown }[];
  t.deepEqual(
    panels.map((p) => [p.id, p.title, p.gridPos]),
    [
      [1, 'r1', { h: 1, w: 24, x: 0, y: 0 }],
      [2, 'a', { h: 8, w: 12, x: 0, y: 1 }],
      [3, 'b', { h: 4, w: 8, x: 12, y: 1 }],
      [4, 'c', { h: 6, w: 8, x: 0, y: 9 }],
      [5, 'd', { h: 2, w: 16, x: 8, y: 9 }],
      [6, 'r2', { h: 1, w: 24, x: 0, y: 15 }],
      [7, 'e', { h: 3, w: 24, x: 0, y: 16 }],
    ],
  );
});

test('layout - a panel wider than the grid is refused, naming it', (t) => {
  t.throws(() => layout([{ title: 'r', cells: [cell('too wide', 25, 4)] }]), {
    message: 'too wide: width 25 is not 1..24',
  });
});
