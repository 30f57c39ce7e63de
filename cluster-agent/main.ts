/**
 * Agent process entry point:
 *
 *   l2fed agent run --config agent.yaml
 *
 * (the CLI wires `l2fed agent run` to main()). Reads and validates the config file,
 * wires source, broker link, gateway client, status sink and cache into an Agent, and
 * runs until SIGTERM/SIGINT, then stops cleanly (the data plane stays as it is). Bad
 * input later on (manifests, broker replies, gateway errors) is logged and retried; the
 * last good state stays in force.
 */
import { parseArgs } from 'node:util';
import type { DaemonCommandLine } from '../lib/command-line.js';
import { pathToFileURL } from 'node:url';
import { createLogger, type Logger } from '../lib/log.js';
import { describeError } from '../lib/errors.js';
import { Agent } from './agent.js';
import { loadAgentConfig, readCredentials, type AgentConfig } from './agent-config.js';
import { NatsBrokerLink } from './broker-link.js';
import { GrpcGatewayClient } from '../gateway/client.js';
import { PeerMapCache } from './peer-map-cache.js';
import { FolderSource } from './source-folder.js';
import type { DesiredStateSource } from './source.js';
import { FileStatusSink, type StatusSink } from './status-sink.js';
import { AgentMetrics } from './metrics.js';
import { serveMetrics, type MetricsServer } from '../lib/metrics-http.js';

/** Builds an Agent from a validated config, recording into `metrics`. Starts nothing. */
export async function createAgent(
  config: AgentConfig,
  log: Logger,
  metrics = new AgentMetrics(config.clusterId),
): Promise<Agent> {
  let source: DesiredStateSource;
  let status: StatusSink;
  if ('folder' in config.source) {
    source = new FolderSource({ dir: config.source.folder, clusterId: config.clusterId });
    status = new FileStatusSink(config.statusDir!);
  } else {
    // Loaded only here: an agent reading a folder (the lab) skips the Kubernetes client.
    const [{ KubeConfig }, { KubernetesSource }, { KubeStatusSink }] = await Promise.all([
      import('@kubernetes/client-node'),
      import('./source-kubernetes.js'),
      import('./status-sink-kube.js'),
    ]);
    const kc = new KubeConfig();
    if (config.source.kubernetes.kubeconfig) kc.loadFromFile(config.source.kubernetes.kubeconfig);
    else kc.loadFromDefault();
    source = new KubernetesSource({ kubeConfig: kc });
    status = new KubeStatusSink(kc, {
      log: log.child({ part: 'status' }),
      ...(config.statusDir ? { summaryDir: config.statusDir } : {}),
    });
  }
  const credential = config.nats.credentials
    ? await readCredentials(config.nats.credentials)
    : undefined;
  const broker = new NatsBrokerLink({
    clusterId: config.clusterId,
    servers: config.nats.servers,
    ...(credential ? { credential } : {}),
    ...(config.nats.tlsCa ? { tlsCa: config.nats.tlsCa } : {}),
    requestTimeoutMs: config.nats.requestTimeoutMs,
    pollMs: Math.max(config.gateway.healthPollMs, 2000),
    log: log.child({ part: 'broker-link' }),
  });
  const gateway = new GrpcGatewayClient(config.gateway.address, {
    applyTimeoutMs: config.gateway.applyTimeoutMs,
  });
  const agent = new Agent({
    settings: {
      clusterId: config.clusterId,
      ...(config.gateway.netns ? { netns: config.gateway.netns } : {}),
      wireguard: config.wireguard,
      transitPrefixLength: config.transitPrefixLength,
      underlayMtu: config.underlayMtu,
      ...(config.vxlanPort === undefined ? {} : { vxlanPort: config.vxlanPort }),
      ...(config.bumLimit === undefined ? {} : { bumLimit: config.bumLimit }),
      l2sm: config.segments.l2sm,
      endpoints: config.advertise.endpoints,
      bootstrapTransitAddress: config.bootstrapTransitAddress,
      healthPollMs: config.gateway.healthPollMs,
      resyncMs: config.resyncMs,
      ...(config.resyncMaxMs === undefined ? {} : { resyncMaxMs: config.resyncMaxMs }),
      ...(config.keyRotationHours ? { keyRotationMs: config.keyRotationHours * 3_600_000 } : {}),
      backoff: config.backoff,
    },
    source,
    broker,
    gateway: metrics.gateway(gateway),
    status,
    cache: new PeerMapCache(config.cacheDir, config.clusterId),
    log,
    metrics,
  });
  metrics.watch({ agent, broker });
  return agent;
}

/** Resolves when the process is asked to stop. */
function termination(): Promise<string> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
}

/**
 * `run --config FILE`: runs the agent until SIGTERM/SIGINT. Rejects on a bad config or
 * usage (nothing started then); never rejects because of runtime input.
 */
const USAGE = `usage:
  l2fed agent run --config FILE   run the cluster agent (the config file: docs/cluster-agent.md)`;

/** The verbs and flags `l2fed agent` takes (docs are checked against it: cli/doc-commands.test.ts). */
export const COMMAND_LINE = {
  verbs: ['run'],
  options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
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
  if (positionals[0] !== 'run' || !values.config) throw new Error(USAGE);
  const config = await loadAgentConfig(values.config);
  const log = createLogger('cluster-agent').child({ cluster: config.clusterId });
  // A stray rejection must not kill the agent: log it, keep the last good state.
  const onRejection = (err: unknown) =>
    log.error({ err: describeError(err) }, 'unhandled rejection');
  process.on('unhandledRejection', onRejection);
  // Signal listeners do not keep Node alive; this does, until we are told to stop.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let http: MetricsServer | undefined;
  try {
    const metrics = new AgentMetrics(config.clusterId);
    const agent = await createAgent(config, log, metrics);
    if (config.metrics) {
      const { host, port } = config.metrics;
      http = await serveMetrics(metrics.registry, config.metrics).catch((err: unknown) => {
        throw new Error(
          `cannot serve metrics on ${host}:${port} (metrics in ${values.config}): ${(err as Error).message}`,
          { cause: err },
        );
      });
      log.info({ metrics: `http://${host}:${http.port}/metrics` }, 'serving metrics');
    }
    const stopping = termination();
    await agent.start();
    log.info({ source: config.source, gateway: config.gateway.address }, 'agent running');
    const signal = await stopping;
    log.info({ signal }, 'stopping');
    await agent.stop();
  } finally {
    await http?.close();
    clearInterval(keepAlive);
    process.off('unhandledRejection', onRejection);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(`l2fed agent: ${describeError(err)}`);
      process.exit(1);
    },
  );
}
