import test from 'ava';
import { CommandError } from './errors.js';
import { ExecaRunner, RecordingRunner } from './runner.js';
import { FakeRunner } from './runner-fake.js';

test('runner - real command returns stdout with LC_ALL=C', async (t) => {
  const r = await new ExecaRunner().run(['sh', '-c', 'echo "$LC_ALL"; echo out']);
  t.is(r.stdout, 'C\nout');
  t.is(r.exitCode, 0);
});

test('runner - failure becomes CommandError with argv, exit code and stderr', async (t) => {
  const err = await t.throwsAsync(new ExecaRunner().run(['sh', '-c', 'echo boom >&2; exit 3']), {
    instanceOf: CommandError,
  });
  t.deepEqual(err?.argv, ['sh', '-c', 'echo boom >&2; exit 3']);
  t.is(err?.exitCode, 3);
  t.is(err?.stderr, 'boom');
  t.false(err?.timedOut);
  t.regex(err?.message ?? '', /exited with 3: boom/);
});

test('runner - allowFailure returns the failed result', async (t) => {
  const r = await new ExecaRunner().run(['sh', '-c', 'exit 4'], { allowFailure: true });
  t.is(r.exitCode, 4);
});

test('runner - timeout is reported as timedOut', async (t) => {
  const err = await t.throwsAsync(new ExecaRunner().run(['sleep', '5'], { timeoutMs: 100 }), {
    instanceOf: CommandError,
  });
  t.true(err?.timedOut);
  t.regex(err?.message ?? '', /timed out/);
});

test('runner - missing binary is a CommandError that could not start', async (t) => {
  const err = await t.throwsAsync(new ExecaRunner().run(['l2fed-no-such-binary']), {
    instanceOf: CommandError,
  });
  t.regex(err?.message ?? '', /l2fed-no-such-binary/);
});

test('runner - args are never interpreted by a shell', async (t) => {
  const r = await new ExecaRunner().run(['echo', '$(id); rm -rf /tmp/x']);
  t.is(r.stdout, '$(id); rm -rf /tmp/x');
});

test('recording runner - separates mutating calls from reads', async (t) => {
  const fake = new FakeRunner().on(() => true, { stdout: '' });
  const rec = new RecordingRunner(fake);
  await rec.run(['ip', 'link', 'show']);
  await rec.run(['ip', 'link', 'add', 'x', 'type', 'dummy'], { mutates: true });
  t.deepEqual(rec.mutatingCommands(), ['ip link add x type dummy']);
  t.is(rec.calls.length, 2);
});

test('fake runner - rejects unexpected commands and honours one-shot errors', async (t) => {
  const fake = new FakeRunner()
    .on('wg show l2f0 dump', { stdout: 'x' })
    .once('wg show l2f0 dump', { exitCode: 1, stderr: 'injected' });
  await t.throwsAsync(fake.run(['wg', 'show', 'l2f0', 'dump']), { message: /injected/ });
  t.is((await fake.run(['wg', 'show', 'l2f0', 'dump'])).stdout, 'x');
  await t.throwsAsync(fake.run(['ip', 'link']), { message: /unexpected command: ip link/ });
});
