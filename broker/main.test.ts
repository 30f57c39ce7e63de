/**
 * The broker's command line (broker/main.ts): flags that cannot work are refused with a
 * message naming them, before anything is written or any connection is made.
 */
import test from 'ava';
import { main } from './main.js';

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

test.serial('broker main - --help prints the usage of run and gen-auth', async (t) => {
  for (const argv of [['--help'], ['gen-auth', '--help'], ['run', '-h']]) {
    const out = await printed(argv);
    t.regex(out, /gen-auth --clusters/, argv.join(' '));
    t.regex(out, /--admin-listen/, argv.join(' '));
  }
});
