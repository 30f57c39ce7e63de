import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectionFrom } from './connection.js';

const dir = mkdtempSync(join(tmpdir(), 'l2fed-connection-test-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
const tokenFile = join(dir, 'token');
writeFileSync(tokenFile, `${'a'.repeat(64)}\n`);
const ca = join(dir, 'ca.crt');
writeFileSync(ca, 'not read by grpc here\n');

test('cli connection - refuses to send a bearer token in clear to a non-loopback address', async (t) => {
  for (const server of [
    '10.0.0.5:7443',
    'broker.l2fed.svc:7443',
    '[2001:db8::1]:7443',
    '0.0.0.0:7443',
  ]) {
    const err = await t.throwsAsync(connectionFrom({ server, tokenFile }));
    t.regex(
      err?.message ?? '',
      /refusing to send the bearer token from --token-file in clear to .* \(not a loopback address\).*--ca .*port-forward/s,
      server,
    );
    t.notRegex(err?.message ?? '', /a{64}/, 'the token itself is never printed');
  }
});

test('cli connection - a token goes in clear only to loopback, and over TLS anywhere', async (t) => {
  for (const server of ['127.0.0.1:7443', 'localhost:7443', '[::1]:7443', undefined]) {
    const c = await connectionFrom({ ...(server ? { server } : {}), tokenFile });
    t.is(c.token, 'a'.repeat(64));
  }
  const tls = await connectionFrom({ server: 'broker.l2fed.svc:7443', tokenFile, ca });
  t.is(tls.token, 'a'.repeat(64));
  t.truthy(tls.caCert);
});

test('cli connection - a file that cannot be read is named with its option', async (t) => {
  const missing = join(dir, 'missing.pem');
  for (const [flags, option] of [
    [{ ca: missing }, '--ca'],
    [{ ca, cert: missing, key: ca }, '--cert'],
    [{ ca, cert: ca, key: missing }, '--key'],
    [{ tokenFile: missing }, '--token-file'],
  ] as const) {
    const err = await t.throwsAsync(connectionFrom({ server: '127.0.0.1:7443', ...flags }));
    t.is(err?.message, `${option} ${missing}: no such file or directory`, JSON.stringify(flags));
  }
});
