import { GatewayLab, type LabNetwork } from '../fixtures/gateway-testbed.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({ netAdmin: true, tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping'] });

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };
/** The health check interval: the bound on how long rotation may drop traffic. */
const PROBE_INTERVAL_S = 10;

test('gateway - key rotation switches keys with a drop shorter than one probe interval', async (t) => {
  const lab = await GatewayLab.create(2, 'linux-bridge');
  t.teardown(() => lab.dispose());
  const [s0, s1] = lab.sites as [(typeof lab.sites)[0], (typeof lab.sites)[0]];
  for (const site of lab.sites) {
    await lab.addSegment(site, CDN);
    await site.gateway.apply(lab.config(site, [CDN]));
  }
  const a = await lab.addPod(s0, CDN, 11, 1370);
  const b = await lab.addPod(s1, CDN, 12, 1370);
  const oldKey = s0.publicKey;

  // 150 pings at 100 ms (15 s) across the rotation.
  const ping = await lab.spawn(
    'ping',
    a.ns,
    ['ping', '-i', '0.1', '-c', '150', '-W', '1', b.ip],
    /bytes of data/,
  );
  await new Promise((r) => setTimeout(r, 1500));
  const { publicKey } = await s0.gateway.rotateKey();
  t.not(publicKey, oldKey);
  s0.publicKey = publicKey;
  // Both sides apply at about the same time, as the agents would after the broker
  // hands out the new public key.
  const [r0, r1] = await Promise.all([
    s0.gateway.apply(lab.config(s0, [CDN])),
    s1.gateway.apply(lab.config(s1, [CDN])),
  ]);
  t.deepEqual(
    r0.steps.map((s) => s.kind),
    ['tunnel-set-key'],
  );
  t.deepEqual(
    r1.steps.map((s) => s.kind),
    ['tunnel-remove-peer', 'tunnel-set-peer'],
  );
  const wg = await lab.runner.run(['wg', 'show', s0.ifname, 'public-key'], { netns: s0.ns });
  t.is(wg.stdout.trim(), publicKey);

  await ping.exited;
  const m = /150 packets transmitted, (\d+) received/.exec(ping.output());
  const lost = 150 - Number(m?.[1] ?? 0);
  t.log(`rotation dropped ${lost} of 150 pings (${(lost * 0.1).toFixed(1)} s)`);
  t.true(lost * 0.1 < PROBE_INTERVAL_S, ping.output());
  // And the path is healthy afterwards.
  const after = await lab.runner.run(['ping', '-c', '2', '-i', '0.2', '-W', '2', b.ip], {
    netns: a.ns,
    allowFailure: true,
  });
  t.is(after.exitCode, 0);
});
