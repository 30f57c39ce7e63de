/**
 * Upgrade order (issue 12, docs/upgrading.md): an agent that sends MTU asks, against a
 * broker older than the MTU agreement, still gets its exports through. The older broker
 * is played by a responder on the broker's credentials that answers exactly as brokers
 * before the agreement did (strict schema: the `mtu` field is refused, with that field
 * named); the current broker gets the asks.
 */
import { pino } from 'pino';
import { NatsBrokerLink } from '../../cluster-agent/broker-link.js';
import { registerBody, startAuthedNats, startBrokers } from '../fixtures/broker.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({ tools: ['nats-server'] });

async function until(what: string, fn: () => boolean, ms = 15_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (fn()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('broker link - asks go to a current broker; an older broker gets the networks alone', async (t) => {
  const fx = await startAuthedNats(['madrid']);
  t.teardown(() => fx.dispose());
  // A current broker first: it creates the buckets the link watches, and takes the asks.
  const brokers = await startBrokers(fx.url, 1, {}, fx.brokerConnect);
  const link = new NatsBrokerLink({
    clusterId: 'madrid',
    servers: [fx.url],
    credential: fx.auth.clusters.madrid!,
    requestTimeoutMs: 5000,
    pollMs: 500,
    log: pino({ level: 'silent' }),
  });
  link.start();
  t.teardown(() => link.stop());
  await until('connected', () => link.connected);
  await link.register(registerBody(0));
  const asks = [{ network: 'cdn', requested: 1280, capacity: 1370 }];
  const now = await link.setExports(['cdn'], asks);
  t.like(now.networks[0]?.mtu, { value: 1280, setBy: 'madrid' });
  await brokers.dispose();

  // The older broker: the body it got, and its reply (verbatim from a broker before the
  // agreement, run against this test's request).
  const nc = await fx.connectBroker();
  const bodies: unknown[] = [];
  const sub = nc.subscribe('l2fed.v1.*.exports', { queue: 'l2fed-broker' });
  void (async () => {
    for await (const m of sub) {
      const body = m.json<Record<string, unknown>>();
      bodies.push(body);
      m.respond(
        JSON.stringify(
          'mtu' in body
            ? {
                ok: false,
                error: {
                  code: 'INVALID_REQUEST',
                  message:
                    'unknown field(s) "mtu"; remove them (see docs/broker.md (Protocol) for the request schema)',
                  field: 'mtu',
                },
              }
            : { ok: true, result: { networks: [{ name: 'cdn', vni: 4096 }] } },
        ),
      );
    }
  })();
  await nc.flush(); // the responder is subscribed before the request
  const old = await link.setExports(['cdn'], asks);
  t.deepEqual(old, { networks: [{ name: 'cdn', vni: 4096 }] }, 'exports went through');
  t.deepEqual(bodies, [{ networks: ['cdn'], mtu: asks }, { networks: ['cdn'] }]);
});
