/**
 * A registry of fake sections for bench/run.test.ts (`--registry bench/run-fixture.ts`):
 * one that passes, one that throws, one that leaves a process and a temp dir behind, one
 * that outlives its budget and one that returns a malformed result.
 */
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchSection } from './result.js';
import { figure, stat } from './result.js';
import type { SectionEntry, SectionOptions } from './sections.js';

function section(id: string): BenchSection {
  return {
    id,
    title: `Fake ${id}`,
    method: 'Nothing measured.',
    figures: [
      figure({
        id: 'answer',
        label: 'the answer',
        stat: stat([41, 42, 43], 'ratio'),
        target: { op: '>=', value: 40 },
      }),
    ],
    charts: [],
    tookMs: 1,
  };
}

const entry = (
  id: string,
  run: (o: SectionOptions) => Promise<BenchSection>,
  budgetMs = 60_000,
): SectionEntry => ({ id, budgetMs, root: false, load: () => Promise.resolve({ run }) });

// A helper the runner's own process starts before any section runs and that ends with it,
// as tsx's esbuild service does: not a section's leftover.
const helper = spawn('sleep', ['301'], { stdio: ['pipe', 'ignore', 'ignore'] });
helper.unref();
process.once('exit', () => helper.kill('SIGKILL'));

export const SECTIONS: readonly SectionEntry[] = [
  entry('ok', (o) => Promise.resolve({ ...section('ok'), notes: [`budgetMs ${o.budgetMs}`] })),
  entry('throws', () => Promise.reject(new Error('broken on purpose'))),
  entry('leaves', async (o) => {
    spawn('sleep', ['300'], { stdio: 'ignore' }).unref();
    await mkdir(join(tmpdir(), `${o.prefix}-left`));
    return section('leaves');
  }),
  entry(
    'slow',
    async () => {
      await sleep(120_000);
      return section('slow');
    },
    3_000,
  ),
  entry('malformed', () =>
    Promise.resolve({ ...section('malformed'), tookMs: Number.NaN } as BenchSection),
  ),
];
