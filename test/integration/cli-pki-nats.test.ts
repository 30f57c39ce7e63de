/**
 * `l2fed pki nats` (real openssl, run from source with tsx): the NATS server certificate
 * of deploy/kubernetes/nats. nats-server forces mutual TLS on routes, so the one
 * certificate each server presents must be good as a TLS server AND a TLS client
 * certificate, and name the pods by a wildcard of the headless Service. Its CA must not
 * be the admin API's (NATS admits any certificate of its CA as a route).
 */
import { execa } from 'execa';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { testWith } from '../fixtures/privileges.js';
import { makeRunDir } from '../fixtures/run-dir.js';

const test = testWith({ tools: ['openssl'] });
const root = join(import.meta.dirname, '..', '..');

const l2fed = (args: string[]) =>
  execa('node', ['--import', 'tsx', join(root, 'cli', 'main.ts'), ...args], {
    cwd: root,
    reject: false,
    timeout: 60_000,
  });

const SANS = ['l2fed-nats.l2fed-system.svc', '*.l2fed-nats-headless.l2fed-system.svc'];

const snapshot = (dir: string) =>
  Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((f) => [f, readFileSync(join(dir, f)).toString('base64')]),
  );

test('pki nats - issues a CA and nats.crt good for TLS server and client auth, with a wildcard SAN', async (t) => {
  const run = await makeRunDir('pki');
  t.teardown(() => run.remove());
  const dir = join(run.path, 'nats-pki');
  const r = await l2fed(['pki', 'nats', '--dir', dir, '--san', ...SANS]);
  t.is(r.exitCode, 0, r.stderr);
  t.deepEqual(Object.keys(snapshot(dir)), ['ca.crt', 'ca.key', 'ca.srl', 'nats.crt', 'nats.key']);
  const verify = (...extra: string[]) =>
    execa('openssl', ['verify', '-CAfile', join(dir, 'ca.crt'), ...extra, join(dir, 'nats.crt')], {
      reject: false,
    });
  for (const purpose of ['sslserver', 'sslclient']) {
    const v = await verify('-purpose', purpose);
    t.is(v.exitCode, 0, `${purpose}: ${v.stdout}${v.stderr}`);
  }
  for (const host of [
    'l2fed-nats.l2fed-system.svc',
    'l2fed-nats-2.l2fed-nats-headless.l2fed-system.svc',
  ]) {
    const v = await verify('-verify_hostname', host);
    t.is(v.exitCode, 0, `${host}: ${v.stdout}${v.stderr}`);
  }
  const wrong = await verify('-verify_hostname', 'l2fed-nats.other.svc');
  t.not(wrong.exitCode, 0, 'a name not in --san does not verify');

  // Again on the same folder: kept, byte-identical.
  const before = snapshot(dir);
  const again = await l2fed(['pki', 'nats', '--dir', dir, '--san', ...SANS]);
  t.is(again.exitCode, 0, again.stderr);
  t.regex(again.stdout, /kept: +\S*nats\.crt .*--force/);
  t.deepEqual(snapshot(dir), before);
});

test('pki nats - refuses the admin API PKI folder, writing nothing', async (t) => {
  const run = await makeRunDir('pki');
  t.teardown(() => run.remove());
  const dir = join(run.path, 'pki');
  const init = await l2fed(['pki', 'init', '--dir', dir, '--client', 'alice']);
  t.is(init.exitCode, 0, init.stderr);
  const before = snapshot(dir);
  const r = await l2fed(['pki', 'nats', '--dir', dir, '--san', ...SANS]);
  t.is(r.exitCode, 1);
  t.regex(r.stderr, /holds the admin API PKI.*broker\.crt.*use another --dir/s);
  t.deepEqual(snapshot(dir), before);
});

test('pki init - refuses the NATS PKI folder, writing nothing', async (t) => {
  const run = await makeRunDir('pki');
  t.teardown(() => run.remove());
  const dir = join(run.path, 'nats-pki');
  const nats = await l2fed(['pki', 'nats', '--dir', dir, '--san', ...SANS]);
  t.is(nats.exitCode, 0, nats.stderr);
  const before = snapshot(dir);
  const r = await l2fed(['pki', 'init', '--dir', dir, '--client', 'alice']);
  t.is(r.exitCode, 1);
  t.regex(r.stderr, /holds the NATS PKI.*nats\.crt.*use another --dir/s);
  t.deepEqual(snapshot(dir), before);
});
