/**
 * The l2fed command tree, built without running it: cli/main.ts parses the process
 * arguments with it, and cli/doc-commands.test.ts parses every documented command line.
 */
import { Command, Option } from 'commander';
import { VERSION } from '../lib/version.js';
import { runCleanup } from './cleanup.js';
import { registerDaemons } from './daemons.js';
import { registerLab } from './lab.js';
import { NETNS_PREFIX } from '../lib/netns.js';
import { addConnectionOptions } from './connection.js';
import { registerStatus } from './status.js';
import { registerGet } from './get.js';
import { registerDescribe } from './describe.js';
import { registerWatch } from './watch.js';
import { registerTopology } from './topology.js';
import { registerDiagnose } from './diagnose.js';
import { registerActions } from './actions.js';
import { registerCompletion } from './completion.js';

/** Every l2fed command, option and action; nothing runs until it is parsed. */
export function buildProgram(): Command {
  const program = new Command()
    .name('l2fed')
    .description('Federate layer-2 networks across Kubernetes clusters (VXLAN inside WireGuard).')
    .version(VERSION)
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `
  Examples:
    l2fed status                                   # the federation at a glance
    l2fed get peerings -o json
    l2fed describe cluster madrid
    l2fed diagnose madrid bristol
    l2fed --server broker:7443 --ca ca.crt --cert alice.crt --key alice.key status

  Connection options may also come from L2FED_SERVER, L2FED_CA, L2FED_CERT, L2FED_KEY,
  L2FED_TOKEN_FILE (default server 127.0.0.1:7443).`,
    );
  addConnectionOptions(program);

  program
    .command('version')
    .description('print the CLI version, and the broker version when --server is given')
    .option('--server <host:port>', 'admin API address of a broker')
    .addHelpText('after', '\nExamples:\n  l2fed version\n  l2fed version --server 127.0.0.1:7443')
    .action(async (o: { server?: string }, cmd: Command) => {
      console.log(`l2fed ${VERSION} (cli)`);
      // --server is also a global option (with TLS/token flags), which commander fills.
      if (o.server ?? cmd.optsWithGlobals<{ server?: string }>().server) {
        const { withApi } = await import('./connection.js');
        const v = await withApi(cmd, (api) => api.info.getVersion({}));
        console.log(`l2fed ${v.version} (${v.component}, api ${v.api}, node ${v.runtime})`);
      }
    });

  program
    .command('cleanup')
    .description(
      'remove namespaces, daemons, sockets and temp dirs that an l2fed lab or test run left behind',
    )
    .addOption(
      new Option('--prefix <prefix>', 'only what carries this prefix').default(NETNS_PREFIX),
    )
    .option('--check', 'only list leftovers; exit 1 if there are any')
    .option('--dry-run', 'only list leftovers')
    .option('--quiet', 'print nothing on success')
    .addHelpText('after', '\nExamples:\n  l2fed cleanup --check\n  l2fed cleanup')
    .action(async (o: { prefix: string; check?: boolean; dryRun?: boolean; quiet?: boolean }) => {
      if (!o.prefix.startsWith(NETNS_PREFIX)) {
        throw new Error(`--prefix must start with "${NETNS_PREFIX}" (got "${o.prefix}")`);
      }
      process.exitCode = await runCleanup(o);
    });

  program
    .command('validate <dir>')
    .description(
      'lint GitOps manifests offline: one cluster folder, or a folder of cluster folders (exit 0 ok, 1 invalid)',
    )
    .option('--cluster <id>', 'cluster id for a single-cluster folder (default: the folder name)')
    .option('-o, --output <format>', 'text or json', 'text')
    .option('--segment <kind>', 'check for `lab up --segment` ovs or bridge', 'ovs')
    .option(
      '--underlay-mtu <bytes>',
      "the gateways' underlay MTU that fixed network MTUs must fit (the agent's underlayMtu)",
      '1500',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  l2fed validate deploy/examples\n  l2fed validate clusters/madrid --cluster madrid -o json\n  l2fed validate deploy/examples --segment bridge',
    )
    .action(
      async (
        dir: string,
        o: { cluster?: string; output: string; segment: string; underlayMtu: string },
      ) => {
        const { runValidate } = await import('./validate.js');
        process.exitCode = await runValidate(dir, o);
      },
    );

  const pki = program
    .command('pki')
    .description('create the admin API CA, certificates and tokens');
  pki
    .command('init')
    .description(
      'create a CA, a broker server cert and client certs; what exists is kept (add an operator: --client NAME)',
    )
    .requiredOption('--dir <dir>', 'where to write the PEM files')
    // Not --server-name: that is the global client option (TLS name to verify), and
    // commander would hand it to the program, not to this command.
    .option('--san <name...>', 'DNS names or IPs the broker admin API certificate is for', [
      'localhost',
      '127.0.0.1',
    ])
    .option('--client <name...>', 'client certificate names', ['admin'])
    .option(
      '--force',
      're-issue existing server and client keys/certs (without it they are kept; the CA is always kept)',
    )
    .addHelpText(
      'after',
      '\nExample:\n  l2fed pki init --dir /etc/l2fed/pki --san broker.l2fed.svc localhost --client alice ci',
    )
    .action(async (o: { dir: string; san: string[]; client: string[]; force?: boolean }) => {
      const { runPkiInit } = await import('./pki.js');
      process.exitCode = await runPkiInit({
        dir: o.dir,
        serverNames: o.san,
        clients: o.client,
        force: o.force ?? false,
      });
    });
  pki
    .command('nats')
    .description(
      'create the NATS CA and nats.crt (server and client auth, for routes) for deploy/kubernetes/nats; what exists is kept',
    )
    .requiredOption('--dir <dir>', 'where to write the PEM files (not the admin API PKI folder)')
    .requiredOption(
      '--san <name...>',
      'DNS names (*.x wildcards too) or IPs NATS is reached by: client Service, pods, public address',
    )
    .option('--force', 're-issue an existing nats.key/nats.crt (the CA is always kept)')
    .addHelpText(
      'after',
      "\nExample:\n  l2fed pki nats --dir nats-pki --san l2fed-nats.l2fed-system.svc '*.l2fed-nats-headless.l2fed-system.svc' nats.example.net",
    )
    .action(async (o: { dir: string; san: string[]; force?: boolean }) => {
      const { runPkiNats } = await import('./pki.js');
      process.exitCode = await runPkiNats({ dir: o.dir, names: o.san, force: o.force ?? false });
    });
  pki
    .command('token <file>')
    .description('write a random admin bearer token to FILE (mode 0600)')
    .option('--force', 'replace FILE if it exists')
    .action(async (file: string, o: { force?: boolean }) => {
      const { runPkiToken } = await import('./pki.js');
      process.exitCode = await runPkiToken(file, { force: o.force ?? false });
    });

  // Admin API commands (one file each).
  registerStatus(program);
  registerGet(program);
  registerDescribe(program);
  registerWatch(program);
  registerTopology(program);
  registerDiagnose(program);
  registerActions(program);
  registerCompletion(program);

  registerLab(program);
  registerDaemons(program);
  return program;
}
