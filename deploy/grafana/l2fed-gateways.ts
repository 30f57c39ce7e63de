/**
 * The l2fed / Gateways dashboard (deploy/grafana/l2fed-gateways.json): the metrics of
 * gateway/metrics.ts (docs/gateway.md, Metrics). Written by `npm run gen`.
 */
import {
  barGauge,
  dashed,
  fixedColor,
  labelVariable,
  negativeY,
  nonZero,
  picked,
  selector,
  stat,
  stateTimeline,
  timeseries,
  type DashboardSpec,
  type Query,
} from './panels.js';
import type { PeerStatus } from '../../gateway/health.js';

/** A gateway metric, filtered by the cluster picker and the pickers of its labels. */
function gw(metric: string, ...labels: ('network' | 'peer')[]): string {
  return selector(metric, picked('gateway', 'cluster'), ...labels.map((l) => picked(l)));
}

/** The peer-state series of one state (1 while the peer is in it, else 0). */
function peerState(state: PeerStatus): string {
  return selector(
    'l2fed_gateway_peer_state',
    picked('gateway', 'cluster'),
    picked('peer'),
    `state="${state}"`,
  );
}

const RATE = '[$__rate_interval]';
const PER_PEER = '{{gateway}} → {{peer}}';

/** A count of matching series, 0 when none match (so the tile shows 0, not "No data"). */
const countOf = (expr: string) => `count(${expr}) or vector(0)`;

/** Per peer / per network time series: the legend on the right. */
const series = (o: Omit<Parameters<typeof timeseries>[0], 'legend'>) =>
  timeseries({ legend: 'right', ...o });

const one = (expr: string, legend = PER_PEER): Query[] => [{ expr, legend }];

export const gatewaysDashboard: DashboardSpec = {
  uid: 'l2fed-gateways',
  title: 'l2fed / Gateways',
  description:
    'Tunnels, networks, loops and reconciles of l2fed gateways (the gateway metrics of docs/gateway.md). The broker and the cluster agents: the l2fed / Control plane dashboard (l2fed-control-plane.json).',
  tags: ['l2fed', 'wireguard', 'vxlan'],
  variables: [
    labelVariable({
      name: 'cluster',
      label: 'Cluster',
      description: "The gateway label: the cluster's id in the federation.",
      selector: 'l2fed_gateway_reconcile_steps_total',
      of: 'gateway',
    }),
    labelVariable({
      name: 'peer',
      label: 'Peer',
      description: 'Remote cluster at the other end of a tunnel.',
      selector: selector('l2fed_gateway_tunnel_up', picked('gateway', 'cluster')),
      of: 'peer',
    }),
    labelVariable({
      name: 'network',
      label: 'Network',
      description: 'Federated network name.',
      selector: selector('l2fed_gateway_network_up', picked('gateway', 'cluster')),
      of: 'network',
    }),
  ],
  rows: [
    {
      title: 'Overview',
      cells: [
        {
          w: 3,
          h: 4,
          panel: stat({
            title: 'Peers',
            description: 'Tunnels to peers, over the gateways picked.',
            unit: 'short',
            expr: `count(${gw('l2fed_gateway_tunnel_up', 'peer')}) or vector(0)`,
          }),
        },
        {
          w: 3,
          h: 4,
          panel: stat({
            title: 'Peers down',
            description:
              'Peers whose tunnel fails the in-tunnel probe or never shook hands (l2fed_gateway_peer_state{state="down"}; l2fed_gateway_tunnel_up == 0).',
            unit: 'short',
            expr: countOf(`${peerState('down')} == 1`),
            steps: nonZero(),
          }),
        },
        {
          w: 3,
          h: 4,
          panel: stat({
            title: 'Peers degraded',
            description:
              'Peers whose tunnel passes the probe but not cleanly: a stale handshake, probe loss, or a path MTU below what their networks need (l2fed_gateway_peer_state{state="degraded"}; l2fed status says which).',
            unit: 'short',
            expr: countOf(`${peerState('degraded')} == 1`),
            steps: nonZero('orange'),
          }),
        },
        {
          w: 3,
          h: 4,
          panel: stat({
            title: 'Stale handshakes',
            description:
              'Peers whose last WireGuard handshake is older than 180 s (the gateway then reports them degraded).',
            unit: 'short',
            expr: countOf(`${gw('l2fed_gateway_peer_handshake_age_seconds', 'peer')} > 180`),
            steps: nonZero(),
          }),
        },
        {
          w: 3,
          h: 4,
          panel: stat({
            title: 'Paths below needed MTU',
            description:
              'Peers whose measured path MTU is smaller than their largest network needs: full-size frames of those networks are lost.',
            unit: 'short',
            expr: countOf(
              `${gw('l2fed_gateway_peer_path_mtu_bytes', 'peer')} < ${gw('l2fed_gateway_peer_path_mtu_needed_bytes', 'peer')}`,
            ),
            steps: nonZero(),
          }),
        },
        {
          w: 3,
          h: 4,
          panel: stat({
            title: 'Networks not ok',
            description:
              'Networks whose data path is not ok (l2fed_gateway_network_up == 0: degraded, down or not receiving).',
            unit: 'short',
            expr: countOf(`${gw('l2fed_gateway_network_up', 'network')} == 0`),
            steps: nonZero(),
          }),
        },
        {
          w: 3,
          h: 4,
          panel: stat({
            title: 'Networks with a loop',
            description:
              'Networks where a gateway saw its loop beacon come back, or blocks the network to its peers to cut a loop.',
            unit: 'short',
            expr: countOf(
              `max by (gateway, network) (${gw('l2fed_gateway_loop_detected', 'network')} or ${gw('l2fed_gateway_loop_blocked', 'network')}) == 1`,
            ),
            steps: nonZero(),
          }),
        },
        {
          w: 3,
          h: 4,
          panel: stat({
            title: 'Reconcile errors (1 h)',
            description: 'Failed apply() calls in the last hour, all error classes.',
            unit: 'short',
            expr: `sum(increase(${gw('l2fed_gateway_reconcile_errors_total')}[1h])) or vector(0)`,
            steps: nonZero(),
          }),
        },
      ],
    },
    {
      title: 'Peers (WireGuard tunnels)',
      cells: [
        {
          w: 24,
          h: 7,
          panel: stateTimeline({
            title: 'Peer state',
            description:
              'Per gateway → peer (l2fed_gateway_peer_state): up; degraded when the in-tunnel probe answers but the handshake is stale, some probes are lost or the path MTU is below what the networks need (see the panels below; l2fed status gives the reason); down when the probe fails or the peers never shook hands.',
            states: [
              { text: 'down', color: 'red' },
              { text: 'degraded', color: 'orange' },
              { text: 'up', color: 'green' },
            ],
            // 2 up, 1 degraded, 0 down: the state-set as one value per peer.
            queries: one(
              `max by (gateway, peer) (2 * ${peerState('up')} or ${peerState('degraded')})`,
            ),
          }),
        },
        {
          w: 12,
          h: 8,
          panel: series({
            title: 'Handshake age',
            description:
              'Seconds since the last WireGuard handshake. Handshakes renew about every 2 min while traffic flows; above 180 s the peer is degraded. Absent: never handshaked.',
            unit: 's',
            min: 0,
            thresholds: [
              { color: 'green', value: null },
              { color: 'red', value: 180 },
            ],
            queries: one(gw('l2fed_gateway_peer_handshake_age_seconds', 'peer')),
          }),
        },
        {
          w: 12,
          h: 8,
          panel: series({
            title: 'Tunnel throughput',
            description:
              'WireGuard traffic to (tx, below the axis) and from (rx) each peer, in bits/s (l2fed_gateway_peer_sent_bytes_total, …_received_bytes_total: counters that keep counting when the tunnel is recreated).',
            unit: 'bps',
            queries: [
              {
                expr: `rate(${gw('l2fed_gateway_peer_received_bytes_total', 'peer')}${RATE}) * 8`,
                legend: '{{gateway}} ← {{peer}} rx',
              },
              {
                expr: `rate(${gw('l2fed_gateway_peer_sent_bytes_total', 'peer')}${RATE}) * 8`,
                legend: '{{gateway}} → {{peer}} tx',
              },
            ],
            overrides: [negativeY('B')],
          }),
        },
        {
          w: 8,
          h: 8,
          panel: series({
            title: 'In-tunnel probe RTT',
            description: 'Average round-trip time of the last in-tunnel probe to each peer.',
            unit: 's',
            min: 0,
            queries: one(gw('l2fed_gateway_peer_rtt_seconds', 'peer')),
          }),
        },
        {
          w: 8,
          h: 8,
          panel: series({
            title: 'In-tunnel probe loss',
            description:
              'Loss of the last in-tunnel probe (0–100 %). Any loss makes the peer degraded; 100 % makes it down.',
            unit: 'percentunit',
            min: 0,
            max: 1,
            queries: one(gw('l2fed_gateway_peer_probe_loss_ratio', 'peer')),
          }),
        },
        {
          w: 8,
          h: 8,
          panel: series({
            title: 'Endpoint fail-overs',
            description:
              'Times a peer was moved to its next configured endpoint because the tunnel did not work.',
            unit: 'short',
            bars: true,
            min: 0,
            decimals: 0,
            queries: one(
              `increase(${gw('l2fed_gateway_endpoint_failovers_total', 'peer')}${RATE})`,
            ),
          }),
        },
        {
          w: 16,
          h: 8,
          panel: series({
            title: 'Path MTU: measured vs needed',
            description:
              "Inner IP packet size that crossed the tunnel with don't-fragment (measured) against what the peer's largest network needs (network MTU + 50 B VXLAN). Measured below needed: full-size frames are lost. Measured equals needed when that size passed (nothing larger is tried).",
            unit: 'suffix:B',
            decimals: 0,
            queries: [
              {
                expr: gw('l2fed_gateway_peer_path_mtu_bytes', 'peer'),
                legend: `${PER_PEER} measured`,
              },
              {
                expr: gw('l2fed_gateway_peer_path_mtu_needed_bytes', 'peer'),
                legend: `${PER_PEER} needed`,
              },
            ],
            overrides: [dashed('B')],
          }),
        },
        {
          w: 8,
          h: 8,
          panel: barGauge({
            title: 'Path MTU headroom',
            description:
              'Measured minus needed, per peer: below 0 B the path cannot carry full-size frames of the largest network. No bar: not measured (the peer does not answer).',
            unit: 'suffix:B',
            steps: [
              { color: 'red', value: null },
              { color: 'green', value: 0 },
            ],
            query: {
              expr: `${gw('l2fed_gateway_peer_path_mtu_bytes', 'peer')} - ${gw('l2fed_gateway_peer_path_mtu_needed_bytes', 'peer')}`,
              legend: PER_PEER,
            },
          }),
        },
      ],
    },
    {
      title: 'Networks (VXLAN segments)',
      cells: [
        {
          w: 12,
          h: 7,
          panel: stateTimeline({
            title: 'Network data path',
            description:
              'Per gateway and network: ok when frames cross; not ok when degraded (incl. a loop), down, or not receiving while a peer is reachable.',
            states: [
              { text: 'not ok', color: 'red' },
              { text: 'ok', color: 'green' },
            ],
            queries: one(gw('l2fed_gateway_network_up', 'network'), '{{gateway}} {{network}}'),
          }),
        },
        {
          w: 12,
          h: 7,
          panel: series({
            title: 'Receive silence',
            description:
              'Seconds since the network received any frame (tenant traffic or a peer probe) while a peer was reachable.',
            unit: 's',
            min: 0,
            queries: one(
              gw('l2fed_gateway_network_rx_silence_seconds', 'network'),
              '{{gateway}} {{network}}',
            ),
          }),
        },
        {
          w: 8,
          h: 7,
          panel: stateTimeline({
            title: 'Loops',
            description:
              'loop seen: this gateway saw its own loop beacon come back through a peer path. blocked: this gateway blocks the network to all peers to cut the loop.',
            states: [
              { text: 'no', color: 'green' },
              { text: 'yes', color: 'red' },
            ],
            queries: [
              {
                expr: gw('l2fed_gateway_loop_detected', 'network'),
                legend: '{{gateway}} {{network}} loop seen',
              },
              {
                expr: gw('l2fed_gateway_loop_blocked', 'network'),
                legend: '{{gateway}} {{network}} blocked',
              },
            ],
          }),
        },
        {
          w: 8,
          h: 7,
          panel: series({
            title: 'Storm drops (BUM rate bound)',
            description:
              'Broadcast/multicast frames per second dropped by the per-network, per-peer rate bound. in: from the peer, out: to the peer.',
            unit: 'pps',
            min: 0,
            queries: one(
              `sum by (gateway, network, peer, direction) (rate(${gw('l2fed_gateway_bum_dropped_frames_total', 'network', 'peer')}${RATE}))`,
              '{{gateway}} {{network}} {{peer}} {{direction}}',
            ),
          }),
        },
        {
          w: 8,
          h: 7,
          panel: series({
            title: 'Frames dropped on blocked paths',
            description:
              'Frames per second dropped on paths blocked to cut a loop, by the network whose loop is cut and direction (in: from a peer, out: to a peer).',
            unit: 'pps',
            min: 0,
            queries: one(
              `sum by (gateway, network, direction) (rate(${gw('l2fed_gateway_loop_blocked_frames_total', 'network')}${RATE}))`,
              '{{gateway}} {{network}} {{direction}}',
            ),
          }),
        },
      ],
    },
    {
      title: 'Reconcile (apply)',
      cells: [
        {
          w: 8,
          h: 8,
          panel: series({
            title: 'Apply duration',
            description:
              'Duration of apply() calls: p50 and p99 from the histogram (buckets 50 ms … 10 s) and the mean.',
            unit: 's',
            min: 0,
            queries: [
              ...[0.5, 0.99].map((q) => ({
                expr: `histogram_quantile(${q}, sum by (gateway, le) (rate(${gw('l2fed_gateway_reconcile_duration_seconds_bucket')}${RATE})))`,
                legend: `{{gateway}} p${q * 100}`,
              })),
              {
                expr: `sum by (gateway) (rate(${gw('l2fed_gateway_reconcile_duration_seconds_sum')}${RATE})) / sum by (gateway) (rate(${gw('l2fed_gateway_reconcile_duration_seconds_count')}${RATE}))`,
                legend: '{{gateway}} mean',
              },
            ],
          }),
        },
        {
          w: 8,
          h: 8,
          panel: series({
            title: 'Applies and errors',
            description:
              'apply() calls per second, and failed ones by the class name of the error (e.g. ConfigError: bad desired config; PreconditionError, KeyFileError, MissingToolError: the node is not ready; ApplyError, CommandError: a step failed).',
            unit: 'ops',
            min: 0,
            queries: [
              {
                expr: `sum by (gateway) (rate(${gw('l2fed_gateway_reconcile_duration_seconds_count')}${RATE}))`,
                legend: '{{gateway}} applies',
              },
              {
                expr: `sum by (gateway, error) (rate(${gw('l2fed_gateway_reconcile_errors_total')}${RATE}))`,
                legend: '{{gateway}} {{error}}',
              },
            ],
            overrides: [fixedColor('B', 'red')],
          }),
        },
        {
          w: 8,
          h: 8,
          panel: series({
            title: 'Plan steps executed',
            description:
              'Mutating plan steps per second run by apply(). Applying an unchanged config runs none, so a steady non-zero rate means something keeps undoing the data plane.',
            unit: 'ops',
            min: 0,
            queries: one(
              `sum by (gateway) (rate(${gw('l2fed_gateway_reconcile_steps_total')}${RATE}))`,
              '{{gateway}}',
            ),
          }),
        },
      ],
    },
  ],
};
