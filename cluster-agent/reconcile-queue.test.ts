import test from 'ava';
import { combine, DONE, ReconcileQueue, requeue, type Outcome } from './reconcile-queue.js';

test('reconcile queue - triggers during a pass coalesce into exactly one more pass', async (t) => {
  let passes = 0;
  let release: (() => void) | undefined;
  const q = new ReconcileQueue(
    async () => {
      passes++;
      if (passes === 1) await new Promise<void>((r) => (release = r));
      return DONE;
    },
    { backoff: { initialMs: 10, maxMs: 100 } },
  );
  q.trigger();
  for (let i = 0; i < 10; i++) q.trigger();
  release!();
  await q.idle();
  t.is(passes, 2);
  await q.stop();
});

test('reconcile queue - requeue retries with growing, jittered delays and resets after success', async (t) => {
  const delays: number[] = [];
  let n = 0;
  const q = new ReconcileQueue(
    (): Promise<Outcome> => Promise.resolve(++n <= 4 ? requeue(`try ${n}`) : DONE),
    {
      backoff: { initialMs: 8, maxMs: 40 },
      random: () => 0.5,
      onPass: (_o, _attempt, delay) => {
        if (delay !== undefined) delays.push(delay);
      },
    },
  );
  q.trigger();
  await q.idle();
  t.is(n, 5);
  // cap 8, 16, 32, 40 (max) → uniform in [cap/2, cap]; random 0.5 → 3/4 of the cap.
  t.deepEqual(delays, [6, 12, 24, 30]);
  t.is(q.failures, 0);
  await q.stop();
});

test('reconcile queue - a throwing pass is a requeue, and stop cancels the retry', async (t) => {
  let n = 0;
  const q = new ReconcileQueue(
    () => {
      n++;
      return Promise.reject(new Error('boom'));
    },
    { backoff: { initialMs: 1000, maxMs: 1000 } },
  );
  q.trigger();
  await new Promise((r) => setTimeout(r, 20));
  t.is(q.failures, 1);
  t.true(q.backingOff);
  await q.stop();
  t.false(q.backingOff);
  t.is(n, 1);
});

test('reconcile queue - combine keeps every reason', (t) => {
  t.deepEqual(combine([DONE, DONE]), DONE);
  t.deepEqual(combine([requeue('a'), DONE, requeue('b')]), requeue('a; b'));
});

test('reconcile queue - a requeue that names when it can pass is retried no later than that', async (t) => {
  const delays: number[] = [];
  let n = 0;
  const q = new ReconcileQueue(
    (): Promise<Outcome> =>
      Promise.resolve(++n <= 3 ? combine([requeue('waiting', 20), requeue('other')]) : DONE),
    {
      // Without the hint the second retry would wait 30 s.
      backoff: { initialMs: 20_000, maxMs: 60_000 },
      random: () => 0.5,
      onPass: (_o, _attempt, delay) => {
        if (delay !== undefined) delays.push(delay);
      },
    },
  );
  q.trigger();
  await q.idle();
  t.is(n, 4);
  t.deepEqual(delays, [20, 20, 20]);
  t.deepEqual(combine([requeue('a', 50), requeue('b', 20)]), {
    requeue: true,
    reason: 'a; b',
    withinMs: 20,
  });
  await q.stop();
});
