/**
 * `l2fed describe <kind> <name>`: one object in detail. For a cluster it also shows
 * the peerings and tunnels that involve it, so one command answers "what is up with X".
 */
import type { Command } from 'commander';
import { withApi } from './connection.js';
import { outputOption, printData, table, type Format } from './output.js';
import { kindNamed, peerings, tunnels, KINDS } from './kinds.js';
import { stringify as toYaml } from 'yaml';

export function registerDescribe(program: Command): void {
  program
    .command('describe <kind> <name>')
    .description(
      `show one object in detail (${KINDS.map((k) => k.names[1] ?? k.names[0]).join(', ')})`,
    )
    .addOption(outputOption())
    .addHelpText(
      'after',
      `
Examples:
  l2fed describe cluster madrid
  l2fed describe network cdn -o json
  l2fed describe peering madrid:bristol
  l2fed describe tunnel madrid:bristol`,
    )
    .action(async (kindName: string, name: string, o: { output: Format }, cmd: Command) => {
      const kind = kindNamed(kindName);
      await withApi(cmd, async (api) => {
        const item = await kind.get(api, name);
        if (o.output !== 'table') return printData(o.output, kind.toJSON(item));
        // Human form: the JSON mapping as YAML reads well and shows every field.
        process.stdout.write(toYaml(kind.toJSON(item)));
        if (kind.names[0] !== 'clusters') return;
        const ps = await peerings.list(api, name);
        console.log(
          `\nPeerings:\n${ps.length ? indent(table(peerings.header, ps.map(peerings.row))) : '  none'}`,
        );
        const ts = await tunnels.list(api, name);
        console.log(
          `\nTunnels:\n${ts.length ? indent(table(tunnels.header, ts.map(tunnels.row))) : '  none'}`,
        );
      });
    });
}

const indent = (s: string) => s.replace(/^/gm, '  ');
