import test from 'ava';
import { LAB_HEALTH_MS, labHealthMs } from './runner.js';

test('lab health interval - 2 s up to 16 clusters, then the lab probes no more than 16 clusters do', (t) => {
  for (const n of [2, 3, 10, 16]) t.is(labHealthMs(n), LAB_HEALTH_MS, `${n} clusters`);
  // Peer pairs × checks per second stays at 16 clusters' 240 / 2 s.
  for (const n of [17, 24, 32, 64]) {
    const rate = (n * (n - 1)) / (labHealthMs(n) / 1000);
    t.true(Math.abs(rate - 120) < 0.1, `${n} clusters: ${rate.toFixed(2)} peer checks/s`);
  }
  t.is(labHealthMs(32), 8267);
});
