import { HealthMonitor } from '../../gateway/health-monitor.js';
import { GatewayMetrics, serveMetrics } from '../../gateway/metrics.js';
import { GatewayLab, type LabNetwork } from '../fixtures/gateway-testbed.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({ netAdmin: true, tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping'] });

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };

test('gateway health - handshake, probe, metrics, and "connected but nothing passes"', async (t) => {
  const lab = await GatewayLab.create(2, 'linux-bridge');
  t.teardown(() => lab.dispose());
  const pods = [];
  for (const site of lab.sites) {
    await lab.addSegment(site, CDN);
    await site.gateway.apply(lab.config(site, [CDN]));
    pods.push(await lab.addPod(site, CDN, 11 + site.index, 1370));
  }
  const [s0, s1] = lab.sites as [(typeof lab.sites)[0], (typeof lab.sites)[0]];
  const [a, b] = pods as [(typeof pods)[0], (typeof pods)[0]];
  const ping = (count: number) =>
    lab.runner.run(['ping', '-c', String(count), '-i', '0.2', '-W', '1', b.ip], {
      netns: a.ns,
      allowFailure: true,
      timeoutMs: 15_000,
    });
  t.is((await ping(2)).exitCode, 0);

  const metrics = new GatewayMetrics('site0');
  const monitor = new HealthMonitor({ gateway: s0.gateway, runner: lab.runner, metrics });
  t.teardown(() => monitor.stop());
  const h1 = await monitor.check();
  t.is(h1?.tunnel.kind, 'wireguard-go');
  t.is(h1?.peers[0]?.status, 'up', h1?.peers[0]?.reason);
  t.true((h1?.peers[0]?.handshakeAgeSeconds ?? 999) < 30);
  t.true((h1?.peers[0]?.probe.rttMs ?? 0) > 0);
  t.is(h1?.networks[0]?.status, 'ok', h1?.networks[0]?.reason);

  const server = await serveMetrics(metrics.registry);
  t.teardown(() => server.close());
  const text = await (await fetch(`http://127.0.0.1:${server.port}/metrics`)).text();
  t.regex(text, /l2fed_gateway_tunnel_up\{peer="site1",gateway="site0"\} 1/);
  t.regex(text, /l2fed_gateway_peer_handshake_age_seconds\{peer="site1",gateway="site0"\} \d+/);
  t.regex(text, /l2fed_gateway_peer_state\{peer="site1",state="up",gateway="site0"\} 1\n/);
  t.regex(text, /l2fed_gateway_peer_state\{peer="site1",state="degraded",gateway="site0"\} 0\n/);
  // The pings above crossed the tunnel: WireGuard counted them, and so does the counter.
  for (const name of ['received', 'sent']) {
    const m = new RegExp(
      `l2fed_gateway_peer_${name}_bytes_total\\{peer="site1",gateway="site0"\\} (\\d+)`,
    ).exec(text);
    t.true(Number(m?.[1]) > 0, `${name} bytes: ${m?.[0]}`);
  }

  // A fault outside the gateway's knowledge: the far VXLAN device goes down. The tunnel
  // still answers, but frames sent into the network never come back.
  await lab.runner.run(['ip', 'link', 'set', 'l2fv100', 'down'], { netns: s1.ns, mutates: true });
  // Baseline after the fault: frames already in flight before it must not count.
  await new Promise((r) => setTimeout(r, 300));
  await monitor.check();
  t.not((await ping(3)).exitCode, 0);
  const h2 = await monitor.check();
  t.is(h2?.peers[0]?.status, 'up');
  t.is(h2?.networks[0]?.status, 'not-receiving', h2?.networks[0]?.reason);

  // The far gateway's next apply repairs exactly that.
  const repair = await s1.gateway.apply(lab.config(s1, [CDN]));
  t.deepEqual(
    repair.steps.map((s) => s.kind),
    ['link-set-up'],
  );
  t.is((await ping(2)).exitCode, 0);
  t.is((await monitor.check())?.networks[0]?.status, 'ok');
});
