import { readdir, stat } from 'node:fs/promises';
import { ConfigError, PreconditionError } from '../../gateway/errors.js';
import { testWith } from '../fixtures/privileges.js';
import { GatewayLab, type LabNetwork } from '../fixtures/gateway-testbed.js';
import { receivedCount, receiverArgv, senderArgv } from '../fixtures/frames.js';
import { dataPlaneSnapshots } from '../fixtures/data-plane-snapshot.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping'],
});

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };
const VOD: LabNetwork = { name: 'vod', vni: 200, subnet: 20 };

test.serial(
  'gateway - re-apply runs zero mutating commands; restart re-adopts without a drop',
  async (t) => {
    const lab = await GatewayLab.create(2, 'linux-bridge');
    t.teardown(() => lab.dispose());
    const [s0, s1] = lab.sites as [(typeof lab.sites)[0], (typeof lab.sites)[0]];
    const pods = [];
    for (const site of lab.sites) {
      await lab.addSegment(site, CDN);
      const r = await site.gateway.apply(lab.config(site, [CDN]));
      t.true(r.steps.length > 0);
      pods.push(await lab.addPod(site, CDN, 11 + site.index, 1370));
    }
    const [a, b] = pods as [(typeof pods)[0], (typeof pods)[0]];
    t.true(await lab.reaches(a.ns, b.ip));

    // The key file stays private.
    t.is((await stat(s0.keyFile)).mode & 0o777, 0o600);

    // Re-apply: reads only, by its commands and by what the data plane looks like.
    const before = await dataPlaneSnapshots(lab.runner, lab.sites);
    s0.runner.clear();
    const again = await s0.gateway.apply(lab.config(s0, [CDN]));
    t.deepEqual(again.steps, []);
    t.deepEqual(s0.runner.mutatingCommands(), []);
    t.true(s0.runner.calls.length > 0, 'it did read the state');
    t.deepEqual(await dataPlaneSnapshots(lab.runner, lab.sites), before, 'data plane unchanged');

    // Restart: drop the Gateway object; a fresh one adopts the running data plane.
    const wgPid = lab.launcher.get(`wireguard-go:${s0.ifname}`)?.pid;
    const flood = await lab.spawn(
      'ping',
      a.ns,
      ['ping', '-i', '0.05', '-c', '60', '-W', '1', b.ip],
      /bytes of data/,
    );
    const fresh = lab.restartGateway(s0);
    const dry = await fresh.plan(lab.config(s0, [CDN]));
    t.deepEqual(dry.lines, []);
    const adopted = await fresh.apply(lab.config(s0, [CDN]));
    t.deepEqual(adopted.steps, []);
    t.deepEqual(s0.runner.mutatingCommands(), []);
    t.is(lab.launcher.get(`wireguard-go:${s0.ifname}`)?.pid, wgPid);
    await flood.exited;
    t.regex(flood.output(), /60 packets transmitted, 60 received/, flood.output());
    t.deepEqual(
      await dataPlaneSnapshots(lab.runner, lab.sites),
      before,
      'data plane unchanged by the adopt',
    );

    // Removing the peer from the network removes exactly its flood entry, the MACs the
    // VXLAN device learned from it and its VNI from the guard; nothing else.
    s1.runner.clear();
    const noPeers = lab.config(s1, [CDN]);
    noPeers.networks![0]!.peers = [];
    const removed = await s1.gateway.apply(noPeers);
    const kinds = removed.steps.map((s) => s.kind);
    t.deepEqual([...new Set(kinds)].sort(), ['fdb-del', 'fdb-forget', 'firewall-set']);
    t.is(kinds.filter((k) => k === 'fdb-del').length, 1);
    t.true(removed.steps.every((s) => s.kind !== 'fdb-forget' || s.dst === s0.transitAddress));
    t.true(
      s1.runner
        .mutatingCommands()
        .includes(`bridge fdb del 00:00:00:00:00:00 dev l2fv100 dst ${s0.transitAddress}`),
    );
    t.false(await lab.ping(a.ns, b.ip, 10), 'no reply to any of 10 pings');

    // And putting it back restores the path.
    await s1.gateway.apply(lab.config(s1, [CDN]));
    t.true(await lab.reaches(a.ns, b.ip));

    // Removing the network removes its device and port, and its VNI from the guard; the
    // tunnel stays.
    s1.runner.clear();
    const none = await s1.gateway.apply(lab.config(s1, []));
    t.deepEqual(
      none.steps.map((s) => s.kind),
      ['firewall-set', 'segment-detach', 'vxlan-delete'],
    );
    const links = await lab.runner.run(['ip', '-j', 'link'], { netns: s1.ns });
    t.false(links.stdout.includes('"l2fv100"'));
    t.true(links.stdout.includes(`"${s1.ifname}"`));
  },
);

test.serial('gateway - bad config is rejected before any command runs', async (t) => {
  const lab = await GatewayLab.create(2, 'linux-bridge');
  t.teardown(() => lab.dispose());
  const [s0] = lab.sites as [(typeof lab.sites)[0]];
  await lab.addSegment(s0, CDN);
  await s0.gateway.apply(lab.config(s0, [CDN]));
  const before = await lab.runner.run(['wg', 'show', s0.ifname, 'dump'], { netns: s0.ns });

  const good = lab.config(s0, [CDN]);
  const bad = [
    { ...good, peers: [{ ...good.peers![0]!, publicKey: 'not-a-key' }] },
    { ...good, networks: [{ ...good.networks![0]!, vni: 16_777_216 }] },
    { ...good, networks: [good.networks![0]!, { ...good.networks![0]!, name: 'dup' }] },
    { ...good, networks: [{ ...good.networks![0]!, segment: undefined }] },
    { ...good, networks: [{ ...good.networks![0]!, mtu: 1000 }] },
    { ...good, networks: [{ ...good.networks![0]!, peers: ['nobody'] }] },
  ];
  for (const cfg of bad) {
    s0.runner.clear();
    const err = await t.throwsAsync(s0.gateway.apply(cfg), { instanceOf: ConfigError });
    t.true((err?.issues.length ?? 0) > 0);
    t.deepEqual(s0.runner.calls, [], `no command ran for: ${err?.message}`);
  }
  const after = await lab.runner.run(['wg', 'show', s0.ifname, 'dump'], { netns: s0.ns });
  t.is(after.stdout, before.stdout);

  // A CNI's VXLAN beside the gateway (Calico's and Antrea's use 4789): the default port
  // is another, so the gateway leaves it alone.
  await lab.runner.run(
    ['ip', 'link', 'add', 'vx-cni', 'type', 'vxlan', 'id', '4096', 'dstport', '4789'],
    { netns: s0.ns, mutates: true },
  );
  const plane = await dataPlaneSnapshots(lab.runner, [s0]);
  s0.runner.clear();
  const beside = await s0.gateway.apply(good);
  t.deepEqual(beside.steps, []);
  t.deepEqual(s0.runner.mutatingCommands(), []);
  t.deepEqual(await dataPlaneSnapshots(lab.runner, [s0]), plane, 'data plane unchanged');
  // vxlanPort set to the CNI's port would cut it off by the guard: refused before any
  // change, named, and fixed by moving l2fed to another port.
  const clash = await t.throwsAsync(s0.gateway.apply({ ...good, vxlanPort: 4789 }), {
    instanceOf: PreconditionError,
  });
  t.regex(clash?.message ?? '', /vxlan device vx-cni already uses UDP 4789/);
  t.deepEqual(s0.runner.mutatingCommands(), []);
  t.deepEqual(await dataPlaneSnapshots(lab.runner, [s0]), plane, 'the refusal changed nothing');
  const moved = await s0.gateway.apply({ ...good, vxlanPort: 4790 });
  t.is(moved.steps[0]?.kind, 'firewall-set');
  const link = await lab.runner.run(['ip', '-d', '-j', 'link', 'show', 'dev', 'l2fv100'], {
    netns: s0.ns,
  });
  const [vx] = JSON.parse(link.stdout) as { linkinfo: { info_data: { port: number } } }[];
  t.is(vx?.linkinfo.info_data.port, 4790);
});

test.serial('gateway - three sites full mesh: a broadcast arrives exactly once', async (t) => {
  const lab = await GatewayLab.create(3, 'linux-bridge');
  t.teardown(() => lab.dispose());
  const pods = [];
  for (const site of lab.sites) {
    await lab.addSegment(site, CDN);
    await site.gateway.apply(lab.config(site, [CDN]));
    pods.push(await lab.addPod(site, CDN, 11 + site.index, 1370));
  }
  const [a, b, c] = pods as [(typeof pods)[0], (typeof pods)[0], (typeof pods)[0]];
  // Bring every tunnel up first, so the broadcast does not race a handshake.
  t.true(await lab.reaches(a.ns, b.ip));
  t.true(await lab.reaches(a.ns, c.ip));
  t.true(await lab.reaches(b.ns, c.ip));

  const rxB = await lab.spawn('rxB', b.ns, receiverArgv('eth1', 'l2fed-bcast'), /ready/);
  const rxC = await lab.spawn('rxC', c.ns, receiverArgv('eth1', 'l2fed-bcast'), /ready/);
  await lab.runner.run(senderArgv('eth1', 'ff:ff:ff:ff:ff:ff', 'l2fed-bcast'), { netns: a.ns });
  t.is(await receivedCount(rxB), 1);
  t.is(await receivedCount(rxC), 1);
});

test.serial('gateway - two networks on the same gateways are isolated', async (t) => {
  const lab = await GatewayLab.create(2, 'linux-bridge');
  t.teardown(() => lab.dispose());
  const pods: Record<string, { ns: string; ip: string }[]> = { cdn: [], vod: [] };
  for (const site of lab.sites) {
    await lab.addSegment(site, CDN);
    await lab.addSegment(site, VOD);
    const r = await site.gateway.apply(lab.config(site, [CDN, VOD]));
    t.deepEqual(
      r.report.networks.map((n) => n.device),
      ['l2fv100', 'l2fv200'],
    );
    for (const net of [CDN, VOD]) {
      // The same host octet on both networks, in different subnets.
      pods[net.name]!.push(await lab.addPod(site, net, 11 + site.index, 1370));
    }
  }
  const [cdnA, cdnB] = pods.cdn as [{ ns: string; ip: string }, { ns: string; ip: string }];
  const [vodA, vodB] = pods.vod as [{ ns: string; ip: string }, { ns: string; ip: string }];
  t.true(await lab.reaches(cdnA.ns, cdnB.ip));
  t.true(await lab.reaches(vodA.ns, vodB.ip));

  // A broadcast on cdn reaches cdn's remote pod and never vod's.
  const rxCdn = await lab.spawn('rxc', cdnB.ns, receiverArgv('eth1', 'l2fed-iso'), /ready/);
  // Nothing may arrive on vod: wait a bounded 4 s for a frame that must not come.
  const rxVod = await lab.spawn('rxv', vodB.ns, receiverArgv('eth1', 'l2fed-iso', 1.5, 4), /ready/);
  await lab.runner.run(senderArgv('eth1', 'ff:ff:ff:ff:ff:ff', 'l2fed-iso'), { netns: cdnA.ns });
  t.is(await receivedCount(rxCdn), 1);
  t.is(await receivedCount(rxVod), 0);

  // And vod's pod cannot reach cdn's: give it a cdn address on its vod link and try.
  await lab.runner.run(['ip', 'addr', 'add', '198.19.10.99/24', 'dev', 'eth1'], {
    netns: vodA.ns,
    mutates: true,
  });
  t.false(await lab.ping(vodA.ns, cdnB.ip, 10), 'no reply to any of 10 pings');
});

test.serial('gateway - lab cleanup leaves no wireguard-go socket behind', async (t) => {
  const lab = await GatewayLab.create(1, 'linux-bridge');
  const [s0] = lab.sites as [(typeof lab.sites)[0]];
  t.teardown(() => lab.dispose());
  await s0.gateway.apply(lab.config(s0, []));
  t.true((await readdir('/var/run/wireguard')).includes(`${s0.ifname}.sock`));
  await lab.dispose();
  t.false((await readdir('/var/run/wireguard')).includes(`${s0.ifname}.sock`));
});
