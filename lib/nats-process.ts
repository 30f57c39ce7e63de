/**
 * Runs a real nats-server with JetStream as a supervised child: used by the lab,
 * the demo and every test that needs NATS. Each server gets its own directory
 * (config, JetStream store) so servers never share state.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withFreePort } from './ports.js';
import { supervise, type SupervisedProcess } from './supervisor.js';
import { requireTool } from './tools.js';

export interface NatsServerOptions {
  /** Directory owned by this server: config file and JetStream store live here. */
  readonly dir: string;
  readonly host?: string;
  /** Client port; a free one is picked when omitted. */
  readonly port?: number;
  readonly serverName?: string;
  /** Extra nats-server config text (accounts, authorization, cluster, tls …). */
  readonly extraConfig?: string;
  /** Client port for the cluster block, when this server is one node of a cluster. */
  readonly clusterPort?: number;
  /** Routes to the other nodes, as nats-route://host:port. */
  readonly routes?: readonly string[];
  readonly clusterName?: string;
  readonly netns?: string;
}

export class NatsServer {
  private proc: SupervisedProcess | undefined;
  private constructor(
    readonly options: NatsServerOptions,
    readonly host: string,
    readonly port: number,
    readonly configPath: string,
  ) {}

  get url(): string {
    return `nats://${this.host}:${this.port}`;
  }

  get storeDir(): string {
    return join(this.options.dir, 'jetstream');
  }

  get running(): boolean {
    return this.proc?.running ?? false;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  output(): string {
    return this.proc?.output() ?? '';
  }

  /** Starts a server; picks a free port (retrying on a lost race) unless one is given. */
  static async start(options: NatsServerOptions): Promise<NatsServer> {
    await requireTool('nats-server');
    const host = options.host ?? '127.0.0.1';
    const startOn = async (port: number) => {
      await mkdir(options.dir, { recursive: true });
      const configPath = join(options.dir, 'nats.conf');
      const server = new NatsServer(options, host, port, configPath);
      await writeFile(configPath, server.renderConfig(), { mode: 0o600 });
      await server.spawn();
      return server;
    };
    return options.port !== undefined ? startOn(options.port) : withFreePort(startOn, { host });
  }

  private renderConfig(): string {
    const o = this.options;
    const lines = [
      `server_name: ${JSON.stringify(o.serverName ?? `l2fed-${this.port}`)}`,
      `listen: ${JSON.stringify(`${this.host}:${this.port}`)}`,
      `jetstream {`,
      `  store_dir: ${JSON.stringify(this.storeDir)}`,
      `  max_memory_store: 256MB`,
      `  max_file_store: 1GB`,
      `}`,
    ];
    if (o.clusterPort !== undefined) {
      lines.push(
        `cluster {`,
        `  name: ${JSON.stringify(o.clusterName ?? 'l2fed')}`,
        `  listen: ${JSON.stringify(`${this.host}:${o.clusterPort}`)}`,
        `  routes: [${(o.routes ?? []).map((r) => JSON.stringify(r)).join(', ')}]`,
        `}`,
      );
    }
    if (o.extraConfig) lines.push(o.extraConfig);
    return lines.join('\n') + '\n';
  }

  private async spawn(): Promise<void> {
    this.proc = await supervise({
      name: 'nats-server',
      argv: ['nats-server', '-c', this.configPath],
      netns: this.options.netns,
      readyWhen: /Server is ready/,
      readyTimeoutMs: 15_000,
    });
  }

  /** Graceful stop (SIGTERM). Idempotent. */
  async stop(): Promise<void> {
    await this.proc?.stop();
  }

  /** SIGKILL, as a crash. */
  async kill(): Promise<void> {
    await this.proc?.kill();
  }

  /** Starts the server again on the same port, config and store (after stop or kill). */
  async restart(): Promise<void> {
    await this.stop();
    await this.spawn();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}
