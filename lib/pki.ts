/**
 * A small federation PKI for the admin API's mTLS: one CA, server certificates with
 * subjectAltNames, client certificates. Built on the openssl CLI through the runner;
 * private keys are written 0600 and never printed.
 */
import { chmod, mkdir, readFile, rm, writeFile, access } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { CommandRunner } from './runner.js';

export interface PkiPaths {
  readonly caCert: string;
  readonly caKey: string;
}

export interface IssuedCert {
  readonly cert: string;
  readonly key: string;
}

const DAYS_CA = '3650';
const DAYS_LEAF = '825';
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
export function caFiles(dir: string): { caCert: string; caKey: string; serial: string } {
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
  const { caCert, caKey } = caFiles(dir);
  const [hasCert, hasKey] = [await exists(caCert), await exists(caKey)];
  if (hasCert && hasKey) return { caCert, caKey };
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
  return { caCert, caKey };
}

/**
 * Issues a leaf certificate signed by the CA. `kind` sets extendedKeyUsage; server
 * certs get DNS/IP subjectAltNames (gRPC checks them, not the CN). Throws PkiFileError,
 * writing nothing, when the name's files would be the CA's, or when its key or cert
 * exists and `opts.force` is not set.
 */
export async function issueCert(
  runner: CommandRunner,
  ca: PkiPaths,
  dir: string,
  name: string,
  kind: 'server' | 'client',
  altNames: readonly string[] = [],
  opts: { force?: boolean } = {},
): Promise<IssuedCert> {
  checkCertName(name);
  const { key, cert } = leafFiles(dir, name);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  const serial = ca.caCert.replace(/\.[^./]*$/, '') + '.srl';
  const clash = [key, cert, csr, ext].filter((p) =>
    [resolve(ca.caCert), resolve(ca.caKey), resolve(serial)].includes(resolve(p)),
  );
  if (clash.length > 0) {
    throw new PkiFileError(
      `certificate name "${name}" collides with the CA's files (${clash.join(', ')}); choose another name`,
      clash,
    );
  }
  const found = opts.force ? [] : await existing([key, cert]);
  if (found.length > 0) {
    throw new PkiFileError(
      `${found.join(' and ')} already exist; pass --force to replace them`,
      found,
    );
  }
  const san = altNames.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  const lines = [
    'basicConstraints=critical,CA:FALSE',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    `extendedKeyUsage=${kind === 'server' ? 'serverAuth' : 'clientAuth'}`,
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
