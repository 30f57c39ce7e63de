/**
 * A network's own data-path fault in one cluster (a loop cut, a path MTU too small,
 * frames not received) fails `l2fed status` with the cluster, network and reason, even
 * when every tunnel is up; a stale report does not count (the staleness is its problem).
 */
import { federationState, verdictOf } from '../../cli/status.js';
import { seedScenario, startAdminFixture } from '../fixtures/admin.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({ tools: ['nats-server'] });

test('admin - a degraded network in a fresh health report is a status problem naming it', async (t) => {
  const fx = await startAdminFixture(t);
  await seedScenario(fx);
  const reason = 'loop through bristol: madrid stopped carrying cdn to its peers';
  const now = () => new Date().toISOString();
  await fx.writeHealth('madrid', {
    reportedAt: now(),
    peers: [{ cluster: 'bristol', state: 'up' }],
    networks: [
      { name: 'cdn', vni: 4096, state: 'degraded', reason },
      { name: 'iot', vni: 4097, state: 'up' },
    ],
  });
  await fx.writeHealth('bristol', {
    reportedAt: now(),
    peers: [{ cluster: 'madrid', state: 'up' }],
    networks: [{ name: 'cdn', vni: 4096, state: 'up' }],
  });
  const verdict = verdictOf(await federationState(fx.api));
  t.true(
    verdict.problems.includes(`cluster madrid network cdn degraded: ${reason}`),
    verdict.problems.join('\n'),
  );
  t.false(verdict.problems.some((p) => /network iot|cluster bristol network/.test(p)));

  // The same network state in a stale report: the staleness is reported, not the network.
  await fx.writeHealth('madrid', {
    reportedAt: '2020-01-01T00:00:00.000Z',
    peers: [],
    networks: [{ name: 'cdn', vni: 4096, state: 'degraded', reason }],
  });
  const stale = verdictOf(await federationState(fx.api));
  t.false(stale.problems.some((p) => p.startsWith('cluster madrid network')));
  t.true(stale.problems.some((p) => /madrid's health report is stale/.test(p)));
});
