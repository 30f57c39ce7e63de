import test from 'ava';
import { pool } from './pool.js';

const tick = () => new Promise((r) => setTimeout(r, 5));

test('lab pool - at most `parallel` at once, every item once', async (t) => {
  let running = 0;
  let most = 0;
  const seen: number[] = [];
  await pool([1, 2, 3, 4, 5, 6, 7], 3, async (x) => {
    most = Math.max(most, ++running);
    await tick();
    seen.push(x);
    running--;
  });
  t.is(most, 3);
  t.deepEqual(
    seen.sort((a, b) => a - b),
    [1, 2, 3, 4, 5, 6, 7],
  );
});

test('lab pool - a failure starts nothing new and is thrown once the running ones end', async (t) => {
  const started: number[] = [];
  const finished: number[] = [];
  const err = await t.throwsAsync(
    pool([1, 2, 3, 4, 5, 6], 2, async (x) => {
      started.push(x);
      if (x === 2) throw new Error('gateway-c2 never said it runs');
      await tick();
      finished.push(x);
    }),
  );
  t.is(err.message, 'gateway-c2 never said it runs');
  // 1 was running when 2 failed: it finished before the throw; 3 on began nowhere.
  t.deepEqual(started, [1, 2]);
  t.deepEqual(finished, [1]);
});
