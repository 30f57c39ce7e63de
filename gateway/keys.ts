/**
 * The gateway's WireGuard private key: generated here (`wg genkey`), stored in a file of
 * mode 0600, and handed to WireGuard by path (`wg set … private-key FILE`), so it never
 * appears on a command line, in a log, in a plan or in any API response. Only the public
 * key leaves the gateway.
 */
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { CommandRunner } from '../lib/runner.js';
import { WG_KEY_RE } from './config.js';
import { KeyFileError } from './errors.js';

export interface KeyPair {
  /** Kept in memory only to compare with what `wg show dump` reports. */
  readonly privateKey: string;
  readonly publicKey: string;
  /** True when this call generated the key (first start). */
  readonly generated: boolean;
}

/** The public key of `privateKey` (`wg pubkey`). */
export async function derivePublicKey(runner: CommandRunner, privateKey: string): Promise<string> {
  return (await runner.run(['wg', 'pubkey'], { input: `${privateKey}\n` })).stdout.trim();
}

/**
 * Loads the key at `file`, generating it first if the file does not exist.
 * Idempotent. Two concurrent first calls race on an exclusive create: one writes, the
 * other reads what was written.
 * @throws KeyFileError when the file is readable by others or is not a WireGuard key.
 */
export async function ensurePrivateKey(runner: CommandRunner, file: string): Promise<KeyPair> {
  let generated = false;
  try {
    const st = await stat(file);
    if ((st.mode & 0o077) !== 0) {
      throw new KeyFileError(
        file,
        `mode ${(st.mode & 0o777).toString(8)} lets others read it; run chmod 600 ${file}`,
      );
    }
  } catch (err) {
    if (err instanceof KeyFileError) throw err;
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new KeyFileError(file, 'cannot stat', { cause: err });
    }
    // `wg genkey` changes nothing on the host; writing the file is our own state.
    const key = (await runner.run(['wg', 'genkey'])).stdout.trim();
    await mkdir(dirname(file), { recursive: true, mode: 0o700 });
    try {
      await writeFile(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
      await chmod(file, 0o600); // umask may have narrowed it further; make it exact
      generated = true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new KeyFileError(file, 'cannot write', { cause: e });
      }
    }
  }
  const privateKey = (await readFile(file, 'utf8')).trim();
  if (!WG_KEY_RE.test(privateKey)) {
    throw new KeyFileError(file, 'does not hold a WireGuard key (expected `wg genkey` output)');
  }
  return { privateKey, publicKey: await derivePublicKey(runner, privateKey), generated };
}

/**
 * Replaces the key at `file` with a new one, atomically (write a 0600 temp file, then
 * rename), and returns the new pair. The data plane keeps the old key until the next
 * apply; see docs/gateway.md for the rotation order. Not safe to run concurrently with
 * itself on the same file (the Gateway serialises it).
 */
export async function rotatePrivateKey(runner: CommandRunner, file: string): Promise<KeyPair> {
  const key = (await runner.run(['wg', 'genkey'])).stdout.trim();
  const tmp = `${file}.next`;
  await rm(tmp, { force: true });
  await writeFile(tmp, `${key}\n`, { mode: 0o600, flag: 'wx' });
  await chmod(tmp, 0o600);
  await rename(tmp, file);
  return { privateKey: key, publicKey: await derivePublicKey(runner, key), generated: true };
}
