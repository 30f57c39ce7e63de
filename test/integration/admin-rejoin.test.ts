/**
 * A replaced gateway waiting to rejoin (issue 12, node replacement), as the admin API and
 * `l2fed status` show it: the cluster carries the pending key and the remedy, and the
 * status verdict names it as a problem; once the broker accepts the key both clear.
 */
import { federationState, verdictOf } from '../../cli/status.js';
import { fakePublicKey } from '../fixtures/broker.js';
import { startAdminFixture } from '../fixtures/admin.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({ tools: ['nats-server'] });

test('admin - a pending rejoin shows in describe cluster and fails status with the remedy', async (t) => {
  const fx = await startAdminFixture(t, { clusters: ['bristol', 'madrid'] });
  const newKey = fakePublicKey();
  const refused = await t.throwsAsync(
    fx.clusters.madrid!.request('register', {
      publicKey: newKey,
      endpoints: ['198.18.0.9:51820'],
      capabilities: ['wireguard-go'],
    }),
  );
  t.like(refused, { code: 'CLUSTER_ID_TAKEN', field: 'publicKey' });
  // The broker says when the key can pass (rejoinAfterMs 60 s after the registration).
  const after = (refused as { retryAfterMs?: number }).retryAfterMs ?? 0;
  t.true(after > 50_000 && after <= 60_000, `retryAfterMs ${after}`);

  const { cluster } = await fx.api.federation.getCluster({ id: 'madrid', readMask: [] });
  t.is(cluster?.rejoin?.publicKey, newKey);
  t.truthy(cluster?.rejoin?.since);
  t.regex(cluster?.rejoin?.remedy ?? '', /l2fed evict madrid --force/);
  const masked = await fx.api.federation.getCluster({ id: 'madrid', readMask: ['rejoin'] });
  t.is(masked.cluster?.rejoin?.publicKey, newKey, 'rejoin is a read-mask field');

  const verdict = verdictOf(await federationState(fx.api));
  t.is(verdict.level, 'problem');
  t.true(
    verdict.problems.some((p) =>
      /^cluster madrid: a gateway with a new key asks to register/.test(p),
    ),
    verdict.problems.join('\n'),
  );
  const bristol = await fx.api.federation.getCluster({ id: 'bristol', readMask: [] });
  t.is(bristol.cluster?.rejoin, undefined, 'only the cluster that asked');
});
