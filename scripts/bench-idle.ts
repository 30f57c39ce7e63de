/**
 * Benchmark (not a test), issue 18: the idle cost of one gateway's health check as a
 * function of its peer count. Simulated peers: the gateway's namespace reaches P transit
 * addresses that a second namespace answers (ICMP echo by its kernel), and one network
 * device takes the probe frames. The tunnel state comes from the fakes (no WireGuard),
 * so what is measured is the probing and counter reading a check does.
 * Modes, alternated in the same run:
 *   ping    one `ping` per echo and a python3 run per check (health before issue 18)
 *   helper  echoes and frames through the long-lived helper (the default now)
 * Reports per check: process starts, CPU ms (this process + its reaped children + the
 * helper), and both as ratios to the 1-peer case of the same mode.
 * Run as root:  npx tsx scripts/bench-idle.ts [--peers 1,10,50,100] [--checks 20] [--json]
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { NetnsSet } from '../lib/netns.js';
import { ExecaRunner, RecordingRunner } from '../lib/runner.js';
import { shortId } from '../lib/short-id.js';
import { FakeDataPlane } from '../gateway/dataplane-fake.js';
import { Gateway } from '../gateway/gateway.js';
import { HealthMonitor } from '../gateway/health-monitor.js';
import { keyRunner } from '../test/fixtures/gateway-over-fakes.js';

const { values } = parseArgs({
  options: {
    peers: { type: 'string', default: '1,10,50,100' },
    checks: { type: 'string', default: '20' },
    json: { type: 'boolean', default: false },
  },
});
const PEERS = values.peers.split(',').map(Number);
if (PEERS.some((n) => !Number.isInteger(n) || n < 1 || n > 200)) {
  throw new Error('--peers: comma-separated counts, each 1..200');
}
const CHECKS = Math.min(200, Math.max(3, Number(values.checks)));
const TICK_MS = 1000 / 100; // USER_HZ

/** CPU ms of a pid (schedstat: ns on CPU, all threads' sum via the main thread is enough for python). */
async function cpuOfPid(pid: number): Promise<number> {
  const s = await readFile(`/proc/${pid}/schedstat`, 'utf8').catch(() => '0');
  return Number(s.split(' ')[0]) / 1e6;
}

/** CPU ms of this process and of its children that were waited for. */
async function cpuOfSelf(): Promise<number> {
  const u = process.cpuUsage();
  const f = (await readFile('/proc/self/stat', 'utf8')).split(') ')[1]!.split(' ');
  // After "(comm) ": field 3 is index 0, so cutime (16) and cstime (17) are 13 and 14.
  const children = (Number(f[13]) + Number(f[14])) * TICK_MS;
  return (u.user + u.system) / 1000 + children;
}

interface Row {
  mode: 'ping' | 'helper';
  peers: number;
  startsPerCheck: number;
  cpuMsPerCheck: number;
  /** The helper's share of cpuMsPerCheck. */
  helperMsPerCheck: number;
  msPerCheck: number;
  /** Peer results other than up over all checks (should be 0: every echo answered). */
  peersNotUp: number;
}

async function measure(mode: Row['mode'], peers: number): Promise<Row> {
  const exec = new ExecaRunner();
  const netns = new NetnsSet(exec, `l2fed-bi${shortId()}`);
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-bench-'));
  try {
    const gw = await netns.add('gw');
    const far = await netns.add('far');
    await netns.veth({ ns: gw, ifname: 'tun0' }, { ns: far, ifname: 'tun1' });
    await netns.addr(gw, 'tun0', '198.19.255.1/24');
    const addrs = Array.from({ length: peers }, (_, i) => `198.19.255.${i + 2}`);
    for (const a of addrs) await netns.addr(far, 'tun1', `${a}/24`);
    // The network's device (a veth end: no dummy module needed) takes the probe frames.
    await netns.veth({ ns: gw, ifname: 'l2fv100' }, { ns: gw, ifname: 'l2fv100p' });
    const plane = new FakeDataPlane({ linuxBridge: ['br-cdn'] });
    const gateway = new Gateway({ runner: keyRunner(), backends: () => plane.backends() });
    const config = {
      identity: 'bench',
      netns: gw,
      wireguard: { ifname: 'l2fa', listenPort: 51820, privateKeyFile: join(dir, 'k') },
      transitAddress: '198.19.255.1/24',
      peers: addrs.map((a, i) => ({
        name: `p${i}`,
        publicKey: Buffer.alloc(32, i + 1).toString('base64'),
        endpoints: [`198.18.0.${i + 2}:51820`],
        transitAddress: a,
      })),
      networks: [
        {
          name: 'cdn',
          vni: 100,
          segment: { type: 'linux-bridge' as const, bridge: 'br-cdn' },
          peers: addrs.map((_, i) => `p${i}`),
        },
      ],
    };
    await gateway.apply(config);
    const now = Math.floor(Date.now() / 1000);
    for (const p of config.peers) plane.tunnel.handshake('l2fa', p.publicKey, now);
    const runner = new RecordingRunner(exec);
    const monitor = new HealthMonitor({
      gateway,
      runner,
      failover: false,
      ...(mode === 'ping' ? { helper: false as const } : {}),
    });
    try {
      const first = await monitor.check(); // starts the helper; not counted
      const up = first?.peers.filter((p) => p.status === 'up').length;
      if (up !== peers) throw new Error(`${mode}/${peers}: ${up} of ${peers} peers up`);
      const helperPid = Number((await exec.run(['ip', 'netns', 'pids', gw])).stdout.trim()) || 0;
      runner.clear();
      const h0 = helperPid ? await cpuOfPid(helperPid) : 0;
      const cpu0 = (await cpuOfSelf()) + h0;
      const t0 = Date.now();
      let notUp = 0;
      for (let i = 0; i < CHECKS; i++) {
        const h = await monitor.check();
        notUp += h?.peers.filter((p) => p.status !== 'up').length ?? peers;
      }
      const ms = Date.now() - t0;
      const h1 = helperPid ? await cpuOfPid(helperPid) : 0;
      const cpu1 = (await cpuOfSelf()) + h1;
      return {
        mode,
        peers,
        startsPerCheck: runner.calls.length / CHECKS,
        cpuMsPerCheck: (cpu1 - cpu0) / CHECKS,
        helperMsPerCheck: (h1 - h0) / CHECKS,
        msPerCheck: ms / CHECKS,
        peersNotUp: notUp,
      };
    } finally {
      await monitor.stop();
    }
  } finally {
    await netns.dispose();
    await rm(dir, { recursive: true, force: true });
  }
}

const rows: Row[] = [];
for (const peers of PEERS) {
  for (const mode of ['ping', 'helper'] as const) rows.push(await measure(mode, peers));
}
const base = (mode: Row['mode']) => rows.find((r) => r.mode === mode && r.peers === PEERS[0])!;
const out = rows.map((r) => ({
  ...r,
  startsRatio: r.startsPerCheck / base(r.mode).startsPerCheck,
  cpuRatio: r.cpuMsPerCheck / base(r.mode).cpuMsPerCheck,
}));
if (values.json) console.log(JSON.stringify(out, null, 2));
else {
  console.log(`${CHECKS} checks per row; ratios to ${PEERS[0]} peer(s) in the same mode`);
  console.log(
    'mode    peers  starts/check  ratio   CPU ms/check  ratio  (helper)  wall ms/check  not up',
  );
  for (const r of out) {
    console.log(
      `${r.mode.padEnd(7)} ${String(r.peers).padStart(5)}  ${r.startsPerCheck.toFixed(1).padStart(12)}  ${r.startsRatio.toFixed(2).padStart(5)}  ${r.cpuMsPerCheck.toFixed(1).padStart(12)}  ${r.cpuRatio.toFixed(2).padStart(5)}  ${r.helperMsPerCheck.toFixed(1).padStart(8)}  ${r.msPerCheck.toFixed(0).padStart(13)}  ${String(r.peersNotUp).padStart(6)}`,
    );
  }
}
