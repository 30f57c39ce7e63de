import test from 'ava';
import { parseListen, serveMetrics } from './metrics-http.js';

test('metrics http - parseListen takes HOST:PORT and [IPv6]:PORT, refuses the rest naming the setting', (t) => {
  t.deepEqual(parseListen('127.0.0.1:9466', 'x'), { host: '127.0.0.1', port: 9466 });
  t.deepEqual(parseListen('0.0.0.0:0', 'x'), { host: '0.0.0.0', port: 0 });
  t.deepEqual(parseListen('[::1]:9466', 'x'), { host: '::1', port: 9466 });
  t.deepEqual(parseListen('broker.local:80', 'x'), { host: 'broker.local', port: 80 });
  for (const bad of ['9466', ':9466', '127.0.0.1:', '127.0.0.1:65536', '::1:9466', 'a b:1', '']) {
    t.throws(() => parseListen(bad, '--metrics-listen'), {
      message: `--metrics-listen "${bad}" is not HOST:PORT (e.g. 127.0.0.1:9466, 0.0.0.0:9466 or [::1]:9466)`,
    });
  }
});

test('metrics http - GET /metrics answers the registry text; anything else 404', async (t) => {
  const server = await serveMetrics({
    contentType: 'text/plain; version=0.0.4',
    metrics: () => Promise.resolve('x 1\n'),
  });
  t.teardown(() => server.close());
  const ok = await fetch(`http://127.0.0.1:${server.port}/metrics?x=1`);
  t.is(ok.status, 200);
  t.is(ok.headers.get('content-type'), 'text/plain; version=0.0.4');
  t.is(await ok.text(), 'x 1\n');
  t.is((await fetch(`http://127.0.0.1:${server.port}/`)).status, 404);
  t.is((await fetch(`http://127.0.0.1:${server.port}/metrics`, { method: 'POST' })).status, 404);
  await server.close();
  await server.close(); // idempotent
});
