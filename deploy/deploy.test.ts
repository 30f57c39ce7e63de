/**
 * Offline checks of deploy/kubernetes/ (no API server, no kustomize binary): every YAML
 * parses; every object has apiVersion, kind and metadata.name; every kustomization lists
 * files that exist (and every manifest of its directory); the daemons' config files in
 * ConfigMaps pass the daemons' own parsers; volume mounts, ConfigMap, Secret and
 * ServiceAccount references resolve; the paths and ports the config files name are the
 * ones the pod mounts and declares; Secrets are exactly those deploy/kubernetes/README.md
 * lists. Each check collects every problem and compares the list with [], so a failure
 * names all of them.
 */
import test from 'ava';
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { adminFileSchema, resolveAdmin } from '../broker/admin/config.js';
import { resolveConfig } from '../broker/config.js';
import { BrokerConfigError } from '../broker/errors.js';
import { main as brokerMain } from '../broker/main.js';
import { BROKER_NODE_OPTIONS } from '../broker/node-options.js';
import { parseAgentConfig, type AgentConfig } from '../cluster-agent/agent-config.js';
import { parseGatewayProcessConfig, type GatewayProcessConfig } from '../gateway/main.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const K8S = join(ROOT, 'deploy', 'kubernetes');
const NAMESPACE = 'l2fed-system';
/** Kinds without a namespace (everything else must name one: no kustomize namespace:). */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleBinding',
]);
const WORKLOADS = new Set(['Deployment', 'DaemonSet', 'StatefulSet']);
/** ConfigMaps Kubernetes creates in every namespace. */
const CLUSTER_PROVIDED_CONFIGMAPS = new Set(['kube-root-ca.crt']);
const DAEMONS = ['broker', 'gateway', 'agent'] as const;
type Daemon = (typeof DAEMONS)[number];

interface Meta {
  name?: string;
  namespace?: string;
  labels?: Record<string, string>;
}
interface K8sObject {
  apiVersion?: string;
  kind?: string;
  metadata?: Meta;
  data?: Record<string, string>;
  spec?: unknown;
}
interface KeyToPath {
  key: string;
  path: string;
}
interface Volume {
  name: string;
  configMap?: { name: string; items?: KeyToPath[] };
  secret?: { secretName: string; items?: KeyToPath[] };
  projected?: {
    sources: { configMap?: { name: string; items?: KeyToPath[] }; secret?: { name: string } }[];
  };
  hostPath?: { path: string };
  emptyDir?: object;
}
interface Mount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPath?: string;
}
interface Port {
  name?: string;
  containerPort: number;
  protocol?: string;
}
interface Probe {
  httpGet?: { path: string; port: string | number };
  tcpSocket?: { port: string | number };
  grpc?: { port: number };
}
interface Container {
  name: string;
  image?: string;
  args?: string[];
  env?: { name: string; value?: string }[];
  ports?: Port[];
  volumeMounts?: Mount[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
}
interface Workload {
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: { metadata: Meta; spec: PodSpec };
    /** StatefulSet: per-pod volumes, mounted by these names. */
    volumeClaimTemplates?: { metadata: Meta }[];
  };
}
interface ServiceSpec {
  selector: Record<string, string>;
  ports: { name?: string; port: number; targetPort?: string | number }[];
}

/** An object with the file it came from. */
interface Loaded {
  file: string;
  obj: K8sObject;
}

// ---------------------------------------------------------------------------- loading

function yamlFilesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? yamlFilesUnder(join(dir, e.name))
      : /\.ya?ml$/.test(e.name)
        ? [join(dir, e.name)]
        : [],
  );
}

const rel = (file: string) => relative(ROOT, file);

/** All documents of one file; throws on a YAML error. Empty documents are skipped. */
function loadFile(file: string): Loaded[] {
  return parseAllDocuments(readFileSync(file, 'utf8')).flatMap((doc, i) => {
    if (doc.errors.length > 0)
      throw new Error(`${rel(file)} document ${i + 1}: ${doc.errors[0]!.message}`);
    const obj = doc.toJS() as K8sObject | null;
    return obj === null ? [] : [{ file, obj }];
  });
}

interface Kustomization {
  dir: string;
  resources: string[];
}

function readKustomization(dir: string): Kustomization {
  const k = loadFile(join(dir, 'kustomization.yaml'))[0]?.obj;
  if (k?.apiVersion !== 'kustomize.config.k8s.io/v1beta1' || k.kind !== 'Kustomization')
    throw new Error(`${rel(dir)}/kustomization.yaml: not a kustomize.config.k8s.io Kustomization`);
  const listed = (k as { resources?: unknown }).resources;
  const resources = Array.isArray(listed) ? listed.map(String) : [];
  return { dir, resources };
}

/**
 * Resolves a kustomization the way `kustomize build` loads it: a resource is a file in
 * or below the directory, or a directory with its own kustomization.yaml. Returns the
 * objects, and problems for entries that cannot load.
 */
function build(dir: string, problems: string[]): Loaded[] {
  const k = readKustomization(dir);
  return k.resources.flatMap((entry) => {
    const target = resolve(dir, entry);
    const where = `${rel(dir)}/kustomization.yaml: ${entry}`;
    if (!existsSync(target)) {
      problems.push(`${where} does not exist`);
      return [];
    }
    if (statSync(target).isDirectory()) {
      if (!existsSync(join(target, 'kustomization.yaml'))) {
        problems.push(`${where} is a directory without kustomization.yaml`);
        return [];
      }
      return build(target, problems);
    }
    if (relative(dir, target).startsWith('..')) {
      problems.push(`${where}: kustomize loads no file outside the directory; use a directory`);
      return [];
    }
    return loadFile(target);
  });
}

const kustomizationDirs = (): string[] =>
  yamlFilesUnder(K8S)
    .filter((f) => f.endsWith('/kustomization.yaml'))
    .map((f) => resolve(f, '..'));

const allManifests = (): Loaded[] =>
  yamlFilesUnder(K8S)
    .filter((f) => !f.endsWith('/kustomization.yaml'))
    .flatMap(loadFile);

const idOf = (o: K8sObject) => `${o.kind}/${o.metadata?.namespace ?? ''}/${o.metadata?.name}`;

/** The ConfigMaps of a build, by name: their data. */
function configMapsOf(objs: Loaded[]) {
  return new Map(
    objs
      .filter(({ obj }) => obj.kind === 'ConfigMap')
      .map(({ obj }) => [obj.metadata!.name!, obj.data ?? {}]),
  );
}

function podSpecs(objs: Loaded[]): { where: string; workload: Workload; pod: PodSpec }[] {
  return objs
    .filter(({ obj }) => WORKLOADS.has(obj.kind ?? ''))
    .map(({ file, obj }) => {
      const workload = obj as unknown as Workload;
      return {
        where: `${rel(file)} ${obj.kind}/${obj.metadata?.name}`,
        workload,
        pod: workload.spec.template.spec,
      };
    });
}

const containersOf = (pod: PodSpec) => [...(pod.initContainers ?? []), ...pod.containers];

/** The Secret table of deploy/kubernetes/README.md: name → keys. */
function documentedSecrets(): Map<string, Set<string>> {
  const rows = readFileSync(join(K8S, 'README.md'), 'utf8')
    .split('\n')
    .filter((l) => /^\|\s*`l2fed-[a-z0-9-]+`\s*\|/.test(l));
  return new Map(
    rows.map((row) => {
      const cells = row.split('|').map((c) => c.trim());
      const keys = [...(cells[3] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
      return [cells[1]!.replaceAll('`', ''), new Set(keys)];
    }),
  );
}

// ------------------------------------------------------------------------ config files

interface BrokerFile {
  nats?: { servers?: string[]; credentials?: string; tlsCa?: string };
  metrics?: { listen?: string };
  broker?: Parameters<typeof resolveConfig>[0];
  admin?: {
    listen?: string;
    ca?: string;
    cert?: string;
    key?: string;
    tokenFile?: string;
    writers?: string[];
  };
}

/** True for the error readFile gives for `path`. */
const isMissing = (err: unknown, path?: string) =>
  (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT' &&
  (path === undefined || (err as NodeJS.ErrnoException).path === path);

/**
 * Validates a broker config file with the broker itself: `broker run` parses the whole
 * file (its schema is private to broker/main.ts) and then reads the NATS credentials
 * file, which we point at a path that does not exist. A bad file fails with
 * BrokerConfigError before that; a good one gets as far as the missing credentials and
 * never connects. The admin section must resolve to an authenticated setup (it then
 * fails reading the certificate files, which are not here).
 */
async function checkBrokerConfig(text: string): Promise<BrokerFile> {
  const dir = mkdtempSync(join(tmpdir(), 'l2fed-deploy-test-'));
  const saved = process.env.L2FED_NATS_CREDENTIALS;
  const missing = join(dir, 'missing.creds.json');
  try {
    writeFileSync(join(dir, 'broker.yaml'), text);
    process.env.L2FED_NATS_CREDENTIALS = missing;
    const err = await brokerMain(['run', '--config', join(dir, 'broker.yaml')]).then(
      () => new Error('broker run returned'),
      (e: unknown) => e,
    );
    if (!isMissing(err, missing)) throw err;
  } finally {
    if (saved === undefined) delete process.env.L2FED_NATS_CREDENTIALS;
    else process.env.L2FED_NATS_CREDENTIALS = saved;
    rmSync(dir, { recursive: true, force: true });
  }
  const file = parseYaml(text) as BrokerFile;
  resolveConfig(file.broker ?? {});
  const admin = adminFileSchema.parse(file.admin ?? {});
  if (admin.insecure) throw new BrokerConfigError('admin.insecure: never in a deployment');
  if (!admin.writers?.length) {
    throw new BrokerConfigError(
      'admin.writers: list the identities that may run admin actions (cn:<client cert CN>); ' +
        'without it every certificate the CA signed may cordon or evict',
    );
  }
  // Resolve for real, with stand-ins for the mounted files: auth mode, exposure and
  // writers are checked by the broker's own rules.
  const stand = mkdtempSync(join(tmpdir(), 'l2fed-deploy-test-'));
  try {
    const swap = (k: 'ca' | 'cert' | 'key' | 'tokenFile') => {
      if (!admin[k]) return {};
      const p = join(stand, k);
      writeFileSync(p, k === 'tokenFile' ? `${'a'.repeat(64)}\n` : 'PEM\n');
      return { [k]: p };
    };
    const r = await resolveAdmin(
      { ...admin, ...swap('ca'), ...swap('cert'), ...swap('key'), ...swap('tokenFile') },
      {},
    );
    if (r?.auth.type !== 'mtls')
      throw new BrokerConfigError(`admin API ${r ? `auth ${r.auth.type}` : 'is off'}: use mTLS`);
  } finally {
    rmSync(stand, { recursive: true, force: true });
  }
  return file;
}

type ParsedConfig =
  | { daemon: 'broker'; config: BrokerFile }
  | { daemon: 'gateway'; config: GatewayProcessConfig }
  | { daemon: 'agent'; config: AgentConfig };

async function parseDaemonConfig(daemon: Daemon, text: string): Promise<ParsedConfig> {
  switch (daemon) {
    case 'broker':
      return { daemon, config: await checkBrokerConfig(text) };
    case 'gateway':
      return { daemon, config: parseGatewayProcessConfig(parseYaml(text)) };
    case 'agent':
      return { daemon, config: parseAgentConfig(parseYaml(text)) };
  }
}

const daemonOfKey = (key: string): Daemon | undefined => DAEMONS.find((d) => key === `${d}.yaml`);

// ------------------------------------------------------------------------------ tests

test('deploy - every YAML parses; objects have apiVersion, kind, metadata.name and namespace', (t) => {
  const problems: string[] = [];
  for (const file of yamlFilesUnder(K8S)) {
    let docs: Loaded[];
    try {
      docs = loadFile(file);
    } catch (err) {
      problems.push((err as Error).message);
      continue;
    }
    if (docs.length === 0) problems.push(`${rel(file)}: no documents`);
    if (file.endsWith('/kustomization.yaml')) continue; // readKustomization checks those
    for (const { obj } of docs) {
      const where = `${rel(file)} ${obj.kind}/${obj.metadata?.name}`;
      if (typeof obj.apiVersion !== 'string' || !obj.apiVersion)
        problems.push(`${where}: apiVersion`);
      if (typeof obj.kind !== 'string' || !obj.kind) problems.push(`${where}: kind`);
      if (typeof obj.metadata?.name !== 'string' || !obj.metadata.name)
        problems.push(`${where}: metadata.name`);
      const ns = obj.metadata?.namespace;
      if (CLUSTER_SCOPED.has(obj.kind ?? '') ? ns !== undefined : ns !== NAMESPACE)
        problems.push(`${where}: namespace ${ns}`);
    }
  }
  t.deepEqual(problems, []);
});

test('deploy - kustomizations list files that exist, and every manifest of their directory', (t) => {
  const problems: string[] = [];
  const dirs = kustomizationDirs();
  t.deepEqual(dirs.map((d) => relative(K8S, d)).sort(), ['broker', 'cluster', 'nats']);
  for (const dir of dirs) {
    const objs = build(dir, problems);
    const { resources } = readKustomization(dir);
    for (const f of readdirSync(dir).filter(
      (n) => /\.ya?ml$/.test(n) && n !== 'kustomization.yaml',
    ))
      if (!resources.includes(f))
        problems.push(`${rel(dir)}/kustomization.yaml does not list ${f}`);
    const seen = new Set<string>();
    for (const { obj } of objs) {
      if (seen.has(idOf(obj))) problems.push(`${rel(dir)}: ${idOf(obj)} twice`);
      seen.add(idOf(obj));
    }
  }
  t.deepEqual(problems, []);
});

test.serial(
  'deploy - ConfigMap *.yaml entries pass the broker, gateway and agent parsers',
  async (t) => {
    const problems: string[] = [];
    let checked = 0;
    for (const { file, obj } of allManifests().filter(({ obj }) => obj.kind === 'ConfigMap')) {
      for (const [key, text] of Object.entries(obj.data ?? {})) {
        if (!/\.ya?ml$/.test(key)) continue;
        const where = `${rel(file)} ConfigMap/${obj.metadata?.name} ${key}`;
        const daemon = daemonOfKey(key);
        if (!daemon) {
          problems.push(`${where}: no parser for this name (expected ${DAEMONS.join('|')}.yaml)`);
          continue;
        }
        try {
          await parseDaemonConfig(daemon, text);
          checked++;
        } catch (err) {
          problems.push(`${where}: ${(err as Error).message}`);
        }
      }
    }
    t.deepEqual(problems, []);
    t.is(checked, 3, 'one broker.yaml, gateway.yaml and agent.yaml');
  },
);

test('deploy - volumes, mounts, ConfigMaps, Secrets and ServiceAccounts resolve', (t) => {
  const problems: string[] = [];
  const secrets = documentedSecrets();
  t.true(secrets.size > 0, 'the Secret table in deploy/kubernetes/README.md is missing');
  const used = new Set<string>();
  for (const dir of kustomizationDirs()) {
    const objs = build(dir, problems);
    const configMaps = configMapsOf(objs);
    const accounts = new Set(
      objs.filter(({ obj }) => obj.kind === 'ServiceAccount').map(({ obj }) => obj.metadata!.name),
    );
    const checkConfigMap = (where: string, name: string, items?: KeyToPath[]) => {
      if (CLUSTER_PROVIDED_CONFIGMAPS.has(name)) return;
      const data = configMaps.get(name);
      if (!data) return problems.push(`${where}: ConfigMap ${name} is not in ${rel(dir)}`);
      for (const i of items ?? [])
        if (!(i.key in data)) problems.push(`${where}: ConfigMap ${name} has no key ${i.key}`);
    };
    const checkSecret = (where: string, name: string) => {
      used.add(name);
      if (!secrets.has(name))
        problems.push(
          `${where}: Secret ${name} is not in the table of deploy/kubernetes/README.md`,
        );
    };
    for (const { where, pod, workload } of podSpecs(objs)) {
      const claims = (workload.spec.volumeClaimTemplates ?? []).map((c) => c.metadata.name!);
      const volumes = new Map<string, Volume | undefined>([
        ...(pod.volumes ?? []).map((v) => [v.name, v] as const),
        ...claims.map((n) => [n, undefined] as const),
      ]);
      if (volumes.size !== (pod.volumes ?? []).length + claims.length)
        problems.push(`${where}: duplicate volume names`);
      for (const v of pod.volumes ?? []) {
        if (v.configMap)
          checkConfigMap(`${where} volume ${v.name}`, v.configMap.name, v.configMap.items);
        if (v.secret) checkSecret(`${where} volume ${v.name}`, v.secret.secretName);
        for (const s of v.projected?.sources ?? []) {
          if (s.configMap)
            checkConfigMap(`${where} volume ${v.name}`, s.configMap.name, s.configMap.items);
          if (s.secret) checkSecret(`${where} volume ${v.name}`, s.secret.name);
        }
      }
      const mounted = new Set<string>();
      for (const c of containersOf(pod)) {
        const paths = new Set<string>();
        for (const m of c.volumeMounts ?? []) {
          if (!volumes.has(m.name))
            problems.push(`${where} ${c.name}: mount of undeclared volume ${m.name}`);
          if (paths.has(m.mountPath))
            problems.push(`${where} ${c.name}: ${m.mountPath} mounted twice`);
          paths.add(m.mountPath);
          mounted.add(m.name);
        }
      }
      for (const v of volumes.keys())
        if (!mounted.has(v)) problems.push(`${where}: volume ${v} is mounted by no container`);
      if (pod.serviceAccountName && !accounts.has(pod.serviceAccountName))
        problems.push(`${where}: ServiceAccount ${pod.serviceAccountName} is not in ${rel(dir)}`);
    }
  }
  for (const name of secrets.keys())
    if (!used.has(name)) problems.push(`README.md lists Secret ${name}, which no manifest uses`);
  t.deepEqual(problems, []);
});

/** The mount that holds `path` (deepest first), and the path relative to it. */
function mountOf(c: Container, path: string): { mount: Mount; sub: string } | undefined {
  const m = (c.volumeMounts ?? [])
    .filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  return m && { mount: m, sub: posix.relative(m.mountPath, path) };
}

test.serial(
  "deploy - each daemon's --config is a mounted entry; the paths and ports it names exist",
  async (t) => {
    const problems: string[] = [];
    const secrets = documentedSecrets();
    let daemons = 0;
    for (const dir of kustomizationDirs()) {
      const objs = build(dir, problems);
      const configMaps = configMapsOf(objs);
      for (const { where, pod } of podSpecs(objs)) {
        const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
        const volumeOf = (c: Container, path: string) => {
          const m = mountOf(c, path);
          return m && { ...m, volume: volumes.get(m.mount.name) };
        };
        /** A file the daemon reads: inside a mount; in a Secret, a documented key. */
        const needFile = (c: Container, path: string | undefined, what: string) => {
          if (path === undefined) return;
          const m = volumeOf(c, path);
          if (!m || m.sub === '')
            return problems.push(`${where} ${c.name}: ${what} ${path} is not mounted`);
          const secret = m.volume?.secret?.secretName;
          if (secret && !secrets.get(secret)?.has(m.sub))
            problems.push(
              `${where} ${c.name}: ${what} ${path}: Secret ${secret} has no documented key ${m.sub}`,
            );
        };
        /** A directory the daemon writes in: on a writable, non-ConfigMap/Secret mount. */
        const needWritableDir = (c: Container, dirPath: string, what: string) => {
          const m = volumeOf(c, dirPath);
          if (
            !m ||
            m.mount.readOnly ||
            m.volume?.configMap ||
            m.volume?.secret ||
            m.volume?.projected
          )
            problems.push(`${where} ${c.name}: ${what} ${dirPath} is not on a writable mount`);
          return m?.mount.name;
        };
        const port = (c: Container, name: string) => c.ports?.find((p) => p.name === name);

        const parsed = new Map<Daemon, { c: Container; p: ParsedConfig }>();
        for (const c of containersOf(pod)) {
          const [daemon, verb, flag, path] = c.args ?? [];
          if (!DAEMONS.includes(daemon as Daemon) || verb !== 'run') continue;
          if (flag !== '--config' || !path) {
            problems.push(`${where} ${c.name}: args must be [${daemon}, run, --config, FILE]`);
            continue;
          }
          const m = volumeOf(c, path);
          const cm = m?.volume?.configMap;
          const key = cm?.items?.find((i) => i.path === m?.sub)?.key ?? m?.sub;
          const text = cm && key ? configMaps.get(cm.name)?.[key] : undefined;
          if (text === undefined || key !== `${daemon}.yaml`) {
            problems.push(
              `${where} ${c.name}: --config ${path} is not a ${daemon}.yaml ConfigMap entry`,
            );
            continue;
          }
          try {
            parsed.set(daemon as Daemon, { c, p: await parseDaemonConfig(daemon as Daemon, text) });
            daemons++;
          } catch (err) {
            problems.push(`${where} ${c.name}: ${(err as Error).message}`);
          }
        }

        for (const { c, p } of parsed.values()) {
          if (p.daemon === 'broker') {
            const { nats, admin, metrics } = p.config;
            needFile(c, nats?.credentials, 'nats.credentials');
            needFile(c, nats?.tlsCa, 'nats.tlsCa');
            for (const k of ['ca', 'cert', 'key', 'tokenFile'] as const)
              needFile(c, admin?.[k], `admin.${k}`);
            const listen = Number(admin?.listen?.split(':').pop());
            if (port(c, 'admin')?.containerPort !== listen)
              problems.push(
                `${where} ${c.name}: admin.listen ${admin?.listen} is not container port "admin"`,
              );
            if (
              metrics?.listen !== undefined &&
              port(c, 'metrics')?.containerPort !== Number(metrics.listen.split(':').pop())
            )
              problems.push(
                `${where} ${c.name}: metrics.listen ${metrics.listen} is not container port "metrics"`,
              );
          } else if (p.daemon === 'gateway') {
            const g = p.config;
            if (!('socket' in g.grpc))
              problems.push(`${where} ${c.name}: grpc must be a unix socket`);
            else needWritableDir(c, posix.dirname(g.grpc.socket), 'grpc.socket directory');
            if (g.ovsDbSocket && !volumeOf(c, posix.dirname(g.ovsDbSocket)))
              problems.push(`${where} ${c.name}: ovsDbSocket ${g.ovsDbSocket} is not mounted`);
            if (g.launcher.type === 'detached') needWritableDir(c, g.launcher.dir, 'launcher.dir');
            if (port(c, 'metrics')?.containerPort !== g.metrics.port)
              problems.push(
                `${where} ${c.name}: metrics.port ${g.metrics.port} is not container port "metrics"`,
              );
          } else {
            const a = p.config;
            needFile(c, a.nats.credentials, 'nats.credentials');
            needFile(c, a.nats.tlsCa, 'nats.tlsCa');
            needWritableDir(c, a.cacheDir, 'cacheDir');
            if (a.metrics && port(c, 'agent-metrics')?.containerPort !== a.metrics.port)
              problems.push(
                `${where} ${c.name}: metrics.port ${a.metrics.port} is not container port "agent-metrics"`,
              );
            if (volumeOf(c, a.wireguard.privateKeyFile))
              problems.push(`${where} ${c.name}: the agent must not mount the private key file`);
            if ('kubernetes' in a.source && !a.source.kubernetes.kubeconfig) {
              const tokenMounted = volumeOf(
                c,
                '/var/run/secrets/kubernetes.io/serviceaccount/token',
              );
              if (
                !pod.serviceAccountName ||
                (pod.automountServiceAccountToken === false && !tokenMounted)
              )
                problems.push(
                  `${where} ${c.name}: in-cluster source without a ServiceAccount token`,
                );
            }
          }
        }

        const gw = parsed.get('gateway');
        const agent = parsed.get('agent');
        if (agent && !gw) problems.push(`${where}: an agent without its gateway in the pod`);
        if (gw && agent && gw.p.daemon === 'gateway' && agent.p.daemon === 'agent') {
          const g = gw.p.config;
          const a = agent.p.config;
          if (a.clusterId !== g.identity)
            problems.push(
              `${where}: agent clusterId ${a.clusterId} != gateway identity ${g.identity}`,
            );
          const socket = 'socket' in g.grpc ? g.grpc.socket : undefined;
          if (a.gateway.address !== `unix:${socket}`)
            problems.push(`${where}: agent gateway.address ${a.gateway.address} != unix:${socket}`);
          else if (
            volumeOf(gw.c, socket!)?.mount.name !== volumeOf(agent.c, socket!)?.mount.name ||
            !volumeOf(agent.c, socket!)
          )
            problems.push(
              `${where}: the socket ${socket} is not on a volume both containers mount`,
            );
          needWritableDir(
            gw.c,
            posix.dirname(a.wireguard.privateKeyFile),
            'wireguard.privateKeyFile directory',
          );
          // Host network: one port space for both containers.
          if (a.metrics?.port === g.metrics.port)
            problems.push(
              `${where}: the agent's metrics.port ${a.metrics.port} is the gateway's metrics port`,
            );
          const wg = port(gw.c, 'wireguard');
          if (wg?.containerPort !== a.wireguard.listenPort || wg.protocol !== 'UDP')
            problems.push(
              `${where}: wireguard.listenPort ${a.wireguard.listenPort} is not UDP port "wireguard"`,
            );
          // Peers dial what is advertised; the example has no NAT between them.
          for (const e of a.advertise.endpoints)
            if (!e.endsWith(`:${a.wireguard.listenPort}`))
              problems.push(
                `${where}: advertised endpoint ${e} is not on wireguard.listenPort ${a.wireguard.listenPort}`,
              );
        }
      }
    }
    t.deepEqual(problems, []);
    t.is(daemons, 3, 'a broker, a gateway and an agent container');
  },
);

test('deploy - probes and Services point at declared ports and pods; images are l2fed:<version>', (t) => {
  const problems: string[] = [];
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    version: string;
  };
  for (const dir of kustomizationDirs()) {
    const objs = build(dir, problems);
    const pods = podSpecs(objs);
    for (const { where, workload, pod } of pods) {
      const labels = workload.spec.template.metadata.labels ?? {};
      for (const [k, v] of Object.entries(workload.spec.selector.matchLabels))
        if (labels[k] !== v)
          problems.push(`${where}: selector ${k}=${v} does not match the pod labels`);
      for (const c of containersOf(pod)) {
        // The nats base runs the public nats-server image, pinned to a 2.x release.
        const pinned = c.image === `l2fed:${version}` || /^nats:2\.\d+\.\d+$/.test(c.image ?? '');
        if (!pinned) problems.push(`${where} ${c.name}: image ${c.image}`);
        for (const probe of [c.readinessProbe, c.livenessProbe, c.startupProbe]) {
          const p = probe?.httpGet?.port ?? probe?.tcpSocket?.port ?? probe?.grpc?.port;
          if (p !== undefined && !c.ports?.some((d) => d.name === p || d.containerPort === p))
            problems.push(`${where} ${c.name}: probe port ${p} is not a container port`);
        }
      }
    }
    for (const { file, obj } of objs.filter(({ obj }) => obj.kind === 'Service')) {
      const spec = obj.spec as ServiceSpec;
      const where = `${rel(file)} Service/${obj.metadata?.name}`;
      const target = pods.find(
        ({ pod, workload }) =>
          Object.entries(spec.selector).every(
            ([k, v]) => workload.spec.template.metadata.labels?.[k] === v,
          ) && pod.containers.length > 0,
      );
      if (!target) {
        problems.push(`${where}: selects no pod of ${rel(dir)}`);
        continue;
      }
      for (const sp of spec.ports) {
        const tp = sp.targetPort ?? sp.port;
        if (
          !target.pod.containers.some((c) =>
            c.ports?.some((d) => d.name === tp || d.containerPort === tp),
          )
        )
          problems.push(`${where}: targetPort ${tp} is not a port of ${target.where}`);
      }
    }
  }
  t.deepEqual(problems, []);
});

test('deploy - nats: the files nats.conf names are mounted (Secrets: documented keys), its include is Secret l2fed-nats-auth, the broker dials its client Service', (t) => {
  const problems: string[] = [];
  const secrets = documentedSecrets();
  const objs = build(join(K8S, 'nats'), problems);
  const [sts] = podSpecs(objs);
  const c = sts!.pod.containers[0]!;
  const volumes = new Map((sts!.pod.volumes ?? []).map((v) => [v.name, v]));
  const configPath = c.args![c.args!.indexOf('--config') + 1]!;
  const cm = volumes.get(mountOf(c, configPath)?.mount.name ?? '')?.configMap;
  const text = configMapsOf(objs).get(cm?.name ?? '')?.[posix.basename(configPath)];
  if (text === undefined) return t.fail(`--config ${configPath} is not a mounted ConfigMap key`);
  /** The Secret and key a path is in, or a problem. */
  const secretFile = (path: string, what: string) => {
    const m = mountOf(c, path);
    const secret = volumes.get(m?.mount.name ?? '')?.secret?.secretName;
    if (!m || !secret) {
      problems.push(`${what} ${path} is in no mounted Secret`);
      return problems.join('; ');
    }
    if (!secrets.get(secret)?.has(m.sub))
      problems.push(`${what} ${path}: Secret ${secret} has no documented key ${m.sub}`);
    return `${secret}/${m.sub}`;
  };
  for (const [, key, path] of text.matchAll(/^\s*(\w+_file):\s*(\S+)/gm))
    if (key !== 'pid_file') secretFile(path!, key!);
  for (const [, key, path] of text.matchAll(/^\s*(store_dir|pid_file):\s*(\S+)/gm)) {
    const m = mountOf(c, key === 'pid_file' ? posix.dirname(path!) : path!);
    const v = volumes.get(m?.mount.name ?? '');
    if (!m || m.mount.readOnly || v?.secret || v?.configMap)
      problems.push(`${key} ${path} is not on a writable mount`);
  }
  // nats-server resolves an include relative to the including file.
  const include = /^\s*include\s+(\S+)/m.exec(text)?.[1];
  const included = include && posix.join(posix.dirname(configPath), include);
  t.is(included && secretFile(included, 'include'), 'l2fed-nats-auth/nats-auth.conf');
  // gen-auth writes these paths into nats-auth.conf (README.md's command).
  const readme = readFileSync(join(K8S, 'README.md'), 'utf8');
  const genAuth = /gen-auth [^`]*?--tls-cert (\/\S+) --tls-key (\/\S+)/.exec(readme);
  t.truthy(genAuth, "README.md's gen-auth command with --tls-cert and --tls-key");
  t.is(secretFile(genAuth![1]!, 'gen-auth --tls-cert'), 'l2fed-nats-tls/tls.crt');
  t.is(secretFile(genAuth![2]!, 'gen-auth --tls-key'), 'l2fed-nats-tls/tls.key');
  // The broker base's NATS URL is this base's client Service.
  const broker = parseYaml(
    configMapsOf(build(join(K8S, 'broker'), problems)).get('l2fed-broker-config')!['broker.yaml']!,
  ) as BrokerFile;
  const svc = objs.find(
    ({ obj }) => obj.kind === 'Service' && !('clusterIP' in (obj.spec as object)),
  );
  const port = (svc?.obj.spec as ServiceSpec).ports[0]!.port;
  t.deepEqual(broker.nats?.servers, [`tls://${svc?.obj.metadata?.name}.${NAMESPACE}.svc:${port}`]);
  t.deepEqual(problems, []);
});

test('deploy - the broker runs with BROKER_NODE_OPTIONS (the options the broker-scale bench measures)', (t) => {
  const [broker] = podSpecs(loadFile(join(K8S, 'broker', 'deployment.yaml')));
  const c = broker?.pod.containers.find((x) => x.name === 'broker');
  t.truthy(c, 'a broker container');
  t.is(c?.env?.find((e) => e.name === 'NODE_OPTIONS')?.value, BROKER_NODE_OPTIONS.join(' '));
});
