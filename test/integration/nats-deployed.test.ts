/**
 * deploy/kubernetes/nats as deployed: the nats.conf of its ConfigMap runs as a 3-node
 * JetStream cluster. Three network namespaces stand in for the three pods (on one
 * bridge); each runs a real nats-server on that exact text with only what a pod's
 * environment provides changed:
 *   - the mount roots of the StatefulSet's volumeMounts (/etc/nats/…, /data, /var/run/nats)
 *     map to a per-pod temp dir;
 *   - POD_NAME is set, as the downward API sets it;
 *   - the pods' headless-Service names resolve to their namespaces' addresses, through
 *     /etc/netns/<ns>/hosts (what `ip netns exec` mounts as /etc/hosts), as cluster DNS
 *     would; nats.conf keeps the names, so route TLS checks them against the certificate.
 * The Secrets' files are made as deploy/kubernetes/README.md says: `broker gen-auth` with
 * its --tls flags (in-pod paths, mapped like every other path) and `l2fed pki nats`.
 * Then the real broker (broker ConfigMap's broker section, R3 buckets) and a cluster
 * connect over TLS to the names of the broker ConfigMap's URL.
 */
import { mkdir, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { dirname, join } from 'node:path';
import { connect, type ConnectionOptions, type TlsOptions } from 'nats';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { testWith } from '../fixtures/privileges.js';
import { createNetns } from '../fixtures/netns.js';
import { makeRunDir, runId } from '../fixtures/run-dir.js';
import { eventually, registerBody, startBrokers } from '../fixtures/broker.js';
import { supervise, type SupervisedProcess } from '../../lib/supervisor.js';
import { ExecaRunner } from '../../lib/runner.js';
import { main as brokerMain } from '../../broker/main.js';
import { connectOptionsFor, credentialSchema, type Credential } from '../../broker/auth-config.js';
import { BrokerClient } from '../../broker/client.js';
import { BUCKETS } from '../../broker/records.js';
import { runPkiNats } from '../../cli/pki.js';

const test = testWith({ netAdmin: true, tools: ['nats-server', 'openssl', 'ip'] });

const ROOT = new URL('../../deploy/kubernetes/', import.meta.url).pathname;

interface Mount {
  name: string;
  mountPath: string;
}
interface Obj {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  spec?: {
    replicas?: number;
    serviceName?: string;
    template?: {
      spec: {
        containers: {
          args?: string[];
          volumeMounts?: Mount[];
          ports?: { name: string; containerPort: number }[];
          readinessProbe?: { httpGet?: { path: string } };
        }[];
      };
    };
  };
}

/** The objects of a base, from the files its kustomization lists (no transformers). */
function base(name: string): Obj[] {
  const dir = join(ROOT, name);
  const k = parseYaml(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as {
    resources: string[];
  };
  return k.resources.flatMap((f) =>
    parseAllDocuments(readFileSync(join(dir, f), 'utf8')).map((d) => d.toJS() as Obj),
  );
}

const nats = base('nats');
const sts = nats.find((o) => o.kind === 'StatefulSet')!;
const container = sts.spec!.template!.spec.containers[0]!;
const configPath = container.args![container.args!.indexOf('--config') + 1]!;
const mounts = container.volumeMounts!;
const natsConf = nats.find((o) => o.kind === 'ConfigMap')!.data!['nats.conf']!;
const brokerFile = parseYaml(
  base('broker').find((o) => o.metadata.name === 'l2fed-broker-config')!.data!['broker.yaml']!,
) as {
  nats: { servers: string[]; tlsCa?: string };
  broker: Record<string, unknown>;
};
const portOf = (name: string) => container.ports!.find((p) => p.name === name)!.containerPort;
/** Pod DNS names as nats.conf's routes name them. */
const podNames = [...natsConf.matchAll(/nats-route:\/\/([^:\s]+):\d+/g)].map((m) => m[1]!);

/** Every in-pod path of a mount, mapped below root (the only substitution made). */
function mapMounts(text: string, root: string): string {
  let out = text;
  for (const m of [...mounts].sort((a, b) => b.mountPath.length - a.mountPath.length))
    out = out.replace(
      new RegExp(`(?<![\\w/])${m.mountPath}(?=[/\\s"]|$)`, 'gm'),
      root + m.mountPath,
    );
  return out;
}

/** Sends a plaintext route CONNECT at once; returns what came back until close (or 5 s). */
function plaintextRoute(ip: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const sock = tcpConnect({ host: ip, port }, () => {
      sock.write(`CONNECT ${JSON.stringify({ verbose: false, name: 'intruder' })}\r\nPING\r\n`);
    });
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(`${buf}(still open after 5 s)`);
    }, 5000);
    sock.on('data', (d) => (buf += d.toString()));
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(buf);
    });
    sock.on('error', () => resolve(buf)); // a reset is a refusal too; the log says why
  });
}

async function jsz(
  ip: string,
): Promise<{ meta_cluster?: { leader?: string; cluster_size?: number } }> {
  const r = await fetch(`http://${ip}:${portOf('monitor')}/jsz`, {
    signal: AbortSignal.timeout(2000),
  });
  return (await r.json()) as { meta_cluster?: { leader?: string } };
}

/**
 * Reads the server's INFO, sends a plaintext CONNECT (with a password credential's user
 * and password) and PING; returns everything the server sent until it closed (or 5 s).
 */
function plaintextConnect(ip: string, port: number, cred: Credential): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = tcpConnect({ host: ip, port });
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(buf);
    }, 5000);
    sock.on('data', (d) => {
      buf += d.toString();
      if (buf.startsWith('INFO') && buf.includes('\r\n') && !buf.includes('CONNECT-SENT')) {
        const user = cred.type === 'password' ? { user: cred.user, pass: cred.password } : {};
        sock.write(`CONNECT ${JSON.stringify({ verbose: false, ...user })}\r\nPING\r\n`);
        buf += 'CONNECT-SENT\n';
      }
    });
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(buf);
    });
    sock.on('error', reject);
  });
}

test('nats deployed - the nats base runs as a 3-node JetStream cluster with TLS; broker and a cluster work over it, no credentials or no TLS is refused', async (t) => {
  t.timeout(180_000);
  t.is(sts.spec!.replicas, 3);
  t.is(podNames.length, 3, 'nats.conf routes to the three pods');
  const pods = podNames.map((n) => n.split('.')[0]!);
  t.deepEqual(
    pods,
    [0, 1, 2].map((i) => `${sts.metadata.name}-${i}`),
    'routes name the pods',
  );
  t.true(
    podNames.every((n) => n.split('.')[1] === sts.spec!.serviceName),
    'routes use the headless Service',
  );

  const dir = await makeRunDir('natsdeploy');
  t.teardown(() => dir.remove());
  const netns = createNetns();
  const etcNetns: string[] = [];
  t.teardown(async () => {
    await netns.dispose();
    await Promise.all(etcNetns.map((d) => rm(d, { recursive: true, force: true })));
  });

  // Network: the pods on one bridge, and the test (root namespace) on it too.
  // A /24 no other run routes in the root namespace (the test's end is there).
  const runner = new ExecaRunner();
  let net = '';
  for (let i = 0; i < 20 && !net; i++) {
    const candidate = `198.19.${1 + Math.floor(Math.random() * 250)}`;
    const routes = await runner.run(['ip', 'route', 'show', 'root', `${candidate}.0/24`]);
    if (!routes.stdout.trim()) net = candidate;
  }
  t.truthy(net, 'a free 198.19.x.0/24');
  const ips = pods.map((_, i) => `${net}.${i + 1}`);
  const hub = await netns.add('net');
  await netns.exec(hub, ['ip', 'link', 'add', 'br0', 'type', 'bridge']);
  await netns.exec(hub, ['ip', 'link', 'set', 'br0', 'up']);
  const podNs: string[] = [];
  for (const [i, pod] of pods.entries()) {
    const ns = await netns.add(`p${i}`);
    podNs.push(ns);
    await netns.veth({ ns, ifname: 'eth0' }, { ns: hub, ifname: `vp${i}` });
    await netns.exec(hub, ['ip', 'link', 'set', `vp${i}`, 'master', 'br0']);
    await netns.addr(ns, 'eth0', `${ips[i]}/24`);
    // Cluster DNS: every pod resolves the three headless names (and nothing of the host).
    const etc = join('/etc/netns', ns);
    etcNetns.push(etc);
    await mkdir(etc, { recursive: true });
    await writeFile(
      join(etc, 'hosts'),
      ['127.0.0.1 localhost', ...podNames.map((n, j) => `${ips[j]} ${n}`)].join('\n') + '\n',
    );
    t.log(`${pod}: ${ns} ${ips[i]}`);
  }
  const hostIf = `l2fn${runId()}`;
  await netns.veth({ ns: undefined, ifname: hostIf }, { ns: hub, ifname: 'vhost' });
  await netns.exec(hub, ['ip', 'link', 'set', 'vhost', 'master', 'br0']);
  await runner.run(['ip', 'addr', 'add', `${net}.254/24`, 'dev', hostIf], {
    mutates: true,
  });

  // The Secrets' contents, as README.md makes them.
  const pki = join(dir.path, 'nats-pki');
  await runPkiNats({
    dir: pki,
    names: ['l2fed-nats.l2fed-system.svc', `*.${sts.spec!.serviceName}.l2fed-system.svc`],
  });
  const auth = join(dir.path, 'auth');
  await brokerMain([
    'gen-auth',
    '--clusters',
    'madrid,bristol',
    '--out',
    auth,
    '--tls-cert',
    '/etc/nats/tls/tls.crt',
    '--tls-key',
    '/etc/nats/tls/tls.key',
  ]);
  const authConf = await readFile(join(auth, 'nats-auth.conf'), 'utf8');
  const cred = async (f: string) =>
    credentialSchema.parse(JSON.parse(await readFile(join(auth, f), 'utf8')));

  // Each pod's files at its mount paths under its own root; then the three servers.
  const servers: SupervisedProcess[] = [];
  t.teardown(() => Promise.all(servers.map((s) => s.stop())));
  const started = Date.now();
  await Promise.all(
    pods.map(async (pod, i) => {
      const root = join(dir.path, pod);
      const at = (p: string) => join(root, p);
      const conf = at(configPath);
      for (const m of mounts) await mkdir(at(m.mountPath), { recursive: true });
      await writeFile(conf, mapMounts(natsConf, root));
      const include = /^include\s+(\S+)/m.exec(natsConf)![1]!;
      await writeFile(join(dirname(conf), include), mapMounts(authConf, root));
      await copyFile(join(pki, 'ca.crt'), at('/etc/nats/tls/ca.crt'));
      await copyFile(join(pki, 'nats.crt'), at('/etc/nats/tls/tls.crt'));
      await copyFile(join(pki, 'nats.key'), at('/etc/nats/tls/tls.key'));
      servers[i] = await supervise({
        name: `nats-server ${pod}`,
        argv: ['nats-server', '--config', conf],
        netns: podNs[i],
        env: { POD_NAME: pod },
        readyWhen: /Server is ready/,
        readyTimeoutMs: 15_000,
      });
    }),
  );
  const leaderKnown = await eventually(
    async () => {
      const all = await Promise.all(ips.map((ip) => jsz(ip).catch(() => ({}) as never)));
      return all.every((j) => j.meta_cluster?.leader && pods.includes(j.meta_cluster.leader));
    },
    60_000,
    100,
  );
  const electionMs = Date.now() - started;
  t.true(leaderKnown, servers.map((s) => s.output().slice(-2000)).join('\n----\n'));
  const meta = await jsz(ips[0]!);
  t.log(`meta leader ${meta.meta_cluster?.leader} known to all 3 after ${electionMs} ms`);
  for (const s of servers) t.notRegex(s.output(), /\[ERR\].*(certificate|x509)/);
  // Routes are TLS only: a plaintext route CONNECT gets no answer but a closed connection.
  for (const [i, ip] of ips.entries()) {
    t.is(await plaintextRoute(ip, portOf('cluster')), '', `route port of ${pods[i]}`);
    const refused = new RegExp(`${net}\\.254:\\d+ - rid:\\d+ - TLS route handshake error`);
    t.true(
      await eventually(() => Promise.resolve(refused.test(servers[i]!.output())), 2000),
      servers[i]!.output(),
    );
  }
  // The probe the StatefulSet uses answers on every server.
  for (const ip of ips) {
    const r = await fetch(
      `http://${ip}:${portOf('monitor')}${container.readinessProbe!.httpGet!.path}`,
    );
    t.is(r.status, 200, `readiness probe on ${ip}`);
  }

  // The broker as its ConfigMap says: that URL's host name checked against the
  // certificate (the Service address is one of the pods here), R3 buckets.
  const url = new URL(brokerFile.nats.servers[0]!);
  t.is(url.protocol, 'tls:');
  t.is(url.port, String(portOf('client')));
  t.truthy(brokerFile.nats.tlsCa);
  t.is(brokerFile.broker.replicas, 3);
  const tls = { caFile: join(pki, 'ca.crt'), servername: url.hostname } as TlsOptions;
  const servers4222 = ips.map((ip) => `${ip}:${url.port}`);
  const brokers = await startBrokers(servers4222, 2, brokerFile.broker, {
    ...connectOptionsFor(await cred('broker.creds.json')),
    tls,
  });
  t.teardown(() => brokers.dispose());

  const madrid = await cred('clusters/madrid.creds.json');
  const opts = (o: ConnectionOptions): ConnectionOptions => ({
    servers: servers4222,
    maxReconnectAttempts: 0,
    timeout: 5000,
    ...o,
  });
  const nc = await connect(opts({ ...connectOptionsFor(madrid, 'madrid'), tls }));
  t.teardown(() => nc.close());
  const r = await new BrokerClient(nc, 'madrid').request('register', registerBody(1));
  t.true(r.created);
  const bnc = await connect(opts({ ...connectOptionsFor(await cred('broker.creds.json')), tls }));
  t.teardown(() => bnc.close());
  const info = await (await bnc.jetstreamManager()).streams.info(`KV_${BUCKETS.clusters}`);
  t.is(info.config.num_replicas, 3);
  t.is((info.cluster?.replicas ?? []).length, 2, 'a leader and two replicas');

  // Without credentials (over TLS): refused.
  const anon = await t.throwsAsync(connect(opts({ tls })));
  t.regex(String(anon?.message), /Authorization/i);
  // A certificate name NATS was not issued for: refused by the client's check.
  await t.throwsAsync(
    connect(
      opts({
        ...connectOptionsFor(madrid, 'madrid'),
        tls: { ...tls, servername: 'x.example' } as TlsOptions,
      }),
    ),
  );
  // Plaintext CONNECT: the server expects a TLS handshake, drops the connection, never
  // answers the PING.
  const plain = await plaintextConnect(ips[0]!, portOf('client'), madrid);
  t.regex(plain, /"tls_required":true/);
  t.notRegex(plain, /PONG|\+OK/);
  const refusal = new RegExp(`${net}\\.254:\\d+ - cid:\\d+ - TLS handshake error`);
  t.true(
    await eventually(() => Promise.resolve(refusal.test(servers[0]!.output())), 2000),
    servers[0]!.output(),
  );
});
