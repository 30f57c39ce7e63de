/**
 * Broker entry point.
 *
 *   l2fed broker run [--config broker.yaml] [--admin-listen host:port
 *                      (--admin-ca f --admin-cert f --admin-key f | --admin-token-file f |
 *                       --insecure-admin) [--admin-writers cn:alice,…] [--admin-stale-after s]]
 *                      [--metrics-listen host:port]
 *   l2fed broker gen-auth --clusters madrid,bristol --out ./nats-auth [--mode password]
 *                      [--tls-cert f --tls-key f [--tls-ca f --tls-verify]] [--force]
 *
 * `run` reads a YAML/JSON file `{ nats: { servers, credentials? }, broker: {...} }`
 * (or env L2FED_NATS_URL and L2FED_NATS_CREDENTIALS, a credentials JSON file written
 * by gen-auth) and runs until SIGINT/SIGTERM, then drains. With admin settings (file
 * section `admin:` or the --admin-* flags) it also serves the gRPC admin API, with
 * `metrics.listen` or --metrics-listen Prometheus metrics. `gen-auth` writes the
 * nats-server include file and one credentials file per cluster plus the broker's; it
 * refuses to replace existing ones without --force.
 */
import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { DaemonCommandLine } from '../lib/command-line.js';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { Broker } from './broker.js';
import { brokerConfigSchema } from './config.js';
import { connectOptionsFor, credentialSchema, type Credential } from './auth-config.js';
import { BrokerConfigError } from './errors.js';
import { describeError } from '../lib/errors.js';
import { genAuth } from './gen-auth.js';
import { adminFileSchema, resolveAdmin, type AdminFlags } from './admin/config.js';
import { startBrokerAdmin } from './admin/api.js';
import { createLogger } from '../lib/log.js';
import { parseListen, serveMetrics, type MetricsServer } from '../lib/metrics-http.js';
import { BrokerMetrics } from './metrics.js';

const fileSchema = z.strictObject({
  nats: z
    .strictObject({
      servers: z.array(z.string()).min(1).default(['nats://127.0.0.1:4222']),
      /** Path of a credentials JSON file written by gen-auth. */
      credentials: z.string().optional(),
      /** CA file to verify the NATS server certificate (enables TLS). */
      tlsCa: z.string().optional(),
    })
    .default({ servers: ['nats://127.0.0.1:4222'] }),
  broker: brokerConfigSchema.optional(),
  admin: adminFileSchema.optional(),
  /**
   * Prometheus metrics (broker/metrics.ts) on GET /metrics at HOST:PORT. Off unless set:
   * the endpoint has no authentication and tells anyone who reaches it the federation's
   * size; in a pod, listen on 0.0.0.0 and keep the port off the Service.
   */
  metrics: z.strictObject({ listen: z.string() }).optional(),
});

/** The metrics address from the flag (first) or the file; undefined: off. */
function metricsListen(
  file: z.output<typeof fileSchema>,
  flag: string | undefined,
): { host: string; port: number } | undefined {
  const [text, what] =
    flag !== undefined ? [flag, '--metrics-listen'] : [file.metrics?.listen, 'metrics.listen'];
  if (text === undefined) return undefined;
  try {
    return parseListen(text, what);
  } catch (err) {
    throw new BrokerConfigError((err as Error).message);
  }
}

async function readCredential(path: string): Promise<Credential> {
  return credentialSchema.parse(JSON.parse(await readFile(path, 'utf8')));
}

async function run(
  configPath: string | undefined,
  flags: AdminFlags & { readonly 'metrics-listen'?: string },
): Promise<void> {
  const raw: unknown = configPath ? parseYaml(await readFile(configPath, 'utf8')) : {};
  const parsed = fileSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const i = parsed.error.issues[0]!;
    throw new BrokerConfigError(`${configPath}: ${i.path.join('.')}: ${i.message}`);
  }
  const file = parsed.data;
  const servers = process.env.L2FED_NATS_URL?.split(',') ?? file.nats.servers;
  const credPath = process.env.L2FED_NATS_CREDENTIALS ?? file.nats.credentials;
  const auth = credPath ? connectOptionsFor(await readCredential(credPath)) : {};
  // Checked before connecting: a refused admin setting must not hide behind a NATS error.
  const adminCfg = await resolveAdmin(file.admin, flags);
  const metricsAt = metricsListen(file, flags['metrics-listen']);
  const metrics = new BrokerMetrics();
  const broker = await Broker.start({
    name: process.env.HOSTNAME,
    metrics,
    config: file.broker ?? {},
    connect: {
      servers,
      ...auth,
      ...(file.nats.tlsCa ? { tls: { caFile: file.nats.tlsCa } } : {}),
    },
  }).catch((err: unknown) => {
    if ((err as { code?: unknown }).code !== 'CONNECTION_REFUSED') throw err;
    const from = process.env.L2FED_NATS_URL
      ? 'L2FED_NATS_URL'
      : configPath
        ? `nats.servers in ${configPath}`
        : 'the default; set nats.servers in --config or L2FED_NATS_URL';
    throw new BrokerConfigError(
      `cannot reach NATS at ${servers.join(',')} (${from}): connection refused; start ` +
        `nats-server there or point the broker at it`,
      undefined,
      { cause: err },
    );
  });
  console.log(`l2fed broker serving on ${servers.join(',')}`);
  let admin: Awaited<ReturnType<typeof startBrokerAdmin>> | undefined;
  let http: MetricsServer | undefined;
  try {
    if (metricsAt) {
      http = await serveMetrics(metrics.registry, metricsAt).catch((err: unknown) => {
        throw new BrokerConfigError(
          `cannot serve metrics on ${metricsAt.host}:${metricsAt.port} (--metrics-listen / metrics.listen): ${(err as Error).message}`,
          undefined,
          { cause: err },
        );
      });
      console.log(`l2fed broker metrics on http://${metricsAt.host}:${http.port}/metrics`);
    }
    if (adminCfg) {
      admin = await startBrokerAdmin(broker, { ...adminCfg, log: createLogger('broker-admin') });
      console.log(`l2fed admin API (${adminCfg.auth.type}) on ${admin.address}`);
    } else {
      console.log('admin API off: give --admin-listen with --admin-ca/--admin-cert/--admin-key');
    }
  } catch (err) {
    await http?.close();
    await broker.stop();
    throw err;
  }
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await admin?.stop();
  await broker.stop();
  await http?.close();
}

/**
 * gen-auth's --tls-* flags as TlsSettings, or undefined without any. Half a setting would
 * otherwise write a server config without TLS that the operator believes has it.
 */
function tlsSettings(v: Record<string, string | boolean | undefined>) {
  const [cert, key, ca] = [v['tls-cert'], v['tls-key'], v['tls-ca']];
  if (typeof cert === 'string' && typeof key === 'string')
    return {
      certFile: cert,
      keyFile: key,
      ...(typeof ca === 'string' ? { caFile: ca } : {}),
      verify: v['tls-verify'] === true,
    };
  if (typeof cert === 'string')
    throw new BrokerConfigError("--tls-cert needs --tls-key (the server certificate's key)");
  if (typeof key === 'string')
    throw new BrokerConfigError('--tls-key needs --tls-cert (the server certificate)');
  if (ca !== undefined || v['tls-verify'] !== undefined)
    throw new BrokerConfigError(
      '--tls-ca and --tls-verify need --tls-cert and --tls-key (client certificates need a TLS server)',
    );
  return undefined;
}

const USAGE = `usage:
  l2fed broker run [--config FILE] [--admin-listen HOST:PORT
      (--admin-ca F --admin-cert F --admin-key F | --admin-token-file F [--admin-cert F --admin-key F]
       | --insecure-admin) [--admin-writers cn:alice,…] [--admin-stale-after SECONDS]]
      [--metrics-listen HOST:PORT]
  l2fed broker gen-auth --clusters a,b --out DIR [--mode nkey|password]
      [--tls-cert F --tls-key F [--tls-ca F --tls-verify]] [--force]
  l2fed broker gen-auth --add-clusters c --out DIR      (only c's file and nats-auth.conf change)
  l2fed broker gen-auth --remove-clusters c --out DIR
docs/broker.md (Deployment, Auth model, Metrics) and docs/admin-api.md (Authentication) explain each.`;

/** `run …` / `gen-auth …`; the CLI wires `l2fed broker` to this. */
/** The verbs and flags `l2fed broker` takes (docs are checked against it: cli/doc-commands.test.ts). */
export const COMMAND_LINE = {
  verbs: ['run', 'gen-auth'],
  options: {
    config: { type: 'string' },
    clusters: { type: 'string' },
    'add-clusters': { type: 'string' },
    'remove-clusters': { type: 'string' },
    out: { type: 'string' },
    mode: { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'tls-ca': { type: 'string' },
    'tls-verify': { type: 'boolean' },
    force: { type: 'boolean' },
    'admin-listen': { type: 'string' },
    'admin-ca': { type: 'string' },
    'admin-cert': { type: 'string' },
    'admin-key': { type: 'string' },
    'admin-token-file': { type: 'string' },
    'insecure-admin': { type: 'boolean' },
    'admin-writers': { type: 'string' },
    'admin-stale-after': { type: 'string' },
    'metrics-listen': { type: 'string' },
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
  switch (positionals[0]) {
    case 'run':
      return run(values.config, values);
    case 'gen-auth':
      return genAuth(values, tlsSettings(values));
    default:
      throw new BrokerConfigError(USAGE);
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`l2fed broker: ${describeError(err)}`);
    process.exit(1);
  });
}
