/**
 * An apply that changes other networks or peers must not touch traffic of a network it
 * leaves alone (docs/gateway.md, "What an apply touches"). Network A (cdn) runs between
 * site 0 and site 1 with a ping every 100 ms while both gateways, with their loop
 * monitors running as in the service, go through: adding and removing network B (vod)
 * several times, adding a peer (site 2), changing that peer's endpoints, a bumLimit
 * change, a no-op re-apply, and removing the peer. Asserts: no ping of A lost, and no
 * mutating command names A's devices. Both segment kinds; on OVS, B is a VLAN on A's
 * bridge.
 */
import type { ExecutionContext } from 'ava';
import { DEFAULT_NFT } from '../../gateway/firewall-nft.js';
import type { GatewayConfigInput } from '../../gateway/config.js';
import { HealthMonitor } from '../../gateway/health-monitor.js';
import { LoopMonitor } from '../../gateway/loop-monitor.js';
import {
  GatewayLab,
  WG_PORT,
  type LabNetwork,
  type LabSite,
  type SegmentKind,
} from '../fixtures/gateway-testbed.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping', 'python3', DEFAULT_NFT],
});

const A: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };
const B: LabNetwork = { name: 'vod', vni: 200, subnet: 20 };
const PINGS = 250; // 25 s at 100 ms
const CYCLES = Number(process.env.L2FED_UNTOUCHED_CYCLES ?? 2);

interface Phase {
  readonly name: string;
  /** Config of a site (0 or 1) in this phase. */
  readonly config: (site: LabSite) => GatewayConfigInput;
}

function phases(lab: GatewayLab): Phase[] {
  const [s0, s1, s2] = lab.sites as [LabSite, LabSite, LabSite];
  // On OVS, B shares A's bridge on VLAN 30 (as the lab's VLAN networks do).
  const SHARED = lab.segment === 'ovs';
  const pair = (s: LabSite) => (s === s0 ? s1 : s0);
  // A to the pair only; B (when present) to the pair and site 2 when it is a peer.
  const build = (
    s: LabSite,
    o: { b?: boolean; s2?: boolean; s2Endpoints?: string[]; bum?: number; s2Keepalive?: number },
  ): GatewayConfigInput => {
    const peers = o.s2 ? [pair(s), s2] : [pair(s)];
    const c = lab.config(s, o.b ? [A, B] : [A], peers);
    const networks = c.networks!.map((n) =>
      n.name === A.name
        ? { ...n, peers: [`site${pair(s).index}`] }
        : n.name === B.name && SHARED
          ? { ...n, segment: { type: 'ovs' as const, bridge: `br-${A.name}`, vlan: 30 } }
          : n,
    );
    const ps = c.peers!.map((p) =>
      p.name === 'site2'
        ? {
            ...p,
            ...(o.s2Endpoints ? { endpoints: o.s2Endpoints } : {}),
            ...(o.s2Keepalive ? { persistentKeepalive: o.s2Keepalive } : {}),
          }
        : p,
    );
    return {
      ...c,
      peers: ps,
      networks,
      ...(o.bum ? { bumLimit: { packetsPerSecond: o.bum, burst: o.bum } } : {}),
    };
  };
  const other = `198.18.0.${s2.index + 101}:${WG_PORT}`;
  return [
    { name: 'add B', config: (s) => build(s, { b: true }) },
    { name: 'remove B', config: (s) => build(s, {}) },
    { name: 'add B again', config: (s) => build(s, { b: true }) },
    { name: 'add peer site2', config: (s) => build(s, { b: true, s2: true }) },
    {
      name: "change site2's endpoints",
      // Its advertised endpoint changes; the one a fresh handshake proves stays (NAT rule).
      config: (s) => build(s, { b: true, s2: true, s2Endpoints: [other] }),
    },
    {
      // Re-sets site 2's whole entry (allowed-ips is remove-then-add in wireguard-go).
      name: "site2's keepalive",
      config: (s) => build(s, { b: true, s2: true, s2Endpoints: [other], s2Keepalive: 15 }),
    },
    {
      name: 'bumLimit change',
      config: (s) =>
        build(s, { b: true, s2: true, s2Endpoints: [other], s2Keepalive: 15, bum: 500 }),
    },
    {
      name: 'no-op re-apply',
      config: (s) =>
        build(s, { b: true, s2: true, s2Endpoints: [other], s2Keepalive: 15, bum: 500 }),
    },
    { name: 'remove peer site2', config: (s) => build(s, { b: true, bum: 500 }) },
    { name: 'remove B, bumLimit back', config: (s) => build(s, {}) },
  ];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function untouched(t: ExecutionContext, kind: SegmentKind): Promise<void> {
  const lab = await GatewayLab.create(3, kind);
  t.teardown(() => lab.dispose());
  const [s0, s1, s2] = lab.sites as [LabSite, LabSite, LabSite];
  const pair = [s0, s1];
  const list = phases(lab);
  for (const site of pair) {
    await lab.addSegment(site, A);
    await lab.addSegment(site, B);
    await site.gateway.apply(list[1]!.config(site));
  }
  // Site 2 carries B with both; it is their peer only in some phases.
  await lab.addSegment(s2, B);
  await s2.gateway.apply(lab.config(s2, [B]));
  const a0 = await lab.addPod(s0, A, 11, 1370);
  const a1 = await lab.addPod(s1, A, 12, 1370);
  t.true(await lab.reaches(a0.ns, a1.ip));
  // The loop monitors replace their table on a config change, as in the service.
  const loops = pair.map(
    (site) => new LoopMonitor({ gateway: site.gateway, runner: site.runner, intervalMs: 500 }),
  );
  t.teardown(() => Promise.all(loops.map((m) => m.stop())));
  // And health checks with the long-lived probe helper, as in the service.
  const health = pair.map(
    (site) => new HealthMonitor({ gateway: site.gateway, runner: site.runner, intervalMs: 1000 }),
  );
  t.teardown(() => Promise.all(health.map((m) => m.stop())));
  for (const m of [...loops, ...health]) m.start();
  await sleep(1500);

  const ping = await lab.spawn(
    'ping',
    a0.ns,
    ['ping', '-D', '-O', '-i', '0.1', '-c', String(PINGS), '-W', '1', a1.ip],
    /bytes of data/,
  );
  const log: string[] = [];
  const touching: string[] = [];
  // A's VXLAN ports, its pods and their host ends; its bridge too unless B shares it.
  const aDevices = [`l2fv${A.vni}`, a0.ns, a1.ns, `v0${A.name.slice(0, 3)}11`];
  aDevices.push(`v1${A.name.slice(0, 3)}12`, ...(kind === 'ovs' ? [] : [`br-${A.name}`]));
  let cycle = 0;
  while (ping.running && cycle < CYCLES * list.length) {
    const phase = list[cycle % list.length]!;
    cycle++;
    for (const s of pair) s.runner.clear();
    const at = Date.now() / 1000;
    const results = await Promise.all(pair.map((s) => s.gateway.apply(phase.config(s))));
    const steps = results.map((r) => r.steps.map((x) => x.kind).join(','));
    log.push(
      `${at.toFixed(3)}-${(Date.now() / 1000).toFixed(3)} ${phase.name}: ${steps.join(' | ')}`,
    );
    if (phase.name === 'no-op re-apply') t.deepEqual(steps, ['', ''], 'a re-apply changes nothing');
    await sleep(700); // the loop monitors follow the new config within ~250 ms
    for (const s of pair) {
      for (const c of s.runner.mutatingCommands()) {
        if (aDevices.some((d) => c.split(' ').includes(d))) touching.push(`${phase.name}: ${c}`);
      }
    }
  }
  await ping.exited;
  const out = ping.output();
  t.log([...log, ...out.split('\n').filter((l) => /transmitted|rtt/.test(l))].join('\n'));
  t.deepEqual(touching, [], 'no mutating command names a device of network A');
  t.true(
    new RegExp(`${PINGS} packets transmitted, ${PINGS} received`).test(out),
    `${kind}: network A lost pings (unanswered seqs at their times, then the applies)\n${out
      .split('\n')
      .filter((l) => /no answer|transmitted/.test(l))
      .join('\n')}\nphases:\n${log.join('\n')}`,
  );
}

test.serial('gateway - linux-bridge: applies that leave network A alone lose none of it', (t) =>
  untouched(t, 'linux-bridge'),
);
test.serial('gateway - ovs: applies that leave network A alone lose none of it', (t) =>
  untouched(t, 'ovs'),
);
