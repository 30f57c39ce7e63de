/**
 * A scripted CommandRunner for unit tests. Each expected command is matched by its
 * exact argv (joined by spaces) or a predicate; an unexpected command fails the call,
 * so a test notices any command it did not plan for.
 */
import { CommandError } from './errors.js';
import type { CommandRunner, RecordedCall, RunOptions, RunResult } from './runner.js';

export type FakeReply =
  | { readonly stdout?: string; readonly stderr?: string; readonly exitCode?: number }
  | ((
      argv: readonly string[],
      options: RunOptions,
    ) => {
      stdout?: string;
      stderr?: string;
      exitCode?: number;
    });

interface Rule {
  readonly match: (argv: readonly string[]) => boolean;
  readonly reply: FakeReply;
  once: boolean;
  used: boolean;
}

export class FakeRunner implements CommandRunner {
  readonly calls: RecordedCall[] = [];
  private readonly rules: Rule[] = [];

  /** Answer commands matching `match` (exact argv string, or predicate). */
  on(match: string | ((argv: readonly string[]) => boolean), reply: FakeReply = {}): this {
    const m = typeof match === 'string' ? (a: readonly string[]) => a.join(' ') === match : match;
    this.rules.push({ match: m, reply, once: false, used: false });
    return this;
  }

  /** Like `on`, but only for the next matching call (one-shot error injection). */
  once(match: string | ((argv: readonly string[]) => boolean), reply: FakeReply): this {
    const m = typeof match === 'string' ? (a: readonly string[]) => a.join(' ') === match : match;
    this.rules.unshift({ match: m, reply, once: true, used: false });
    return this;
  }

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    this.calls.push({ argv: [...argv], netns: options.netns, mutates: options.mutates ?? false });
    const rule = this.rules.find((r) => !(r.once && r.used) && r.match(argv));
    if (!rule) {
      return Promise.reject(
        new CommandError(argv, 127, `FakeRunner: unexpected command: ${argv.join(' ')}`, false),
      );
    }
    rule.used = true;
    const r = typeof rule.reply === 'function' ? rule.reply(argv, options) : rule.reply;
    const result = {
      argv,
      stdout: r.stdout ?? '',
      stderr: r.stderr ?? '',
      exitCode: r.exitCode ?? 0,
    };
    if (result.exitCode !== 0 && !options.allowFailure) {
      return Promise.reject(new CommandError(argv, result.exitCode, result.stderr, false));
    }
    return Promise.resolve(result);
  }

  mutatingCommands(): string[] {
    return this.calls.filter((c) => c.mutates).map((c) => c.argv.join(' '));
  }
}
