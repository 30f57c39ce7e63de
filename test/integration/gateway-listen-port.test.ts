import { setTimeout } from 'node:timers/promises';
import { PreconditionError } from '../../gateway/errors.js';
import { testWith } from '../fixtures/privileges.js';
import { GatewayLab, WG_PORT, type LabNetwork } from '../fixtures/gateway-testbed.js';
import { dataPlaneSnapshots } from '../fixtures/data-plane-snapshot.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ss', 'python3'],
});

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };

/** Waits (at most 5 s) until a bridge's operstate is UP. */
async function bridgeUp(lab: GatewayLab, ns: string, dev: string): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await lab.runner.run(['ip', '-j', 'link', 'show', 'dev', dev], { netns: ns });
    const [link] = JSON.parse(r.stdout) as { operstate: string }[];
    if (link?.operstate === 'UP') return;
    if (Date.now() > deadline) throw new Error(`${dev} in ${ns} not UP after 5 s: ${r.stdout}`);
    await setTimeout(100);
  }
}

/** A process holding a UDP port, as a CNI's WireGuard (Calico, Flannel, Antrea: 51820) does. */
const holderArgv = (port: number) => [
  'python3',
  '-c',
  `import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('0.0.0.0', ${port}))
print('ready', flush=True)
time.sleep(600)`,
];

test.serial('gateway - a listenPort someone else holds is refused before any change', async (t) => {
  const lab = await GatewayLab.create(1, 'linux-bridge');
  t.teardown(() => lab.dispose());
  const [s0] = lab.sites as [(typeof lab.sites)[0]];
  await lab.addSegment(s0, CDN);
  const holder = await lab.spawn('holder', s0.ns, holderArgv(WG_PORT), /ready/);
  const good = lab.config(s0, [CDN]);

  // First apply: the port is taken, so nothing is made (no half-built tunnel).
  const before = await dataPlaneSnapshots(lab.runner, [s0]);
  s0.runner.clear();
  const err = await t.throwsAsync(s0.gateway.apply(good), { instanceOf: PreconditionError });
  t.regex(
    err?.message ?? '',
    new RegExp(`^wireguard\\.listenPort: UDP ${WG_PORT} is already in use`),
  );
  t.regex(err?.message ?? '', new RegExp(`python3 \\(pid ${holder.pid}\\)`));
  t.regex(err?.message ?? '', /set wireguard\.listenPort to a free port/);
  t.deepEqual(s0.runner.mutatingCommands(), []);
  t.is(lab.launcher.get(`wireguard-go:${s0.ifname}`), undefined, 'no wireguard-go started');
  t.deepEqual(await dataPlaneSnapshots(lab.runner, [s0]), before, 'the refusal changed nothing');
  // A dry-run says the same.
  await t.throwsAsync(s0.gateway.plan(good), {
    instanceOf: PreconditionError,
    message: /^wireguard\.listenPort:/,
  });

  // Another port works; a re-apply on the gateway's own port is not a clash.
  const free = { ...good, wireguard: { ...good.wireguard, listenPort: WG_PORT + 1 } };
  t.true((await s0.gateway.apply(free)).steps.length > 0);
  t.deepEqual((await s0.gateway.apply(free)).steps, []);

  // Moving a running tunnel onto the held port: refused, the tunnel keeps its port.
  // The bridge turns UP once its new port forwards (the kernel's link watch, shortly
  // after the apply): wait for that, or the snapshots differ with no command run.
  await bridgeUp(lab, s0.ns, 'br-cdn');
  const running = await dataPlaneSnapshots(lab.runner, [s0]);
  s0.runner.clear();
  await t.throwsAsync(s0.gateway.apply(good), {
    instanceOf: PreconditionError,
    message: new RegExp(`^wireguard\\.listenPort: UDP ${WG_PORT} is already in use`),
  });
  t.deepEqual(s0.runner.mutatingCommands(), []);
  t.deepEqual(await dataPlaneSnapshots(lab.runner, [s0]), running, 'the refusal changed nothing');
  const wg = await lab.runner.run(['wg', 'show', s0.ifname, 'listen-port'], { netns: s0.ns });
  t.is(wg.stdout.trim(), String(WG_PORT + 1));
});
