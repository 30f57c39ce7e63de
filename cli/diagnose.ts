/**
 * `l2fed diagnose A B`: walks the path a frame from A to B needs, in order —
 * registration, cordon, consent, VXLAN port, common networks, peer map, handshake, probe, data
 * path/MTU — and names the first broken link with what to do about it. Exit 0 when
 * every step passes, 1 otherwise.
 */
import { status } from '@grpc/grpc-js';
import type { Command } from 'commander';
import { withApi } from './connection.js';
import { outputOption, printData, type Format } from './output.js';
import { paint } from './ansi.js';
import { tunnelState } from './kinds.js';
import type { AdminApi } from '../broker/admin/calls.js';
import {
  PeeringState,
  type Cluster,
  type TunnelView,
} from '../proto/gen/l2fed/admin/v1/federation.js';

export interface Step {
  readonly step: string;
  readonly ok: boolean;
  readonly detail: string;
}

/** Handshakes older than this mean WireGuard is not talking (it re-keys every 2 min). */
const HANDSHAKE_MAX_AGE_SEC = 180;

async function cluster(api: AdminApi, id: string): Promise<Cluster | undefined> {
  try {
    return (await api.federation.getCluster({ id, readMask: [] })).cluster;
  } catch (err) {
    if ((err as { code?: number }).code === status.NOT_FOUND) return undefined;
    throw err;
  }
}

/** Runs the checks in order and stops at the first failing one. */
export async function diagnose(api: AdminApi, a: string, b: string): Promise<Step[]> {
  const steps: Step[] = [];
  const pass = (step: string, detail: string): void => {
    steps.push({ step, ok: true, detail });
  };
  const fail = (step: string, detail: string): Step[] => {
    steps.push({ step, ok: false, detail });
    return steps;
  };

  const [ca, cb] = await Promise.all([cluster(api, a), cluster(api, b)]);
  for (const [id, c] of [
    [a, ca],
    [b, cb],
  ] as const)
    if (!c)
      return fail(
        'registration',
        `${id} is not registered: is its cluster-agent running with valid broker credentials?`,
      );
  pass(
    'registration',
    `${a} (${ca!.transitAddress}) and ${b} (${cb!.transitAddress}) are registered`,
  );
  for (const c of [ca!, cb!])
    if (c.cordon)
      return fail(
        'cordon',
        `${c.id} is cordoned by ${c.cordon.by}: ${c.cordon.reason} — "l2fed uncordon ${c.id} --reason …" when done`,
      );
  pass('cordon', 'neither cluster is cordoned');

  let p;
  try {
    p = (await api.federation.getPeering({ clusterA: a, clusterB: b })).peering!;
  } catch (err) {
    if ((err as { code?: number }).code !== status.NOT_FOUND) throw err;
    return fail(
      'consent',
      `neither declares the other: add a ClusterPeering for ${b} in ${a} and one for ${a} in ${b}`,
    );
  }
  if (p.state === PeeringState.PEERING_STATE_WAITING_FOR_CONSENT)
    return fail(
      'consent',
      `${p.reason}: add the missing ClusterPeering (peerings need both sides)`,
    );
  pass('consent', 'both clusters declare each other');
  if (p.state === PeeringState.PEERING_STATE_VXLAN_PORT_MISMATCH)
    return fail('vxlan port', p.reason);
  pass(
    'vxlan port',
    ca!.vxlanPort && cb!.vxlanPort
      ? `both use UDP ${ca!.vxlanPort}`
      : `not known for ${[ca!, cb!]
          .filter((c) => !c.vxlanPort)
          .map((c) => c.id)
          .join(' and ')} (older agent); not checked`,
  );
  if (p.state === PeeringState.PEERING_STATE_NO_COMMON_NETWORK)
    return fail(
      'networks',
      `${p.reason}: export the same FederatedNetwork on both sides and list it in both peerings`,
    );
  pass('networks', `carried: ${p.networks.map((n) => `${n.name} (VNI ${n.vni})`).join(', ')}`);
  if (!p.active) return fail('peer map', p.reason || 'the peer maps do not list each other yet');
  pass('peer map', 'each peer map lists the other');

  const t = (await api.federation.getTunnelHealth({ clusterA: a, clusterB: b })).tunnel!;
  const views = [t.viewA!, t.viewB!];
  const unseen = views.find((v) => !v.reported || v.stale);
  if (unseen)
    return fail(
      'handshake',
      `${unseen.cluster} ${unseen.stale ? 'reports stale health (is its agent running?)' : `reports no tunnel to the other side: ${t.reason}`}`,
    );
  const old = views.find(
    (v: TunnelView) =>
      v.lastHandshakeAgeSec < 0 ||
      v.lastHandshakeAgeSec > HANDSHAKE_MAX_AGE_SEC ||
      tunnelState(v.state) === 'down',
  );
  if (old)
    return fail(
      'handshake',
      `${old.cluster}: no recent WireGuard handshake (${old.lastHandshakeAgeSec < 0 ? 'never' : `${old.lastHandshakeAgeSec}s ago`}${old.reason ? `; ${old.reason}` : ''}) — check UDP reachability of the endpoints and the public keys`,
    );
  pass('handshake', views.map((v) => `${v.cluster}: ${v.lastHandshakeAgeSec}s ago`).join(', '));
  // A degraded tunnel whose probe lost nothing is judged at the mtu step (path MTU).
  const lossy = views.find((v) => tunnelState(v.state) === 'down' || v.lossPct > 0);
  if (lossy)
    return fail(
      'probe',
      `${lossy.cluster} sees the tunnel ${tunnelState(lossy.state)} (loss ${lossy.lossPct}%, rtt ${lossy.rttMs} ms)${lossy.reason ? `: ${lossy.reason}` : ''}`,
    );
  pass('probe', views.map((v) => `${v.cluster}: rtt ${v.rttMs} ms, loss ${v.lossPct}%`).join(', '));
  // The per-network data-path probe is where an MTU mismatch shows (ping works, frames do not).
  const carried = new Set(p.networks.map((n) => n.name));
  for (const c of await Promise.all([a, b].map((id) => cluster(api, id)))) {
    const bad = (c?.health?.networks ?? []).find(
      (n) => carried.has(n.name) && tunnelState(n.state) !== 'up',
    );
    if (bad)
      return fail(
        'mtu',
        `${c!.id}: frames of ${bad.name} (VNI ${bad.vni}) do not cross (${tunnelState(bad.state)}${bad.reason ? `: ${bad.reason}` : ''}) — compare the effective MTU on both sides (l2fed describe cluster ${c!.id})`,
      );
  }
  const degraded = views.find((v) => tunnelState(v.state) !== 'up');
  if (degraded)
    return fail(
      'mtu',
      `${degraded.cluster} sees the tunnel degraded: ${degraded.reason || 'no reason given'} — if the path MTU is short, fix the underlay or lower the network MTU to fit`,
    );
  pass('mtu', 'every carried network passes its data-path probe and fits the path MTU');
  return steps;
}

export function registerDiagnose(program: Command): void {
  program
    .command('diagnose <clusterA> <clusterB>')
    .description(
      'walk registration → consent → peer map → handshake → probe → MTU between two clusters and name the first broken link',
    )
    .addOption(outputOption())
    .addHelpText(
      'after',
      '\nExamples:\n  l2fed diagnose madrid bristol\n  l2fed diagnose madrid bristol -o json',
    )
    .action(async (a: string, b: string, o: { output: Format }, cmd: Command) => {
      if (a === b) throw new Error('name two different clusters');
      const steps = await withApi(cmd, (api) => diagnose(api, a, b));
      const broken = steps.find((s) => !s.ok);
      process.exitCode = broken ? 1 : 0;
      if (o.output !== 'table')
        return printData(o.output, {
          from: a,
          to: b,
          ok: !broken,
          brokenLink: broken?.step ?? null,
          steps,
        });
      for (const s of steps)
        console.log(
          `${s.ok ? paint('✔', 'green') : paint('✘', 'red')} ${s.step.padEnd(12)} ${s.detail}`,
        );
      console.log(
        broken
          ? paint(`first broken link: ${broken.step}`, 'red')
          : paint(`path ${a} ⇄ ${b} looks healthy`, 'green'),
      );
    });
}
