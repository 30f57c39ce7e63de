import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { stringify } from 'yaml';
import { makeRunDir } from '../test/fixtures/run-dir.js';
import { credentials } from '@grpc/grpc-js';
import { GatewayServiceClient } from '../proto/gen/l2fed/gateway/v1/gateway.js';
import { ConfigError } from './errors.js';
import { parseGatewayProcessConfig } from './main.js';

test('gateway process config - defaults and field-named errors', (t) => {
  const c = parseGatewayProcessConfig({ identity: 'madrid' });
  t.deepEqual(c.grpc, { host: '127.0.0.1', port: 50051 });
  t.is(c.tunnel, 'auto');
  t.deepEqual(c.launcher, { type: 'detached', dir: '/var/lib/l2fed/daemons' });
  const err = t.throws(
    () => parseGatewayProcessConfig({ identity: 'madrid', tunnel: 'ipsec', grpcPort: 1 }),
    {
      instanceOf: ConfigError,
    },
  );
  t.regex(err.message, /tunnel/);
  t.regex(err.message, /grpcPort/);
});

test('gateway process config - healthProbeRefreshPeers: default 8, at least 1', (t) => {
  t.is(parseGatewayProcessConfig({ identity: 'madrid' }).healthProbeRefreshPeers, 8);
  t.is(
    parseGatewayProcessConfig({ identity: 'madrid', healthProbeRefreshPeers: 32 })
      .healthProbeRefreshPeers,
    32,
  );
  const err = t.throws(
    () => parseGatewayProcessConfig({ identity: 'madrid', healthProbeRefreshPeers: 0 }),
    { instanceOf: ConfigError },
  );
  t.regex(err.message, /healthProbeRefreshPeers/);
});

test('gateway process config - healthLivenessMs: default 250, false turns the echoes off, 0 refused', (t) => {
  t.is(parseGatewayProcessConfig({ identity: 'madrid' }).healthLivenessMs, 250);
  t.is(
    parseGatewayProcessConfig({ identity: 'madrid', healthLivenessMs: false }).healthLivenessMs,
    false,
  );
  const err = t.throws(
    () => parseGatewayProcessConfig({ identity: 'madrid', healthLivenessMs: 0 }),
    { instanceOf: ConfigError },
  );
  t.regex(err.message, /healthLivenessMs/);
});

test('gateway process - serves gRPC, answers GetState, exits 0 on SIGTERM', async (t) => {
  const dir = await makeRunDir('gwmain');
  t.teardown(() => dir.remove());
  const file = join(dir.path, 'gateway.yaml');
  await writeFile(
    file,
    stringify({
      identity: 'madrid',
      grpc: { port: 0 },
      metrics: { port: 0 },
      launcher: { type: 'supervised' },
      healthIntervalMs: 200,
    }),
  );
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'gateway/main.ts', 'run', '--config', file],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  t.teardown(() => child.kill('SIGKILL'));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  const address = await new Promise<string>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no "gateway serving" line: ${text}`)), 20_000);
    child.stderr.on('data', (d: Buffer) => {
      text += d.toString();
      const m = /"grpc":"([^"]+)"/.exec(text);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
  });
  const client = new GatewayServiceClient(address, credentials.createInsecure());
  t.teardown(() => client.close());
  const state = await new Promise((resolve, reject) =>
    client.getState({}, (err, res) => (err ? reject(err) : resolve(res))),
  );
  t.deepEqual(state, { report: undefined, health: undefined, pendingPublicKey: '' });
  child.kill('SIGTERM');
  t.is(await exited, 0);
});
