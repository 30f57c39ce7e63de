/**
 * The supervisor's signal handling: a process that supervises children and has its own
 * SIGTERM handler (a daemon's graceful stop) gets to run it; one without such a handler
 * still exits on SIGTERM; in both cases no child survives.
 */
import test from 'ava';
import { execa } from 'execa';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeRunDir } from '../test/fixtures/run-dir.js';

const SUPERVISOR = new URL('./supervisor.ts', import.meta.url).pathname;

/** The State field of /proc/<pid>/status ('' when gone). */
function procState(pid: number): string {
  try {
    return /^State:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';
  } catch {
    return '';
  }
}

function script(graceful: boolean): string {
  return `
import { supervise } from ${JSON.stringify(SUPERVISOR)};
${
  graceful
    ? `process.once('SIGTERM', () => {
  setTimeout(() => { console.log('graceful stop done'); process.exit(0); }, 200);
});`
    : ''
}
const child = await supervise({ name: 'sleeper', argv: ['sleep', '30'] });
console.log('child ' + child.pid);
setInterval(() => undefined, 1 << 30);
`;
}

async function runAndTerm(t: { teardown(f: () => Promise<void>): void }, graceful: boolean) {
  const dir = await makeRunDir('supsig');
  t.teardown(() => dir.remove());
  const file = join(dir.path, 'main.mts');
  await writeFile(file, script(graceful));
  const proc = execa(process.execPath, ['--import=tsx', file], { reject: false, timeout: 20_000 });
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  const start = Date.now();
  while (!/child \d+/.test(out) && Date.now() - start < 15_000)
    await new Promise((r) => setTimeout(r, 50));
  const childPid = Number(/child (\d+)/.exec(out)?.[1]);
  proc.kill('SIGTERM');
  const r = await proc;
  // Killed children are reaped by init: give it a moment (bounded) before calling one alive.
  const exists = () => {
    try {
      process.kill(childPid, 0);
      return !/^Z/m.test(procState(childPid));
    } catch {
      return false;
    }
  };
  const deadline = Date.now() + 2000;
  while (exists() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const alive = exists();
  return { r, childPid, alive };
}

test('supervisor - a daemon with its own SIGTERM handler stops gracefully; children die', async (t) => {
  const { r, childPid, alive } = await runAndTerm(t, true);
  t.true(childPid > 0);
  t.regex(r.stdout, /graceful stop done/);
  t.is(r.exitCode, 0);
  t.false(alive, 'the supervised child is gone');
});

test('supervisor - without a handler of its own, SIGTERM still ends the process and its children', async (t) => {
  const { r, alive } = await runAndTerm(t, false);
  t.is(r.exitCode, 143);
  t.false(alive, 'the supervised child is gone');
});
