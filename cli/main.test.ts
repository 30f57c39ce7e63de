/**
 * The entry points as a user runs them (spawned processes, the TypeScript through tsx):
 * a closed stdout (`l2fed … | head`) ends the CLI quietly with exit 0, and --help of
 * every daemon prints its usage and exits 0.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `node --import=tsx <script> …args`; with closeStdout, our end of stdout is closed at once. */
function run(script: string, args: readonly string[], closeStdout = false): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import=tsx', script, ...args], {
      cwd: root,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    });
    let stdout = '';
    let stderr = '';
    // Node needs far longer to start than this takes: the CLI writes into a closed pipe.
    if (closeStdout) child.stdout.destroy();
    else child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

for (const args of [['completion', 'bash'], ['--help'], ['version']]) {
  test(`l2fed ${args.join(' ')} into a closed pipe: exit 0, nothing on stderr`, async (t) => {
    const r = await run('cli/main.ts', args, true);
    t.is(r.stderr, '');
    t.deepEqual([r.code, r.signal], [0, null]);
  });
}

const usages = [
  { script: 'cli/main.ts', args: ['gateway', '--help'], usage: /run --config FILE/ },
  { script: 'cli/main.ts', args: ['agent', '-h'], usage: /run --config FILE/ },
  { script: 'gateway/main.ts', args: ['--help'], usage: /rotate-key --address HOST:PORT/ },
  { script: 'gateway/main.ts', args: ['run', '--help'], usage: /run --config FILE/ },
  { script: 'cluster-agent/main.ts', args: ['--help'], usage: /run --config FILE/ },
  { script: 'cluster-agent/main.ts', args: ['run', '-h'], usage: /run --config FILE/ },
];
for (const { script, args, usage } of usages) {
  test(`${script} ${args.join(' ')}: usage on stdout, exit 0`, async (t) => {
    const r = await run(script, args);
    t.regex(r.stdout, usage);
    t.regex(r.stdout, /^usage:/im);
    t.is(r.stderr, '');
    t.is(r.code, 0);
  });
}
