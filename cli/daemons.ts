/**
 * `l2fed broker|gateway|agent …`: the three daemons, one binary. Each passes its
 * arguments to the component's own main(), which owns its flags and config file.
 */
import type { Command } from 'commander';

const COMPONENTS = {
  broker: {
    about: 'the federation broker: run [--config FILE] | gen-auth --clusters a,b --out DIR',
    load: async () => (await import('../broker/main.js')).main,
  },
  gateway: {
    about:
      'the data-plane gateway of one cluster: run --config FILE | rotate-key --address HOST:PORT',
    load: async () => (await import('../gateway/main.js')).main,
  },
  agent: {
    about: 'the cluster agent: run --config FILE',
    load: async () => (await import('../cluster-agent/main.js')).main,
  },
} as const;

export function registerDaemons(program: Command): void {
  for (const [name, c] of Object.entries(COMPONENTS)) {
    program
      .command(`${name} [args...]`)
      .description(c.about)
      .allowUnknownOption()
      .helpOption(false)
      .action(async (args: string[]) => {
        const main = await c.load();
        await main(args);
      });
  }
}
