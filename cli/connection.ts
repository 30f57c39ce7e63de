/**
 * Global connection options of the admin commands (--server, --ca/--cert/--key,
 * --token-file, --server-name, --timeout), with L2FED_* environment fallbacks, turned
 * into an AdminConnection and promise clients.
 */
import { readFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { adminApi, type AdminApi } from '../broker/admin/calls.js';
import type { AdminConnection } from '../broker/admin/client.js';
import { isLoopbackAddress } from '../broker/admin/auth.js';

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

/**
 * Reads the files the flags name and builds the connection. Throws when a flag pair is
 * half given, or when --token-file would go without --ca (in clear) to a non-loopback
 * --server.
 */
export async function connectionFrom(f: ConnectionFlags): Promise<AdminConnection> {
  if ((f.cert && !f.key) || (!f.cert && f.key))
    throw new Error('give both --cert and --key (client certificate and its key), or neither');
  if (f.cert && !f.ca)
    throw new Error('--cert needs --ca (the CA that signed the broker certificate)');
  const address = f.server ?? DEFAULT_SERVER;
  if (f.tokenFile && !f.ca && !isLoopbackAddress(address)) {
    // Checked before reading the file: a bearer token in clear can be replayed by anyone on the path.
    throw new Error(
      `refusing to send the bearer token from --token-file in clear to ${address} (not a ` +
        `loopback address): give --ca FILE (the CA that signed the broker's certificate) so ` +
        `the call uses TLS, or reach the broker over loopback (e.g. kubectl port-forward ` +
        `-n l2fed-system svc/l2fed-broker-admin 7443, then --server 127.0.0.1:7443)`,
    );
  }
  const token = f.tokenFile
    ? (await readOption('--token-file', f.tokenFile)).toString('utf8').trim().split('\n')[0]
    : undefined;
  return {
    address,
    ...(f.ca ? { caCert: await readOption('--ca', f.ca) } : {}),
    ...(f.cert ? { cert: await readOption('--cert', f.cert) } : {}),
    ...(f.key ? { key: await readOption('--key', f.key) } : {}),
    ...(token ? { token } : {}),
    ...(f.serverName ? { serverName: f.serverName } : {}),
  };
}

const FS_REASONS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EISDIR: 'is a directory',
};

/** Reads the file an option names; an error names the option and the file. */
async function readOption(option: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? '';
    const why = FS_REASONS[code] ?? (err instanceof Error ? err.message : String(err));
    throw new Error(`${option} ${file}: ${why}`, { cause: err });
  }
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
