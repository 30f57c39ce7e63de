/**
 * Prometheus metrics of one gateway (prom-client, on its own Registry so several
 * gateways in one process, as in tests, never collide), and a tiny HTTP server for them.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { PEER_STATUSES, type HealthReport } from './health.js';
import type { LoopReport } from './loop-guard.js';

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly peerUp: Gauge<'peer'>;
  private readonly peerState: Gauge<'peer' | 'state'>;
  private readonly rtt: Gauge<'peer'>;
  private readonly loss: Gauge<'peer'>;
  private readonly rx: Counter<'peer'>;
  private readonly tx: Counter<'peer'>;
  /** Per peer: the WireGuard entry (key) and its byte counters at the last check. */
  private readonly wgLast = new Map<string, { key: string; rx: number; tx: number }>();
  private readonly handshakeAge: Gauge<'peer'>;
  private readonly pathMtu: Gauge<'peer'>;
  private readonly pathMtuNeeded: Gauge<'peer'>;
  private readonly networkUp: Gauge<'network'>;
  private readonly networkSilence: Gauge<'network'>;
  private readonly failovers: Counter<'peer'>;
  private readonly failoverPeers = new Set<string>();
  private readonly reconcileSeconds: Histogram;
  private readonly reconcileErrors: Counter<'error'>;
  private readonly reconcileSteps: Counter;
  private readonly loopDetected: Gauge<'network'>;
  private readonly loopBlocked: Gauge<'network'>;
  private readonly bumDropped: Counter<'network' | 'peer' | 'direction'>;
  private readonly blockedDropped: Counter<'network' | 'direction'>;
  /** Last nft counter values, to turn them into increments (a replaced table restarts at 0). */
  private readonly nftLast = new Map<string, number>();

  constructor(identity: string) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ gateway: identity });
    this.peerUp = new Gauge({
      name: 'l2fed_gateway_tunnel_up',
      help: '1 when the tunnel to the peer passes the in-tunnel probe, else 0',
      labelNames: ['peer'],
      registers,
    });
    this.peerState = new Gauge({
      name: 'l2fed_gateway_peer_state',
      help: 'Health of the peer, one series per state, 1 for the current one: up, degraded (passes the probe, but a stale handshake, probe loss or a path MTU below the needed one), down',
      labelNames: ['peer', 'state'],
      registers,
    });
    this.rtt = new Gauge({
      name: 'l2fed_gateway_peer_rtt_seconds',
      help: 'Average RTT of the last in-tunnel probe',
      labelNames: ['peer'],
      registers,
    });
    this.loss = new Gauge({
      name: 'l2fed_gateway_peer_probe_loss_ratio',
      help: 'Loss of the last in-tunnel probe, 0..1',
      labelNames: ['peer'],
      registers,
    });
    this.rx = new Counter({
      name: 'l2fed_gateway_peer_received_bytes_total',
      help: "Bytes received from the peer through the tunnel (WireGuard's counter; keeps counting when the tunnel is recreated)",
      labelNames: ['peer'],
      registers,
    });
    this.tx = new Counter({
      name: 'l2fed_gateway_peer_sent_bytes_total',
      help: "Bytes sent to the peer through the tunnel (WireGuard's counter; keeps counting when the tunnel is recreated)",
      labelNames: ['peer'],
      registers,
    });
    this.handshakeAge = new Gauge({
      name: 'l2fed_gateway_peer_handshake_age_seconds',
      help: 'Seconds since the last WireGuard handshake with the peer (absent: never)',
      labelNames: ['peer'],
      registers,
    });
    this.pathMtu = new Gauge({
      name: 'l2fed_gateway_peer_path_mtu_bytes',
      help: "Largest don't-fragment probe (inner IP packet) that crossed the tunnel in the last check; equals the needed size when that passed (absent: not measured)",
      labelNames: ['peer'],
      registers,
    });
    this.pathMtuNeeded = new Gauge({
      name: 'l2fed_gateway_peer_path_mtu_needed_bytes',
      help: "Inner IP packet the peer's largest network needs in the tunnel (network MTU + 50 VXLAN)",
      labelNames: ['peer'],
      registers,
    });
    this.failovers = new Counter({
      name: 'l2fed_gateway_endpoint_failovers_total',
      help: 'Times the peer was moved to its next configured endpoint because the tunnel did not work',
      labelNames: ['peer'],
      registers,
    });
    this.networkUp = new Gauge({
      name: 'l2fed_gateway_network_up',
      help: '1 when the network data path is ok, else 0',
      labelNames: ['network'],
      registers,
    });
    this.networkSilence = new Gauge({
      name: 'l2fed_gateway_network_rx_silence_seconds',
      help: 'Seconds since the network received any frame (tenant or peer probe) while a peer was reachable',
      labelNames: ['network'],
      registers,
    });
    this.reconcileSeconds = new Histogram({
      name: 'l2fed_gateway_reconcile_duration_seconds',
      help: 'Duration of apply() calls',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: 'l2fed_gateway_reconcile_errors_total',
      help: 'Failed apply() calls, by error type',
      labelNames: ['error'],
      registers,
    });
    this.loopDetected = new Gauge({
      name: 'l2fed_gateway_loop_detected',
      help: '1 when this check saw its loop beacon come back on the network (an L2 loop through a peer path), else 0',
      labelNames: ['network'],
      registers,
    });
    this.loopBlocked = new Gauge({
      name: 'l2fed_gateway_loop_blocked',
      help: '1 when this gateway blocks the network to all peers to cut a loop, else 0',
      labelNames: ['network'],
      registers,
    });
    this.bumDropped = new Counter({
      name: 'l2fed_gateway_bum_dropped_frames_total',
      help: 'Broadcast/multicast frames dropped by the per-network per-peer rate bound, by direction (in: from the peer, out: to the peer)',
      labelNames: ['network', 'peer', 'direction'],
      registers,
    });
    this.blockedDropped = new Counter({
      name: 'l2fed_gateway_loop_blocked_frames_total',
      help: 'Frames dropped on paths blocked to cut a loop, by network (the one whose loop is cut) and direction (in: from a peer, out: to a peer)',
      labelNames: ['network', 'direction'],
      registers,
    });
    this.reconcileSteps = new Counter({
      name: 'l2fed_gateway_reconcile_steps_total',
      help: 'Plan steps executed by apply()',
      registers,
    });
  }

  /** Records one apply: its duration, steps run, or the error's type. */
  observeApply(seconds: number, steps: number, error?: unknown): void {
    this.reconcileSeconds.observe(seconds);
    this.reconcileSteps.inc(steps);
    if (error !== undefined) {
      this.reconcileErrors.inc({ error: error instanceof Error ? error.name : 'unknown' });
    }
  }

  /** Counts one endpoint fail-over of a peer. */
  observeFailover(peer: string): void {
    this.failovers.inc({ peer });
    this.failoverPeers.add(peer);
  }

  /** Records one loop-guard check: loop and block per network, dropped frames. */
  observeLoops(r: LoopReport): void {
    this.loopDetected.reset();
    this.loopBlocked.reset();
    for (const n of r.networks) {
      const network = n.name;
      this.loopDetected.set({ network }, n.loopPeers.length > 0 ? 1 : 0);
      this.loopBlocked.set({ network }, n.blocked ? 1 : 0);
      for (const p of n.paths) {
        for (const [direction, v] of [
          ['in', p.bumDroppedIn],
          ['out', p.bumDroppedOut],
        ] as const) {
          const labels = { network, peer: p.peer, direction };
          this.bumDropped.inc(labels, increment(this.nftLast, JSON.stringify(labels), v));
        }
        // Per path: each path's nft counter restarts on its own (a path removed and made again).
        for (const [direction, v] of [
          ['in', p.blockedDroppedIn],
          ['out', p.blockedDroppedOut],
        ] as const) {
          const key = JSON.stringify({ blocked: network, peer: p.peer, direction });
          this.blockedDropped.inc({ network, direction }, increment(this.nftLast, key, v));
        }
      }
    }
  }

  /** Replaces the per-peer and per-network series with one health report. */
  observeHealth(h: HealthReport): void {
    for (const g of [
      this.peerUp,
      this.peerState,
      this.rtt,
      this.loss,
      this.handshakeAge,
      this.pathMtu,
      this.pathMtuNeeded,
    ]) {
      g.reset(); // peers that left the config must disappear, not go stale
    }
    this.networkUp.reset();
    this.networkSilence.reset();
    for (const p of h.peers) {
      const peer = p.name;
      this.peerUp.set({ peer }, p.status === 'down' ? 0 : 1);
      for (const state of PEER_STATUSES) {
        this.peerState.set({ peer, state }, p.status === state ? 1 : 0);
      }
      if (p.probe.rttMs !== undefined) this.rtt.set({ peer }, p.probe.rttMs / 1000);
      this.loss.set({ peer }, p.probe.loss);
      // WireGuard's counters restart at 0 with a new peer entry (a new key) or a
      // recreated device; the Prometheus counters add what they grew by since the last
      // check, or all of it after a restart. A restart whose new count already passed the
      // old one between two checks (and kept the key) is under-counted, never negative.
      const last = this.wgLast.get(peer);
      const same = last?.key === p.publicKey;
      this.rx.inc({ peer }, grown(same ? last.rx : 0, p.rxBytes));
      this.tx.inc({ peer }, grown(same ? last.tx : 0, p.txBytes));
      this.wgLast.set(peer, { key: p.publicKey, rx: p.rxBytes, tx: p.txBytes });
      if (p.handshakeAgeSeconds !== undefined) {
        this.handshakeAge.set({ peer }, p.handshakeAgeSeconds);
      }
      if (p.pathMtu) {
        this.pathMtuNeeded.set({ peer }, p.pathMtu.needed);
        if (p.pathMtu.measured !== undefined) this.pathMtu.set({ peer }, p.pathMtu.measured);
      }
    }
    // The counters keep counting; they start for every peer and go with the peer.
    const present = new Set(h.peers.map((p) => p.name));
    for (const peer of this.failoverPeers) {
      if (!present.has(peer)) this.failovers.remove({ peer });
    }
    for (const peer of this.wgLast.keys()) {
      if (present.has(peer)) continue;
      this.rx.remove({ peer });
      this.tx.remove({ peer });
      this.wgLast.delete(peer);
    }
    for (const peer of present) this.failovers.inc({ peer }, 0);
    this.failoverPeers.clear();
    for (const peer of present) this.failoverPeers.add(peer);
    for (const n of h.networks) {
      this.networkUp.set({ network: n.name }, n.status === 'ok' ? 1 : 0);
      this.networkSilence.set({ network: n.name }, n.silentSeconds);
    }
  }
}

/** nft counters restart at 0 when the table is replaced: a drop means "from 0 again". */
function increment(last: Map<string, number>, key: string, now: number): number {
  const before = last.get(key) ?? 0;
  last.set(key, now);
  return grown(before, now);
}

/** What a counter that restarts at 0 added since it read `before`. */
function grown(before: number, now: number): number {
  return now >= before ? now - before : now;
}

// The endpoint lives in lib/ so the broker and the agent serve theirs the same way.
export { serveMetrics, type MetricsServer } from '../lib/metrics-http.js';
