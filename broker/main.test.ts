/**
 * The broker's command line (broker/main.ts): flags that cannot work are refused with a
 * message naming them, before anything is written or any connection is made.
 */
import test from 'ava';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from './main.js';

async function scratch(t: { teardown(fn: () => Promise<void>): void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-broker-main-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs main with console.log captured; returns what it printed. */
async function printed(argv: string[]): Promise<string> {
  const lines: string[] = [];
  const log = console.log;
  console.log = (...a: unknown[]) => void lines.push(a.join(' '));
  try {
    await main(argv);
  } finally {
    console.log = log;
  }
  return lines.join('\n');
}

// Serial: these tests set L2FED_NATS_URL and replace console.log.
test.serial('broker main - run refuses an admin setting before it connects to NATS', async (t) => {
  // Nothing listens on port 1: were NATS dialled first, its refusal would hide ours.
  process.env.L2FED_NATS_URL = 'nats://127.0.0.1:1';
  t.teardown(() => delete process.env.L2FED_NATS_URL);
  const err = await t.throwsAsync(
    main(['run', '--admin-listen', '0.0.0.0:7443', '--insecure-admin']),
  );
  t.regex(err.message, /--insecure-admin .*only on a loopback address/);
});

test.serial(
  'broker main - run refuses a bad metrics address before it connects to NATS',
  async (t) => {
    process.env.L2FED_NATS_URL = 'nats://127.0.0.1:1';
    t.teardown(() => delete process.env.L2FED_NATS_URL);
    const flag = await t.throwsAsync(main(['run', '--metrics-listen', '9466']));
    t.regex(flag.message, /--metrics-listen "9466" is not HOST:PORT/);
    const dir = await scratch(t);
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(dir, 'broker.yaml'), 'metrics: { listen: "127.0.0.1:99999" }\n');
    const file = await t.throwsAsync(main(['run', '--config', join(dir, 'broker.yaml')]));
    t.regex(file.message, /metrics\.listen "127\.0\.0\.1:99999" is not HOST:PORT/);
    await writeFile(join(dir, 'broker.yaml'), 'metrics: { port: 9466 }\n');
    const unknown = await t.throwsAsync(main(['run', '--config', join(dir, 'broker.yaml')]));
    t.regex(unknown.message, /metrics/);
  },
);

test.serial('broker main - --help prints the usage of run and gen-auth', async (t) => {
  for (const argv of [['--help'], ['gen-auth', '--help'], ['run', '-h']]) {
    const out = await printed(argv);
    t.regex(out, /gen-auth --clusters/, argv.join(' '));
    t.regex(out, /--admin-listen/, argv.join(' '));
  }
});

test.serial('broker main - gen-auth refuses half a TLS pair and writes nothing', async (t) => {
  const dir = await scratch(t);
  const out = join(dir, 'auth');
  for (const [flag, other] of [
    ['--tls-cert', '--tls-key'],
    ['--tls-key', '--tls-cert'],
  ] as const) {
    const err = await t.throwsAsync(
      main(['gen-auth', '--clusters', 'a,b', '--out', out, flag, join(dir, 'x.pem')]),
    );
    t.regex(err.message, new RegExp(`${flag} needs ${other}`));
  }
  const err = await t.throwsAsync(
    main(['gen-auth', '--clusters', 'a', '--out', out, '--tls-ca', join(dir, 'ca.pem')]),
  );
  t.regex(err.message, /--tls-ca and --tls-verify need --tls-cert and --tls-key/);
  t.deepEqual(await readdir(dir), [], 'nothing written');
});

test.serial('broker main - gen-auth refuses an unknown --mode and writes nothing', async (t) => {
  const dir = await scratch(t);
  const err = await t.throwsAsync(
    main(['gen-auth', '--clusters', 'a', '--out', join(dir, 'auth'), '--mode', 'pasword']),
  );
  t.regex(err.message, /--mode must be nkey or password \(got "pasword"\)/);
  t.deepEqual(await readdir(dir), [], 'nothing written');
});

test.serial(
  'broker main - run names the NATS servers it cannot reach and where they come from',
  async (t) => {
    process.env.L2FED_NATS_URL = 'nats://127.0.0.1:1';
    t.teardown(() => delete process.env.L2FED_NATS_URL);
    const err = await t.throwsAsync(main(['run']));
    t.regex(err.message, /cannot reach NATS at nats:\/\/127\.0\.0\.1:1 \(L2FED_NATS_URL\)/);
    t.regex(err.message, /connection refused/);
  },
);

test.serial(
  'broker main - gen-auth refuses to replace existing credentials without --force, naming them',
  async (t) => {
    const dir = await scratch(t);
    const out = join(dir, 'auth');
    await printed(['gen-auth', '--clusters', 'a,b', '--out', out]);
    const files = [
      'nats-auth.conf',
      'broker.creds.json',
      'clusters/a.creds.json',
      'clusters/b.creds.json',
    ];
    const before = await Promise.all(files.map((f) => readFile(join(out, f), 'utf8')));
    // One file of the new set exists (c is new): still refused, and the message names it.
    const err = await t.throwsAsync(main(['gen-auth', '--clusters', 'b,c', '--out', out]));
    t.regex(err.message, /already exist/);
    for (const f of ['nats-auth.conf', 'broker.creds.json', 'clusters/b.creds.json'])
      t.true(err.message.includes(join(out, f)), `names ${f}: ${err.message}`);
    t.false(err.message.includes('c.creds.json'), 'does not name a file that does not exist');
    t.regex(err.message, /--force/);
    t.regex(err.message, /every cluster/);
    t.deepEqual(
      await Promise.all(files.map((f) => readFile(join(out, f), 'utf8'))),
      before,
      'nothing replaced',
    );
    t.deepEqual((await readdir(join(out, 'clusters'))).sort(), ['a.creds.json', 'b.creds.json']);
    // --force replaces them.
    await printed(['gen-auth', '--clusters', 'a,b', '--out', out, '--force']);
    t.notDeepEqual(await readFile(join(out, 'broker.creds.json'), 'utf8'), before[1]);
  },
);

test.serial(
  'broker main - gen-auth edits: usage errors write nothing; --force drops clusters no longer listed',
  async (t) => {
    const dir = await scratch(t);
    const out = join(dir, 'auth');
    const none = await t.throwsAsync(main(['gen-auth', '--add-clusters', 'c', '--out', out]));
    t.regex(none.message, /cannot read .*nats-auth\.conf.*run that first/);
    await printed([
      'gen-auth',
      '--clusters',
      'a,b',
      '--out',
      out,
      '--tls-cert',
      '/t/c.pem',
      '--tls-key',
      '/t/k.pem',
    ]);
    const conf = await readFile(join(out, 'nats-auth.conf'), 'utf8');
    for (const argv of [
      ['--clusters', 'a', '--add-clusters', 'c'],
      ['--add-clusters', 'c', '--mode', 'password'],
      ['--add-clusters', 'c', '--force'],
      ['--add-clusters', 'Bad_Id'],
      ['--remove-clusters', 'zz'],
      ['--add-clusters', ''],
    ]) {
      await t.throwsAsync(main(['gen-auth', ...argv, '--out', out]), undefined, argv.join(' '));
      t.is(await readFile(join(out, 'nats-auth.conf'), 'utf8'), conf, argv.join(' '));
    }
    t.deepEqual((await readdir(join(out, 'clusters'))).sort(), ['a.creds.json', 'b.creds.json']);
    // An edit keeps the TLS block it did not get flags for.
    await printed(['gen-auth', '--add-clusters', 'c', '--out', out]);
    t.regex(await readFile(join(out, 'nats-auth.conf'), 'utf8'), /"cert_file": "\/t\/c\.pem"/);
    // A full regeneration with fewer clusters leaves no stale credential file behind.
    await printed(['gen-auth', '--clusters', 'a', '--out', out, '--force']);
    t.deepEqual(await readdir(join(out, 'clusters')), ['a.creds.json']);
  },
);
