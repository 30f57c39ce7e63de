import test, { type ExecutionContext } from 'ava';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeRunner } from '../lib/runner-fake.js';
import { KeyFileError } from './errors.js';
import { ensurePrivateKey } from './keys.js';

const PRIV = 'cLQ4P5JQ6UT3MtnA1w6/ZbP1/bWV3pN0ul5IwRUl3Eg=';
const PUB = 'U9uE2cVR2J5ZkTJxpE0r0Y4jPSVbH8Q5YkNnx2XqkCc=';

async function tmp(t: ExecutionContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

const runner = () =>
  new FakeRunner().on('wg genkey', { stdout: PRIV }).on('wg pubkey', { stdout: PUB });

test('keys - generated once with mode 0600, then reused', async (t) => {
  const file = join(await tmp(t), 'sub', 'wg.key');
  const r = runner();
  const first = await ensurePrivateKey(r, file);
  t.true(first.generated);
  t.is(first.publicKey, PUB);
  t.is((await stat(file)).mode & 0o777, 0o600);
  t.is((await readFile(file, 'utf8')).trim(), PRIV);
  const second = await ensurePrivateKey(r, file);
  t.false(second.generated);
  t.is(r.calls.filter((c) => c.argv.join(' ') === 'wg genkey').length, 1);
  // The private key goes to `wg pubkey` on stdin only, never in argv.
  t.false(r.calls.some((c) => c.argv.includes(PRIV)));
});

test('keys - a world-readable key file is refused', async (t) => {
  const file = join(await tmp(t), 'wg.key');
  await writeFile(file, PRIV);
  await chmod(file, 0o644);
  await t.throwsAsync(ensurePrivateKey(runner(), file), {
    instanceOf: KeyFileError,
    message: /chmod 600/,
  });
});

test('keys - garbage in the key file is refused', async (t) => {
  const file = join(await tmp(t), 'wg.key');
  await writeFile(file, 'hello', { mode: 0o600 });
  await t.throwsAsync(ensurePrivateKey(runner(), file), { instanceOf: KeyFileError });
});
