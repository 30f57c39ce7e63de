/**
 * Issue 12: a gateway behind a port-translating NAT. Site B sits behind a NAT namespace
 * that rewrites its source to 198.18.0.50:40000-40100; site A knows only B's pre-NAT
 * (advertised) endpoint, which nobody holds any more. WireGuard on A learns B's real
 * endpoint from B's handshakes (roaming). Resyncs, a restart of A's gateway, config
 * changes and the health monitor must keep that endpoint while a recent handshake
 * proves it; the advertised one comes back once it is stale.
 */
import { DEFAULT_NFT } from '../../gateway/firewall-nft.js';
import type { GatewayConfigInput } from '../../gateway/config.js';
import { REJECT_AFTER_TIME_SECONDS } from '../../gateway/endpoint-failover.js';
import { Gateway } from '../../gateway/gateway.js';
import { HealthMonitor } from '../../gateway/health-monitor.js';
import { parsePing, type ProbeResult } from '../../gateway/health.js';
import { GatewayLab, WG_PORT, type LabSite } from '../fixtures/gateway-testbed.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping', DEFAULT_NFT],
});

/** The NAT's outside address on the underlay; B's traffic leaves with it. */
const NAT_OUTSIDE = '198.18.0.50';
/** B's private side behind the NAT (inside the lab's 198.18.0.0/15). */
const NAT_INSIDE = '198.18.1.1';
const B_PRIVATE = '198.18.1.2';
/** B's advertised endpoints: its old underlay address and another one, both dead now. */
const ADVERTISED = `198.18.0.2:${WG_PORT}`;
const ADVERTISED_NEW = `198.18.0.3:${WG_PORT}`;
/** Resync period of the test (the agent's default is 30 s; the fault needs only repeats). */
const RESYNC_MS = 1500;
const PING_INTERVAL_S = 0.2;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** NAT rules: every flow of B in conntrack zone `zone`, its source remapped to `ports`. */
function natRules(zone: number, ports: string): string {
  return `
table ip l2fednat
delete table ip l2fednat
table ip l2fednat {
  chain raw {
    type filter hook prerouting priority raw;
    ct zone set ${zone}
  }
  chain post {
    type nat hook postrouting priority srcnat;
    meta l4proto udp oifname "n0" snat to ${NAT_OUTSIDE}:${ports}
  }
}
`;
}

function withPeer(c: GatewayConfigInput, patch: Record<string, unknown>): GatewayConfigInput {
  return { ...c, peers: (c.peers ?? []).map((p) => ({ ...p, ...patch })) };
}

test('gateway NAT - a roamed endpoint proven by handshakes survives resyncs, restarts, config changes and a NAT remap; a stale one goes back to the advertised endpoint', async (t) => {
  t.timeout(240_000);
  const lab = await GatewayLab.create(2, 'linux-bridge');
  t.teardown(() => lab.dispose());
  const [a, b] = lab.sites as [LabSite, LabSite];
  const run = (ns: string, argv: string[], input?: string) =>
    lab.runner.run(argv, { netns: ns, mutates: true, input });

  // Put B behind the NAT: its underlay veth moves into the NAT namespace.
  const sw = lab.netns.nameOf('sw');
  const nat = await lab.netns.add('nat');
  await run(sw, ['ip', 'link', 'set', `u${b.index}`, 'nomaster']);
  await run(sw, ['ip', 'link', 'set', `u${b.index}`, 'netns', nat]);
  await run(nat, ['ip', 'addr', 'add', `${NAT_INSIDE}/24`, 'dev', `u${b.index}`]);
  await run(nat, ['ip', 'link', 'set', `u${b.index}`, 'up']);
  await lab.netns.veth({ ns: nat, ifname: 'n0' }, { ns: sw, ifname: 'un0' });
  await run(sw, ['ip', 'link', 'set', 'un0', 'master', 'ulbr']);
  await lab.netns.addr(nat, 'n0', `${NAT_OUTSIDE}/24`);
  await run(nat, ['sysctl', '-q', '-w', 'net.ipv4.ip_forward=1']);
  await run(nat, [DEFAULT_NFT, '-f', '-'], natRules(1, '40000-40100'));
  await run(b.ns, ['ip', 'addr', 'flush', 'dev', 'ul0']);
  await lab.netns.addr(b.ns, 'ul0', `${B_PRIVATE}/24`);
  await run(b.ns, ['ip', 'route', 'add', 'default', 'via', NAT_INSIDE]);

  const configA = withPeer(lab.config(a, []), { endpoints: [ADVERTISED] });
  const configB = lab.config(b, []); // A's real endpoint, reachable through the NAT
  await a.gateway.apply(configA);
  await b.gateway.apply(configB); // B's new peer entry initiates at once

  /** A's view of B: endpoint and handshake (unix s) from `wg show dump`. */
  const peerOnA = async () => {
    const r = await lab.runner.run(['wg', 'show', a.ifname, 'dump'], { netns: a.ns });
    const line = r.stdout
      .split('\n')
      .slice(1)
      .find((l) => l.startsWith(b.publicKey));
    const f = line?.split('\t') ?? [];
    return { endpoint: f[2], handshake: Number(f[4] ?? 0) };
  };
  const waitFor = async (what: string, ok: (e: string | undefined) => boolean, ms: number) => {
    const start = Date.now();
    const end = start + ms;
    let e = (await peerOnA()).endpoint;
    while (!ok(e) && Date.now() < end) {
      await sleep(200);
      e = (await peerOnA()).endpoint;
    }
    t.true(ok(e), `${what}: A's endpoint for B is ${e} after ${ms} ms`);
    t.log(`${what}: ${e} after ${Date.now() - start} ms`);
    return e;
  };
  const behindNat = (e: string | undefined) => e?.startsWith(`${NAT_OUTSIDE}:`) === true;
  const roamed = await waitFor('first roam', behindNat, 30_000);
  t.log(`A learned B's translated endpoint ${roamed} (advertised ${ADVERTISED})`);
  const port = Number(roamed?.split(':')[1]);
  t.true(port >= 40000 && port <= 40100, `source port ${port} was not remapped`);

  /** Samples A's endpoint for B every 100 ms until stopped. */
  const sample = () => {
    const seen: string[] = [];
    let on = true;
    const done = (async () => {
      while (on) {
        seen.push((await peerOnA()).endpoint ?? '(none)');
        await sleep(100);
      }
    })();
    return {
      stop: async () => {
        on = false;
        await done;
        return seen;
      },
    };
  };
  /** `count` pings from A to B's transit address through the tunnel. */
  const pingB = (count: number): Promise<ProbeResult> =>
    lab.runner
      .run(
        [
          'ping',
          '-q',
          '-n',
          '-c',
          String(count),
          '-i',
          String(PING_INTERVAL_S),
          '-W',
          '1',
          b.transitAddress,
        ],
        { netns: a.ns, allowFailure: true, timeoutMs: count * 1000 + 10_000 },
      )
      .then((r) => parsePing(r.stdout));

  // Phase 1: traffic while A resyncs, restarts, and gets config changes; the health
  // monitor (fail-over) runs throughout.
  let monitor = new HealthMonitor({
    gateway: a.gateway,
    runner: lab.runner,
    intervalMs: 1000,
    prober: false,
  });
  t.teardown(() => monitor.stop());
  monitor.start();
  const resyncs = async (until: Promise<unknown>, changes: (i: number) => Promise<void>) => {
    let over = false;
    void until.finally(() => (over = true));
    let i = 0;
    while (!over) {
      await changes(i++);
      await sleep(RESYNC_MS);
    }
    return i;
  };
  let current = configA;
  const s1 = sample();
  const ping1 = pingB(100);
  const n1 = await resyncs(ping1, async (i) => {
    if (i === 3) {
      await monitor.stop();
      lab.restartGateway(a); // a crash and restart with the same config
      monitor = new HealthMonitor({
        gateway: a.gateway,
        runner: lab.runner,
        intervalMs: 1000,
        prober: false,
      });
      monitor.start();
    }
    if (i === 5) current = withPeer(configA, { endpoints: [ADVERTISED], persistentKeepalive: 20 });
    if (i === 7) current = withPeer(configA, { endpoints: [ADVERTISED_NEW] }); // advertised moves
    await a.gateway.apply(current);
  });
  const loss1 = await ping1;
  const seen1 = await s1.stop();
  const resets1 = seen1.filter((e) => !behindNat(e));
  t.log(
    `phase 1: ${n1} applies (restart, keepalive change, advertised change), ${loss1.sent - loss1.received}/${loss1.sent} pings lost, ${resets1.length}/${seen1.length} samples off the NAT endpoint`,
  );
  t.is(
    resets1.length,
    0,
    `the roamed endpoint was rewritten to ${[...new Set(resets1)].join(', ')} in ${resets1.length} of ${seen1.length} samples`,
  );
  t.is(loss1.received, loss1.sent);
  t.true(loss1.sent >= 100);
  const health = await monitor.check();
  t.is(health?.peers[0]?.endpoint, roamed);
  t.is(health?.peers[0]?.endpointSource, 'roamed');
  t.is(health?.peers[0]?.status, 'up');

  // Phase 2: the NAT forgets B's mapping and picks another port (new conntrack zone, new
  // port range). B's next packet comes from the new mapping and WireGuard roams again.
  await run(nat, [DEFAULT_NFT, '-f', '-'], natRules(2, '41000-41100'));
  const fromB = lab.runner.run(
    ['ping', '-q', '-c', '10', '-i', '0.2', '-W', '1', a.transitAddress],
    {
      netns: b.ns,
      allowFailure: true,
    },
  );
  const remapped = await waitFor(
    'roam after the NAT remap',
    (e) => behindNat(e) && e !== roamed,
    10_000,
  );
  await fromB;
  t.log(`NAT remapped B to ${remapped}`);
  const s2 = sample();
  const ping2 = pingB(50);
  const n2 = await resyncs(ping2, () => a.gateway.apply(current).then(() => undefined));
  const loss2 = await ping2;
  const seen2 = await s2.stop();
  t.log(
    `phase 2: ${n2} applies after the remap, ${loss2.sent - loss2.received}/${loss2.sent} lost`,
  );
  const resets2 = seen2.filter((e) => e !== remapped);
  t.is(
    resets2.length,
    0,
    `after the remap: ${[...new Set(resets2)].join(', ')} in ${resets2.length} samples`,
  );
  t.is(loss2.received, loss2.sent);
  await monitor.stop();

  // Phase 3: B disappears behind the NAT; once the last handshake is older than
  // REJECT_AFTER_TIME the roamed endpoint is stale and an apply restores the advertised
  // one (the current config's). A clock 181 s ahead stands in for three minutes of waiting;
  // the blocked NAT guarantees no handshake could have happened meanwhile.
  await run(nat, [
    DEFAULT_NFT,
    'add',
    'chain',
    'ip',
    'l2fednat',
    'cut',
    '{ type filter hook forward priority 0; policy drop; }',
  ]);
  const stillFresh = await a.gateway.apply(current);
  t.deepEqual(stillFresh.steps, [], 'a recent handshake still proves the roamed endpoint');
  t.is((await peerOnA()).endpoint, remapped);
  const { handshake } = await peerOnA();
  a.gateway = new Gateway({
    runner: a.runner,
    launcher: lab.launcher,
    tunnelKind: 'wireguard-go',
    now: () => handshake + REJECT_AFTER_TIME_SECONDS + 1,
  });
  const stale = await a.gateway.apply(current);
  t.deepEqual(
    stale.steps.map((s) => s.kind),
    ['tunnel-set-peer'],
  );
  t.is((await peerOnA()).endpoint, ADVERTISED_NEW);
});
