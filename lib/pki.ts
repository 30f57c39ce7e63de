/**
 * A small federation PKI for the admin API's mTLS: one CA, server certificates with
 * subjectAltNames, client certificates. Built on the openssl CLI through the runner;
 * private keys are written 0600 and never printed.
 */
import { chmod, mkdir, readFile, rm, writeFile, access } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { CommandRunner } from './runner.js';

/** A CA's files: certificate, private key (0600) and the serial file openssl keeps. */
export interface PkiPaths {
  readonly caCert: string;
  readonly caKey: string;
  readonly serial: string;
}

/** A leaf certificate's PEM files: certificate and private key (0600). */
export interface IssuedCert {
  readonly cert: string;
  readonly key: string;
}

const DAYS_CA = '3650';
const DAYS_LEAF = '825';
const EXT_KEY_USAGE = {
  server: 'serverAuth',
  client: 'clientAuth',
  peer: 'serverAuth,clientAuth',
} as const;
const NAME_RE = /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/;

/** A PKI file operation refused to protect an existing key or certificate. */
export class PkiFileError extends Error {
  override name = 'PkiFileError';
  constructor(
    message: string,
    /** The files that caused the refusal. */
    readonly paths: readonly string[],
  ) {
    super(message);
  }
}

/** The CA's files in dir (the serial file is written by `openssl x509 -CAcreateserial`). */
export function caFiles(dir: string): PkiPaths {
  return { caCert: join(dir, 'ca.crt'), caKey: join(dir, 'ca.key'), serial: join(dir, 'ca.srl') };
}

/** The files a leaf certificate `name` is written to in dir. */
export function leafFiles(dir: string, name: string): IssuedCert {
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
}

/** Throws unless name is usable as a certificate CN and file name. */
export function checkCertName(name: string): void {
  if (!NAME_RE.test(name)) {
    throw new Error(`certificate name "${name}" must be lowercase letters, digits, "." or "-"`);
  }
}

/** Those of paths that exist. */
export async function existing(paths: readonly string[]): Promise<string[]> {
  const found: string[] = [];
  for (const p of paths) if (await exists(p)) found.push(p);
  return found;
}

async function exists(p: string): Promise<boolean> {
  try {
    await access(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * Creates dir/ca.crt and dir/ca.key unless both already exist (idempotent: an
 * existing CA is kept, because replacing it would invalidate every issued cert).
 * Throws PkiFileError when only one of the two exists.
 */
export async function ensureCa(
  runner: CommandRunner,
  dir: string,
  cn = 'l2fed federation CA',
): Promise<PkiPaths> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const files = caFiles(dir);
  const { caCert, caKey } = files;
  const [hasCert, hasKey] = [await exists(caCert), await exists(caKey)];
  if (hasCert && hasKey) return files;
  if (hasCert !== hasKey) {
    // Regenerating would replace half of a CA that issued certificates still in use.
    const [have, lost] = hasCert ? [caCert, caKey] : [caKey, caCert];
    throw new PkiFileError(
      `${have} exists but ${lost} does not: restore ${lost} from your backup, or move ` +
        `${have} away to start a new CA (every certificate it issued must then be re-issued)`,
      [have],
    );
  }
  await runner.run(
    [
      'openssl',
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      caKey,
      '-out',
      caCert,
      '-days',
      DAYS_CA,
      '-subj',
      `/CN=${cn}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    { mutates: true },
  );
  await chmod(caKey, 0o600);
  return files;
}

/** A leaf to issue: its name (CN and file name) and how the caller names it in errors. */
export interface LeafRequest {
  readonly name: string;
  /** Word for the name in errors, e.g. 'client' ("client name …"); default 'certificate'. */
  readonly role?: string;
  /** The option that gave the name, e.g. '--client' ("choose another --client name"). */
  readonly option?: string;
}

/** What will happen to one leaf: issued (missing, or forced) or kept (both files exist). */
export interface LeafPlan {
  readonly name: string;
  readonly files: IssuedCert;
  readonly action: 'issue' | 'keep';
}

/**
 * The one check of leaves before anything is written: each name valid and given once,
 * none landing on the CA's files (cert, key, serial); a complete existing pair is kept
 * (re-issued with `force`), half a pair is refused (a cert without its key cannot be
 * used, and replacing it silently would hide the loss). Reads only.
 * @throws Error for a bad or repeated name; PkiFileError (with the paths) for a clash
 *   with the CA's files or half a pair.
 */
export async function planLeaves(
  ca: PkiPaths,
  dir: string,
  leaves: readonly LeafRequest[],
  opts: { force?: boolean } = {},
): Promise<LeafPlan[]> {
  const caPaths = [ca.caCert, ca.caKey, ca.serial].map((p) => resolve(p));
  const seen = new Set<string>();
  const plan: LeafPlan[] = [];
  for (const { name, role = 'certificate', option } of leaves) {
    checkCertName(name);
    if (seen.has(name))
      throw new Error(`${role} name "${name}" is given twice; give each name once`);
    seen.add(name);
    const files = leafFiles(dir, name);
    // The csr and ext files are written next to the leaf while it is issued.
    const temp = [join(dir, `${name}.csr`), join(dir, `${name}.ext`)];
    const clash = [files.key, files.cert, ...temp].filter((p) => caPaths.includes(resolve(p)));
    if (clash.length > 0) {
      throw new PkiFileError(
        `${role} name "${name}" collides with the CA's files (${clash.join(', ')}); ` +
          `choose another ${option ? `${option} ` : ''}name`,
        clash,
      );
    }
    const [hasKey, hasCert] = [await exists(files.key), await exists(files.cert)];
    if (hasKey !== hasCert && !opts.force) {
      const [have, lost] = hasCert ? [files.cert, files.key] : [files.key, files.cert];
      throw new PkiFileError(
        `${have} exists but ${lost} does not: restore ${lost} from your backup, or pass ` +
          `--force to re-issue ${name} (its holders must then use the new pair)`,
        [have],
      );
    }
    plan.push({ name, files, action: hasKey && hasCert && !opts.force ? 'keep' : 'issue' });
  }
  return plan;
}

/**
 * Issues a leaf certificate signed by the CA. `kind` sets extendedKeyUsage: `peer` is
 * both server and client auth, for servers that dial each other with the same
 * certificate (NATS routes, where nats-server forces mutual TLS). `altNames` become
 * DNS/IP subjectAltNames (TLS checks them, not the CN; `*.x` is a DNS wildcard). Checked first by
 * planLeaves; throws, writing nothing, as it does, and PkiFileError when the key and
 * cert exist and `opts.force` is not set.
 */
export async function issueCert(
  runner: CommandRunner,
  ca: PkiPaths,
  dir: string,
  name: string,
  kind: 'server' | 'client' | 'peer',
  altNames: readonly string[] = [],
  opts: { force?: boolean } = {},
): Promise<IssuedCert> {
  const [plan] = await planLeaves(ca, dir, [{ name }], opts);
  const { key, cert } = plan!.files;
  if (plan!.action === 'keep') {
    throw new PkiFileError(`${key} and ${cert} already exist; pass --force to replace them`, [
      key,
      cert,
    ]);
  }
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  const san = altNames.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  const lines = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${EXT_KEY_USAGE[kind]}`,
  ];
  if (san) lines.push(`subjectAltName=${san}`);
  await writeFile(ext, lines.join('\n') + '\n');
  await runner.run(
    [
      'openssl',
      'req',
      '-new',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      csr,
      '-subj',
      `/CN=${name}`,
    ],
    { mutates: true },
  );
  await chmod(key, 0o600);
  await runner.run(
    [
      'openssl',
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.caCert,
      '-CAkey',
      ca.caKey,
      '-CAserial',
      ca.serial,
      '-CAcreateserial',
      '-out',
      cert,
      '-days',
      DAYS_LEAF,
      '-extfile',
      ext,
    ],
    { mutates: true },
  );
  await rm(csr, { force: true });
  await rm(ext, { force: true });
  return { cert, key };
}

/** Reads a cert/key pair as Buffers for grpc-js credentials. */
export async function readPair(p: IssuedCert): Promise<{ cert: Buffer; key: Buffer }> {
  return { cert: await readFile(p.cert), key: await readFile(p.key) };
}

/** Writes a random bearer token (256 bits, hex) to path with mode 0600, returns it. */
export async function writeToken(path: string): Promise<string> {
  const { randomBytes } = await import('node:crypto');
  const token = randomBytes(32).toString('hex');
  await writeFile(path, token + '\n', { mode: 0o600 });
  return token;
}
