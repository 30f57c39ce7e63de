/**
 * Key rotation timing with real WireGuard (wireguard-go), the ping one way only (as the
 * lab's): each order of the two switches (the rotating gateway's new private key, the
 * peer's replaced entry), and both at once through a delaying relay, where the two
 * handshake initiations cross and, without the gateway's handshake watch
 * (gateway/handshake-watch.ts), traffic stops for WireGuard's 5 s REKEY_TIMEOUT (seen:
 * 6.9-7.1 s gaps). No health monitor runs here (its pings would blur the timing).
 */
import { fileURLToPath } from 'node:url';
import type { ExecutionContext } from 'ava';
import type { GatewayConfigInput } from '../../gateway/config.js';
import type { SupervisedProcess } from '../../lib/supervisor.js';
import { GatewayLab, WG_PORT, type LabNetwork, type LabSite } from '../fixtures/gateway-testbed.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping', 'python3'],
});
const RELAY = fileURLToPath(new URL('../fixtures/udp-delay-relay.py', import.meta.url));

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };
/** The lab e2e's bound on the longest gap between ping replies across a rotation. */
const WORST_GAP_S = 2;
/** Time between the first and the second switch: the first side's handshake fails. */
const BETWEEN_MS = 700;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Unix timestamps of the replies in `ping -D` output. */
function replyTimes(out: string): number[] {
  return [...out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)].map((m) => Number(m[1]));
}

async function handshakes(lab: GatewayLab, site: LabSite): Promise<string> {
  const r = await lab.runner.run(['wg', 'show', site.ifname, 'latest-handshakes'], {
    netns: site.ns,
  });
  return r.stdout.trim().replace(/\s+/g, ' ');
}

/**
 * Logs both sites' latest handshakes once a second for `seconds` s, waits for `ping` to
 * end, then checks it got more than 20 replies and no gap between replies over `boundS` s.
 */
async function watchAndCheckGaps(
  t: ExecutionContext,
  lab: GatewayLab,
  ping: SupervisedProcess,
  seconds: number,
  boundS: number,
): Promise<void> {
  const [s0, s1] = lab.sites as [LabSite, LabSite];
  for (let i = 0; i < seconds; i++) {
    await sleep(1000);
    t.log(
      `${(Date.now() / 1000).toFixed(3)} handshakes: rotating ${await handshakes(lab, s0)} | peer ${await handshakes(lab, s1)}`,
    );
  }
  await ping.exited;
  const times = replyTimes(ping.output());
  const gaps = times.slice(1).map((x, i) => ({ at: times[i]!, gap: x - times[i]! }));
  const worst = gaps.reduce((w, g) => (g.gap > w.gap ? g : w), { at: 0, gap: 0 });
  t.log(`longest gap ${worst.gap.toFixed(2)} s after the reply at ${worst.at.toFixed(3)}`);
  t.true(times.length > 20, ping.output());
  t.true(worst.gap <= boundS, `longest gap ${worst.gap.toFixed(2)} s`);
}

for (const first of ['rotating', 'peer'] as const) {
  test(`gateway - rotation where the ${first} side switches first: traffic from that side resumes within ${WORST_GAP_S} s`, async (t) => {
    const lab = await GatewayLab.create(2, 'linux-bridge');
    t.teardown(() => lab.dispose());
    const [s0, s1] = lab.sites as [LabSite, LabSite];
    for (const site of lab.sites) {
      await lab.addSegment(site, CDN);
      await site.gateway.apply(lab.config(site, [CDN]));
    }
    const a = await lab.addPod(s0, CDN, 11, 1370);
    const b = await lab.addPod(s1, CDN, 12, 1370);
    // Traffic one way only, from the side that switches first (the lab pings likewise).
    const [from, to] = first === 'rotating' ? [a, b] : [b, a];
    const ping = await lab.spawn(
      'ping',
      from.ns,
      ['ping', '-D', '-n', '-i', '0.1', '-W', '1', '-c', '90', '-w', '11', to.ip],
      /bytes from/,
    );
    await sleep(1000);
    const { publicKey } = await s0.gateway.rotateKey();
    s0.publicKey = publicKey;
    const switchRotating = async () => {
      const r = await s0.gateway.apply(lab.config(s0, [CDN]));
      t.log(`${(Date.now() / 1000).toFixed(3)} rotating side switched`);
      return r;
    };
    const switchPeer = async () => {
      const r = await s1.gateway.apply(lab.config(s1, [CDN]));
      t.log(`${(Date.now() / 1000).toFixed(3)} peer side replaced the key`);
      return r;
    };
    if (first === 'rotating') {
      await switchRotating();
      await sleep(BETWEEN_MS);
      await switchPeer();
    } else {
      await switchPeer();
      await sleep(BETWEEN_MS);
      await switchRotating();
    }
    await watchAndCheckGaps(t, lab, ping, 6, WORST_GAP_S);
  });
}

/** One-way delay of the relay: wide enough for both initiations to be on the wire at once. */
const RELAY_DELAY_S = 0.3;
/**
 * WireGuard's REKEY_TIMEOUT: a crossed handshake costs at least this before a retry.
 * Traffic must resume sooner, with room for the relay's round trips (2 x 0.6 s).
 */
const CROSSED_BOUND_S = 4;

test(`gateway - rotation with both switches at once (handshake initiations cross): traffic resumes within ${CROSSED_BOUND_S} s`, async (t) => {
  const lab = await GatewayLab.create(2, 'linux-bridge');
  t.teardown(() => lab.dispose());
  const [s0, s1] = lab.sites as [LabSite, LabSite];
  // Both tunnels go through a relay in s0's namespace that delays every datagram.
  const relayHost = s0.underlayAddress;
  await lab.spawn(
    'relay',
    s0.ns,
    [
      'python3',
      RELAY,
      String(RELAY_DELAY_S),
      relayHost,
      '40001',
      '40002',
      s0.underlayAddress,
      String(WG_PORT),
      s1.underlayAddress,
      String(WG_PORT),
    ],
    /relaying/,
  );
  const viaRelay = (site: LabSite, port: number): GatewayConfigInput => {
    const c = lab.config(site, [CDN]);
    return {
      ...c,
      peers: (c.peers ?? []).map((p) => ({ ...p, endpoints: [`${relayHost}:${port}`] })),
    };
  };
  for (const site of lab.sites) await lab.addSegment(site, CDN);
  await s0.gateway.apply(viaRelay(s0, 40001));
  await s1.gateway.apply(viaRelay(s1, 40002));
  const a = await lab.addPod(s0, CDN, 11, 1370);
  const b = await lab.addPod(s1, CDN, 12, 1370);
  // The first handshake and ARP take a few relay round trips.
  let up = false;
  for (let i = 0; i < 10 && !up; i++) {
    const r = await lab.runner.run(['ping', '-c', '1', '-W', '2', b.ip], {
      netns: a.ns,
      allowFailure: true,
    });
    up = r.exitCode === 0;
  }
  t.true(up, `no path through the relay: ${await handshakes(lab, s0)}`);
  const ping = await lab.spawn(
    'ping',
    a.ns,
    ['ping', '-D', '-n', '-i', '0.1', '-W', '2', '-c', '130', '-w', '16', b.ip],
    /bytes from/,
  );
  await sleep(1500);
  const { publicKey } = await s0.gateway.rotateKey();
  s0.publicKey = publicKey;
  // Both sides switch at once: the rotating side's traffic makes it initiate, the peer's
  // new entry initiates at once (persistent keepalive), and each initiation reaches the
  // other side after its switch, so each side answers the other's and drops the answer
  // to its own.
  await Promise.all([s0.gateway.apply(viaRelay(s0, 40001)), s1.gateway.apply(viaRelay(s1, 40002))]);
  t.log(`${(Date.now() / 1000).toFixed(3)} both switched`);
  await watchAndCheckGaps(t, lab, ping, 8, CROSSED_BOUND_S);
});
