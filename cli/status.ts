/**
 * `l2fed status`: the whole federation at a glance — clusters, peerings, tunnels —
 * and one verdict line. Exit code 0 when healthy, 1 when something needs attention
 * (so it fits a cron job or a CI gate). Colored only on a terminal.
 */
import type { Command } from 'commander';
import { withApi } from './connection.js';
import { outputOption, printData, table, type Format } from './output.js';
import { clusters, networks, peerings, tunnels, peeringState, tunnelState } from './kinds.js';
import { paint, type Color } from './ansi.js';
import { PeeringState, TunnelState } from '../proto/gen/l2fed/admin/v1/federation.js';
import type { AdminApi } from '../broker/admin/calls.js';

export interface Verdict {
  readonly level: 'ok' | 'warning' | 'problem';
  readonly problems: string[];
  readonly warnings: string[];
}

/** Reads everything status shows. */
export async function federationState(api: AdminApi) {
  const [cs, ns, ps, ts] = await Promise.all([
    clusters.list(api),
    networks.list(api),
    peerings.list(api),
    tunnels.list(api),
  ]);
  return { clusters: cs, networks: ns, peerings: ps, tunnels: ts };
}
type State = Awaited<ReturnType<typeof federationState>>;

/** Judges the state: problems break traffic, warnings need a look. */
export function verdictOf(s: State): Verdict {
  const problems: string[] = [];
  const warnings: string[] = [];
  for (const c of s.clusters) {
    if (c.cordon) warnings.push(`cluster ${c.id} is cordoned: ${c.cordon.reason}`);
    if (c.health?.stale) problems.push(`cluster ${c.id}'s health report is stale (agent down?)`);
    if (c.rejoin) problems.push(`cluster ${c.id}: ${c.rejoin.remedy}`);
    // A network's own data-path check (loop cut, path MTU, frames not received) is a fault
    // of that cluster's side even when every tunnel is up.
    if (c.health && !c.health.stale)
      for (const n of c.health.networks)
        if (
          n.state === TunnelState.TUNNEL_STATE_DOWN ||
          n.state === TunnelState.TUNNEL_STATE_DEGRADED
        )
          problems.push(
            `cluster ${c.id} network ${n.name} ${tunnelState(n.state)}${n.reason ? `: ${n.reason}` : ''}`,
          );
  }
  for (const p of s.peerings) {
    if (
      p.state === PeeringState.PEERING_STATE_WAITING_FOR_CONSENT ||
      p.state === PeeringState.PEERING_STATE_NO_COMMON_NETWORK
    )
      warnings.push(`peering ${p.name}: ${p.reason}`);
    else if (
      p.state !== PeeringState.PEERING_STATE_ACTIVE &&
      p.state !== PeeringState.PEERING_STATE_CORDONED
    )
      problems.push(`peering ${p.name}: ${p.reason}`);
    else if (p.state === PeeringState.PEERING_STATE_ACTIVE && !p.active)
      warnings.push(`peering ${p.name}: ${p.reason}`);
  }
  for (const n of s.networks) {
    // A member without an MTU ask may not carry the agreed MTU: frames would be lost.
    if (n.mtu?.silent.length)
      warnings.push(
        `network ${n.name} MTU ${n.mtu.value}: ${n.mtu.silent.join(', ')} sent no MTU ask (older agent); upgrade it or check that it carries ${n.mtu.value}`,
      );
  }
  for (const t of s.tunnels) {
    if (!t.expected) continue;
    if (t.state === TunnelState.TUNNEL_STATE_DOWN || t.state === TunnelState.TUNNEL_STATE_DEGRADED)
      problems.push(`tunnel ${t.clusterA}:${t.clusterB} ${tunnelState(t.state)}: ${t.reason}`);
    else if (t.state !== TunnelState.TUNNEL_STATE_UP)
      warnings.push(`tunnel ${t.clusterA}:${t.clusterB} ${tunnelState(t.state)}: ${t.reason}`);
  }
  return {
    level: problems.length ? 'problem' : warnings.length ? 'warning' : 'ok',
    problems,
    warnings,
  };
}

const STATE_COLORS: Record<string, Color> = {
  active: 'green',
  up: 'green',
  ready: 'green',
  degraded: 'yellow',
  unknown: 'yellow',
  'waiting-for-consent': 'yellow',
  'no-common-network': 'yellow',
  cordoned: 'yellow',
  down: 'red',
  'cluster-missing': 'red',
};
const colorCell = (v: string) => (STATE_COLORS[v] ? paint(v, STATE_COLORS[v]) : v);

export function registerStatus(program: Command): void {
  program
    .command('status')
    .description(
      'the whole federation at a glance, with a verdict (exit 0 healthy, 1 needs attention)',
    )
    .addOption(outputOption())
    .addHelpText(
      'after',
      '\nExamples:\n  l2fed status\n  L2FED_SERVER=broker:7443 l2fed status -o json',
    )
    .action(async (o: { output: Format }, cmd: Command) => {
      const s = await withApi(cmd, federationState);
      const v = verdictOf(s);
      process.exitCode = v.level === 'ok' ? 0 : 1;
      if (o.output !== 'table')
        return printData(o.output, {
          verdict: v,
          clusters: s.clusters.map(clusters.toJSON),
          networks: s.networks.map(networks.toJSON),
          peerings: s.peerings.map(peerings.toJSON),
          tunnels: s.tunnels.map(tunnels.toJSON),
        });
      const section = (
        title: string,
        header: readonly string[],
        rows: string[][],
        stateCol: number,
      ) => {
        console.log(paint(title, 'bold'));
        if (rows.length === 0) return console.log('  none\n');
        const lines = table(header, rows).split('\n');
        // Color after alignment so escape codes do not skew the columns.
        lines.forEach((l, i) => {
          const st = i === 0 ? undefined : rows[i - 1]![stateCol];
          console.log(`  ${st ? l.replace(st, colorCell(st)) : l}`);
        });
        console.log('');
      };
      section('CLUSTERS', clusters.header, s.clusters.map(clusters.row), 1);
      section('NETWORKS', networks.header, s.networks.map(networks.row), 1);
      section('PEERINGS', peerings.header, s.peerings.map(peerings.row), 1);
      section('TUNNELS', tunnels.header, s.tunnels.map(tunnels.row), 1);
      const active = s.peerings.filter(
        (p) => p.active && peeringState(p.state) === 'active',
      ).length;
      const summary = `${s.clusters.length} clusters, ${s.networks.length} networks, ${active}/${s.peerings.length} peerings active`;
      for (const p of v.problems) console.log(paint(`  ✘ ${p}`, 'red'));
      for (const w of v.warnings) console.log(paint(`  ! ${w}`, 'yellow'));
      const line =
        v.level === 'ok'
          ? paint(`VERDICT: OK — ${summary}`, 'green')
          : v.level === 'warning'
            ? paint(
                `VERDICT: WARNING — ${summary}; ${v.warnings.length} warning(s) above`,
                'yellow',
              )
            : paint(
                `VERDICT: PROBLEM — ${summary}; ${v.problems.length} problem(s) above (try "l2fed diagnose A B")`,
                'red',
              );
      console.log(line);
    });
}
