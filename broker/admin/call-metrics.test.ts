/**
 * The admin server counts every call that ends, refused by the token check or answered,
 * by method and status name, through the interceptor of call-metrics.ts (a real gRPC
 * server on loopback, in process).
 */
import test from 'ava';
import { BrokerMetrics } from '../metrics.js';
import { startAdminServer } from './server.js';
import { getVersion } from './client.js';

const TOKEN = 'a'.repeat(40);
const METHOD = 'l2fed.admin.v1.InfoService/GetVersion';

test('admin call metrics - refused and answered calls are counted by method and code', async (t) => {
  const metrics = new BrokerMetrics();
  const server = await startAdminServer({
    address: '127.0.0.1:0',
    auth: { type: 'token', tokens: [TOKEN] },
    onCallEnd: (method, code) => metrics.adminCall(method, code),
  });
  t.teardown(() => server.stop());
  const count = async (code: string) =>
    (await metrics.registry.getSingleMetric('l2fed_broker_admin_calls_total')!.get()).values.find(
      (v) => v.labels.method === METHOD && v.labels.code === code,
    )?.value ?? 0;
  await t.throwsAsync(getVersion(server.address));
  await getVersion({ address: server.address, token: TOKEN });
  await getVersion({ address: server.address, token: TOKEN });
  // The status reaches the client before the server's interceptor returns: wait briefly.
  for (let i = 0; i < 50 && (await count('OK')) < 2; i++) {
    await new Promise((r) => setTimeout(r, 10));
  }
  t.is(await count('UNAUTHENTICATED'), 1);
  t.is(await count('OK'), 2);
});
