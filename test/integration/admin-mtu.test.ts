/**
 * A network's agreed MTU (issue 12) as the admin API, `l2fed status` and `l2fed describe
 * network` show it: the value, the member that set it and each member's ask; a member
 * that sent no ask (an older agent) is named in a status warning.
 */
import { federationState, verdictOf } from '../../cli/status.js';
import { networks } from '../../cli/kinds.js';
import { startAdminFixture } from '../fixtures/admin.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({ tools: ['nats-server'] });

test('admin - the network MTU, who set it and every ask; a silent member is a status warning', async (t) => {
  const fx = await startAdminFixture(t, { clusters: ['athens', 'bristol', 'madrid'] });
  const c = fx.clusters;
  await c.bristol!.request('exports', {
    networks: ['cdn'],
    mtu: [{ network: 'cdn', capacity: 1370 }],
  });
  await c.madrid!.request('exports', {
    networks: ['cdn'],
    mtu: [{ network: 'cdn', requested: 1280, capacity: 1370 }],
  });
  const { network } = await fx.api.federation.getNetwork({ name: 'cdn' });
  t.like(network?.mtu, { value: 1280, setBy: 'madrid', limit: 'requested', silent: [] });
  t.regex(network?.mtu?.reason ?? '', /madrid requests 1280/);
  t.deepEqual(
    network?.members.map((m) => [m.cluster, m.requestedMtu, m.capacityMtu]),
    [
      ['bristol', 0, 1370],
      ['madrid', 1280, 1370],
    ],
  );
  const row = networks.row(network!);
  t.deepEqual(row.slice(0, 4), ['cdn', String(network!.vni), '1280', 'madrid (requested)']);
  t.deepEqual(verdictOf(await federationState(fx.api)).warnings, []);

  await c.athens!.request('exports', { networks: ['cdn'] }); // an older agent: no ask
  const v = verdictOf(await federationState(fx.api));
  t.deepEqual(v.warnings, [
    'network cdn MTU 1280: athens sent no MTU ask (older agent); upgrade it or check that it carries 1280',
  ]);
});
