import { join } from 'node:path';
import { ExecaRunner } from '../lib/runner.js';
import {
  caFiles,
  checkCertName,
  ensureCa,
  existing,
  issueCert,
  leafFiles,
  PkiFileError,
  writeToken,
} from '../lib/pki.js';
import { tokenId } from '../broker/admin/identity.js';

/** The server certificate's name (broker.crt, broker.key). */
const SERVER_NAME = 'broker';

export interface PkiInitOptions {
  readonly dir: string;
  /** DNS names / IPs the broker's admin API is reached by. */
  readonly serverNames: readonly string[];
  /** Client certificate names to issue (one per admin or automation). */
  readonly clients: readonly string[];
  /** Replace existing leaf keys and certs (never the CA). */
  readonly force?: boolean;
}

/**
 * Refuses, before anything is written, client names that are invalid, repeated or
 * land on the CA's or the server's files, and (without force) existing leaf files.
 */
async function checkPlan(o: PkiInitOptions): Promise<void> {
  const ca = caFiles(o.dir);
  const seen = new Set<string>();
  for (const c of o.clients) {
    checkCertName(c);
    const files = leafFiles(o.dir, c);
    if ([ca.caCert, ca.caKey, ca.serial].some((p) => p.startsWith(join(o.dir, `${c}.`)))) {
      throw new PkiFileError(
        `client name "${c}" collides with the CA's files (${ca.caCert}, ${ca.caKey}); ` +
          `choose another --client name`,
        [files.cert, files.key],
      );
    }
    if (c === SERVER_NAME) {
      throw new PkiFileError(
        `client name "${c}" collides with the broker server certificate's files ` +
          `(${files.cert}, ${files.key}); choose another --client name`,
        [files.cert, files.key],
      );
    }
    if (seen.has(c)) throw new Error(`client name "${c}" is given twice; give each name once`);
    seen.add(c);
  }
  if (o.force) return;
  const leaves = [SERVER_NAME, ...o.clients].flatMap((n) => {
    const f = leafFiles(o.dir, n);
    return [f.cert, f.key];
  });
  const found = await existing(leaves);
  if (found.length > 0) {
    throw new PkiFileError(
      `these files already exist and would be replaced: ${found.join(', ')}. Pass --force ` +
        `to re-issue them (the CA is always kept), or use another --dir`,
      found,
    );
  }
}

/**
 * `l2fed pki init`: CA (kept if present), a server cert and client certs. Throws
 * (writing nothing) on a bad or colliding client name, or existing leaf files without
 * `force`.
 */
export async function runPkiInit(o: PkiInitOptions): Promise<number> {
  await checkPlan(o);
  const runner = new ExecaRunner();
  const force = { force: o.force ?? false };
  const ca = await ensureCa(runner, o.dir);
  console.log(`CA:      ${ca.caCert} (key ${ca.caKey}, mode 0600; keep it offline)`);
  const server = await issueCert(runner, ca, o.dir, SERVER_NAME, 'server', o.serverNames, force);
  console.log(`server:  ${server.cert} for ${o.serverNames.join(', ')}`);
  for (const c of o.clients) {
    const cert = await issueCert(runner, ca, o.dir, c, 'client', [], force);
    console.log(`client:  ${cert.cert}`);
  }
  console.log(
    `\nbroker:  --admin-ca ${ca.caCert} --admin-cert ${server.cert} --admin-key ${server.key}`,
  );
  const c0 = o.clients[0];
  if (c0) {
    console.log(
      `client:  --ca ${ca.caCert} --cert ${join(o.dir, `${c0}.crt`)} --key ${join(o.dir, `${c0}.key`)}`,
    );
  }
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
