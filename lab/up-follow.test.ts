/**
 * `lab up` waits for the runner while it makes progress: a 32-cluster lab starts 64
 * daemons one after another, which on a loaded 2-core machine takes longer than a fixed
 * overall timeout, though every start goes well (issue 18).
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { followRunner } from './up.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function labDir(t: ExecutionContext) {
  const dir = await mkdtemp(join(tmpdir(), 'l2fed-follow-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  process.env.L2FED_LAB_DIR = dir;
  const state = (phase: string, progress: string[]) =>
    writeFile(
      join(dir, 'state.json'),
      JSON.stringify({
        phase,
        runnerPid: process.pid,
        planId: 'x',
        segmentKind: 'bridge',
        clusters: [],
        progress,
      }),
    );
  return { dir, state };
}

test.serial(
  'lab up - the wait for the runner ends on a stall, not while it makes progress',
  async (t) => {
    const { state } = await labDir(t);
    const lines: string[] = [];
    await state('starting', []);
    // Progress every 50 ms for 1.5 s, then ready: 1.5× the 1 s timeout in all, with each
    // step 20× inside it (a CI run on a loaded machine stalled this process past a 300 ms
    // timeout with 100 ms steps).
    const writer = (async () => {
      const progress: string[] = [];
      for (let i = 0; i < 30; i++) {
        await sleep(50);
        progress.push(`cluster c${i}: started`);
        await state('starting', progress);
      }
      await state('ready', [...progress, 'lab is up']);
    })();
    const st = await followRunner(
      1000,
      (l) => lines.push(l),
      () => undefined,
    ).finally(() => writer.catch(() => undefined));
    await writer;
    t.is(st.phase, 'ready');
    t.is(lines.length, 31);
  },
);

test.serial(
  'lab up - a runner that stops making progress fails after the timeout, saying so',
  async (t) => {
    const { state } = await labDir(t);
    await state('starting', ['plan: 2 clusters']);
    const started = Date.now();
    const err = await t.throwsAsync(
      followRunner(
        300,
        () => undefined,
        () => undefined,
      ),
    );
    t.regex(err.message, /no progress for 0\.3 s/);
    t.true(Date.now() - started < 2000);
  },
);
