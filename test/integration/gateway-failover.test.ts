import type { GatewayConfigInput } from '../../gateway/config.js';
import { HealthMonitor } from '../../gateway/health-monitor.js';
import type { HealthReport } from '../../gateway/health.js';
import { GatewayMetrics } from '../../gateway/metrics.js';
import { GatewayLab, WG_PORT, type LabNetwork } from '../fixtures/gateway-testbed.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({ netAdmin: true, tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping'] });

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };

/**
 * Addresses in the lab's own underlay subnet (198.18.0.0/24, inside the test's switch
 * namespace) that no namespace holds: WireGuard's handshakes to them go nowhere.
 */
const DEAD_FOR_A = `198.18.0.200:${WG_PORT}`;
const DEAD_FOR_B = `198.18.0.201:${WG_PORT}`;
/** Bound on "dead first endpoint → handshake on the second": 15 s dwell + retries. */
const UP_WITHIN_MS = 60_000;

function withEndpoints(c: GatewayConfigInput, endpoints: string[]): GatewayConfigInput {
  return { ...c, peers: (c.peers ?? []).map((p) => ({ ...p, endpoints })) };
}

test('gateway endpoint fail-over - a dead first endpoint is left for the working second one', async (t) => {
  const lab = await GatewayLab.create(2, 'linux-bridge');
  t.teardown(() => lab.dispose());
  const [a, b] = lab.sites as [(typeof lab.sites)[0], (typeof lab.sites)[0]];
  const realB = `${b.underlayAddress}:${WG_PORT}`;
  const configA = withEndpoints(lab.config(a, [CDN]), [DEAD_FOR_A, realB]);
  // B cannot reach A first either (and runs no health monitor, so no fail-over): the
  // handshake must come from A, after A moved to B's real endpoint. Without this, B's
  // own handshake would make A's WireGuard roam to B and nothing would be tested.
  const configB = withEndpoints(lab.config(b, [CDN]), [
    DEAD_FOR_B,
    `${a.underlayAddress}:${WG_PORT}`,
  ]);
  for (const [site, config] of [
    [b, configB],
    [a, configA],
  ] as const) {
    await lab.addSegment(site, CDN);
    await site.gateway.apply(config);
  }
  a.runner.clear();

  const metrics = new GatewayMetrics('site0');
  const monitor = new HealthMonitor({
    gateway: a.gateway,
    runner: lab.runner,
    metrics,
    intervalMs: 1000,
  });
  const reports: HealthReport[] = [];
  monitor.subscribe((h) => reports.push(h));
  t.teardown(() => monitor.stop());
  const started = Date.now();
  monitor.start();

  const upOn = (h: HealthReport | undefined) =>
    h?.peers[0]?.status === 'up' && h.peers[0].endpoint === realB;
  while (!upOn(monitor.latest) && Date.now() - started < UP_WITHIN_MS) {
    await new Promise((r) => setTimeout(r, 250));
  }
  const h = monitor.latest;
  const peer = h?.peers[0];
  t.log(`up on the second endpoint after ${Date.now() - started} ms, ${reports.length} checks`);
  if (!upOn(h)) {
    // For a rare CI failure (handshake done, then no answers): both sides' WireGuard view.
    for (const site of [a, b]) {
      const dump = await lab.runner.run(['wg', 'show', site.ifname, 'dump'], {
        netns: site.ns,
        allowFailure: true,
      });
      t.log(`${site.ns}: ${dump.stdout.replace(/^[^\n]*\n/, '')}`); // not the key line
    }
    t.log(JSON.stringify(reports.map((r) => [r.at, r.peers[0]?.endpoint, r.peers[0]?.status])));
  }
  t.true(upOn(h), `peer not up on ${realB} within ${UP_WITHIN_MS} ms: ${JSON.stringify(peer)}`);
  t.true(peer?.handshakeAgeSeconds !== undefined);
  t.is(peer?.probe.received, peer?.probe.sent);
  t.is(peer?.endpointFailovers, 1);
  // It started on the dead endpoint and stayed there for the dwell before moving on.
  t.is(reports[0]?.peers[0]?.endpoint, DEAD_FOR_A);
  t.is(reports[0]?.peers[0]?.status, 'down');

  // Once it works, it stays: a few more checks, no more fail-overs.
  const more = reports.length + 3;
  const deadline = Date.now() + 15_000;
  while (reports.length < more && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
  }
  await monitor.stop();
  t.true(reports.length >= more, `only ${reports.length} checks`);
  t.is(monitor.latest?.peers[0]?.endpointFailovers, 1);
  t.is(monitor.latest?.peers[0]?.endpoint, realB);
  t.is(monitor.latest?.peers[0]?.status, 'up');

  // The one change the monitor made: a single `wg set … endpoint`, through the backend.
  t.deepEqual(a.runner.mutatingCommands(), [
    `wg set ${a.ifname} peer ${b.publicKey} endpoint ${realB}`,
  ]);
  t.regex(
    await metrics.registry.metrics(),
    /l2fed_gateway_endpoint_failovers_total\{peer="site1",gateway="site0"\} 1/,
  );

  // Re-applying the same configs changes nothing: both in-use endpoints are listed ones
  // (A's by fail-over, B's by WireGuard roaming to A's handshake).
  a.runner.clear();
  b.runner.clear();
  const again = await a.gateway.apply(configA);
  t.deepEqual(again.steps, []);
  t.deepEqual(a.runner.mutatingCommands(), []);
  const againB = await b.gateway.apply(configB);
  t.deepEqual(againB.steps, []);
  t.deepEqual(b.runner.mutatingCommands(), []);
});
