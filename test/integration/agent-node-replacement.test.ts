/**
 * Gateway node replacement (issue 12): madrid's node dies and its gateway comes back on a
 * new node with no key file and no agent cache, so with a new WireGuard key. The broker
 * refuses the new key while the old gateway may still be alive (the agent's status says
 * why and what to do), then accepts it once the old one has been silent for
 * rejoinAfterMs; bristol switches to the new key and traffic flows again.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from 'nats';
import { connectOptionsFor } from '../../broker/auth-config.js';
import type { ClusterRecord, HealthRecord } from '../../broker/records.js';
import { AGENT_STATUS_FILE } from '../../cluster-agent/status-sink.js';
import { AgentFederation, until } from '../fixtures/agent-federation.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping', 'nats-server'],
});

/** Short, so the test waits seconds; the default (60 s) is measured in the lab. */
const REJOIN_AFTER_MS = 5000;

test('node replacement - a gateway with a new key rejoins after the old one falls silent', async (t) => {
  const fed = await AgentFederation.start(t, {
    clusters: ['madrid', 'bristol'],
    networks: [{ name: 'cdn', vni: 0, subnet: 10 }],
    exported: ['cdn'],
    probeMs: 1000,
    broker: { rejoinAfterMs: REJOIN_AFTER_MS },
  });
  for (const id of ['madrid', 'bristol']) await fed.startAgent(id);
  await until('cdn ping across', async () => (await fed.ping('cdn')).ok);
  const oldKey = fed.gateways.get('madrid')!.gateway.lastReport!.publicKey;
  const nc = await connect({ servers: fed.nats.url, ...connectOptionsFor(fed.auth.broker) });
  t.teardown(() => nc.close());
  const clusters = await nc.jetstream().views.kv('l2fed_clusters', { bindOnly: true });
  const record = async () => (await clusters.get('madrid'))?.json<ClusterRecord>();
  // The broker has heard from the old gateway (a health report) before it dies.
  const health = await nc.jetstream().views.kv('l2fed_health', { bindOnly: true });
  await until(
    'madrid health stored',
    async () => (await health.get('madrid'))?.operation === 'PUT',
  );

  await fed.loseNode('madrid');
  const lostAt = Date.now();
  // The broker last heard from the old gateway here: the silence counts from this.
  const lastHeard = Date.parse((await health.get('madrid'))!.json<HealthRecord>().storedAt);
  const svc = await fed.startGateway('madrid');
  await fed.startAgent('madrid');
  await until('the new gateway has a key', () => Promise.resolve(!!svc.gateway.lastReport));
  const newKey = svc.gateway.lastReport!.publicKey;
  t.not(newKey, oldKey, 'the new node made a new key');

  // While the old key may still be alive: refused, and the agent's status says why.
  const summary = async () =>
    (
      JSON.parse(
        await readFile(join(fed.dirs.get('madrid')!.status, AGENT_STATUS_FILE), 'utf8'),
      ) as { broker: { registered: boolean; lastError?: string } }
    ).broker;
  const refusedMs = await until(
    'the refusal in the agent status',
    async () => /heard from/.test((await summary().catch(() => undefined))?.lastError ?? ''),
    REJOIN_AFTER_MS,
  );
  const refused = await summary();
  t.false(refused.registered);
  t.regex(refused.lastError!, /l2fed evict madrid --force/);
  t.is((await record())?.publicKey, oldKey, 'the broker still holds the old key');
  t.is((await record())?.rejoin?.publicKey, newKey, 'and notes the new one as pending');

  const backMs = await until(
    'cdn ping across again',
    async () => (await fed.ping('cdn')).ok,
    60_000,
  );
  const rejoinMs = Date.now() - lostAt;
  t.log(
    `node lost → refusal shown after ${refusedMs} ms; traffic back ${rejoinMs} ms after the ` +
      `loss (rejoinAfterMs ${REJOIN_AFTER_MS})`,
  );
  t.true(backMs > 0);
  const after = await record();
  t.is(after?.publicKey, newKey);
  t.is(after?.rejoin, undefined);
  // The silence rule, not luck: accepted rejoinAfterMs after the old gateway was last
  // heard from, and not much later (the agent retries when the broker says).
  const acceptedAfter = Date.parse(after!.keySince!) - lastHeard;
  t.log(`new key accepted ${acceptedAfter} ms after the old gateway was last heard from`);
  t.true(acceptedAfter >= REJOIN_AFTER_MS, `${acceptedAfter} ms`);
  t.true(acceptedAfter <= REJOIN_AFTER_MS + 1500, `${acceptedAfter} ms`);
  const bristolPeers = fed.gateways.get('bristol')!.gateway.config?.peers ?? [];
  t.deepEqual(
    bristolPeers.map((p) => p.publicKey),
    [newKey],
    "bristol's gateway has madrid's new key and not the old one",
  );
  await until('the agent status says registered', async () => (await summary()).registered, 10_000);
  t.is((await summary()).lastError, undefined);
});
