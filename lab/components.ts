/**
 * How the lab starts l2fed's own daemons: one OS process per component, as they run in a
 * real cluster, through the same code this process runs — compiled dist/ when this runs
 * from dist/, the TypeScript sources (via tsx) when it runs from source — so a stale
 * build is never mixed with fresh sources.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(import.meta.url);
const FROM_SOURCE = HERE.endsWith('.ts');
// lab/ sits one level below the package root in source, two in dist/ (dist/lab).
const ROOT = FROM_SOURCE ? join(dirname(HERE), '..') : join(dirname(HERE), '..', '..');

/** argv that runs `l2fed <args…>` with the current Node, from any working directory. */
export function l2fedArgv(...args: string[]): string[] {
  // tsx by its resolved URL: a bare `--import tsx` is resolved from the child's cwd,
  // which fails outside the checkout.
  return FROM_SOURCE
    ? [
        process.execPath,
        '--import',
        import.meta.resolve('tsx'),
        join(ROOT, 'cli', 'main.ts'),
        ...args,
      ]
    : [process.execPath, join(ROOT, 'dist', 'cli', 'main.js'), ...args];
}
