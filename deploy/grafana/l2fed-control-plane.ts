/**
 * The l2fed / Control plane dashboard (deploy/grafana/l2fed-control-plane.json): the
 * broker's metrics (broker/metrics.ts, docs/broker.md) and the cluster agents'
 * (cluster-agent/metrics.ts, docs/cluster-agent.md). Written by `npm run gen`.
 */
import {
  labelVariable,
  nonZero,
  picked,
  selector,
  stat,
  timeseries,
  type Cell,
  type DashboardSpec,
  type Query,
} from './panels.js';

const RATE = '[$__rate_interval]';

/** An agent metric, filtered by the cluster picker (and fixed matchers). */
function agent(metric: string, ...matchers: string[]): string {
  return selector(metric, picked('cluster'), ...matchers);
}

/** Time series with the legend below and stacking written out (`none` unless stacked). */
const series = (
  o: Omit<Parameters<typeof timeseries>[0], 'legend' | 'stacking' | 'min'> & { stacked?: boolean },
) => {
  const { stacked, ...rest } = o;
  return timeseries({ legend: 'bottom', stacking: stacked ? 'normal' : 'none', min: 0, ...rest });
};

const one = (expr: string, legend: string): Query[] => [{ expr, legend }];
const tile = (panel: Cell['panel']): Cell => ({ w: 4, h: 4, panel });
const half = (panel: Cell['panel'], h = 8): Cell => ({ w: 12, h, panel });
const full = (panel: Cell['panel']): Cell => ({ w: 24, h: 6, panel });

export const controlPlaneDashboard: DashboardSpec = {
  uid: 'l2fed-control-plane',
  title: 'l2fed / Control plane',
  description:
    'The l2fed broker (federation size, agent requests, KV, peer maps, admin API; docs/broker.md, Metrics) and the cluster agents (broker link, peer map, gateway applies, reconcile, key rotation; docs/cluster-agent.md, Metrics). Gateways: the l2fed / Gateways dashboard.',
  tags: ['l2fed', 'nats', 'control-plane'],
  variables: [
    labelVariable({
      name: 'cluster',
      label: 'Cluster',
      description: "The agent's cluster id (label cluster).",
      selector: 'l2fed_agent_broker_connected',
      of: 'cluster',
    }),
  ],
  rows: [
    {
      title: 'Broker: federation',
      cells: [
        tile(
          stat({
            title: 'Registered clusters',
            description:
              'Clusters registered in the federation (l2fed_broker_registered_clusters, read from KV by each replica at most every 30 s; max over replicas).',
            unit: 'short',
            expr: 'max(l2fed_broker_registered_clusters)',
          }),
        ),
        tile(
          stat({
            title: 'Cordoned clusters',
            description:
              'Clusters an operator cordoned: left out of every peer map until uncordoned (l2fed admin uncordon).',
            unit: 'short',
            expr: 'max(l2fed_broker_cordoned_clusters)',
            steps: nonZero(),
          }),
        ),
        tile(
          stat({
            title: 'Federated networks',
            description: 'Networks with a VNI bound, i.e. exported by at least one cluster.',
            unit: 'short',
            expr: 'max(l2fed_broker_networks)',
          }),
        ),
        tile(
          stat({
            title: 'Mutual peerings',
            description:
              'Pairs of clusters that declare each other (consent on both sides). Active in the peer maps once both are registered, uncordoned and share an exported network.',
            unit: 'short',
            expr: `max(${selector('l2fed_broker_peerings', 'consent="mutual"')})`,
          }),
        ),
        tile(
          stat({
            title: 'One-sided peerings',
            description:
              "Pairs where only one cluster declares the other: waiting for the other side's ClusterPeering (or a typo in remoteCluster).",
            unit: 'short',
            expr: `max(${selector('l2fed_broker_peerings', 'consent="one_sided"')})`,
            steps: nonZero('yellow'),
          }),
        ),
        tile(
          stat({
            title: 'Federation gauges age',
            description:
              'Seconds since the freshest replica read the federation gauges from KV (normally under 30 s plus the scrape interval). Growing: KV reads fail, see KV errors.',
            unit: 's',
            expr: 'time() - max(l2fed_broker_federation_read_timestamp_seconds)',
            steps: [
              { color: 'green', value: null },
              { color: 'yellow', value: 120 },
              { color: 'red', value: 600 },
            ],
          }),
        ),
      ],
    },
    {
      title: 'Broker: agent requests',
      cells: [
        half(
          series({
            title: 'Requests by verb',
            description:
              'Agent requests handled per second, all replicas (l2fed_broker_requests_total).',
            unit: 'reqps',
            stacked: true,
            queries: one(`sum by (verb) (rate(l2fed_broker_requests_total${RATE}))`, '{{verb}}'),
          }),
        ),
        half(
          series({
            title: 'Refused requests by verb and code',
            description:
              'Requests answered with an error code (INVALID_REQUEST, NOT_REGISTERED, CONFLICT, UNAVAILABLE …; docs/broker.md, Errors). CONFLICT: compare-and-set retries ran out; UNAVAILABLE: KV did not answer.',
            unit: 'reqps',
            queries: one(
              `sum by (verb, code) (rate(${selector('l2fed_broker_requests_total', 'code!="OK"')}${RATE}))`,
              '{{verb}} {{code}}',
            ),
          }),
        ),
        half(
          series({
            title: 'Request latency by verb (p50, p99)',
            description:
              'Time from receipt to reply, including the peer-map recomputes a request causes (exports, peerings, register, deregister).',
            unit: 's',
            queries: [0.99, 0.5].map((q) => ({
              expr: `histogram_quantile(${q}, sum by (verb, le) (rate(l2fed_broker_request_duration_seconds_bucket${RATE})))`,
              legend: `p${q * 100} {{verb}}`,
            })),
          }),
        ),
        half(
          series({
            title: 'Average request time by verb',
            description: 'Mean handling time (sum / count of the histogram).',
            unit: 's',
            queries: one(
              `sum by (verb) (rate(l2fed_broker_request_duration_seconds_sum${RATE})) / sum by (verb) (rate(l2fed_broker_request_duration_seconds_count${RATE}))`,
              '{{verb}}',
            ),
          }),
        ),
        full(
          series({
            title: "Requests dropped: reply subject not the requester's inbox",
            description:
              'Requests a replica dropped unanswered because their reply subject was not _INBOX_<clusterId>.… (a misbehaving or malicious client).',
            unit: 'reqps',
            queries: one(
              `sum by (instance) (rate(l2fed_broker_replies_refused_total${RATE}))`,
              '{{instance}}',
            ),
          }),
        ),
      ],
    },
    {
      title: 'Broker: KV and peer maps',
      cells: [
        half(
          series({
            title: 'KV operations by bucket',
            description:
              'JetStream KV operations of request handling and recomputes that succeeded, by bucket and operation.',
            unit: 'ops',
            stacked: true,
            queries: one(
              `sum by (bucket, op) (rate(${selector('l2fed_broker_kv_operations_total', 'result="ok"')}${RATE}))`,
              '{{bucket}} {{op}}',
            ),
          }),
        ),
        half(
          series({
            title: 'KV conflicts and errors',
            description:
              'conflict: a compare-and-set lost to another writer (replicas racing; retried up to casAttempts). error: the store did not answer (NATS or JetStream down, leader election).',
            unit: 'ops',
            queries: one(
              `sum by (bucket, op, result) (rate(${selector('l2fed_broker_kv_operations_total', 'result!="ok"')}${RATE}))`,
              '{{bucket}} {{op}} {{result}}',
            ),
          }),
        ),
        half(
          series({
            title: 'Peer-map writes',
            description:
              'Peer maps written or deleted, and writes that lost a race and were redone with fresh inputs (conflict).',
            unit: 'ops',
            queries: one(
              `sum by (result) (rate(l2fed_broker_peer_map_writes_total${RATE}))`,
              '{{result}}',
            ),
          }),
        ),
        half(
          series({
            title: 'Full peer-map recompute',
            description:
              'The periodic reconcile of every peer map (reconcileIntervalMs, default 5 min): mean duration over 30 min per replica, and failed runs.',
            unit: 's',
            queries: [
              {
                expr: `sum by (instance) (increase(${selector('l2fed_broker_peer_map_reconcile_duration_seconds_sum', 'result="ok"')}[30m])) / sum by (instance) (increase(${selector('l2fed_broker_peer_map_reconcile_duration_seconds_count', 'result="ok"')}[30m]))`,
                legend: '{{instance}} mean',
              },
              {
                expr: `sum by (instance) (increase(${selector('l2fed_broker_peer_map_reconcile_duration_seconds_count', 'result="error"')}[30m]))`,
                legend: '{{instance}} failed runs',
              },
            ],
          }),
        ),
        full(
          series({
            title: 'Federation gauge read errors',
            description:
              'Reads of the federation gauges from KV that failed (the gauges above keep their last values meanwhile).',
            unit: 'short',
            queries: one(
              `sum by (instance) (increase(l2fed_broker_federation_read_errors_total${RATE}))`,
              '{{instance}}',
            ),
          }),
        ),
      ],
    },
    {
      title: 'Broker: admin API',
      cells: [
        half(
          series({
            title: 'Admin calls by method',
            description:
              'gRPC admin API calls that ended, per second (l2fed CLI, grpcurl, automation).',
            unit: 'reqps',
            queries: one(
              `sum by (method) (rate(l2fed_broker_admin_calls_total${RATE}))`,
              '{{method}}',
            ),
          }),
        ),
        half(
          series({
            title: 'Admin calls not OK',
            description:
              'Calls that ended with another status: UNAUTHENTICATED (token), PERMISSION_DENIED (not a writer), NOT_FOUND, FAILED_PRECONDITION …, CANCELLED (client left).',
            unit: 'reqps',
            queries: one(
              `sum by (method, code) (rate(${selector('l2fed_broker_admin_calls_total', 'code!="OK"')}${RATE}))`,
              '{{method}} {{code}}',
            ),
          }),
        ),
      ],
    },
    {
      title: 'Cluster agents',
      cells: [
        tile(
          stat({
            title: 'Agents connected to the broker',
            description: 'Agents whose NATS link to the broker is up, of all agents scraped.',
            unit: 'short',
            expr: `sum(${agent('l2fed_agent_broker_connected')})`,
          }),
        ),
        tile(
          stat({
            title: 'Agents disconnected',
            description:
              'Agents whose NATS link is down: their gateway keeps the last peer map (from the cache) until the broker is back.',
            unit: 'short',
            expr: `count(${agent('l2fed_agent_broker_connected')} == 0) or vector(0)`,
            steps: nonZero(),
          }),
        ),
        tile(
          stat({
            title: 'Agents on the cached peer map',
            description:
              'Agents programming their gateway from the on-disk peer map (broker not heard since start).',
            unit: 'short',
            expr: `count(${agent('l2fed_agent_peer_map_source', 'source="cache"')} == 1) or vector(0)`,
            steps: nonZero('yellow'),
          }),
        ),
        tile(
          stat({
            title: 'Rotations waiting',
            description:
              "Key rotations holding the tunnel on the current key until every peer's gateway holds the next one.",
            unit: 'short',
            expr: `count(${agent('l2fed_agent_key_rotation', 'state="waiting"')} == 1) or vector(0)`,
            steps: nonZero('yellow'),
          }),
        ),
        tile(
          stat({
            title: 'Oldest peer map',
            description:
              'Largest peer-map age over the agents: seconds since the broker last confirmed the map in force (it re-reads it every few seconds).',
            unit: 's',
            expr: `max(${agent('l2fed_agent_peer_map_age_seconds')})`,
            steps: [
              { color: 'green', value: null },
              { color: 'yellow', value: 60 },
              { color: 'red', value: 300 },
            ],
          }),
        ),
        tile(
          stat({
            title: 'Longest without an apply',
            description: "Largest time since an agent's last successful gateway Apply.",
            unit: 's',
            expr: `max(time() - ${agent('l2fed_agent_gateway_last_apply_timestamp_seconds')})`,
          }),
        ),
        half(
          series({
            title: 'Broker connection',
            description: "1: the agent's NATS link to the broker is up.",
            unit: 'short',
            queries: one(agent('l2fed_agent_broker_connected'), '{{cluster}}'),
          }),
        ),
        half(
          series({
            title: 'Peer-map source',
            description:
              "Where each agent's peer map in force comes from: broker (live) or cache (read at start, broker not heard since).",
            unit: 'short',
            queries: one(`${agent('l2fed_agent_peer_map_source')} == 1`, '{{cluster}} {{source}}'),
          }),
        ),
        half(
          series({
            title: 'Peer-map age',
            description:
              'Seconds since the broker last confirmed the peer map in force (or since the cached map was saved).',
            unit: 's',
            queries: one(agent('l2fed_agent_peer_map_age_seconds'), '{{cluster}}'),
          }),
        ),
        half(
          series({
            title: 'Since the last successful Apply',
            description:
              "Seconds since each agent's last successful gateway Apply (the agent applies on every change and on each resync).",
            unit: 's',
            queries: one(
              `time() - ${agent('l2fed_agent_gateway_last_apply_timestamp_seconds')}`,
              '{{cluster}}',
            ),
          }),
        ),
        half(
          series({
            title: 'Gateway applies by result',
            description:
              'Apply calls per second: ok, or the gRPC code of the failure (UNAVAILABLE: gateway not running; INVALID_ARGUMENT: config refused; INTERNAL: a step failed).',
            unit: 'ops',
            queries: one(
              `sum by (cluster, result) (rate(${agent('l2fed_agent_gateway_applies_total')}${RATE}))`,
              '{{cluster}} {{result}}',
            ),
          }),
        ),
        half(
          series({
            title: 'Reconcile pass duration (p99)',
            description:
              'One reconcile pass of the agent: gateway key, broker declarations, gateway apply, status writes.',
            unit: 's',
            queries: one(
              `histogram_quantile(0.99, sum by (cluster, le) (rate(${agent('l2fed_agent_reconcile_duration_seconds_bucket')}${RATE})))`,
              '{{cluster}}',
            ),
          }),
        ),
        half(
          series({
            title: 'Reconcile passes by result',
            description:
              'Passes per second: done, requeue (something to retry with backoff: broker or gateway unreachable, a refused request), error (the pass threw).',
            unit: 'ops',
            queries: one(
              `sum by (cluster, result) (rate(${agent('l2fed_agent_reconcile_duration_seconds_count')}${RATE}))`,
              '{{cluster}} {{result}}',
            ),
          }),
        ),
        half(
          series({
            title: 'Key rotation state',
            description:
              "idle: no rotation; waiting: the next key is announced and the tunnel keeps the current key until every peer's gateway holds it; switching: the tunnel moves to the next key.",
            unit: 'short',
            queries: one(`${agent('l2fed_agent_key_rotation')} == 1`, '{{cluster}} {{state}}'),
          }),
        ),
      ],
    },
  ],
};
