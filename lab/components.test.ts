import test from 'ava';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { l2fedArgv } from './components.js';

test('l2fedArgv runs l2fed from any working directory (lab up from a folder outside the checkout)', (t) => {
  // The lab runner and `l2fed status` are started with this argv in the user's cwd; a
  // bare `--import tsx` would be resolved there and fail outside the checkout.
  const [cmd, ...args] = l2fedArgv('--version');
  const out = execFileSync(cmd!, args, { cwd: tmpdir(), encoding: 'utf8', timeout: 30_000 });
  t.regex(out, /^\d+\.\d+\.\d+$/m);
});
