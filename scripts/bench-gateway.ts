/**
 * Benchmark (not a test): pod-to-pod TCP throughput and RTT through the gateway path
 * (pod → segment → VXLAN → WireGuard → … → pod), as a ratio of the raw WireGuard tunnel
 * between the same two gateway namespaces, measured alternately in the same run.
 * Run as root:  npx tsx scripts/bench-gateway.ts [--runs 3] [--seconds 3] [--segment ovs]
 *                [--ovs-ports afxdp|system] [--ovs-tso] [--json]
 * The tunnel baseline runs with the testbed's ovs-vswitchd frozen (SIGSTOP): it does not
 * cross OVS, and idle PMD threads must not slow it down (that would flatter the ratio).
 */
import { parseArgs } from 'node:util';
import {
  GatewayLab,
  type LabNetwork,
  type OvsPortMode,
  type SegmentKind,
} from '../test/fixtures/gateway-testbed.js';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '3' },
    segment: { type: 'string', multiple: true },
    json: { type: 'boolean', default: false },
    'ovs-tso': { type: 'boolean', default: false },
    'ovs-ports': { type: 'string', default: 'system' },
  },
});
const OVS_PORTS = values['ovs-ports'] as OvsPortMode;
if (!['afxdp', 'system'].includes(OVS_PORTS)) throw new Error('--ovs-ports: afxdp or system');
const RUNS = Math.min(10, Math.max(1, Number(values.runs)));
const SECONDS = Math.min(10, Math.max(1, Number(values.seconds)));
const SEGMENTS = (values.segment ?? ['linux-bridge', 'ovs']) as SegmentKind[];
const NET: LabNetwork = { name: 'bench', vni: 4242, subnet: 42 };

interface Sample {
  readonly mbps: number;
  readonly rttMs: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function measure(lab: GatewayLab, fromNs: string, toNs: string, ip: string): Promise<Sample> {
  const server = await lab.spawn(
    'iperf3',
    toNs,
    ['iperf3', '-s', '-1', '--forceflush', '-B', ip],
    /Server listening/,
  );
  const r = await lab.runner.run(['iperf3', '-c', ip, '-t', String(SECONDS), '-J'], {
    netns: fromNs,
    timeoutMs: (SECONDS + 15) * 1000,
  });
  await server.exited;
  const bps = (JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } }).end
    .sum_received.bits_per_second;
  const ping = await lab.runner.run(['ping', '-c', '20', '-i', '0.05', '-q', ip], {
    netns: fromNs,
    timeoutMs: 20_000,
  });
  const rtt = /= [\d.]+\/([\d.]+)\//.exec(ping.stdout);
  return { mbps: bps / 1e6, rttMs: rtt ? Number(rtt[1]) : NaN };
}

async function bench(segment: SegmentKind) {
  const tso = segment === 'ovs' && values['ovs-tso'];
  const lab = await GatewayLab.create(2, segment, {
    ovsOtherConfig: tso ? { 'userspace-tso-enable': 'true' } : undefined,
    keepPodTxOffload: tso,
    ovsPorts: tso ? 'system' : OVS_PORTS, // OVS 3.1 AF_XDP ports have no TSO
  });
  const freezeOvs = (frozen: boolean) => {
    for (const s of lab.sites) s.ovs?.pause(frozen);
  };
  try {
    const pods = [];
    for (const site of lab.sites) {
      await lab.addSegment(site, NET);
      const r = await site.gateway.apply(lab.config(site, [NET]));
      pods.push(await lab.addPod(site, NET, 11 + site.index, r.report.networks[0]!.mtu));
    }
    const [g0, g1] = lab.sites as [(typeof lab.sites)[0], (typeof lab.sites)[0]];
    const [a, b] = pods as [(typeof pods)[0], (typeof pods)[0]];
    const tunnel: Sample[] = [];
    const path: Sample[] = [];
    // Alternate, so both see the same machine load over the run.
    for (let i = 0; i < RUNS; i++) {
      freezeOvs(true);
      try {
        tunnel.push(await measure(lab, g0.ns, g1.ns, g1.transitAddress));
      } finally {
        freezeOvs(false);
      }
      path.push(await measure(lab, a.ns, b.ns, b.ip));
    }
    const t = median(tunnel.map((s) => s.mbps));
    const p = median(path.map((s) => s.mbps));
    return {
      segment: segment === 'ovs' ? (tso ? 'ovs/system+tso' : `ovs/${OVS_PORTS}`) : segment,
      runs: RUNS,
      seconds: SECONDS,
      tunnelMbps: Math.round(t),
      podMbps: Math.round(p),
      ratio: Number((p / t).toFixed(2)),
      tunnelRttMs: median(tunnel.map((s) => s.rttMs)),
      podRttMs: median(path.map((s) => s.rttMs)),
      samples: { tunnel, path },
    };
  } finally {
    await lab.dispose();
  }
}

const results = [];
for (const segment of SEGMENTS) results.push(await bench(segment));
if (values.json) {
  console.log(JSON.stringify(results, null, 2));
} else {
  console.log('segment        tunnel Mbit/s  pod Mbit/s  ratio  tunnel RTT ms  pod RTT ms');
  for (const r of results) {
    console.log(
      `${r.segment.padEnd(14)} ${String(r.tunnelMbps).padStart(13)} ${String(r.podMbps).padStart(11)}  ${r.ratio.toFixed(2).padStart(5)}  ${r.tunnelRttMs.toFixed(3).padStart(13)}  ${r.podRttMs.toFixed(3).padStart(10)}`,
    );
  }
  console.log(
    `(median of ${RUNS} alternating runs of ${SECONDS} s each; target ≥0.9 linux-bridge, ≥0.8 ovs)`,
  );
}
