/**
 * `l2fed pki init` and `pki token` (real openssl, run from source with tsx): they never
 * overwrite a key or certificate unless asked to (--force), never let a client name land
 * on the CA's or the server's files, and `pki init` in an existing folder issues only
 * what is missing (how an operator is added).
 */
import type { ExecutionContext } from 'ava';
import { execa } from 'execa';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
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

/** Every file of dir with its bytes, to prove a refused command changed nothing. */
const snapshot = (dir: string) =>
  Object.fromEntries(
    readdirSync(dir)
      .sort()
      .map((f) => [f, readFileSync(join(dir, f)).toString('base64')]),
  );

async function initialised(t: ExecutionContext): Promise<string> {
  const run = await makeRunDir('pki');
  t.teardown(() => run.remove());
  const dir = join(run.path, 'pki');
  const first = await l2fed(['pki', 'init', '--dir', dir, '--client', 'alice']);
  t.is(first.exitCode, 0, first.stderr);
  return dir;
}

test('pki init - a client named like the CA or the server cert is refused; nothing is written', async (t) => {
  const dir = await initialised(t);
  const before = snapshot(dir);
  for (const name of ['ca', 'broker']) {
    for (const force of [[], ['--force']]) {
      const r = await l2fed(['pki', 'init', '--dir', dir, '--client', name, ...force]);
      t.is(r.exitCode, 1, `--client ${name} ${force.join(' ')}`);
      t.regex(
        r.stderr,
        new RegExp(
          `client name "${name}" collides with the (CA's|broker server certificate's) files.*choose another --client name`,
          's',
        ),
      );
    }
  }
  t.deepEqual(snapshot(dir), before, 'CA key, CA cert and every leaf are byte-identical');
});

test('pki init - in an existing folder issues only what is missing (a new client), keeping every existing file byte-identical', async (t) => {
  const dir = await initialised(t);
  const before = snapshot(dir);
  const again = await l2fed(['pki', 'init', '--dir', dir, '--client', 'alice', 'bob']);
  t.is(again.exitCode, 0, again.stderr);
  t.regex(again.stdout, /kept: +\S*broker\.crt .*--force/);
  t.regex(again.stdout, /kept: +\S*alice\.crt/);
  t.regex(again.stdout, /client: +\S*bob\.crt/);
  const after = snapshot(dir);
  // ca.srl is the CA's serial counter: signing bob advances it.
  for (const f of Object.keys(before).filter((f) => f !== 'ca.srl')) {
    t.is(after[f], before[f], `${f} kept byte-identical`);
  }
  t.truthy(after['bob.crt']);
  t.truthy(after['bob.key']);
  const verify = await execa(
    'openssl',
    ['verify', '-CAfile', join(dir, 'ca.crt'), join(dir, 'bob.crt')],
    {
      reject: false,
    },
  );
  t.is(verify.exitCode, 0, `bob's certificate is signed by the existing CA: ${verify.stderr}`);
  t.deepEqual(
    Object.keys(after)
      .filter((f) => !(f in before))
      .sort(),
    ['bob.crt', 'bob.key'],
    'no csr/ext left behind',
  );

  const dup = await l2fed(['pki', 'init', '--dir', dir, '--client', 'carol', 'carol', '--force']);
  t.is(dup.exitCode, 1);
  t.regex(dup.stderr, /client name "carol" is given twice/);
  t.deepEqual(snapshot(dir), after);

  const forced = await l2fed(['pki', 'init', '--dir', dir, '--client', 'alice', 'bob', '--force']);
  t.is(forced.exitCode, 0, forced.stderr);
  const reissued = snapshot(dir);
  t.is(reissued['ca.key'], before['ca.key'], 'the CA key survives --force');
  t.is(reissued['ca.crt'], before['ca.crt']);
  t.not(reissued['alice.key'], before['alice.key'], '--force re-issued alice');
  t.not(reissued['bob.key'], after['bob.key'], '--force re-issued bob');
});

test('pki init - half a leaf pair (a cert without its key) is refused before anything is written', async (t) => {
  const dir = await initialised(t);
  rmSync(join(dir, 'alice.key'));
  const before = snapshot(dir);
  const r = await l2fed(['pki', 'init', '--dir', dir, '--client', 'alice', 'bob']);
  t.is(r.exitCode, 1);
  t.regex(r.stderr, /alice\.crt exists but \S*alice\.key does not.*--force/s);
  t.deepEqual(snapshot(dir), before, 'nothing written, bob not issued');
});

test('pki init - half a CA (cert without key) is refused, not regenerated over', async (t) => {
  const dir = await initialised(t);
  const only = join(dir, 'only-cert');
  await l2fed(['pki', 'init', '--dir', only]);
  // Keep ca.crt but lose ca.key: regenerating would replace a CA others still trust.
  rmSync(join(only, 'ca.key'));
  const before = snapshot(only);
  const r = await l2fed(['pki', 'init', '--dir', only, '--force']);
  t.is(r.exitCode, 1);
  t.regex(
    r.stderr,
    /ca\.crt exists but \S*ca\.key does not: restore \S*ca\.key .*or move \S*ca\.crt away/s,
  );
  t.deepEqual(snapshot(only), before);
});

test('pki token - an existing token file is kept unless --force', async (t) => {
  const run = await makeRunDir('pki');
  t.teardown(() => run.remove());
  const file = join(run.path, 'admin.token');
  const first = await l2fed(['pki', 'token', file]);
  t.is(first.exitCode, 0, first.stderr);
  t.regex(first.stdout, /identity token:[0-9a-f]{12}/);
  const token = readFileSync(file, 'utf8');
  const again = await l2fed(['pki', 'token', file]);
  t.is(again.exitCode, 1);
  t.regex(again.stderr, /admin\.token already exists.*--force/s);
  t.is(readFileSync(file, 'utf8'), token);
  const forced = await l2fed(['pki', 'token', file, '--force']);
  t.is(forced.exitCode, 0, forced.stderr);
  t.not(readFileSync(file, 'utf8'), token);
});
