/**
 * Global connection options of the admin commands (--server, --ca/--cert/--key,
 * --token-file, --server-name, --timeout), with L2FED_* environment fallbacks, turned
 * into an AdminConnection and promise clients.
 */
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { adminApi, type AdminApi } from '../broker/admin/calls.js';
import type { AdminConnection } from '../broker/admin/client.js';

export const DEFAULT_SERVER = '127.0.0.1:7443';

export interface ConnectionFlags {
  readonly server?: string;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  readonly tokenFile?: string;
  readonly serverName?: string;
  readonly timeout?: string;
}

/** Adds the global connection options to the root command. */
export function addConnectionOptions(program: Command): void {
  program
    .addOption(new Option('--server <host:port>', 'broker admin API address').env('L2FED_SERVER'))
    .addOption(
      new Option('--ca <file>', 'CA certificate that signed the broker (enables TLS)').env(
        'L2FED_CA',
      ),
    )
    .addOption(new Option('--cert <file>', 'client certificate for mTLS').env('L2FED_CERT'))
    .addOption(new Option('--key <file>', 'client key for mTLS').env('L2FED_KEY'))
    .addOption(
      new Option('--token-file <file>', 'file holding an admin bearer token').env(
        'L2FED_TOKEN_FILE',
      ),
    )
    .addOption(
      new Option('--server-name <name>', 'TLS name to verify when it differs from the host').env(
        'L2FED_SERVER_NAME',
      ),
    )
    .addOption(
      new Option('--timeout <seconds>', 'deadline of each call').default('10').env('L2FED_TIMEOUT'),
    );
}

/** Reads the files the flags name and builds the connection. */
export async function connectionFrom(f: ConnectionFlags): Promise<AdminConnection> {
  if ((f.cert && !f.key) || (!f.cert && f.key))
    throw new Error('give both --cert and --key (client certificate and its key), or neither');
  if (f.cert && !f.ca)
    throw new Error('--cert needs --ca (the CA that signed the broker certificate)');
  const token = f.tokenFile
    ? (await readFile(f.tokenFile, 'utf8')).trim().split('\n')[0]
    : undefined;
  return {
    address: f.server ?? DEFAULT_SERVER,
    ...(f.ca ? { caCert: await readFile(f.ca) } : {}),
    ...(f.cert ? { cert: await readFile(f.cert) } : {}),
    ...(f.key ? { key: await readFile(f.key) } : {}),
    ...(token ? { token } : {}),
    ...(f.serverName ? { serverName: f.serverName } : {}),
  };
}

/** The deadline per call in ms, from --timeout seconds. */
export function timeoutMs(f: ConnectionFlags): number {
  const s = Number(f.timeout ?? '10');
  if (!(s > 0))
    throw new Error(`--timeout must be a positive number of seconds (got "${f.timeout}")`);
  return s * 1000;
}

/**
 * Runs `fn` with clients built from the command's global options and closes them
 * afterwards. The address goes along for error messages.
 */
export async function withApi<T>(
  cmd: Command,
  fn: (api: AdminApi, conn: AdminConnection) => Promise<T>,
): Promise<T> {
  const flags = cmd.optsWithGlobals<ConnectionFlags>();
  const conn = await connectionFrom(flags);
  const api = adminApi(conn, timeoutMs(flags));
  try {
    return await fn(api, conn);
  } catch (err) {
    throw Object.assign(err as Error, { adminAddress: conn.address });
  } finally {
    api.close();
  }
}
