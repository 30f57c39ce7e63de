/**
 * `l2fed topology`: the federation graph — clusters as nodes, peerings as edges
 * (solid = active with its networks, dashed = waiting for consent, dotted = no common
 * network, red = tunnel down) — as Graphviz DOT, Mermaid, or SVG through Graphviz.
 */
import { writeFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { withApi } from './connection.js';
import { federationState } from './status.js';
import { peeringState, tunnelState } from './kinds.js';
import { ExecaRunner } from '../lib/runner.js';
import type { Cluster, Peering, TunnelHealth } from '../proto/gen/l2fed/admin/v1/federation.js';

interface Graph {
  readonly clusters: readonly Cluster[];
  readonly peerings: readonly Peering[];
  readonly tunnels: readonly TunnelHealth[];
}

const edgeLabel = (p: Peering) =>
  p.networks.length ? p.networks.map((n) => `${n.name}:${n.vni}`).join(' ') : peeringState(p.state);
const healthOf = (g: Graph, p: Peering) =>
  g.tunnels.find((t) => t.clusterA === p.clusterA && t.clusterB === p.clusterB);

/** Graphviz DOT source. Deterministic (input is sorted by the API). */
export function toDot(g: Graph): string {
  const lines = [
    'graph l2fed {',
    '  layout=neato; overlap=false; splines=true;',
    '  node [shape=box, style=rounded];',
  ];
  for (const c of g.clusters)
    lines.push(
      `  "${c.id}" [label="${c.id}\\n${c.transitAddress}"${c.cordon ? ', style="rounded,dashed", color=orange' : ''}];`,
    );
  for (const p of g.peerings) {
    const st = peeringState(p.state);
    const t = healthOf(g, p);
    const style = st === 'active' ? 'solid' : st === 'no-common-network' ? 'dotted' : 'dashed';
    const down = t && t.expected && ['down', 'degraded'].includes(tunnelState(t.state));
    lines.push(
      `  "${p.clusterA}" -- "${p.clusterB}" [label="${edgeLabel(p)}", style=${style}${down ? ', color=red' : ''}];`,
    );
  }
  lines.push('}');
  return lines.join('\n') + '\n';
}

/** Mermaid flowchart source (renders on GitHub and in mermaid.live). */
export function toMermaid(g: Graph): string {
  const id = (s: string) => s.replaceAll('-', '_');
  const lines = ['flowchart LR'];
  for (const c of g.clusters)
    lines.push(
      `  ${id(c.id)}["${c.id}<br/>${c.transitAddress}${c.cordon ? '<br/>(cordoned)' : ''}"]`,
    );
  g.peerings.forEach((p) => {
    const arrow = peeringState(p.state) === 'active' ? '---' : '-.-';
    lines.push(`  ${id(p.clusterA)} ${arrow}|"${edgeLabel(p)}"| ${id(p.clusterB)}`);
  });
  g.peerings.forEach((p, i) => {
    const t = healthOf(g, p);
    if (t && t.expected && ['down', 'degraded'].includes(tunnelState(t.state)))
      lines.push(`  linkStyle ${i} stroke:red`);
  });
  return lines.join('\n') + '\n';
}

export function registerTopology(program: Command): void {
  program
    .command('topology')
    .description('the federation graph as Graphviz DOT, Mermaid or SVG (needs graphviz)')
    .addOption(
      new Option('-f, --format <format>', 'output format')
        .choices(['dot', 'mermaid', 'svg'])
        .default('dot'),
    )
    .option('--out <file>', 'write to a file instead of stdout')
    .addHelpText(
      'after',
      '\nExamples:\n  l2fed topology > fed.dot && dot -Tsvg fed.dot > fed.svg\n  l2fed topology -f mermaid --out fed.mmd\n  l2fed topology -f svg --out fed.svg',
    )
    .action(async (o: { format: 'dot' | 'mermaid' | 'svg'; out?: string }, cmd: Command) => {
      const g = await withApi(cmd, federationState);
      let text = o.format === 'mermaid' ? toMermaid(g) : toDot(g);
      if (o.format === 'svg') {
        const r = await new ExecaRunner()
          .run(['dot', '-Tsvg'], { input: text })
          .catch((err: unknown) => {
            throw new Error(
              `rendering SVG needs Graphviz "dot" (apt-get install graphviz), or use -f dot / -f mermaid: ${String(err)}`,
            );
          });
        text = r.stdout;
      }
      if (o.out) await writeFile(o.out, text);
      else process.stdout.write(text);
    });
}
