import test from 'ava';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { GatewayServiceClient } from '../proto/gen/l2fed/gateway/v1/gateway.js';
import { FakeRunner } from '../lib/runner-fake.js';
import { startGatewayService } from './service.js';

test('service - serves gRPC and metrics, closes cleanly and idempotently', async (t) => {
  const svc = await startGatewayService({
    identity: 'madrid',
    runner: new FakeRunner(),
    healthIntervalMs: 50,
  });
  t.teardown(() => svc.close());
  const text = await (await fetch(`http://127.0.0.1:${svc.metricsPort}/metrics`)).text();
  t.regex(text, /l2fed_gateway_reconcile_duration_seconds/);
  const client = new GatewayServiceClient(
    `127.0.0.1:${svc.grpcPort}`,
    credentials.createInsecure(),
  );
  t.teardown(() => client.close());
  const state = await new Promise((resolve, reject) =>
    client.getState({}, (err, res) => (err ? reject(err) : resolve(res))),
  );
  // Nothing applied yet: no report, and health checks wait for a config.
  t.deepEqual(state, { report: undefined, health: undefined, pendingPublicKey: '' });
  await svc.close();
  await t.notThrowsAsync(svc.close(), 'a second close resolves');
  // Closed: neither port answers any more.
  await t.throwsAsync(fetch(`http://127.0.0.1:${svc.metricsPort}/metrics`));
  const after = new GatewayServiceClient(`127.0.0.1:${svc.grpcPort}`, credentials.createInsecure());
  t.teardown(() => after.close());
  const err = await new Promise<ServiceError | null>((resolve) =>
    after.getState({}, new Metadata(), { deadline: Date.now() + 3000 }, (e) => resolve(e)),
  );
  t.is(err?.code, status.UNAVAILABLE, String(err));
});
