/**
 * A few generated federation folders that `l2fed validate` accepts, built for real: the
 * lab topology (namespaces, bridges or OVS, veths, MACs, addresses) comes up for each,
 * every pod has the interfaces, MACs and addresses its manifest asked for, pods on one
 * segment reach each other, and everything is removed afterwards. The many-inputs half
 * of the promise is lab/plan-property.test.ts; this proves the plan really builds.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { ExecaRunner } from '../../lib/runner.js';
import { listNamespaces } from '../../lib/netns.js';
import { validate } from '../../cluster-agent/validate.js';
import { planLab, type LabPlan } from '../../lab/plan.js';
import { LabTopology } from '../../lab/topology.js';
import { federationArb, writeFederation, type GenFederation } from '../fixtures/manifest-gen.js';
import { FUZZ_SEED_ENV } from '../fixtures/property.js';
import { testWith } from '../fixtures/privileges.js';
import { makeRunDir, runId } from '../fixtures/run-dir.js';

const test = testWith({
  netAdmin: true,
  tools: ['ip', 'ping', 'ovs-vsctl', 'ovs-vswitchd', 'ovsdb-server', 'ethtool'],
});

/** Generated sets built for real: bounded, each costs namespaces (and OVS) to build. */
const KINDS = ['ovs', 'bridge', 'ovs'] as const;
const SETS = KINDS.length;

/** The first SETS generated folders validate accepts that have pods with addresses. */
async function acceptedSets(seed: number): Promise<{ fed: GenFederation; plan: LabPlan }[]> {
  const root = await mkdtemp(join(tmpdir(), 'l2fed-labgen-'));
  const out: { fed: GenFederation; plan: LabPlan }[] = [];
  try {
    let i = 0;
    for (const fed of fc.sample(federationArb, { numRuns: 2000, seed })) {
      // Both segment kinds, and more than one pod with addresses in a set.
      if (fed.segmentKind !== KINDS[out.length]) continue;
      const pods = fed.clusters.flatMap((c) => c.pods);
      if (pods.filter((p) => p.networks.some((s) => s.ips.length > 0)).length < 2) continue;
      const dir = join(root, String(i++));
      await writeFederation(dir, fed);
      const report = await validate(dir, { segments: fed.segmentKind });
      if (!report.ok) continue;
      const plan = planLab(
        report.clusters.map((c) => ({ id: c.id, state: c.state! })),
        { id: runId(4), segmentKind: fed.segmentKind, prefix: `l2fed-tg${runId(4)}` },
      );
      out.push({ fed, plan });
      if (out.length === SETS) break;
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  return out;
}

interface IpLink {
  ifname: string;
  address: string;
  operstate: string;
  addr_info: { local: string; prefixlen: number }[];
}

const canonical = (a: string) => (a.includes(':') ? new URL(`http://[${a}]`).hostname : a);

test('lab generated - validated folders come up in namespaces as planned', async (t) => {
  t.timeout(240_000);
  const seed = Number(process.env[FUZZ_SEED_ENV] ?? Date.now() % 2 ** 31);
  t.log(`seed ${seed} (replay: ${FUZZ_SEED_ENV}=${seed})`);
  const sets = await acceptedSets(seed);
  t.is(sets.length, SETS, 'the generator yields accepted folders');
  const runner = new ExecaRunner();
  for (const { fed, plan } of sets) {
    const label = `${fed.segmentKind}: ${JSON.stringify(fed.clusters)}`;
    const dir = await makeRunDir('labgen');
    const topo = new LabTopology(runner, plan, dir.path);
    t.teardown(async () => {
      await topo.destroy();
      await dir.remove();
    });
    const started = Date.now();
    await t.notThrowsAsync(topo.build(), label);
    t.log(
      `${fed.segmentKind}: ${plan.clusters.length} clusters, ${plan.clusters.flatMap((c) => c.pods).length} pods built in ${Date.now() - started} ms`,
    );
    for (const c of plan.clusters) {
      for (const p of c.pods) {
        const r = await runner.run(['ip', '-j', 'addr', 'show'], { netns: p.ns });
        const links = JSON.parse(r.stdout) as IpLink[];
        for (const i of p.interfaces) {
          const link = links.find((l) => l.ifname === i.ifname);
          t.truthy(link, `${c.id}/${p.name}: ${i.ifname} exists (${label})`);
          if (!link) continue;
          if (i.mac) t.is(link.address, i.mac.toLowerCase(), `${c.id}/${p.name} ${i.ifname} MAC`);
          const have = link.addr_info.map((a) => `${canonical(a.local)}/${a.prefixlen}`);
          for (const ip of i.ips) {
            const [a, len] = ip.split('/') as [string, string];
            t.true(have.includes(`${canonical(a)}/${len}`), `${c.id}/${p.name} has ${ip}`);
          }
        }
      }
      // Two pods on one segment with IPv4 addresses in one subnet reach each other. A pod
      // may hold the same subnet on two networks (seed 759897548: db has 10.10.0.3/24 on
      // cdn and 10.10.0.2/24 on tel): the sender is pinned to its interface on the shared
      // network (as lab/verify.ts does), and the receiver must hold the subnet on that
      // network only, or its reply may leave through the other one.
      const v4 = c.pods.flatMap((p) =>
        p.interfaces.flatMap((i) =>
          i.ips
            .filter((ip) => ip.startsWith('10.10.0.'))
            .map((ip) => ({ pod: p, ifname: i.ifname, network: i.network, ip: ip.split('/')[0]! })),
        ),
      );
      const onOneNetwork = (pod: (typeof v4)[number]['pod']) =>
        new Set(v4.filter((x) => x.pod === pod).map((x) => x.network)).size === 1;
      const pair = v4.flatMap((a) =>
        v4
          .filter((b) => b.pod !== a.pod && b.network === a.network && onOneNetwork(b.pod))
          .map((b) => [a, b] as const),
      )[0];
      if (pair) {
        const [a, b] = pair;
        const ping = await runner.run(['ping', '-c', '1', '-W', '3', '-I', a.ifname, b.ip], {
          netns: a.pod.ns,
          allowFailure: true,
        });
        t.is(ping.exitCode, 0, `${c.id}/${a.pod.name} reaches ${b.pod.name} at ${b.ip}`);
        t.log(`${c.id}/${a.pod.name} reaches ${b.pod.name} at ${b.ip} on ${a.network}`);
      }
    }
    await topo.destroy();
    t.deepEqual(await listNamespaces(runner, plan.prefix), [], 'nothing left behind');
  }
});
