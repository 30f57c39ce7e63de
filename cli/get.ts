/** `l2fed get <kind>`: a list of clusters, networks, peerings, tunnels or audit records. */
import type { Command } from 'commander';
import { withApi } from './connection.js';
import { outputOption, printData, table, type Format } from './output.js';
import { checkClusterFilter, kindNamed, KINDS } from './kinds.js';

export function registerGet(program: Command): void {
  program
    .command('get <kind>')
    .description(`list objects: ${KINDS.map((k) => k.names[0]).join(', ')}`)
    .option('--cluster <id>', 'only those involving this cluster (networks, peerings, tunnels)')
    .addOption(outputOption())
    .addHelpText(
      'after',
      `
Examples:
  l2fed get clusters
  l2fed get peerings --cluster madrid
  l2fed get networks -o json
  l2fed --server broker:7443 --ca ca.crt --cert me.crt --key me.key get tunnels -o yaml`,
    )
    .action(async (name: string, o: { cluster?: string; output: Format }, cmd: Command) => {
      const kind = kindNamed(name);
      checkClusterFilter(kind, o.cluster);
      const items = await withApi(cmd, (api) => kind.list(api, o.cluster));
      if (o.output !== 'table')
        return printData(
          o.output,
          items.map((i) => kind.toJSON(i)),
        );
      if (items.length === 0) return console.log(`no ${kind.names[0]}`);
      console.log(
        table(
          kind.header,
          items.map((i) => kind.row(i)),
        ),
      );
    });
}
