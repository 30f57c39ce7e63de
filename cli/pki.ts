import { join } from 'node:path';
import { ExecaRunner } from '../lib/runner.js';
import { ensureCa, issueCert, writeToken } from '../lib/pki.js';

export interface PkiInitOptions {
  readonly dir: string;
  /** DNS names / IPs the broker's admin API is reached by. */
  readonly serverNames: readonly string[];
  /** Client certificate names to issue (one per admin or automation). */
  readonly clients: readonly string[];
}

/** `l2fed pki init`: CA (kept if present), a server cert and client certs. */
export async function runPkiInit(o: PkiInitOptions): Promise<number> {
  const runner = new ExecaRunner();
  const ca = await ensureCa(runner, o.dir);
  console.log(`CA:      ${ca.caCert} (key ${ca.caKey}, mode 0600; keep it offline)`);
  const server = await issueCert(runner, ca, o.dir, 'broker', 'server', o.serverNames);
  console.log(`server:  ${server.cert} for ${o.serverNames.join(', ')}`);
  for (const c of o.clients) {
    const cert = await issueCert(runner, ca, o.dir, c, 'client');
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

/** `l2fed pki token FILE`: a random bearer token, written 0600. */
export async function runPkiToken(file: string): Promise<number> {
  await writeToken(file);
  console.log(`token written to ${file} (mode 0600); pass it with --token-file ${file}`);
  return 0;
}
