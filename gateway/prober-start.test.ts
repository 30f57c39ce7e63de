/**
 * A probe helper that is slow to start (a loaded machine) is waited for, not replaced by
 * one `ping` process per peer per check, which fed the overload (issue 18).
 */
import test from 'ava';
import { SpawningFakeRunner } from './prober-fake.js';
import { HelperProber } from './prober.js';

test('probe helper - one that says ready after 6 s is used, not given up for per-peer pings', async (t) => {
  const runner = new SpawningFakeRunner();
  runner.helper.helloDelayMs = 6000;
  const prober = new HelperProber(runner);
  t.teardown(() => prober.close());
  t.true(await prober.ready('ns1'), prober.lastError);
  t.is(runner.helper.started, 1);
  const r = await prober.echo({ address: '198.19.0.2', count: 3 }, 'ns1');
  t.is(r.received, 3);
  t.is(runner.calls.filter((c) => c.argv[0] === 'ping').length, 0);
});

test('probe helper - close() ends a helper that is still starting without waiting for it', async (t) => {
  const runner = new SpawningFakeRunner();
  runner.helper.helloDelayMs = 30_000;
  const prober = new HelperProber(runner);
  const ready = prober.ready('ns1');
  await new Promise((r) => setTimeout(r, 50));
  const t0 = Date.now();
  await prober.close();
  t.true(Date.now() - t0 < 2000, `close took ${Date.now() - t0} ms`);
  t.false(await ready);
});

test('probe helper - one that cannot run says so at once (the fallback stays for that case)', async (t) => {
  const runner = new SpawningFakeRunner();
  runner.helper.refuse = 'raw sockets not allowed';
  const prober = new HelperProber(runner);
  t.teardown(() => prober.close());
  const t0 = Date.now();
  t.false(await prober.ready('ns1'));
  t.true(Date.now() - t0 < 2000);
  t.regex(prober.lastError, /raw sockets not allowed/);
});
