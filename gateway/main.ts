/**
 * Gateway process entry point:
 *
 *   l2fed gateway run --config gateway.yaml
 *
 * (the CLI wires `l2fed gateway run` to main()). Starts the gateway service (gRPC
 * l2fed.gateway.v1, Prometheus metrics, health checks) and waits for the agent's Apply.
 * SIGTERM/SIGINT stop the control plane and leave the data plane as it is; with the
 * detached launcher wireguard-go keeps running too, so a restarted gateway re-adopts the
 * tunnel without a drop. A bad Apply is refused per call (INVALID_ARGUMENT) and never
 * stops the process; the last good state stays.
 */
import { readFile } from 'node:fs/promises';
import type { GatewayCallError } from './client.js';
import { parseArgs } from 'node:util';
import type { DaemonCommandLine } from '../lib/command-line.js';
import { pathToFileURL } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEFAULT_PROBE_REFRESH_PEERS } from './probe-schedule.js';
import { createLogger } from '../lib/log.js';
import { describeError } from '../lib/errors.js';
import { ExecaRunner } from '../lib/runner.js';
import { DetachedLauncher, SupervisedLauncher, type DaemonLauncher } from './daemons.js';
import { ConfigError } from './errors.js';
import { startGatewayService } from './service.js';
import { chooseTunnel } from './tunnel.js';

const address = (defaultPort: number) =>
  z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.int().min(0).max(65_535).default(defaultPort),
    })
    .default({ host: '127.0.0.1', port: defaultPort });

/** The gateway process config file (YAML). Unknown keys are errors. */
export const gatewayProcessConfigSchema = z.strictObject({
  /** This cluster's id; labels metrics. */
  identity: z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'identity: a DNS-1123 label'),
  /** Namespace holding the data plane (lab); checked at start, must match the agent's. */
  netns: z.string().min(1).optional(),
  /** host:port, or `socket: /run/l2fed/gateway.sock` (0600, root only; preferred on nodes). */
  grpc: z.union([
    z.strictObject({ socket: z.string().startsWith('/', 'grpc.socket: an absolute path') }),
    address(50_051),
  ]),
  metrics: address(9464),
  /** OVSDB socket of the OVS the segments live on; default: ovs-vsctl's default. */
  ovsDbSocket: z.string().startsWith('/').optional(),
  /**
   * OVS Interface type/options for the VXLAN ports, e.g. {type: afxdp, options:
   * {xdp-mode: generic}} on a netdev bridge (docs/gateway.md, Benchmark); default: system.
   */
  ovsPorts: z
    .strictObject({
      type: z.string().regex(/^[a-z][a-z0-9-]*$/, 'ovsPorts.type: an OVS interface type'),
      options: z
        .record(z.string().regex(/^[a-z][a-z0-9_-]*$/), z.string().regex(/^[^\s,]+$/))
        .optional(),
    })
    .optional(),
  tunnel: z.enum(['auto', 'wireguard-go', 'kernel']).default('auto'),
  /**
   * Who keeps wireguard-go alive. `detached` (default): it outlives this process (pid and
   * log in `dir`), so a restart re-adopts the tunnel; stop it with the data plane.
   * `supervised`: it dies with this process (tests, throwaway labs).
   */
  launcher: z
    .discriminatedUnion('type', [
      z.strictObject({ type: z.literal('detached'), dir: z.string().startsWith('/') }),
      z.strictObject({ type: z.literal('supervised') }),
    ])
    .default({ type: 'detached', dir: '/var/lib/l2fed/daemons' }),
  healthIntervalMs: z.int().min(100).default(10_000),
  /**
   * A network whose receive counter stays still this long (no tenant frame and no peer's
   * probe) while a peer's tunnel is up is not-receiving. Must cover a few of the slowest
   * peer's health intervals. Default max(3 × healthIntervalMs, 30 s).
   */
  healthSilenceMs: z.int().min(1000).optional(),
  /**
   * Peers the tunnel vouches for that are still probed in each health check, longest ago
   * first (docs/gateway.md, Which peers a check probes); the others are probed every
   * check. Up to this many peers, every peer every check.
   */
  healthProbeRefreshPeers: z.int().min(1).max(10_000).default(DEFAULT_PROBE_REFRESH_PEERS),
  /**
   * Ms between the fast endpoint fail-over's liveness echoes to every peer with several
   * endpoints (docs/gateway.md, Endpoint fail-over), or false for none (then only the slow
   * rule moves a peer, ~20 s). Each such peer costs 1000 / this echoes a second, idle or
   * not: the price of noticing a dead path within ~2 s.
   */
  healthLivenessMs: z.union([z.int().min(50).max(60_000), z.literal(false)]).default(250),
  /** Send one probe frame per network per health check (needs python3). */
  healthProbe: z.boolean().default(true),
  /**
   * Loop guard and broadcast bound (docs/gateway.md, "Loops and storms"): ms between
   * checks, or false to turn both off. A loop is cut within about one interval.
   */
  loopIntervalMs: z.union([z.int().min(200), z.literal(false)]).default(2000),
});
export type GatewayProcessConfig = z.output<typeof gatewayProcessConfigSchema>;

/** Validates a parsed config file. Pure. @throws ConfigError naming each field. */
export function parseGatewayProcessConfig(raw: unknown): GatewayProcessConfig {
  const r = gatewayProcessConfigSchema.safeParse(raw ?? {});
  if (!r.success) {
    throw new ConfigError(
      r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
      { cause: r.error },
    );
  }
  return r.data;
}

/**
 * `rotate-key --address HOST:PORT`: asks a running gateway for a new key. The cluster
 * agent notices it, publishes it through the broker and then switches the tunnel.
 */
async function rotateKeyCommand(address: string): Promise<void> {
  // The one gateway API client (the agent's); loaded only for this command.
  const { GrpcGatewayClient } = await import('./client.js');
  const client = new GrpcGatewayClient(address, { readTimeoutMs: 10_000 });
  try {
    const res = await client.rotateKey().catch((err: GatewayCallError) => {
      // The code and the gateway's words; the error's own hint is about the agent retrying.
      throw new Error(`RotateKey at ${address}: ${err.code}: ${err.details}`, { cause: err });
    });
    console.log(`new public key ${res.publicKey}`);
    console.log('the cluster agent publishes it to the broker, then the tunnel switches');
  } finally {
    client.close();
  }
}

/**
 * `run --config FILE`: serves until SIGTERM/SIGINT. Rejects only on bad usage, a bad
 * config file or a start failure (port taken, namespace missing).
 */
const USAGE = `usage:
  l2fed gateway run --config FILE               serve the data plane (config file: docs/gateway.md)
  l2fed gateway rotate-key --address HOST:PORT  ask a running gateway for a new WireGuard key`;

/** The verbs and flags `l2fed gateway` takes (docs are checked against it: cli/doc-commands.test.ts). */
export const COMMAND_LINE = {
  verbs: ['run', 'rotate-key'],
  options: {
    config: { type: 'string' },
    address: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
} as const satisfies DaemonCommandLine;

export async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: COMMAND_LINE.options,
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (positionals[0] === 'rotate-key' && values.address) {
    await rotateKeyCommand(values.address);
    return;
  }
  if (positionals[0] !== 'run' || !values.config) throw new Error(USAGE);
  const config = parseGatewayProcessConfig(parseYaml(await readFile(values.config, 'utf8')));
  const log = createLogger('gateway').child({ identity: config.identity });
  const runner = new ExecaRunner();
  // Chosen here, not at the first apply, so the log says which backend and why.
  const tunnel =
    config.tunnel === 'auto'
      ? await chooseTunnel()
      : { kind: config.tunnel, reason: `${config.tunnel}: set by the tunnel option` };
  log.info({ tunnel: tunnel.kind }, tunnel.reason);
  if (config.netns) {
    // Fail at start with a clear message rather than on the first Apply.
    await runner.run(['true'], { netns: config.netns, timeoutMs: 5000 });
  }
  const launcher: DaemonLauncher =
    config.launcher.type === 'detached'
      ? new DetachedLauncher(config.launcher.dir)
      : new SupervisedLauncher();
  const onRejection = (err: unknown) =>
    log.error({ err: describeError(err) }, 'unhandled rejection');
  process.on('unhandledRejection', onRejection);
  // Signal listeners do not keep Node alive; this does, until we are told to stop.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  try {
    const stopping = new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    const svc = await startGatewayService({
      identity: config.identity,
      runner,
      launcher,
      ...(config.ovsDbSocket ? { ovsDbSocket: config.ovsDbSocket } : {}),
      ...(config.ovsPorts ? { ovsInterface: config.ovsPorts } : {}),
      tunnelKind: tunnel.kind,
      grpc: config.grpc,
      metrics: config.metrics,
      healthIntervalMs: config.healthIntervalMs,
      ...(config.healthSilenceMs ? { healthSilenceMs: config.healthSilenceMs } : {}),
      healthProbeRefreshPeers: config.healthProbeRefreshPeers,
      healthLivenessMs: config.healthLivenessMs,
      healthProbe: config.healthProbe,
      loopIntervalMs: config.loopIntervalMs,
    });
    log.info(
      {
        grpc: svc.grpcAddress,
        metrics: `${config.metrics.host}:${svc.metricsPort}`,
      },
      'gateway serving',
    );
    const signal = await stopping;
    log.info({ signal }, 'stopping; the data plane stays');
    await svc.close();
    if (launcher instanceof SupervisedLauncher) await launcher.stopAll();
  } finally {
    clearInterval(keepAlive);
    process.off('unhandledRejection', onRejection);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`l2fed gateway: ${describeError(err)}`);
      process.exit(1);
    },
  );
}
