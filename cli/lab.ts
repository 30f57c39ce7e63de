/** `l2fed lab …`: a whole federation on one machine (see lab/ and docs/lab.md). */
import { Option, type Command } from 'commander';
import { LAB_SEGMENTS, type LabSegmentKind } from '../lab/plan.js';

interface LabUpFlags {
  manifests: string;
  segment: LabSegmentKind;
  clusters?: string;
  podsPerCluster: string;
  once?: boolean;
  verify: boolean;
  image?: string;
  kubernetes?: boolean;
}

export function registerLab(program: Command): void {
  const lab = program
    .command('lab')
    .description('a whole federation on this machine, in network namespaces (root only)');

  lab
    .command('up')
    .description('build the lab from a folder with one subfolder of manifests per cluster')
    .option('--manifests <dir>', 'federation folder (one subfolder per cluster)', 'deploy/examples')
    .addOption(
      new Option('--segment <kind>', 'how local segments are built')
        .choices([...LAB_SEGMENTS])
        .default('ovs'),
    )
    .option(
      '--clusters <n>',
      'instead of --manifests: generate N clusters in a full mesh on one network',
    )
    .option('--pods-per-cluster <m>', 'with --clusters: pods per cluster', '2')
    .option('--once', 'verify, then tear the lab down (exit code = verdict)')
    .option('--no-verify', 'skip the connectivity check')
    .option(
      '--image <name>',
      'run the broker, gateways and agents from this container image (podman; npm run image builds l2fed:<version>)',
    )
    .option(
      '--kubernetes',
      'give each cluster an API server (etcd + kube-apiserver); agents read their CRDs from it, lab apply goes through it',
    )
    .addHelpText(
      'after',
      '\nExamples:\n  l2fed lab up\n  l2fed lab up --kubernetes --segment bridge\n  l2fed lab up --manifests ./my-federation --segment bridge\n  l2fed lab up --clusters 4 --pods-per-cluster 3 --once',
    )
    .action(async (o: LabUpFlags) => {
      const { labUp } = await import('../lab/up.js');
      process.exitCode = await labUp({
        manifests: o.manifests,
        ...(o.clusters !== undefined
          ? { generate: { clusters: Number(o.clusters), pods: Number(o.podsPerCluster) } }
          : {}),
        segmentKind: o.segment,
        once: o.once ?? false,
        verify: o.verify,
        ...(o.image ? { image: o.image } : {}),
        ...(o.kubernetes ? { kubernetes: true } : {}),
      });
    });

  lab
    .command('kubeconfig <cluster>')
    .description("print the path of a cluster's admin kubeconfig (lab up --kubernetes)")
    .addHelpText(
      'after',
      '\nExample:\n  kubectl --kubeconfig "$(l2fed lab kubeconfig madrid)" get fednet',
    )
    .action(async (cluster: string) => {
      const { labKubeconfig } = await import('../lab/kubeconfig.js');
      process.exitCode = await labKubeconfig(cluster);
    });

  lab
    .command('down')
    .description('remove every namespace, process and file the lab made (also after a crash)')
    .action(async () => {
      const { labDown } = await import('../lab/down.js');
      process.exitCode = await labDown();
    });

  lab
    .command('exec <target> [cmd...]')
    .description('run a command in a lab pod: l2fed lab exec CLUSTER/POD -- CMD')
    .addHelpText('after', '\nExample:\n  l2fed lab exec madrid/web -- ping -c 3 10.10.0.21')
    .action(async (target: string, cmd: string[]) => {
      const { labExec } = await import('../lab/exec.js');
      process.exitCode = await labExec(target, cmd);
    });

  lab
    .command('apply <cluster> <file>')
    .description("add or replace a manifest file in a cluster's folder (validated first)")
    .action(async (cluster: string, file: string) => {
      const { labApply } = await import('../lab/apply.js');
      process.exitCode = await labApply(cluster, file);
    });

  lab
    .command('remove <cluster> <file>')
    .description("delete a manifest file from a cluster's folder (validated first)")
    .action(async (cluster: string, file: string) => {
      const { labRemove } = await import('../lab/apply.js');
      process.exitCode = await labRemove(cluster, file);
    });

  lab
    .command('rotate-key <cluster>')
    .description("rotate a cluster's gateway key; waits until peers have it and it is in use")
    .action(async (cluster: string) => {
      const { labRotateKey } = await import('../lab/rotate-key.js');
      process.exitCode = await labRotateKey(cluster);
    });

  lab
    .command('status')
    .description('the lab: processes, restarts, clusters and pods, and the connectivity matrix')
    .option('--no-verify', 'skip the connectivity check')
    .action(async (o: { verify: boolean }) => {
      const { labStatus } = await import('../lab/status.js');
      process.exitCode = await labStatus({ verify: o.verify });
    });

  lab
    .command('run', { hidden: true })
    .description('the lab runner (started by lab up)')
    .requiredOption('--manifests <dir>')
    .option('--segment <kind>', '', 'ovs')
    .option('--health-ms <ms>', 'health poll interval')
    .option('--image <name>', 'run the daemons from this container image')
    .option('--kubernetes', 'one API server per cluster')
    .action(
      async (o: {
        manifests: string;
        segment: LabSegmentKind;
        healthMs?: string;
        image?: string;
        kubernetes?: boolean;
      }) => {
        const { runLabForeground } = await import('../lab/runner.js');
        process.exitCode = await runLabForeground({
          manifests: o.manifests,
          segmentKind: o.segment,
          ...(o.healthMs ? { healthMs: Number(o.healthMs) } : {}),
          ...(o.image ? { image: o.image } : {}),
          ...(o.kubernetes ? { kubernetes: true } : {}),
        });
      },
    );
}
