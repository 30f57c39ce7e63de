/**
 * Benchmark section "endpoint-failover" (issue 15): a peer's endpoint in use dies under
 * traffic; how long until traffic flows over its next endpoint. Two gateways (real
 * wireguard-go in namespaces, Linux bridge segments, test/fixtures/gateway-testbed.ts),
 * site 1 reachable at two underlay addresses, both listed for it at site 0; both
 * gateways run the health monitor at its default 10 s interval (the fail-over must not
 * wait for a check). A pod pings the other every 20 ms; after 100 answers the address in
 * use is made dead (nftables drops it both ways in site 1); the figure is the time from
 * the break to the first answer after it, from ping's reply timestamps, and the pings
 * lost × 20 ms. Each trial heals the last break and breaks the address now in use, so
 * trials alternate between the two endpoints.
 *
 * Runs alone: `npx tsx bench/endpoint-failover.ts [--quick]` (root) prints the section.
 */
import { pathToFileURL } from 'node:url';
import { HealthMonitor } from '../gateway/health-monitor.js';
import { shortId } from '../lib/short-id.js';
import { healEndpoint, pingThroughBreak } from '../test/fixtures/endpoint-break.js';
import {
  GatewayLab,
  WG_PORT,
  type LabNetwork,
  type LabSite,
} from '../test/fixtures/gateway-testbed.js';
import { figure, stat, type BenchSection } from './result.js';

/**
 * sections.ts's SectionOptions, by shape: importing it would close an import cycle
 * (sections.ts loads this module); SECTIONS' type checks that the two agree.
 */
interface SectionOptions {
  readonly quick: boolean;
  readonly log: (line: string) => void;
  readonly prefix: string;
}

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };
/** The target: break → traffic on the next endpoint, ms. */
const TARGET_MS = 3000;
/** Before issue 15 (15 s dwell + a handshake retry; docs/status.md). */
const BEFORE_MS = 22_000;

export async function run(opts: SectionOptions): Promise<BenchSection> {
  const started = Date.now();
  const trials = opts.quick ? 5 : 9;
  const lab = await GatewayLab.create(2, 'linux-bridge', { prefix: opts.prefix });
  const monitors: HealthMonitor[] = [];
  const gaps: number[] = [];
  const lostMs: number[] = [];
  const notes: string[] = [];
  try {
    const [a, b] = lab.sites as [LabSite, LabSite];
    const addresses = [b.underlayAddress, `198.18.0.${b.index + 101}`];
    await lab.netns.addr(b.ns, 'ul0', `${addresses[1]}/24`);
    const configA = lab.config(a, [CDN]);
    for (const [site, config] of [
      [b, lab.config(b, [CDN])],
      [
        a,
        {
          ...configA,
          peers: (configA.peers ?? []).map((p) => ({
            ...p,
            endpoints: addresses.map((x) => `${x}:${WG_PORT}`),
          })),
        },
      ],
    ] as const) {
      await lab.addSegment(site, CDN);
      await site.gateway.apply(config);
    }
    const podA = await lab.addPod(a, CDN, 11, 1370);
    const podB = await lab.addPod(b, CDN, 12, 1370);
    if (!(await lab.reaches(podA.ns, podB.ip))) throw new Error('pods do not reach each other');
    for (const site of [a, b]) {
      const m = new HealthMonitor({ gateway: site.gateway, runner: lab.runner });
      monitors.push(m);
      m.start();
    }
    const inUse = async () => {
      const r = await lab.runner.run(['wg', 'show', a.ifname, 'endpoints'], { netns: a.ns });
      return addresses.findIndex((x) => r.stdout.includes(`\t${x}:`));
    };
    for (let i = 0; i < trials; i++) {
      await healEndpoint(lab, b.ns);
      const now = await inUse();
      if (now < 0) throw new Error('site 0 uses neither of site 1’s endpoints');
      const r = await pingThroughBreak(lab, {
        from: podA,
        to: podB,
        ns: b.ns,
        address: addresses[now]!,
        seconds: 7,
      });
      const moved = await inUse();
      opts.log(
        `endpoint-failover: trial ${i + 1}/${trials}: ${addresses[now]} dead → ` +
          `${addresses[moved] ?? '?'}: ${(r.gapS * 1000).toFixed(0)} ms, ${r.lost} of ${r.transmitted} lost`,
      );
      if (r.dropped === 0 || r.before < 100 || moved === now || !Number.isFinite(r.gapS)) {
        notes.push(`Trial ${i + 1} discarded: ${JSON.stringify({ ...r, moved, from: now })}.`);
        continue;
      }
      gaps.push(r.gapS * 1000);
      lostMs.push(r.lost * r.pingS * 1000);
    }
  } finally {
    await Promise.all(monitors.map((m) => m.stop()));
    await lab.dispose();
  }
  const round = (x: number) => Math.round(x);
  return {
    id: 'endpoint-failover',
    title: 'Endpoint fail-over: break → traffic on the next endpoint',
    method: [
      'Two gateways on one machine (wireguard-go in namespaces, Linux bridge segments); site 1',
      'is reachable at two underlay addresses, both listed for it at site 0; both gateways run',
      'the health monitor with its default 10 s check interval. A pod pings the other every',
      '20 ms; after 100 answers the address in use stops sending and receiving (nftables in',
      'site 1). The figure is the time from the break to the first ping answered after it',
      "(ping's reply timestamps), with the pings lost × 20 ms beside it; each trial heals the",
      `last break and breaks the endpoint now in use (${trials} trials, alternating).`,
    ].join(' '),
    figures: [
      figure({
        id: 'endpoint-failover-ms',
        label: 'break → traffic on the next endpoint (first ping answered)',
        stat: stat(gaps, 'ms'),
        baseline: `before issue 15: ~${BEFORE_MS / 1000} s (15 s dwell + a handshake retry)`,
        target: { op: '<=', value: TARGET_MS },
      }),
      figure({
        id: 'endpoint-failover-lost-ms',
        label: 'pings lost across the break × 20 ms',
        stat: stat(lostMs, 'ms'),
        target: { op: '<=', value: TARGET_MS },
      }),
    ],
    charts: [
      {
        id: 'endpoint-failover-trials',
        title: 'Break → traffic on the next endpoint, per trial',
        kind: 'bar',
        x: { field: 'trial', title: 'trial' },
        y: { field: 'ms', title: 'ms' },
        rows: gaps.map((ms, i) => ({ trial: String(i + 1), ms: round(ms) })),
      },
    ],
    notes: [
      'What bounds it: the liveness echo (every 250 ms, 0.5 s answer wait) must see 1.5 s of ' +
        'unanswered echoes before the move (so one lost echo never moves a peer), then one ' +
        '`wg show` and one `wg set` run; the session keys move with the endpoint, so the next ' +
        'packet flows. A real WAN adds its RTT (the echo wait grows to 4 × RTT).',
      'Both sites share this 2-core machine with other tests: a slow trial is as likely CPU ' +
        'starvation (process starts for `wg`) as the product.',
      ...notes,
    ],
    tookMs: Date.now() - started,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const quick = process.argv.includes('--quick');
  run({
    quick,
    log: (l) => process.stderr.write(`${l}\n`),
    prefix: `l2fed-b${shortId()}`,
  }).then(
    (s) => process.stdout.write(`${JSON.stringify(s, null, 2)}\n`),
    (err: unknown) => {
      process.stderr.write(
        `endpoint-failover: ${err instanceof Error ? err.stack : String(err)}\n`,
      );
      process.exitCode = 1;
    },
  );
}
