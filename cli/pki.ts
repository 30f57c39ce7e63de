import { ExecaRunner } from '../lib/runner.js';
import {
  caFiles,
  ensureCa,
  existing,
  issueCert,
  leafFiles,
  PkiFileError,
  planLeaves,
  writeToken,
  type LeafPlan,
} from '../lib/pki.js';
import { tokenId } from '../broker/admin/identity.js';

/** The server certificate's name (broker.crt, broker.key). */
const SERVER_NAME = 'broker';
/** The NATS server certificate's name (nats.crt, nats.key), deploy/kubernetes/nats. */
const NATS_NAME = 'nats';

/** `l2fed pki init`'s options, as cli/main.ts parses them. */
export interface PkiInitOptions {
  readonly dir: string;
  /** DNS names / IPs the broker's admin API is reached by. */
  readonly serverNames: readonly string[];
  /** Client certificate names to issue (one per admin or automation). */
  readonly clients: readonly string[];
  /** Re-issue existing leaf keys and certs (never the CA); without it they are kept. */
  readonly force?: boolean;
}

/**
 * The leaves to issue and to keep, checked before anything is written (planLeaves):
 * refuses the NATS PKI's folder (`pki nats`), the server's name as a client name, and
 * whatever planLeaves refuses.
 */
async function checkPlan(o: PkiInitOptions): Promise<LeafPlan[]> {
  const nats = await existing(Object.values(leafFiles(o.dir, NATS_NAME)));
  if (nats.length > 0)
    throw new PkiFileError(
      `${o.dir} holds the NATS PKI (${nats.join(', ')}); NATS admits every certificate ` +
        `of its CA as a route, so the admin API needs a CA of its own: use another --dir`,
      nats,
    );
  for (const c of o.clients) {
    if (c !== SERVER_NAME) continue;
    const files = leafFiles(o.dir, c);
    throw new PkiFileError(
      `client name "${c}" collides with the broker server certificate's files ` +
        `(${files.cert}, ${files.key}); choose another --client name`,
      [files.cert, files.key],
    );
  }
  return planLeaves(
    caFiles(o.dir),
    o.dir,
    [
      { name: SERVER_NAME },
      ...o.clients.map((name) => ({ name, role: 'client', option: '--client' })),
    ],
    { force: o.force ?? false },
  );
}

/**
 * `l2fed pki init`: CA (kept if present), a server cert and client certs. Issues only
 * what is missing: an existing key and cert pair is kept and listed as kept (`force`
 * re-issues it), so adding an operator is `pki init --client NAME` on the same folder.
 * Throws (writing nothing) on a bad, repeated or colliding name, or half a pair.
 */
export async function runPkiInit(o: PkiInitOptions): Promise<number> {
  const plan = await checkPlan(o);
  const runner = new ExecaRunner();
  const ca = await ensureCa(runner, o.dir);
  console.log(`CA:      ${ca.caCert} (key ${ca.caKey}, mode 0600; keep it offline)`);
  for (const leaf of plan) {
    const server = leaf.name === SERVER_NAME;
    if (leaf.action === 'keep') {
      const names = server ? '; its names are unchanged' : '';
      console.log(`kept:    ${leaf.files.cert} (exists${names}; --force re-issues it)`);
      continue;
    }
    const force = { force: true }; // planned above: missing, or re-issued on purpose
    if (server) {
      await issueCert(runner, ca, o.dir, leaf.name, 'server', o.serverNames, force);
      console.log(`server:  ${leaf.files.cert} for ${o.serverNames.join(', ')}`);
    } else {
      await issueCert(runner, ca, o.dir, leaf.name, 'client', [], force);
      console.log(`client:  ${leaf.files.cert}`);
    }
  }
  const server = leafFiles(o.dir, SERVER_NAME);
  console.log(
    `\nbroker:  --admin-ca ${ca.caCert} --admin-cert ${server.cert} --admin-key ${server.key}`,
  );
  const c0 = o.clients[0];
  if (c0) {
    const c = leafFiles(o.dir, c0);
    console.log(`client:  --ca ${ca.caCert} --cert ${c.cert} --key ${c.key}`);
  }
  return 0;
}

/** `l2fed pki nats`'s options. */
export interface PkiNatsOptions {
  readonly dir: string;
  /**
   * DNS names / IPs / `*.` wildcards NATS is reached by: the client Service, the pods'
   * headless names (routes dial those), and what member clusters dial from outside.
   */
  readonly names: readonly string[];
  /** Re-issue an existing nats.key/nats.crt (never the CA). */
  readonly force?: boolean;
}

/**
 * `l2fed pki nats`: a CA (kept if present) and nats.crt/nats.key, good for TLS server
 * and client auth (nats-server forces mutual TLS on routes, each server dialling its
 * peers with this certificate). An existing pair is kept unless `force`.
 * @throws PkiFileError, writing nothing, when dir holds the admin API PKI (NATS admits
 *   any certificate of its CA as a route: the admin client certificates would be
 *   routes), and whatever planLeaves refuses; Error without names.
 */
export async function runPkiNats(o: PkiNatsOptions): Promise<number> {
  if (o.names.length === 0)
    throw new Error(
      'give the names NATS is reached by: --san NAME… (see deploy/kubernetes/README.md)',
    );
  const admin = await existing(Object.values(leafFiles(o.dir, SERVER_NAME)));
  if (admin.length > 0)
    throw new PkiFileError(
      `${o.dir} holds the admin API PKI (${admin.join(', ')}); NATS admits every ` +
        `certificate of its CA as a route, so it needs a CA of its own: use another --dir`,
      admin,
    );
  const [plan] = await planLeaves(caFiles(o.dir), o.dir, [{ name: NATS_NAME }], {
    force: o.force ?? false,
  });
  const runner = new ExecaRunner();
  const ca = await ensureCa(runner, o.dir, 'l2fed NATS CA');
  console.log(`CA:      ${ca.caCert} (key ${ca.caKey}, mode 0600; keep it offline)`);
  const files = plan!.files;
  if (plan!.action === 'keep') {
    console.log(`kept:    ${files.cert} (exists; its names are unchanged; --force re-issues it)`);
  } else {
    await issueCert(runner, ca, o.dir, NATS_NAME, 'peer', o.names, { force: true });
    console.log(`server:  ${files.cert} (server and client auth) for ${o.names.join(', ')}`);
  }
  console.log(`\nnats:    tls.crt=${files.cert} tls.key=${files.key} ca.crt=${ca.caCert}`);
  return 0;
}

/**
 * `l2fed pki token FILE`: a random bearer token, written 0600, and its identity (for
 * --admin-writers). Throws when FILE exists, unless `force`.
 */
export async function runPkiToken(file: string, o: { force?: boolean } = {}): Promise<number> {
  if (!o.force && (await existing([file])).length > 0) {
    throw new PkiFileError(
      `${file} already exists; pass --force to replace that token (its holders lose access)`,
      [file],
    );
  }
  const token = await writeToken(file);
  console.log(`token written to ${file} (mode 0600); pass it with --token-file ${file}`);
  console.log(`identity ${tokenId(token)} (for the broker's --admin-writers)`);
  return 0;
}
