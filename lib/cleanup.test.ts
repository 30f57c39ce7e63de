import test from 'ava';
import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { processExited } from './cleanup.js';

test('cleanup - a process counts as exited when gone or a zombie, not while it runs', async (t) => {
  // The shell starts `true` in the background and execs into sleep, which never reaps it:
  // `true` stays a zombie of the sleep.
  const parent = spawn('sh', ['-c', 'true & echo $!; exec sleep 30'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  t.teardown(() => parent.kill('SIGKILL'));
  const zombie = await new Promise<number>((resolve) =>
    parent.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))),
  );
  await sleep(200);
  t.false(await processExited(parent.pid!), 'sleep runs');
  t.true(await processExited(zombie), 'the unreaped child is a zombie');
  t.true(await processExited(2 ** 22 + 1), 'no such pid');
});
