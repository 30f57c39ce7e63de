/**
 * Admin API auth defaults with the real processes (`broker/main.ts run` against a real
 * nats-server configured as deployed, with the accounts `broker gen-auth` makes and the
 * broker on its generated credentials; the `l2fed` CLI, openssl certificates; run from
 * source with tsx):
 * insecure mode and clear-text tokens only on loopback, conflicting options refused
 * at start, and the CLI never sends a bearer token in clear to a non-loopback address.
 */
import type { ExecutionContext } from 'ava';
import { execa } from 'execa';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { testWith } from '../fixtures/privileges.js';
import { makeRunDir } from '../fixtures/run-dir.js';
import { startAuthedNats, type AuthedNats } from '../fixtures/broker.js';
import { freePort } from '../../lib/ports.js';
import { ExecaRunner } from '../../lib/runner.js';
import { ensureCa, issueCert } from '../../lib/pki.js';

const test = testWith({ tools: ['nats-server', 'openssl'] });
const root = join(import.meta.dirname, '..', '..');
const TOKEN = 'c'.repeat(64);

interface Started {
  /** Exit code when the broker refused to start; undefined while it serves. */
  readonly exitCode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
  /** Where the admin API serves (the bound port when asked for port 0). */
  readonly address: string | undefined;
}

/**
 * Starts `broker run ARGS` and waits until it either exits or prints that its admin API
 * serves (bounded); a serving broker is stopped at teardown.
 */
async function brokerRun(t: ExecutionContext, nats: Nats, args: string[]): Promise<Started> {
  const p = execa('node', ['--import', 'tsx', join(root, 'broker', 'main.ts'), 'run', ...args], {
    cwd: root,
    env: { L2FED_NATS_URL: nats.url, L2FED_NATS_CREDENTIALS: nats.creds },
    reject: false,
    timeout: 60_000,
  });
  t.teardown(() => {
    p.kill('SIGTERM');
    return p.then(() => undefined);
  });
  let stdout = '';
  let stderr = '';
  p.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  p.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const serving = new Promise<void>((resolve) => {
    p.stdout?.on('data', () => {
      if (stdout.includes('l2fed admin API')) resolve();
    });
  });
  const exited = p.then((r) => r.exitCode);
  const exitCode = await Promise.race([exited, serving.then(() => undefined)]);
  const address = /l2fed admin API \(\w+\) on (\S+)/.exec(stdout)?.[1];
  return { exitCode, stdout, stderr, address };
}

const cli = (args: string[]) =>
  execa('node', ['--import', 'tsx', join(root, 'cli', 'main.ts'), ...args], {
    cwd: root,
    env: { NO_COLOR: '1' },
    reject: false,
    timeout: 30_000,
  });

/** The server and the path of the broker's generated credentials. */
interface Nats {
  readonly fed: AuthedNats;
  readonly url: string;
  readonly creds: string;
}

async function setup(t: ExecutionContext) {
  const fed = await startAuthedNats(['madrid']);
  t.teardown(() => fed.dispose());
  const dir = await makeRunDir('admin-auth');
  t.teardown(() => dir.remove());
  const nats: Nats = { fed, url: fed.url, creds: await fed.writeBrokerCredentials(dir.path) };
  const tokenFile = join(dir.path, 'admin.token');
  await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  return { nats, dir: dir.path, tokenFile };
}

test('admin auth - broker run refuses insecure mode and clear-text tokens on a non-loopback address', async (t) => {
  const { nats, tokenFile } = await setup(t);
  const port = await freePort();
  const insecure = await brokerRun(t, nats, [
    '--admin-listen',
    `0.0.0.0:${port}`,
    '--insecure-admin',
  ]);
  t.is(insecure.exitCode, 1, insecure.stdout);
  t.regex(
    insecure.stderr,
    /--insecure-admin \(no authentication\) is allowed only on a loopback address; listen on one \(--admin-listen 127\.0\.0\.1:7443\)/,
  );
  const clear = await brokerRun(t, nats, [
    '--admin-listen',
    `0.0.0.0:${port}`,
    '--admin-token-file',
    tokenFile,
  ]);
  t.is(clear.exitCode, 1, clear.stdout);
  t.regex(clear.stderr, /would take bearer tokens in clear.*add --admin-cert and --admin-key/);
});

test('admin auth - broker run refuses a token file with mTLS files, naming both options', async (t) => {
  const { nats, dir, tokenFile } = await setup(t);
  const runner = new ExecaRunner();
  const ca = await ensureCa(runner, join(dir, 'pki'));
  const server = await issueCert(runner, ca, join(dir, 'pki'), 'broker', 'server', ['localhost']);
  const r = await brokerRun(t, nats, [
    '--admin-listen',
    `127.0.0.1:${await freePort()}`,
    '--admin-token-file',
    tokenFile,
    '--admin-ca',
    ca.caCert,
    '--admin-cert',
    server.cert,
    '--admin-key',
    server.key,
  ]);
  t.is(r.exitCode, 1, r.stdout);
  t.regex(
    r.stderr,
    /--admin-token-file \(admin\.tokenFile\) and --admin-ca \(admin\.ca\) conflict: .*drop --admin-ca .*drop --admin-token-file/,
  );
});

test('admin auth - the CLI sends a token only over TLS or to loopback; tokens over server TLS serve on any address', async (t) => {
  const { nats, dir, tokenFile } = await setup(t);
  // Token without TLS on loopback (the lab's setup): loopback clients get through, and
  // the CLI refuses 0.0.0.0 (which reaches this very server) rather than send in clear.
  // Port 0: the broker binds and prints the port, so no other process can take it first.
  const lab = await brokerRun(t, nats, [
    '--admin-listen',
    '127.0.0.1:0',
    '--admin-token-file',
    tokenFile,
  ]);
  t.is(lab.exitCode, undefined, lab.stderr);
  const port = Number(lab.address?.split(':').pop());
  const ok = await cli(['--server', `127.0.0.1:${port}`, '--token-file', tokenFile, 'version']);
  t.is(ok.exitCode, 0, ok.stderr);
  t.regex(ok.stdout, /\(broker, api l2fed\.admin\.v1/);
  const refused = await cli(['--server', `0.0.0.0:${port}`, '--token-file', tokenFile, 'version']);
  t.is(refused.exitCode, 1, refused.stdout);
  t.regex(
    refused.stderr,
    /refusing to send the bearer token from --token-file in clear to 0\.0\.0\.0:\d+ \(not a loopback address\): give --ca FILE/,
  );
  t.notRegex(refused.stdout, /api l2fed\.admin\.v1/);

  // Tokens over server TLS on every interface; the CLI then sends the token with --ca.
  const runner = new ExecaRunner();
  const ca = await ensureCa(runner, join(dir, 'pki'));
  const server = await issueCert(runner, ca, join(dir, 'pki'), 'broker', 'server', ['localhost']);
  const tls = await brokerRun(t, nats, [
    '--admin-listen',
    '0.0.0.0:0',
    '--admin-token-file',
    tokenFile,
    '--admin-cert',
    server.cert,
    '--admin-key',
    server.key,
  ]);
  t.is(tls.exitCode, undefined, tls.stderr);
  t.regex(tls.stdout, /l2fed admin API \(token\) on 0\.0\.0\.0:\d+/);
  const tlsPort = Number(tls.address?.split(':').pop());
  const overTls = await cli([
    '--server',
    `0.0.0.0:${tlsPort}`,
    '--ca',
    ca.caCert,
    '--server-name',
    'localhost',
    '--token-file',
    tokenFile,
    'version',
  ]);
  t.is(overTls.exitCode, 0, overTls.stderr);
  t.regex(overTls.stdout, /\(broker, api l2fed\.admin\.v1/);
  t.deepEqual(nats.fed.brokerViolations(), [], 'the brokers needed no NATS right they lack');
});
