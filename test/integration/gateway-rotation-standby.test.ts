/**
 * Issue 12 on the data plane, with real WireGuard (wireguard-go): the peer's gateway holds
 * the rotating side's next key as a standby entry (its agent applied and acknowledged it,
 * then went away). The rotating side switches; the peer's GATEWAY, with no further apply,
 * promotes the standby entry when the new key handshakes. Traffic both ways (ping and
 * reply) must lose at most one probe interval and never stop for more than 1 s.
 */
import type { GatewayConfigInput } from '../../gateway/config.js';
import { readUapiHandshakes } from '../../gateway/uapi.js';
import { GatewayLab, type LabNetwork, type LabSite } from '../fixtures/gateway-testbed.js';
import { testWith } from '../fixtures/privileges.js';

const test = testWith({ netAdmin: true, tools: ['ip', 'bridge', 'wg', 'wireguard-go', 'ping'] });

const CDN: LabNetwork = { name: 'cdn', vni: 100, subnet: 10 };
/** The lab's health probe interval; the bound on loss, in pings of 100 ms. */
const PROBE_INTERVAL_S = 1;
/** The bound on the longest gap between replies. */
const WORST_GAP_S = 1;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function replyTimes(out: string): number[] {
  return [...out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)].map((m) => Number(m[1]));
}

/** The peer's config with `nextKey` announced for `rotating` (a standby entry). */
function withStandby(
  lab: GatewayLab,
  site: LabSite,
  rotating: LabSite,
  key: string,
  nextKey: string,
): GatewayConfigInput {
  const c = lab.config(site, [CDN]);
  return {
    ...c,
    peers: (c.peers ?? []).map((p) =>
      p.name === `site${rotating.index}` ? { ...p, publicKey: key, nextPublicKey: nextKey } : p,
    ),
  };
}

async function peersOf(lab: GatewayLab, site: LabSite): Promise<Map<string, string>> {
  const r = await lab.runner.run(['wg', 'show', site.ifname, 'allowed-ips'], { netns: site.ns });
  return new Map(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => l.split('\t') as [string, string]),
  );
}

test('gateway - rotation onto a peer that holds the next key as standby: the peer gateway promotes it alone (≤ 1 probe interval lost, gap ≤ 1 s)', async (t) => {
  const lab = await GatewayLab.create(2, 'linux-bridge');
  t.teardown(() => lab.dispose());
  const [s0, s1] = lab.sites as [LabSite, LabSite];
  for (const site of lab.sites) {
    await lab.addSegment(site, CDN);
    await site.gateway.apply(lab.config(site, [CDN]));
  }
  const a = await lab.addPod(s0, CDN, 11, 1370);
  const b = await lab.addPod(s1, CDN, 12, 1370);
  t.true(await lab.reaches(a.ns, b.ip), 'path up before the rotation');
  const oldKey = s0.publicKey;

  const ping = await lab.spawn(
    'ping',
    a.ns,
    ['ping', '-D', '-n', '-i', '0.1', '-W', '1', '-c', '100', '-w', '12', b.ip],
    /bytes from/,
  );
  await sleep(1000);
  const { publicKey: nextKey } = await s0.gateway.rotateKey();
  // The peer's agent installs the next key (standby) and would acknowledge it; from now
  // on nothing applies on the peer (its agent is stopped).
  const standby = await s1.gateway.apply(withStandby(lab, s1, s0, oldKey, nextKey));
  t.deepEqual(
    standby.steps.map((s) => s.kind),
    ['tunnel-set-peer'],
    'only the standby entry is added',
  );
  const before = await peersOf(lab, s1);
  t.is(before.get(oldKey), `${s0.transitAddress}/32`, 'the old key keeps the traffic');
  t.is(before.get(nextKey), '(none)', 'the standby entry carries nothing');
  await sleep(1000);
  s0.publicKey = nextKey;
  await s0.gateway.apply(lab.config(s0, [CDN]));
  t.log(`${(Date.now() / 1000).toFixed(3)} rotating side switched`);

  await ping.exited;
  const out = ping.output();
  const times = replyTimes(out);
  const transmitted = Number(/(\d+) packets transmitted/.exec(out)?.[1] ?? 0);
  const lost = transmitted - times.length;
  const gaps = times.slice(1).map((x, i) => x - times[i]!);
  const worst = Math.max(0, ...gaps);
  t.log(`lost ${lost} of ${transmitted} pings, longest gap ${worst.toFixed(2)} s`);
  t.true(transmitted >= 80, out);
  t.true(lost * 0.1 <= PROBE_INTERVAL_S, `lost ${lost} pings`);
  t.true(worst <= WORST_GAP_S, `longest gap ${worst.toFixed(2)} s`);

  // The poll read the peers' handshakes from wireguard-go's control socket (no process):
  // the same keys and times `wg` prints.
  const uapi = await readUapiHandshakes(`/var/run/wireguard/${s1.ifname}.sock`);
  const wg = await lab.runner.run(['wg', 'show', s1.ifname, 'latest-handshakes'], {
    netns: s1.ns,
  });
  t.deepEqual(
    new Map((uapi ?? []).map((p) => [p.publicKey, String(p.latestHandshake)])),
    new Map(
      wg.stdout
        .trim()
        .split('\n')
        .map((l) => l.split('\t') as [string, string]),
    ),
  );
  const after = await peersOf(lab, s1);
  t.is(after.get(nextKey), `${s0.transitAddress}/32`, 'the peer promoted the next key');
  t.false(after.has(oldKey), 'and dropped the old one');
  t.is(s1.gateway.config?.peers[0]?.publicKey, nextKey, 'its config says so (health, fail-over)');
  // The agent's next apply, once the broker committed, changes nothing.
  const committed = await s1.gateway.apply(lab.config(s1, [CDN]));
  t.deepEqual(committed.steps, []);
  // And its apply of the old map (agent back before the commit) does not undo it.
  const stale = await s1.gateway.apply(withStandby(lab, s1, s0, oldKey, nextKey));
  t.deepEqual(stale.steps, []);
});
