import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveAdmin, type AdminFileConfig, type AdminFlags } from './config.js';
import { BrokerConfigError } from '../errors.js';

// resolveAdmin reads the files it is given; their content does not matter here.
const dir = mkdtempSync(join(tmpdir(), 'l2fed-admin-config-test-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string, text = `${name}\n`) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const ca = file('ca.crt');
const cert = file('broker.crt');
const key = file('broker.key');
const tokens = file('tokens', `${'a'.repeat(40)}\n`);

const NOT_LOOPBACK = ['0.0.0.0:7443', '10.0.0.5:7443', '[::]:7443', ':7443', 'broker.example:7443'];
const LOOPBACK = ['127.0.0.1:0', '127.9.9.9:7443', 'localhost:7443', '[::1]:7443'];

async function refused(
  t: ExecutionContext,
  fileCfg: AdminFileConfig | undefined,
  flags: AdminFlags,
  message: RegExp,
): Promise<void> {
  const err = await t.throwsAsync(resolveAdmin(fileCfg, flags), { instanceOf: BrokerConfigError });
  t.regex(
    err?.message ?? '',
    message,
    `file ${JSON.stringify(fileCfg)} flags ${JSON.stringify(flags)}`,
  );
}

test('admin config - insecure mode is refused on a non-loopback address, with the fix', async (t) => {
  for (const listen of NOT_LOOPBACK) {
    await refused(
      t,
      undefined,
      { 'admin-listen': listen, 'insecure-admin': true },
      /--insecure-admin.*only on a loopback address.*--admin-listen 127\.0\.0\.1:7443.*--admin-ca/s,
    );
  }
  for (const listen of LOOPBACK) {
    const r = await resolveAdmin(undefined, { 'admin-listen': listen, 'insecure-admin': true });
    t.is(r?.auth.type, 'insecure', listen);
  }
});

test('admin config - a token without TLS is refused on a non-loopback address, accepted with TLS', async (t) => {
  for (const listen of NOT_LOOPBACK) {
    await refused(
      t,
      { listen, tokenFile: tokens },
      {},
      /bearer tokens in clear.*add --admin-cert and --admin-key.*or listen on 127\.0\.0\.1/s,
    );
    const tls = await resolveAdmin({ listen, tokenFile: tokens, cert, key }, {});
    t.is(tls?.auth.type, 'token');
    t.truthy(tls?.auth.type === 'token' && tls.auth.tls);
  }
  for (const listen of LOOPBACK) {
    const r = await resolveAdmin({ listen, tokenFile: tokens }, {});
    t.is(r?.auth.type, 'token', listen);
  }
});

test('admin config - token file plus --admin-ca (mTLS) is refused naming both options', async (t) => {
  await refused(
    t,
    undefined,
    {
      'admin-listen': '0.0.0.0:7443',
      'admin-token-file': tokens,
      'admin-ca': ca,
      'admin-cert': cert,
      'admin-key': key,
    },
    /--admin-token-file \(admin\.tokenFile\) and --admin-ca \(admin\.ca\).*drop --admin-ca.*drop --admin-token-file/s,
  );
  // The same when the file asks for mTLS and a flag adds a token.
  await refused(
    t,
    { listen: '0.0.0.0:7443', ca, cert, key },
    { 'admin-token-file': tokens },
    /--admin-token-file \(admin\.tokenFile\) and --admin-ca \(admin\.ca\)/,
  );
});

test('admin config - a token with half a server TLS pair is refused, not served in clear', async (t) => {
  await refused(
    t,
    { listen: '127.0.0.1:7443', tokenFile: tokens, cert },
    {},
    /--admin-cert \(admin\.cert\) needs --admin-key \(admin\.key\)/,
  );
  await refused(
    t,
    { listen: '127.0.0.1:7443', tokenFile: tokens, key },
    {},
    /--admin-key \(admin\.key\) needs --admin-cert \(admin\.cert\)/,
  );
});

test('admin config - insecure together with any credential option is refused naming both', async (t) => {
  for (const [opt, extra] of [
    ['--admin-token-file', { tokenFile: tokens }],
    ['--admin-ca', { ca, cert, key }],
    ['--admin-cert', { cert, key }],
  ] as const) {
    await refused(
      t,
      { listen: '127.0.0.1:7443', insecure: true, ...extra },
      {},
      new RegExp(`--insecure-admin \\(admin\\.insecure\\) and ${opt} .*conflict`),
    );
  }
});

test('admin config - mTLS on any address, and writers are checked against the auth mode', async (t) => {
  const r = await resolveAdmin(
    { listen: '0.0.0.0:7443', ca, cert, key, writers: ['cn:alice', 'cn:ci'] },
    {},
  );
  t.is(r?.auth.type, 'mtls');
  t.deepEqual(r?.writers, ['cn:alice', 'cn:ci']);
  await refused(
    t,
    { listen: '0.0.0.0:7443', ca, cert, key },
    { 'admin-writers': 'alice' },
    /--admin-writers \(admin\.writers\) entry "alice".*"cn:<certificate CN>"/s,
  );
  await refused(
    t,
    { listen: '127.0.0.1:7443', tokenFile: tokens, writers: ['cn:alice'] },
    {},
    /entry "cn:alice" can never match: the admin API uses token auth.*"token:<id>"/s,
  );
  const tok = await resolveAdmin(
    { listen: '127.0.0.1:7443', tokenFile: tokens, writers: ['token:0123456789ab'] },
    {},
  );
  t.deepEqual(tok?.writers, ['token:0123456789ab']);
});

test('admin config - nothing configured is off; a listen address alone is refused', async (t) => {
  t.is(await resolveAdmin(undefined, {}), undefined);
  await refused(
    t,
    undefined,
    { 'admin-listen': '127.0.0.1:0' },
    /admin API on 127\.0\.0\.1:0 has no authentication configured: give --admin-ca/,
  );
});

test('admin config - no auth on a non-loopback address: the hint offers only what works there', async (t) => {
  const err = await t.throwsAsync(resolveAdmin(undefined, { 'admin-listen': '0.0.0.0:7443' }), {
    instanceOf: BrokerConfigError,
  });
  t.regex(err.message, /--admin-token-file with --admin-cert and --admin-key/);
  // Both would be refused on 0.0.0.0: insecure mode, and a token without TLS.
  t.notRegex(err.message, /or --insecure-admin/);
  t.notRegex(err.message, /--admin-token-file \(bearer token/);
});
