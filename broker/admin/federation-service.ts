/**
 * FederationService: read-only views of clusters, networks, peerings and tunnel
 * health. Every call reads KV under the call's deadline (AdminKv) and derives its
 * answer with the pure functions in admin-views / admin-peerings / admin-health.
 */
import type { ServerUnaryCall } from '@grpc/grpc-js';
import {
  FederationServiceService,
  type FederationServiceServer,
} from '../../proto/gen/l2fed/admin/v1/federation.js';
import { AdminKv } from './kv.js';
import { readSnapshot, type FederationSnapshot } from './snapshot.js';
import { allClusters, allNetworks, clusterView, networkView } from './views.js';
import { allPeerings, peeringOf } from './peerings.js';
import { allTunnelHealth, tunnelHealthOf, type HealthOptions } from './health.js';
import { applyClusterMask, checkClusterMask } from './field-mask.js';
import { paginate } from './pagination.js';
import { NotFoundError, InvalidArgumentError } from './errors.js';
import { requireName, unary } from './rpc.js';
import type { AdminContext } from './context.js';
import type { AdminService } from './server.js';

/** Optional cluster filter: empty means all, otherwise a valid name. */
const filterName = (v: string, field: string) => (v ? requireName(v, field, 'cluster') : '');

/** The FederationService implementation over the broker's KV. */
export function federationService(ctx: AdminContext): AdminService {
  const snapshot = async (call: ServerUnaryCall<unknown, unknown>): Promise<FederationSnapshot> =>
    readSnapshot(AdminKv.forDeadline(ctx.nc, call.getDeadline(), ctx.natsUp));
  const health = (): HealthOptions => ({ now: Date.now(), staleAfterMs: ctx.staleAfterMs });
  const pair = (a: string, b: string) => {
    requireName(a, 'cluster_a', 'cluster');
    requireName(b, 'cluster_b', 'cluster');
    if (a === b) throw InvalidArgumentError.field('cluster_b', 'must differ from cluster_a');
  };
  const log = ctx.log;

  const impl: FederationServiceServer = {
    listClusters: unary(
      'ListClusters',
      async (call) => {
        checkClusterMask(call.request.readMask);
        const page = paginate(
          allClusters(await snapshot(call), health()),
          call.request,
          (c) => c.id,
          'clusters',
        );
        return {
          clusters: page.items.map((c) => applyClusterMask(c, call.request.readMask)),
          nextPageToken: page.nextPageToken,
          totalSize: page.totalSize,
        };
      },
      log,
    ),
    getCluster: unary(
      'GetCluster',
      async (call) => {
        const id = requireName(call.request.id, 'id', 'cluster');
        checkClusterMask(call.request.readMask);
        const c = clusterView(await snapshot(call), id, health());
        if (!c)
          throw new NotFoundError(
            `cluster "${id}" is not registered; list registered clusters with "l2fed get clusters"`,
          );
        return { cluster: applyClusterMask(c, call.request.readMask) };
      },
      log,
    ),
    listNetworks: unary(
      'ListNetworks',
      async (call) => {
        const cluster = filterName(call.request.cluster, 'cluster');
        const all = allNetworks(await snapshot(call)).filter(
          (n) => !cluster || n.members.some((m) => m.cluster === cluster),
        );
        const page = paginate(all, call.request, (n) => n.name, `networks?cluster=${cluster}`);
        return {
          networks: page.items,
          nextPageToken: page.nextPageToken,
          totalSize: page.totalSize,
        };
      },
      log,
    ),
    getNetwork: unary(
      'GetNetwork',
      async (call) => {
        const name = requireName(call.request.name, 'name', 'network');
        const n = networkView(await snapshot(call), name);
        if (!n)
          throw new NotFoundError(
            `network "${name}" has no VNI: no cluster exports it; list networks with "l2fed get networks"`,
          );
        return { network: n };
      },
      log,
    ),
    listPeerings: unary(
      'ListPeerings',
      async (call) => {
        const cluster = filterName(call.request.cluster, 'cluster');
        const all = allPeerings(await snapshot(call)).filter(
          (p) => !cluster || p.clusterA === cluster || p.clusterB === cluster,
        );
        const page = paginate(all, call.request, (p) => p.name, `peerings?cluster=${cluster}`);
        return {
          peerings: page.items,
          nextPageToken: page.nextPageToken,
          totalSize: page.totalSize,
        };
      },
      log,
    ),
    getPeering: unary(
      'GetPeering',
      async (call) => {
        const { clusterA: a, clusterB: b } = call.request;
        pair(a, b);
        const p = peeringOf(await snapshot(call), a, b);
        if (!p)
          throw new NotFoundError(
            `neither ${a} nor ${b} declares a peering with the other; declare a ClusterPeering on both sides`,
          );
        return { peering: p };
      },
      log,
    ),
    listTunnelHealth: unary(
      'ListTunnelHealth',
      async (call) => {
        const cluster = filterName(call.request.cluster, 'cluster');
        const all = allTunnelHealth(await snapshot(call), health()).filter(
          (t) => !cluster || t.clusterA === cluster || t.clusterB === cluster,
        );
        const page = paginate(
          all,
          call.request,
          (t) => `${t.clusterA}:${t.clusterB}`,
          `tunnels?cluster=${cluster}`,
        );
        return {
          tunnels: page.items,
          nextPageToken: page.nextPageToken,
          totalSize: page.totalSize,
          staleAfterSeconds: Math.round(ctx.staleAfterMs / 1000),
        };
      },
      log,
    ),
    getTunnelHealth: unary(
      'GetTunnelHealth',
      async (call) => {
        const { clusterA: a, clusterB: b } = call.request;
        pair(a, b);
        const s = await snapshot(call);
        if (!s.clusters.has(a) && !s.clusters.has(b))
          throw new NotFoundError(
            `neither ${a} nor ${b} is registered; check the names with "l2fed get clusters"`,
          );
        return { tunnel: tunnelHealthOf(s, a, b, health()) };
      },
      log,
    ),
  };
  return { definition: FederationServiceService, implementation: impl };
}
