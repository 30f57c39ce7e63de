/**
 * Operator actions: `cordon`, `uncordon`, `evict`, `release network|vni|transit`.
 * Each needs --reason (kept in the audit log, see `l2fed get audit`) and prints what
 * was done; the broker refuses what would break traffic unless --force is given.
 */
import type { Command } from 'commander';
import { withApi } from './connection.js';
import type { AuditRecord } from '../proto/gen/l2fed/admin/v1/actions.js';

const done = (a: AuditRecord | undefined) =>
  console.log(`${a?.outcome ?? 'done'} (audit ${a?.id ?? '?'} by ${a?.actor ?? '?'})`);

export function registerActions(program: Command): void {
  program
    .command('cordon <cluster>')
    .description('take a cluster out of every peer map, keeping its registration and VNIs')
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .addHelpText(
      'after',
      '\nExample:\n  l2fed cordon madrid --reason "gateway maintenance, OPS-42"',
    )
    .action(async (cluster: string, o: { reason: string }, cmd: Command) => {
      const r = await withApi(cmd, (api) =>
        api.actions.cordonCluster({ cluster, reason: o.reason }),
      );
      done(r.audit);
    });
  program
    .command('uncordon <cluster>')
    .description('put a cordoned cluster back into the peer maps')
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .addHelpText('after', '\nExample:\n  l2fed uncordon madrid --reason "maintenance done"')
    .action(async (cluster: string, o: { reason: string }, cmd: Command) => {
      const r = await withApi(cmd, (api) =>
        api.actions.uncordonCluster({ cluster, reason: o.reason }),
      );
      done(r.audit);
    });
  program
    .command('evict <cluster>')
    .description('deregister a cluster and release its allocations (cordon it first, or --force)')
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .option('--force', 'evict even when the cluster is not cordoned')
    .addHelpText(
      'after',
      '\nExamples:\n  l2fed cordon oslo --reason decommission && l2fed evict oslo --reason decommission\n\n' +
        "Revoke the cluster's NATS credentials too, or its agent registers it again.",
    )
    .action(async (cluster: string, o: { reason: string; force?: boolean }, cmd: Command) => {
      const r = await withApi(cmd, (api) =>
        api.actions.evictCluster({ cluster, reason: o.reason, force: o.force ?? false }),
      );
      done(r.audit);
    });

  const release = program
    .command('release')
    .description('release a stale network, VNI claim or transit address claim');
  release
    .command('network <name>')
    .description(
      'unbind a network name and quarantine its VNI (refused while exported, unless --force)',
    )
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .option('--force', 'also remove it from the clusters that still export it')
    .addHelpText('after', '\nExample:\n  l2fed release network old-cdn --reason "retired in 2025"')
    .action(async (name: string, o: { reason: string; force?: boolean }, cmd: Command) => {
      const r = await withApi(cmd, (api) =>
        api.actions.releaseNetwork({ name, reason: o.reason, force: o.force ?? false }),
      );
      done(r.audit);
    });
  release
    .command('vni <vni>')
    .description('free a VNI claim that no network is bound to (skips the quarantine)')
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .addHelpText('after', '\nExample:\n  l2fed release vni 4711 --reason "orphaned claim"')
    .action(async (vni: string, o: { reason: string }, cmd: Command) => {
      const n = Number(vni);
      if (!Number.isInteger(n) || n < 1 || n > 16_777_215)
        throw new Error(`VNI must be an integer 1-16777215, got "${vni}"`);
      const r = await withApi(cmd, (api) =>
        api.actions.releaseAllocation({ vni: n, transitAddress: undefined, reason: o.reason }),
      );
      done(r.audit);
    });
  release
    .command('transit <address>')
    .description('free a transit address claim that no registered cluster owns')
    .requiredOption('--reason <text>', 'why (kept in the audit log)')
    .addHelpText(
      'after',
      '\nExample:\n  l2fed release transit 100.64.3.9 --reason "orphaned claim"',
    )
    .action(async (address: string, o: { reason: string }, cmd: Command) => {
      const r = await withApi(cmd, (api) =>
        api.actions.releaseAllocation({
          vni: undefined,
          transitAddress: address,
          reason: o.reason,
        }),
      );
      done(r.audit);
    });
}
