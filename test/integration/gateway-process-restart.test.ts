import { join } from 'node:path';
import { supervise } from '../../lib/supervisor.js';
import { ExecaRunner, RecordingRunner } from '../../lib/runner.js';
import { DetachedLauncher } from '../../gateway/daemons.js';
import { Gateway } from '../../gateway/gateway.js';
import { GatewayLab, type LabNetwork } from '../fixtures/gateway-testbed.js';
import { testWith } from '../fixtures/privileges.js';
import { dataPlaneSnapshots } from '../fixtures/data-plane-snapshot.js';
import { DEFAULT_NFT } from '../../gateway/firewall-nft.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping', DEFAULT_NFT],
});

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };

test('gateway - killing the gateway process (SIGKILL) keeps the tunnel; a new process adopts it', async (t) => {
  const lab = await GatewayLab.create(2, 'linux-bridge');
  const launcherDir = join(lab.dir.path, 'daemons');
  const detached = new DetachedLauncher(launcherDir);
  const [s0, s1] = lab.sites as [(typeof lab.sites)[0], (typeof lab.sites)[0]];
  const key = `wireguard-go:${s0.ifname}`;
  t.teardown(async () => {
    await detached.get(key)?.stop(); // graceful, so its control socket goes too
    await lab.dispose();
  });
  for (const site of lab.sites) await lab.addSegment(site, CDN);

  // Site 0's gateway runs as a separate OS process.
  const child = await supervise({
    name: 'gateway-process',
    argv: [
      process.execPath,
      '--import=tsx',
      join(import.meta.dirname, '../fixtures/gateway-process.ts'),
      JSON.stringify(lab.config(s0, [CDN])),
      launcherDir,
    ],
    readyWhen: /applied \d+ steps/,
    readyTimeoutMs: 30_000,
  });
  await s1.gateway.apply(lab.config(s1, [CDN]));
  const a = await lab.addPod(s0, CDN, 11, 1370);
  const b = await lab.addPod(s1, CDN, 12, 1370);
  const wgPid = detached.get(key)?.pid;
  t.truthy(wgPid);

  const ping = await lab.spawn(
    'ping',
    a.ns,
    ['ping', '-i', '0.05', '-c', '80', '-W', '1', b.ip],
    /bytes of data/,
  );
  await new Promise((r) => setTimeout(r, 1000));
  await child.kill(); // SIGKILL: no cleanup code runs
  t.false(child.running);

  // A new gateway (here: in the test process) with the same launcher dir adopts it all.
  // Its commands and the data plane it finds are compared: nothing is redone.
  const before = await dataPlaneSnapshots(lab.runner, lab.sites);
  const runner = new RecordingRunner(new ExecaRunner());
  const fresh = new Gateway({ runner, launcher: detached, tunnelKind: 'wireguard-go' });
  const r = await fresh.apply(lab.config(s0, [CDN]));
  t.deepEqual(r.steps, []);
  t.deepEqual(runner.mutatingCommands(), []);
  t.deepEqual(await dataPlaneSnapshots(lab.runner, lab.sites), before, 'data plane unchanged');
  t.is(detached.get(key)?.pid, wgPid, 'the same wireguard-go kept running');
  await ping.exited;
  t.regex(ping.output(), /80 packets transmitted, 80 received/, ping.output());
});
