/**
 * Issue 12 end to end on the real data plane: two clusters (real nats-server with
 * gen-auth credentials, the real Broker, real gateway services over wireguard-go and
 * Linux bridges, agents reading manifest folders). madrid declares cdn with `mtu: 1280`,
 * bristol with `auto` (1370 over the 1500 underlay). Each pod takes its cluster's
 * reported network MTU (status.effectiveMTU), as the NAD gives pods. Before the MTU
 * agreement bristol's full-size frames were lost silently on their way to madrid; now
 * both sides run 1280 and full-size don't-fragment pings pass in both directions.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentFederation, until } from '../fixtures/agent-federation.js';
import type { LabNetwork } from '../fixtures/gateway-testbed.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping', 'nats-server'],
});

const CDN: LabNetwork = { name: 'cdn', vni: 0, subnet: 10 };
const CLUSTERS = ['madrid', 'bristol'] as const;

const cdnWithMtu = (mtu: number | 'auto') => `apiVersion: l2fed.io/v1alpha1
kind: FederatedNetwork
metadata: {name: cdn}
spec: {segment: {linuxBridge: br-cdn}, mtu: ${mtu}}
`;

test('mtu e2e - 1280 in madrid, auto in bristol: one MTU, full-size DF pings cross both ways', async (t) => {
  const fed = await AgentFederation.start(t, {
    clusters: CLUSTERS,
    networks: [CDN],
    exported: ['cdn'],
    probeMs: 1000,
  });
  await writeFile(join(fed.dirs.get('madrid')!.manifests, 'cdn.yaml'), cdnWithMtu(1280));
  await writeFile(join(fed.dirs.get('bristol')!.manifests, 'cdn.yaml'), cdnWithMtu('auto'));
  for (const id of CLUSTERS) await fed.startAgent(id);
  await until('cdn ping across', async () => (await fed.ping('cdn')).ok, 60_000);

  // Status: each cluster reports the network's MTU once the broker's agreement is applied.
  const mtuOf = async (id: string) =>
    (await fed.status(id, 'FederatedNetwork', 'cdn'))?.status.effectiveMTU as number | undefined;
  const settled = async () => {
    const [m, b] = await Promise.all([mtuOf('madrid'), mtuOf('bristol')]);
    return m !== undefined && m === b;
  };
  await until('both clusters report one MTU', settled, 30_000).catch(() => undefined);
  const reported = { madrid: await mtuOf('madrid'), bristol: await mtuOf('bristol') };
  t.deepEqual(reported, { madrid: 1280, bristol: 1280 }, 'status.effectiveMTU of cdn');
  const cond = (await fed.status('bristol', 'FederatedNetwork', 'cdn'))?.status.conditions?.find(
    (c) => c.type === 'MtuAgreed',
  );
  t.is(cond?.reason, 'LoweredByMember');
  t.regex(cond?.message ?? '', /1280.*madrid, which requests 1280/);

  // The gateway devices of both sites carry it (the VXLAN device of cdn).
  for (const id of CLUSTERS) {
    const site = fed.site(id);
    const device = fed.gateways
      .get(id)!
      .gateway.lastReport?.networks.find((n) => n.name === 'cdn')?.device;
    const r = await fed.lab.runner.run(['ip', '-j', 'link', 'show', 'dev', String(device)], {
      netns: site.ns,
    });
    t.is((JSON.parse(r.stdout) as { mtu: number }[])[0]?.mtu, 1280, `${id}'s ${device}`);
  }

  // Pods take their cluster's reported MTU, then ping the other side with full-size
  // frames that may not be fragmented (payload = MTU - 20 IPv4 - 8 ICMP).
  for (const id of CLUSTERS) {
    const pod = fed.pods.get(`${id}/cdn`)!;
    await fed.lab.runner.run(
      ['ip', 'link', 'set', 'dev', pod.ifname, 'mtu', String(reported[id])],
      { netns: pod.ns, mutates: true },
    );
  }
  for (const [from, to] of [
    ['bristol', 'madrid'],
    ['madrid', 'bristol'],
  ] as const) {
    const a = fed.pods.get(`${from}/cdn`)!;
    const b = fed.pods.get(`${to}/cdn`)!;
    const size = reported[from]! - 28;
    const r = await fed.lab.runner.run(
      ['ping', '-n', '-M', 'do', '-s', String(size), '-c', '3', '-i', '0.2', '-W', '2', b.ip],
      { netns: a.ns, allowFailure: true, timeoutMs: 20_000 },
    );
    t.is(r.exitCode, 0, `${from} → ${to}, ${size} bytes, DF:\n${r.stdout}${r.stderr}`);
  }
});
