/**
 * Wires one gateway process: the Gateway, its periodic health checks, the Prometheus
 * endpoint and the gateway.v1 gRPC service. What a `l2fed gateway` command (cli/) or the
 * lab starts; close() stops the control plane and leaves the data plane running, so a
 * restarted process re-adopts it.
 */
import type { CommandRunner } from '../lib/runner.js';
import type { DaemonLauncher } from './daemons.js';
import { Gateway } from './gateway.js';
import { startGatewayServer, type GatewayServer } from './grpc-server.js';
import { HealthMonitor } from './health-monitor.js';
import { HelperProber } from './prober.js';
import { HelperLoopBeacon } from './loop-beacon.js';
import { LoopMonitor } from './loop-monitor.js';
import { GatewayMetrics, serveMetrics, type MetricsServer } from './metrics.js';
import type { TunnelKind } from './tunnel.js';
import type { OvsInterfaceSettings } from './segment-ovs.js';

export interface GatewayServiceOptions {
  readonly identity: string;
  readonly runner: CommandRunner;
  readonly launcher?: DaemonLauncher;
  readonly ovsDbSocket?: string;
  readonly ovsInterface?: OvsInterfaceSettings;
  readonly tunnelKind?: Exclude<TunnelKind, 'fake'>;
  /** gRPC listen address; default 127.0.0.1:0 (a free port); `socket`: a unix socket. */
  readonly grpc?: { readonly host?: string; readonly port?: number; readonly socket?: string };
  /** Metrics listen address; default 127.0.0.1:0. */
  readonly metrics?: { readonly host?: string; readonly port?: number };
  /** Health check interval; default 10 s. */
  readonly healthIntervalMs?: number;
  /** See HealthMonitorOptions.silenceLimitMs. */
  readonly healthSilenceMs?: number;
  /** See HealthMonitorOptions.probeRefreshPeers. */
  readonly healthProbeRefreshPeers?: number;
  /** See HealthMonitorOptions.livenessIntervalMs. */
  readonly healthLivenessMs?: number | false;
  /** False turns the per-network probe frames off. Default on. */
  readonly healthProbe?: boolean;
  /**
   * Loop guard and broadcast bound checks (loop-monitor.ts); default every 2 s. False
   * turns them off: no beacons, no blocks, and no bound installed.
   */
  readonly loopIntervalMs?: number | false;
}

export interface RunningGateway {
  readonly gateway: Gateway;
  readonly monitor: HealthMonitor;
  /** undefined when loop checks are off. */
  readonly loops: LoopMonitor | undefined;
  readonly metrics: GatewayMetrics;
  readonly grpcPort: number;
  /** What a client dials: host:port or unix:/path. */
  readonly grpcAddress: string;
  readonly metricsPort: number;
  /** Stops servers and health checks; the data plane stays. Idempotent. */
  close(): Promise<void>;
}

/** Starts everything; on a failure, stops what had started and rethrows. */
export async function startGatewayService(o: GatewayServiceOptions): Promise<RunningGateway> {
  const metrics = new GatewayMetrics(o.identity);
  const gateway = new Gateway({
    runner: o.runner,
    launcher: o.launcher,
    ovsDbSocket: o.ovsDbSocket,
    ovsInterface: o.ovsInterface,
    tunnelKind: o.tunnelKind,
    metrics,
  });
  // One long-lived probe helper per gateway: echoes and probe frames (health) and loop
  // beacons (loops), so neither check starts a process of its own.
  const helper = new HelperProber(o.runner);
  const loops =
    o.loopIntervalMs === false
      ? undefined
      : new LoopMonitor({
          gateway,
          runner: o.runner,
          metrics,
          intervalMs: o.loopIntervalMs,
          beacon: new HelperLoopBeacon(helper, o.runner),
        });
  const monitor = new HealthMonitor({
    gateway,
    runner: o.runner,
    helper,
    metrics,
    intervalMs: o.healthIntervalMs,
    silenceLimitMs: o.healthSilenceMs,
    ...(o.healthProbeRefreshPeers === undefined
      ? {}
      : { probeRefreshPeers: o.healthProbeRefreshPeers }),
    ...(o.healthLivenessMs === undefined ? {} : { livenessIntervalMs: o.healthLivenessMs }),
    ...(o.healthProbe === false ? { prober: false as const } : {}),
    ...(loops ? { loops } : {}),
  });
  let grpc: GatewayServer | undefined;
  let http: MetricsServer | undefined;
  try {
    grpc = await startGatewayServer({ gateway, monitor, ...o.grpc });
    http = await serveMetrics(metrics.registry, o.metrics);
  } catch (err) {
    await grpc?.close();
    throw err;
  }
  monitor.start();
  loops?.start();
  let closed: Promise<void> | undefined;
  const g = grpc;
  const h = http;
  return {
    gateway,
    monitor,
    loops,
    metrics,
    grpcPort: g.port,
    grpcAddress: g.address,
    metricsPort: h.port,
    close: () =>
      (closed ??= (async () => {
        // Loops first: the monitor ends the helper, which a loop check would start again.
        await loops?.stop();
        await monitor.stop();
        await g.close();
        await h.close();
      })()),
  };
}
