/**
 * ActionService: cordon, uncordon, evict, release a network or an allocation, and the
 * audit log. Every action checks its input (a reason is required), the caller's right
 * to act, and its precondition; changes KV with compare-and-set; refreshes the peer
 * maps it can affect; and only then writes an audit record.
 */
import type { ServerUnaryCall } from '@grpc/grpc-js';
import {
  ActionServiceService,
  type ActionServiceServer,
  type AuditRecord,
} from '../../proto/gen/l2fed/admin/v1/actions.js';
import { AdminKv } from './kv.js';
import {
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from './errors.js';
import { callerIdentity, requireWriter } from './identity.js';
import { readAudit, writeAudit } from './audit.js';
import { paginate } from './pagination.js';
import { requireName, requireReason, unary } from './rpc.js';
import { releaseNetwork, releaseVni, releaseTransit, setCordon } from './release.js';
import { BUCKETS, KEYS, type ClusterRecord } from '../records.js';
import { ipv4ToInt } from '../ipv4.js';
import type { AdminContext } from './context.js';
import type { AdminService } from './server.js';

interface Acting {
  readonly kv: AdminKv;
  readonly actor: string;
  audit(e: {
    action: string;
    target: string;
    reason: string;
    forced?: boolean;
    outcome: string;
  }): Promise<AuditRecord>;
}

/** The ActionService implementation. */
export function actionService(ctx: AdminContext): AdminService {
  /** Identity, permission and a deadline-bound KV reader for one action call. */
  const begin = (call: ServerUnaryCall<unknown, unknown>): Acting => {
    const actor = callerIdentity(call, ctx.authType);
    requireWriter(actor, ctx.writers);
    const kv = AdminKv.forDeadline(ctx.nc, call.getDeadline(), ctx.natsUp);
    return {
      kv,
      actor,
      audit: (e) => writeAudit(kv, { forced: false, ...e, actor }),
    };
  };
  const cluster = async (kv: AdminKv, id: string) => {
    const c = await kv.get<ClusterRecord>(BUCKETS.clusters, id);
    if (!c)
      throw new NotFoundError(
        `cluster "${id}" is not registered; list clusters with "l2fed get clusters"`,
      );
    return c;
  };
  const log = ctx.log;

  const impl: ActionServiceServer = {
    cordonCluster: unary(
      'CordonCluster',
      async (call) => {
        const id = requireName(call.request.cluster, 'cluster', 'cluster');
        const reason = requireReason(call.request.reason);
        const a = begin(call);
        const c = await cluster(a.kv, id);
        if (c.value.cordon)
          throw new AlreadyExistsError(
            `cluster "${id}" is already cordoned by ${c.value.cordon.by} since ${c.value.cordon.at} ` +
              `("${c.value.cordon.reason}"); uncordon it first to change the reason`,
          );
        await setCordon(ctx, a.kv, id, { by: a.actor, reason, at: new Date().toISOString() });
        return {
          audit: await a.audit({
            action: 'CordonCluster',
            target: `cluster/${id}`,
            reason,
            outcome: `cordoned ${id}; removed from all peer maps`,
          }),
        };
      },
      log,
    ),
    uncordonCluster: unary(
      'UncordonCluster',
      async (call) => {
        const id = requireName(call.request.cluster, 'cluster', 'cluster');
        const reason = requireReason(call.request.reason);
        const a = begin(call);
        const c = await cluster(a.kv, id);
        if (!c.value.cordon)
          throw new FailedPreconditionError(`cluster "${id}" is not cordoned; nothing to undo`);
        await setCordon(ctx, a.kv, id, undefined);
        return {
          audit: await a.audit({
            action: 'UncordonCluster',
            target: `cluster/${id}`,
            reason,
            outcome: `uncordoned ${id}; peer maps restored`,
          }),
        };
      },
      log,
    ),
    evictCluster: unary(
      'EvictCluster',
      async (call) => {
        const id = requireName(call.request.cluster, 'cluster', 'cluster');
        const reason = requireReason(call.request.reason);
        const a = begin(call);
        const c = await cluster(a.kv, id);
        if (!c.value.cordon && !call.request.force)
          throw new FailedPreconditionError(
            `cluster "${id}" is not cordoned; cordon it first (l2fed cordon ${id} --reason …) ` +
              `so its peers drop it, or pass force (--force) to evict at once`,
          );
        const memberships = (await a.kv.list(BUCKETS.networks, KEYS.membershipsOf(id))).map(
          (m) => m.key.split('.')[1]!,
        );
        await ctx.federation.deregister(id);
        const released: string[] = [];
        for (const n of memberships)
          if (!(await a.kv.get(BUCKETS.networks, KEYS.network(n)))) released.push(n);
        const outcome =
          `deregistered ${id}; released transit ${c.value.transitAddress}` +
          (released.length ? `; released networks ${released.join(', ')}` : '');
        return {
          audit: await a.audit({
            action: 'EvictCluster',
            target: `cluster/${id}`,
            reason,
            forced: call.request.force,
            outcome,
          }),
          releasedNetworks: released,
        };
      },
      log,
    ),
    releaseNetwork: unary(
      'ReleaseNetwork',
      async (call) => {
        const name = requireName(call.request.name, 'name', 'network');
        const reason = requireReason(call.request.reason);
        const a = begin(call);
        const r = await releaseNetwork(ctx, a.kv, name, call.request.force);
        const outcome =
          `released network ${name} (VNI ${r.vni}, quarantined)` +
          (r.removedMembers.length
            ? `; removed from exports of ${r.removedMembers.join(', ')}`
            : '');
        return {
          audit: await a.audit({
            action: 'ReleaseNetwork',
            target: `network/${name}`,
            reason,
            forced: call.request.force,
            outcome,
          }),
          vni: r.vni,
          removedMembers: r.removedMembers,
        };
      },
      log,
    ),
    releaseAllocation: unary(
      'ReleaseAllocation',
      async (call) => {
        const { vni, transitAddress } = call.request;
        if ((vni === undefined) === (transitAddress === undefined))
          throw InvalidArgumentError.field(
            'allocation',
            'set exactly one of vni or transit_address',
          );
        const reason = requireReason(call.request.reason);
        if (transitAddress !== undefined && ipv4ToInt(transitAddress) === undefined)
          throw InvalidArgumentError.field(
            'transit_address',
            `"${transitAddress}" is not an IPv4 address`,
          );
        const a = begin(call);
        const target = vni !== undefined ? `vni/${vni}` : `transit/${transitAddress}`;
        const outcome =
          vni !== undefined
            ? await releaseVni(ctx, a.kv, vni)
            : await releaseTransit(ctx, a.kv, transitAddress!);
        return { audit: await a.audit({ action: 'ReleaseAllocation', target, reason, outcome }) };
      },
      log,
    ),
    listAuditRecords: unary(
      'ListAuditRecords',
      async (call) => {
        const all = await readAudit(AdminKv.forDeadline(ctx.nc, call.getDeadline(), ctx.natsUp));
        const page = paginate(all, call.request, (r) => r.id, 'audit');
        return {
          records: page.items,
          nextPageToken: page.nextPageToken,
          totalSize: page.totalSize,
        };
      },
      log,
    ),
  };
  return { definition: ActionServiceService, implementation: impl };
}
