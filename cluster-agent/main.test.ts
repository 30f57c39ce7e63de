import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { stringify } from 'yaml';
import { makeRunDir } from '../test/fixtures/run-dir.js';
import { freePort } from '../lib/ports.js';
import { loadAgentConfig, parseAgentConfig } from './agent-config.js';
import { AgentConfigError } from './errors.js';
import { AGENT_STATUS_FILE } from './status-sink.js';

function config(dir: string, port: number) {
  return {
    clusterId: 'madrid',
    nats: { servers: [`nats://127.0.0.1:${port}`] },
    gateway: { address: `127.0.0.1:${port}`, healthPollMs: 200 },
    advertise: { endpoints: ['198.18.0.1:51820'] },
    wireguard: { ifname: 'l2fmad', privateKeyFile: join(dir, 'wg.key') },
    cacheDir: join(dir, 'cache'),
    statusDir: join(dir, 'status'),
    source: { folder: join(dir, 'manifests') },
    backoff: { initialMs: 50, maxMs: 200 },
  };
}

test('agent config - defaults filled in; typos and missing fields named', (t) => {
  const c = parseAgentConfig(config('/x', 1));
  t.is(c.wireguard.listenPort, 51820);
  t.is(c.transitPrefixLength, 16);
  t.is(c.bootstrapTransitAddress, '192.0.0.8/32');
  const bad = t.throws(
    () => parseAgentConfig({ ...config('/x', 1), clusterID: 'x', cacheDir: 'relative' }),
    { instanceOf: AgentConfigError },
  );
  t.regex(bad.message, /clusterID/);
  t.regex(bad.message, /cacheDir: cacheDir must be an absolute path/);
  const noStatus = { ...config('/x', 1), statusDir: undefined };
  t.throws(() => parseAgentConfig(noStatus), { message: /statusDir: required with source.folder/ });
  // l2fv<digits> is a VXLAN device's name; l2fvienna is a fine tunnel name.
  const vx = { ...config('/x', 1), wireguard: { ifname: 'l2fv42', privateKeyFile: '/k' } };
  t.throws(() => parseAgentConfig(vx), { message: /wireguard.ifname: .*l2fv<VNI>/ });
  const vienna = { ...config('/x', 1), wireguard: { ifname: 'l2fvienna', privateKeyFile: '/k' } };
  t.is(parseAgentConfig(vienna).wireguard.ifname, 'l2fvienna');
  // Metrics: off unless the section is there; then loopback port 9465 by default.
  t.is(c.metrics, undefined);
  t.deepEqual(parseAgentConfig({ ...config('/x', 1), metrics: {} }).metrics, {
    host: '127.0.0.1',
    port: 9465,
  });
  t.throws(() => parseAgentConfig({ ...config('/x', 1), metrics: { port: 70_000 } }), {
    message: /metrics.port/,
  });
});

test('agent process - runs with nothing reachable, reports why, exits 0 on SIGTERM', async (t) => {
  const dir = await makeRunDir('agentmain');
  t.teardown(() => dir.remove());
  const port = await freePort(); // nothing listens: NATS and gateway both unreachable
  await mkdir(join(dir.path, 'manifests'));
  const file = join(dir.path, 'agent.yaml');
  const metricsPort = await freePort();
  await writeFile(
    file,
    stringify({ ...config(dir.path, port), metrics: { host: '127.0.0.1', port: metricsPort } }),
  );
  t.is((await loadAgentConfig(file)).clusterId, 'madrid');
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'cluster-agent/main.ts', 'run', '--config', file],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LOG_LEVEL: 'warn' },
    },
  );
  t.teardown(() => child.kill('SIGKILL'));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  let summary: { gateway?: { lastError?: string }; broker?: { connected?: boolean } } | undefined;
  for (let i = 0; i < 300 && !summary?.gateway?.lastError; i++) {
    await new Promise((r) => setTimeout(r, 100));
    summary = await readFile(join(dir.path, 'status', AGENT_STATUS_FILE), 'utf8')
      .then((s) => JSON.parse(s) as typeof summary)
      .catch(() => undefined);
  }
  t.regex(summary?.gateway?.lastError ?? '', /UNAVAILABLE/);
  t.false(summary?.broker?.connected);
  // The metrics section serves GET /metrics: the same story in numbers.
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  t.regex(text, /^l2fed_agent_broker_connected\{cluster="madrid"\} 0$/m);
  t.regex(text, /^l2fed_agent_peer_map_source\{source="none",cluster="madrid"\} 1$/m);
  t.regex(
    text,
    /^l2fed_agent_reconcile_duration_seconds_count\{(?=[^}]*result="requeue")(?=[^}]*cluster="madrid")[^}]*\} [1-9]/m,
  );
  child.kill('SIGTERM');
  t.is(await exited, 0);
});
