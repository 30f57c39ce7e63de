/**
 * Issue 12: the underlay path MTU shrinks. Two gateways (real wireguard-go) on one
 * underlay switch; the switch's ports drop to MTU 1400 while the gateways' own links stay
 * at 1500. Full-size don't-fragment pings between pods then lose 100 % while small ones
 * pass. Each side's health monitor (default 10 s interval) must name the peer, the
 * measured and the needed size within 60 s; the report, passed through the agent's
 * health request and the broker's tunnel view as in production, makes `diagnose` fail at
 * its mtu step and `status` report a problem; restoring the MTU clears it.
 */
import type { ExecutionContext } from 'ava';
import { HealthMonitor } from '../../gateway/health-monitor.js';
import type { HealthReport } from '../../gateway/health.js';
import { healthToProto } from '../../gateway/grpc-convert.js';
import { GatewayMetrics } from '../../gateway/metrics.js';
import { healthRequestFrom } from '../../cluster-agent/health-report.js';
import { allTunnelHealth, healthSummary, tunnelHealthOf } from '../../broker/admin/health.js';
import type { FederationSnapshot } from '../../broker/admin/snapshot.js';
import type { AdminApi } from '../../broker/admin/calls.js';
import { PeeringState } from '../../proto/gen/l2fed/admin/v1/federation.js';
import { diagnose } from '../../cli/diagnose.js';
import { verdictOf } from '../../cli/status.js';
import { GatewayLab, type LabNetwork } from '../fixtures/gateway-testbed.js';
import { testWith } from '../fixtures/privileges.js';
import { DIAGNOSE_STEPS_BEFORE_MTU } from '../fixtures/admin.js';

const test = testWith({ netAdmin: true, tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping'] });

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };
/** The bound on noticing the break (the monitor checks every 10 s by default). */
const DETECT_WITHIN_MS = 60_000;
/** What fits inside the tunnel over a 1400 B IPv4 path: (1400 − 60) rounded down to 16 B. */
const SHRUNK = Math.floor((1400 - 60) / 16) * 16;

/** Polls `ok(latest)` every 200 ms until it holds or `ms` passed; returns the wait in ms. */
async function waitFor(
  monitors: readonly HealthMonitor[],
  ok: (h: HealthReport, i: number) => boolean,
  ms: number,
): Promise<number | undefined> {
  const start = Date.now();
  while (Date.now() - start < ms) {
    if (monitors.every((m, i) => m.latest && ok(m.latest, i))) return Date.now() - start;
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}

/**
 * What the admin API would serve from the two gateways' latest reports: each goes through
 * the gRPC conversion and the agent's `health` request; the broker's pure views do the rest.
 */
function adminApiOver(reports: ReadonlyMap<string, HealthReport>): {
  api: AdminApi;
  snapshot: FederationSnapshot;
} {
  const health = new Map(
    [...reports].map(([id, h]) => [id, healthRequestFrom(healthToProto(h))] as const),
  );
  const ids = [...reports.keys()];
  const snapshot = {
    clusters: new Map(),
    exports: new Map(),
    peerings: new Map(),
    networks: new Map(),
    members: new Map(),
    peerMaps: new Map(
      ids.map((id) => [id, { peers: ids.filter((x) => x !== id).map((cluster) => ({ cluster })) }]),
    ),
    health,
  } as unknown as FederationSnapshot;
  const o = { now: Date.now(), staleAfterMs: 60_000 };
  const api = {
    federation: {
      getCluster: ({ id }: { id: string }) =>
        Promise.resolve({
          cluster: { id, transitAddress: '-', health: healthSummary(health.get(id), o) },
        }),
      getPeering: () =>
        Promise.resolve({
          peering: {
            state: PeeringState.PEERING_STATE_ACTIVE,
            networks: [{ name: CDN.name, vni: CDN.vni }],
            active: true,
            reason: '',
          },
        }),
      getTunnelHealth: (r: { clusterA: string; clusterB: string }) =>
        Promise.resolve({ tunnel: tunnelHealthOf(snapshot, r.clusterA, r.clusterB, o) }),
    },
  } as unknown as AdminApi;
  return { api, snapshot };
}

async function brokerViews(monitors: readonly HealthMonitor[]) {
  const { api, snapshot } = adminApiOver(
    new Map(monitors.map((m) => [m.latest!.identity, m.latest!])),
  );
  const steps = await diagnose(api, 'site0', 'site1');
  const verdict = verdictOf({
    clusters: [],
    networks: [],
    peerings: [],
    tunnels: allTunnelHealth(snapshot, { now: Date.now(), staleAfterMs: 60_000 }),
  });
  return { steps, verdict };
}

test('gateway path MTU - underlay shrinks to 1400: named within 60 s (peer, measured, needed), diagnose mtu step, status; clears when restored', async (t: ExecutionContext) => {
  const lab = await GatewayLab.create(2, 'linux-bridge');
  t.teardown(() => lab.dispose());
  const pods = [];
  for (const site of lab.sites) {
    await lab.addSegment(site, CDN);
    const r = await site.gateway.apply(lab.config(site, [CDN]));
    pods.push(await lab.addPod(site, CDN, 11 + site.index, r.report.networks[0]!.mtu));
  }
  const [a, b] = pods as [(typeof pods)[0], (typeof pods)[0]];
  // Full-size (1370 B IP, don't fragment) and small pings from pod a to pod b.
  const podPing = async (size?: number) =>
    (
      await lab.runner.run(
        [
          'ping',
          '-c',
          '3',
          '-i',
          '0.2',
          '-W',
          '1',
          ...(size ? ['-M', 'do', '-s', String(size - 28)] : []),
          b.ip,
        ],
        { netns: a.ns, allowFailure: true, timeoutMs: 15_000 },
      )
    ).exitCode === 0;
  t.true(await lab.reaches(a.ns, b.ip));
  t.true(await podPing(1370), 'full-size frames cross before the fault');

  const metrics = new GatewayMetrics('site0');
  const monitors = lab.sites.map(
    (s, i) =>
      new HealthMonitor({
        gateway: s.gateway,
        runner: lab.runner,
        ...(i === 0 ? { metrics } : {}),
      }),
  );
  for (const m of monitors) {
    t.teardown(() => m.stop());
    m.start();
  }
  const upFirst = await waitFor(monitors, (h) => h.peers[0]?.status === 'up', 30_000);
  t.not(upFirst, undefined, JSON.stringify(monitors.map((m) => m.latest?.peers)));
  for (const m of monitors) {
    t.deepEqual(m.latest!.peers[0]!.pathMtu, { needed: 1420, measured: 1420, cannotCarry: [] });
  }

  await lab.setSwitchPortMtu(1400);
  t.true(await podPing(), 'small frames still cross');
  t.false(await podPing(1370), 'full-size frames are lost');

  const detected = await waitFor(
    monitors,
    (h) => h.peers[0]?.status === 'degraded' && h.peers[0]?.pathMtu?.measured !== undefined,
    DETECT_WITHIN_MS,
  );
  t.log(`MTU break named after ${detected} ms (both sides, 10 s checks)`);
  t.not(detected, undefined, JSON.stringify(monitors.map((m) => m.latest?.peers)));
  for (const [i, m] of monitors.entries()) {
    const p = m.latest!.peers[0]!;
    const other = `site${1 - i}`;
    // IPv4 underlay: WireGuard adds 60 B and pads its plaintext to a multiple of 16 B,
    // so 1400 leaves 1328 B inside the tunnel (1329–1340 pad to 1344 → 1404 outer).
    t.deepEqual(p.pathMtu, { needed: 1420, measured: SHRUNK, cannotCarry: ['cdn'] });
    t.regex(
      p.reason,
      new RegExp(
        `path MTU to ${other} is ${SHRUNK} B inside the tunnel, 1420 B needed .*cannot carry cdn`,
      ),
    );
    t.is(p.probe.received, p.probe.sent, 'small probes pass: not "down"');
    t.is(m.latest!.networks[0]!.status, 'degraded');
    t.regex(m.latest!.networks[0]!.reason, new RegExp(`path MTU to ${other} \\(${SHRUNK} B\\)`));
  }
  const text = await metrics.registry.metrics();
  t.regex(
    text,
    new RegExp(`l2fed_gateway_peer_path_mtu_bytes\\{peer="site1",gateway="site0"\\} ${SHRUNK}`),
  );
  t.regex(text, /l2fed_gateway_peer_path_mtu_needed_bytes\{peer="site1",gateway="site0"\} 1420/);

  const broken = await brokerViews(monitors);
  const last = broken.steps.at(-1)!;
  t.deepEqual(
    broken.steps.filter((s) => s.ok).map((s) => s.step),
    [...DIAGNOSE_STEPS_BEFORE_MTU],
  );
  t.is(last.step, 'mtu');
  t.false(last.ok);
  t.regex(
    last.detail,
    new RegExp(`path MTU to site1 \\(${SHRUNK} B\\)|path MTU to site1 is ${SHRUNK} B`),
  );
  t.regex(last.detail, /1420 B/);
  t.is(broken.verdict.level, 'problem');
  t.regex(
    broken.verdict.problems.join('\n'),
    new RegExp(`path MTU to site\\d is ${SHRUNK} B.*1420 B needed`),
  );

  await lab.setSwitchPortMtu(1500);
  const cleared = await waitFor(
    monitors,
    (h) => h.peers[0]?.status === 'up' && h.networks[0]?.status === 'ok',
    DETECT_WITHIN_MS,
  );
  t.log(`cleared after ${cleared} ms`);
  t.not(cleared, undefined, JSON.stringify(monitors.map((m) => m.latest?.peers)));
  t.true(await podPing(1370));
  const fixed = await brokerViews(monitors);
  t.true(
    fixed.steps.every((s) => s.ok),
    JSON.stringify(fixed.steps),
  );
  t.is(fixed.verdict.level, 'ok', fixed.verdict.problems.join('\n'));
});
