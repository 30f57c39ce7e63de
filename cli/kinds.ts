/**
 * The object kinds the read commands know (clusters, networks, peerings, tunnels,
 * audit): how to fetch all of them (following page tokens), one of them, how to print
 * them as a table row and as proto JSON. `get` and `describe` are thin over this.
 */
import type { AdminApi } from '../broker/admin/calls.js';
import type { PeeringState, TunnelState } from '../proto/gen/l2fed/admin/v1/federation.js';
import {
  Cluster,
  Network,
  Peering,
  TunnelHealth,
  peeringStateToJSON,
  tunnelStateToJSON,
} from '../proto/gen/l2fed/admin/v1/federation.js';
import { AuditRecord } from '../proto/gen/l2fed/admin/v1/actions.js';
import { age } from './output.js';

export interface Kind<T> {
  readonly names: readonly string[];
  /** Whether `list` narrows to one cluster (`get KIND --cluster ID`). */
  readonly byCluster: boolean;
  readonly list: (api: AdminApi, filter?: string) => Promise<T[]>;
  readonly get: (api: AdminApi, name: string) => Promise<T>;
  readonly toJSON: (item: T) => unknown;
  readonly header: readonly string[];
  readonly row: (item: T) => string[];
}

/** Follows next_page_token until the last page. */
async function all<T>(
  fetch: (pageToken: string) => Promise<{ items: T[]; nextPageToken: string }>,
): Promise<T[]> {
  const out: T[] = [];
  let token = '';
  do {
    const page = await fetch(token);
    out.push(...page.items);
    token = page.nextPageToken;
  } while (token);
  return out;
}

const page = (pageToken: string) => ({ pageSize: 500, pageToken });
const short = (s: string) =>
  s
    .replace(/^PEERING_STATE_|^TUNNEL_STATE_/, '')
    .toLowerCase()
    .replaceAll('_', '-');
export const peeringState = (s: PeeringState) => short(peeringStateToJSON(s));
export const tunnelState = (s: TunnelState) => short(tunnelStateToJSON(s));

/** "a:b" or "a/b" or "a,b" → [a, b]. */
export function splitPair(name: string): [string, string] {
  const parts = name.split(/[:/,]/);
  if (parts.length !== 2 || !parts[0] || !parts[1])
    throw new Error(`name a pair of clusters as A:B (e.g. madrid:bristol), got "${name}"`);
  return [parts[0], parts[1]];
}

export const clusters: Kind<Cluster> = {
  names: ['clusters', 'cluster', 'cl'],
  byCluster: false,
  list: (api) =>
    all(async (t) => {
      const r = await api.federation.listClusters({ ...page(t), readMask: [] });
      return { items: r.clusters, nextPageToken: r.nextPageToken };
    }),
  get: async (api, id) => (await api.federation.getCluster({ id, readMask: [] })).cluster!,
  toJSON: (c) => Cluster.toJSON(c),
  header: ['CLUSTER', 'STATUS', 'ENDPOINTS', 'TRANSIT', 'EXPORTS', 'PEERS', 'HEALTH', 'AGE'],
  row: (c) => [
    c.id,
    c.cordon ? 'cordoned' : 'ready',
    c.endpoints.join(','),
    c.transitAddress,
    c.exports.map((n) => `${n.name}(${n.vni})`).join(','),
    `${c.activePeers.length}/${c.declaredPeers.length}`,
    !c.health?.reported
      ? 'no-report'
      : `${c.health.peersUp}/${c.health.peersTotal} up${c.health.stale ? ' (stale)' : ''}`,
    age(c.registeredAt),
  ],
};

export const networks: Kind<Network> = {
  names: ['networks', 'network', 'net'],
  byCluster: true,
  list: (api, cluster = '') =>
    all(async (t) => {
      const r = await api.federation.listNetworks({ ...page(t), cluster });
      return { items: r.networks, nextPageToken: r.nextPageToken };
    }),
  get: async (api, name) => (await api.federation.getNetwork({ name })).network!,
  toJSON: (n) => Network.toJSON(n),
  header: ['NETWORK', 'VNI', 'MTU', 'MTU SET BY', 'MEMBERS', 'AGE'],
  row: (n) => [
    n.name,
    String(n.vni),
    n.mtu ? String(n.mtu.value) : '-',
    n.mtu ? `${n.mtu.setBy} (${n.mtu.limit})` : '-',
    n.members.map((m) => m.cluster).join(','),
    age(n.createdAt),
  ],
};

export const peerings: Kind<Peering> = {
  names: ['peerings', 'peering', 'pe'],
  byCluster: true,
  list: (api, cluster = '') =>
    all(async (t) => {
      const r = await api.federation.listPeerings({ ...page(t), cluster });
      return { items: r.peerings, nextPageToken: r.nextPageToken };
    }),
  get: async (api, name) => {
    const [a, b] = splitPair(name);
    return (await api.federation.getPeering({ clusterA: a, clusterB: b })).peering!;
  },
  toJSON: (p) => Peering.toJSON(p),
  header: ['PEERING', 'STATE', 'ACTIVE', 'NETWORKS', 'REASON'],
  row: (p) => [
    p.name,
    peeringState(p.state),
    p.active ? 'yes' : 'no',
    p.networks.map((n) => n.name).join(','),
    p.reason,
  ],
};

export const tunnels: Kind<TunnelHealth> = {
  names: ['tunnels', 'tunnel', 'health'],
  byCluster: true,
  list: (api, cluster = '') =>
    all(async (t) => {
      const r = await api.federation.listTunnelHealth({ ...page(t), cluster });
      return { items: r.tunnels, nextPageToken: r.nextPageToken };
    }),
  get: async (api, name) => {
    const [a, b] = splitPair(name);
    return (await api.federation.getTunnelHealth({ clusterA: a, clusterB: b })).tunnel!;
  },
  toJSON: (t) => TunnelHealth.toJSON(t),
  header: ['TUNNEL', 'STATE', 'RTT', 'LOSS', 'HANDSHAKE', 'REASON'],
  row: (t) => {
    const views = [t.viewA, t.viewB].filter((v) => v?.reported);
    const rtt = views.map((v) => v!.rttMs).filter((x) => x > 0);
    const hs = views.map((v) => v!.lastHandshakeAgeSec).filter((x) => x >= 0);
    return [
      `${t.clusterA}:${t.clusterB}`,
      tunnelState(t.state),
      rtt.length ? `${Math.max(...rtt).toFixed(1)}ms` : '',
      views.length ? `${Math.max(...views.map((v) => v!.lossPct))}%` : '',
      hs.length ? `${Math.max(...hs)}s` : '',
      t.reason,
    ];
  },
};

export const audit: Kind<AuditRecord> = {
  names: ['audit'],
  byCluster: false,
  list: (api) =>
    all(async (t) => {
      const r = await api.actions.listAuditRecords(page(t));
      return { items: r.records, nextPageToken: r.nextPageToken };
    }),
  get: async (api, id) => {
    const r = (await audit.list(api)).find((x) => x.id === id);
    if (!r) throw new Error(`no audit record "${id}"; list them with "l2fed get audit"`);
    return r;
  },
  toJSON: (r) => AuditRecord.toJSON(r),
  header: ['TIME', 'ACTOR', 'ACTION', 'TARGET', 'REASON', 'OUTCOME'],
  row: (r) => [r.time?.toISOString() ?? '', r.actor, r.action, r.target, r.reason, r.outcome],
};

export const KINDS = [clusters, networks, peerings, tunnels, audit] as const;

/** The kind named (plural, singular or short), or an error listing the known ones. */
export function kindNamed(name: string): Kind<unknown> {
  const k = KINDS.find((x) => x.names.includes(name));
  if (!k)
    throw new Error(
      `unknown kind "${name}"; use one of ${KINDS.map((x) => x.names[0]).join(', ')}`,
    );
  // Each kind is consistent in itself; callers only pass items back to the same kind.
  return k as unknown as Kind<unknown>;
}

/**
 * Throws when `--cluster` is given for a kind it cannot narrow, rather than list
 * everything as if the filter had applied.
 */
export function checkClusterFilter(kind: Kind<unknown>, cluster: string | undefined): void {
  if (cluster === undefined || kind.byCluster) return;
  const narrow = KINDS.filter((k) => k.byCluster).map((k) => k.names[0]);
  const one =
    kind.names[0] === 'clusters' ? `; for one cluster: l2fed describe cluster ${cluster}` : '';
  throw new Error(`--cluster narrows only ${narrow.join(', ')}, not ${kind.names[0]}${one}`);
}
