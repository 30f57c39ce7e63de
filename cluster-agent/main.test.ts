import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { stringify } from 'yaml';
import { makeRunDir } from '../test/fixtures/run-dir.js';
import { freePort } from '../lib/ports.js';
import { DEFAULT_VXLAN_PORT, DEFAULT_WIREGUARD_PORT } from '../gateway/config.js';
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

test("agent config - the default WireGuard port is no network plugin's, not ephemeral", (t) => {
  // Default UDP ports on a Kubernetes node's host namespace, where the gateway runs
  // (sources: docs/install.md, "The WireGuard port"): a tunnel there cannot bind them.
  const taken = new Map([
    [51820, 'WireGuard: Calico, Flannel, Antrea, Kilo, k3s/RKE2 (Flannel)'],
    [51821, 'WireGuard IPv6: Calico, Flannel; Netmaker'],
    [51840, 'Liqo gateway'],
    [51871, 'Cilium WireGuard'],
    [41641, 'Tailscale'],
    [4242, 'Nebula'],
    [4500, 'IPsec NAT-T: Submariner, Antrea IPsec'],
    [4490, 'Submariner NAT discovery'],
    [4800, 'Submariner intra-cluster VXLAN'],
    [4789, 'VXLAN (IANA)'],
    [8472, 'Flannel, Canal, Cilium VXLAN'],
    [6081, 'Geneve'],
  ]);
  const port = parseAgentConfig(config('/x', 1)).wireguard.listenPort;
  t.is(taken.get(port), undefined, `default listenPort ${port} is ${taken.get(port)}'s`);
  t.not(port, DEFAULT_VXLAN_PORT, 'the VXLAN devices bind vxlanPort in the same namespace');
  // Below net.ipv4.ip_local_port_range (32768-60999), so no outgoing socket takes it
  // first, and below Kubernetes' NodePort range (30000-32767).
  t.true(port >= 1024 && port < 30_000, `default listenPort ${port} is outside 1024-29999`);
});

test('agent config - a vxlanPort equal to the WireGuard port is refused at load, naming both', (t) => {
  const base = config('/x', 1);
  for (const c of [
    { ...base, vxlanPort: 30_000, wireguard: { ...base.wireguard, listenPort: 30_000 } },
    { ...base, wireguard: { ...base.wireguard, listenPort: DEFAULT_VXLAN_PORT } },
  ]) {
    const err = t.throws(() => parseAgentConfig(c), { instanceOf: AgentConfigError });
    t.regex(err.message, /vxlanPort: \d+ is also wireguard\.listenPort/);
  }
});

test('agent config - defaults filled in; typos and missing fields named', (t) => {
  const c = parseAgentConfig(config('/x', 1));
  t.is(c.wireguard.listenPort, DEFAULT_WIREGUARD_PORT);
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
