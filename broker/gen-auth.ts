/**
 * `l2fed broker gen-auth`: writes a federation's NATS credentials into a folder
 *
 *   DIR/nats-auth.conf              the server's accounts block (include it; no secrets in
 *                                   nkey mode)
 *   DIR/broker.creds.json           the broker's credential
 *   DIR/clusters/<id>.creds.json    one per cluster (that cluster's Secret)
 *
 * `--clusters a,b` mints everything anew (refuses to replace files without --force).
 * `--add-clusters c` and `--remove-clusters c` edit an existing folder: only the named
 * clusters' files and nats-auth.conf change, so no other cluster's Secret is touched and
 * nats-server picks the change up with a reload.
 */
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  addClusters,
  credentialSchema,
  generateFederationAuth,
  parseServerConfig,
  removeClusters,
  type Credential,
  type ExistingAuth,
  type FederationAuth,
  type TlsSettings,
} from './auth-config.js';
import { BrokerConfigError } from './errors.js';
import { existing } from '../lib/pki.js';

type Flags = Record<string, string | boolean | undefined>;

const files = (out: string) => ({
  server: join(out, 'nats-auth.conf'),
  broker: join(out, 'broker.creds.json'),
  clusters: join(out, 'clusters'),
  cluster: (id: string) => join(out, 'clusters', `${id}.creds.json`),
});

const list = (v: string | boolean | undefined) =>
  String(v ?? '')
    .split(',')
    .filter(Boolean);

/** Runs gen-auth with parsed flags; throws BrokerConfigError on bad usage (nothing written). */
export async function genAuth(v: Flags, tls: TlsSettings | undefined): Promise<void> {
  const out = String(v.out ?? '');
  const modes = (['clusters', 'add-clusters', 'remove-clusters'] as const).filter(
    (k) => v[k] !== undefined,
  );
  const edit = modes[0];
  if (!out || modes.length !== 1)
    throw new BrokerConfigError(
      'gen-auth needs --out DIR and one of --clusters a,b (all new), --add-clusters c ' +
        '(one more cluster, others unchanged) or --remove-clusters c',
    );
  if (edit === undefined || edit === 'clusters') return generateAll(v, out, tls);
  if (v.mode !== undefined || tls || v.force !== undefined)
    throw new BrokerConfigError(
      `--${edit} keeps the folder's mode and TLS settings: drop --mode, --tls-* and --force`,
    );
  const before = await readFolder(out);
  const ids = list(v[edit]);
  if (ids.length === 0) throw new BrokerConfigError(`--${edit} needs cluster ids (a,b)`);
  if (edit === 'add-clusters') {
    const auth = addClusters(before, ids);
    const found = await existing(ids.map(files(out).cluster));
    if (found.length > 0)
      throw new BrokerConfigError(
        `these files exist but nats-auth.conf does not admit them: ${found.join(', ')}; ` +
          'remove them or regenerate everything with --clusters … --force',
      );
    for (const id of ids) await writeCredential(files(out).cluster(id), auth.clusters[id]!);
    await writeServerConfig(out, auth);
    console.log(
      `added ${ids.join(', ')}: wrote ${ids.map((id) => `clusters/${id}.creds.json`).join(', ')} ` +
        `and ${out}/nats-auth.conf; reload nats-server (nats-server --signal reload) — no ` +
        'other credential changed',
    );
    return;
  }
  const auth = removeClusters(before, ids);
  await writeServerConfig(out, auth);
  for (const id of ids) await rm(files(out).cluster(id), { force: true });
  console.log(
    `removed ${ids.join(', ')} from ${out}/nats-auth.conf and deleted their credential files; ` +
      'reload nats-server to lock them out (evict them at the broker: l2fed evict <id>)',
  );
}

async function generateAll(v: Flags, out: string, tls: TlsSettings | undefined) {
  const clusters = list(v.clusters);
  if (clusters.length === 0) throw new BrokerConfigError('--clusters needs cluster ids (a,b)');
  if (v.mode !== undefined && v.mode !== 'nkey' && v.mode !== 'password')
    throw new BrokerConfigError(`--mode must be nkey or password (got "${String(v.mode)}")`);
  const mode = v.mode === 'password' ? 'password' : 'nkey';
  const auth = generateFederationAuth({ clusters, mode, ...(tls ? { tls } : {}) });
  const f = files(out);
  // New secrets lock out every holder of the old ones: replace them only when asked.
  const found =
    v.force === true ? [] : await existing([f.server, f.broker, ...clusters.map(f.cluster)]);
  if (found.length > 0)
    throw new BrokerConfigError(
      `these files already exist and would be replaced: ${found.join(', ')}. gen-auth mints ` +
        `new credentials for the broker and every cluster: after a replacement every cluster ` +
        `must get its new credentials file and nats-server must reload nats-auth.conf. Pass ` +
        `--force to replace them, use --add-clusters to add one cluster without touching the ` +
        `others, or use another --out`,
    );
  await mkdir(f.clusters, { recursive: true, mode: 0o700 });
  await writeCredential(f.broker, auth.broker);
  for (const [id, c] of Object.entries(auth.clusters)) await writeCredential(f.cluster(id), c);
  // A replaced folder keeps no credential of a cluster that is not listed any more.
  for (const name of await readdir(f.clusters))
    if (name.endsWith('.creds.json') && !(name.slice(0, -'.creds.json'.length) in auth.clusters))
      await rm(join(f.clusters, name), { force: true });
  await writeServerConfig(out, auth);
  console.log(
    `wrote ${out}/nats-auth.conf (add "include nats-auth.conf" to nats-server.conf), ` +
      `broker.creds.json and clusters/<id>.creds.json for ${clusters.length} clusters`,
  );
}

/** The folder's credentials and server settings; throws naming what is missing or bad. */
async function readFolder(out: string): Promise<ExistingAuth> {
  const f = files(out);
  const read = async (path: string) => {
    try {
      return await readFile(path, 'utf8');
    } catch {
      throw new BrokerConfigError(
        `cannot read ${path}: --add-clusters/--remove-clusters edit a folder gen-auth ` +
          '--clusters wrote; run that first',
      );
    }
  };
  const credential = async (path: string): Promise<Credential> => {
    const r = credentialSchema.safeParse(JSON.parse(await read(path)));
    if (!r.success) throw new BrokerConfigError(`${path} is not a gen-auth credential file`);
    return r.data;
  };
  const settings = parseServerConfig(await read(f.server));
  const broker = await credential(f.broker);
  const clusters: Record<string, Credential> = {};
  for (const name of (await readdir(f.clusters).catch(() => [])).sort()) {
    if (!name.endsWith('.creds.json')) continue;
    const c = await credential(join(f.clusters, name));
    if (c.type !== broker.type)
      throw new BrokerConfigError(`${name} is a ${c.type} credential, the broker's ${broker.type}`);
    clusters[name.slice(0, -'.creds.json'.length)] = c;
  }
  return {
    broker,
    clusters,
    account: settings.account,
    ...(settings.tls ? { tls: settings.tls } : {}),
  };
}

async function writeCredential(path: string, c: Credential): Promise<void> {
  await writeFile(path, JSON.stringify(c, null, 2), { mode: 0o600 });
}

async function writeServerConfig(out: string, auth: FederationAuth): Promise<void> {
  // Written last: a half-done edit never admits a user whose file is missing.
  await writeFile(files(out).server, auth.serverConfig, { mode: 0o600 });
}
