/**
 * Every command a user can copy from README.md, docs/ and deploy/ must exist as written:
 * each `l2fed …` line (in code blocks and inline code) is parsed by the real command
 * tree, with its real option checks, stopping right before the action runs; daemon
 * lines (`l2fed broker|gateway|agent VERB …`) by the daemon's own argument table;
 * `npm run X` must be a package script and `npx tsx FILE` an existing file. A renamed
 * flag or verb fails here, naming the file and the line, instead of in a user's shell.
 */
import test from 'ava';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseArgs } from 'node:util';
import type { Command } from 'commander';
import { CommanderError } from 'commander';
import { parse as shellParse } from 'shell-quote';
import { buildProgram } from './program.js';
import { COMMAND_LINE as BROKER } from '../broker/main.js';
import { COMMAND_LINE as GATEWAY } from '../gateway/main.js';
import { COMMAND_LINE as AGENT } from '../cluster-agent/main.js';
import type { DaemonCommandLine } from '../lib/command-line.js';

const ROOT = join(import.meta.dirname, '..');
const DAEMONS: Record<string, DaemonCommandLine> = {
  broker: BROKER,
  gateway: GATEWAY,
  agent: AGENT,
};

interface DocCommand {
  readonly where: string;
  readonly text: string;
  /**
   * Inline code in prose may name a command without its required arguments ("run
   * `l2fed validate` first"); it must still name real commands and options.
   */
  readonly excerpt?: boolean;
}

function markdownFiles(): string[] {
  const found = ['README.md'];
  for (const dir of ['docs', 'deploy']) {
    for (const f of readdirSync(join(ROOT, dir), { recursive: true, encoding: 'utf8' }))
      if (f.endsWith('.md')) found.push(join(dir, f));
  }
  return found.sort();
}

const COMMAND_START =
  /^(?:\$\s+)?(?:sudo\s+)?((?:l2fed|node bin\/l2fed\.js|npm run|npx tsx|tsx)\s.*)$/;

/** Command lines of one Markdown file: code blocks (joined continuations) and inline code. */
export function commandsIn(markdown: string, file: string): DocCommand[] {
  const out: DocCommand[] = [];
  const lines = markdown.split('\n');
  let fence = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^\s*```/.test(line)) {
      fence = !fence;
      continue;
    }
    if (fence) {
      let text = line.trim();
      const first = i;
      while (text.endsWith('\\') && i + 1 < lines.length)
        text = `${text.slice(0, -1)} ${lines[++i]!.trim()}`;
      const m = COMMAND_START.exec(text);
      if (m) out.push({ where: `${file}:${first + 1}`, text: m[1]! });
      continue;
    }
    for (const span of line.matchAll(/`([^`]+)`/g)) {
      const m = COMMAND_START.exec(span[1]!.trim());
      if (m) out.push({ where: `${file}:${i + 1}`, text: m[1]!, excerpt: true });
    }
  }
  return out;
}

/**
 * The argv a documented line stands for: shell words up to the first operator or
 * comment; usage notation made concrete (`[--force]` → `--force`, `a|b` → `a`,
 * `<id>` → `id`, `…` dropped).
 */
export function argvOf(text: string): string[] {
  const words: string[] = [];
  const concrete = text
    .replace(/\[([^\]]*)\]/g, ' $1 ')
    .replace(/<([^>]+)>/g, '$1')
    .replace(/…|\.\.\./g, ' ');
  for (const w of shellParse(concrete)) {
    if (typeof w !== 'string') break; // an operator (|, >, &&) or a comment ends the command
    // `a|b` inside one word (quoted alternatives) and `A|B` alternatives: take the first.
    words.push(w.split('|')[0]!);
  }
  return words.filter((w) => w !== '');
}

class ReachedAction extends Error {}

/** Parses `argv` (after `l2fed`) like the CLI would; throws a CommanderError on bad usage. */
async function parseLikeTheCli(argv: string[]): Promise<void> {
  const program = buildProgram();
  const quiet = (c: Command) => {
    c.exitOverride();
    c.configureOutput({ writeOut: () => {}, writeErr: () => {} });
    c.commands.forEach(quiet);
  };
  quiet(program);
  program.hook('preAction', (_root, action) => {
    const daemon = DAEMONS[action.name()];
    if (daemon) {
      const { positionals, values } = parseArgs({
        args: action.args,
        allowPositionals: true,
        strict: true,
        options: daemon.options,
      });
      if (!values.help && !daemon.verbs.includes(String(positionals[0])))
        throw new Error(`"${action.name()}" has no verb "${positionals[0]}"`);
    }
    throw new ReachedAction();
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    if (err instanceof ReachedAction) return;
    if (err instanceof CommanderError && /helpDisplayed|version$/.test(err.code)) return;
    throw err;
  }
}

const packageScripts = Object.keys(
  (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: object }).scripts,
);

async function check(c: DocCommand): Promise<string | undefined> {
  const argv = argvOf(c.text);
  try {
    if (argv[0] === 'npm') {
      return packageScripts.includes(argv[2]!) ? undefined : `no npm script "${argv[2]}"`;
    }
    if (argv[0] === 'npx' || argv[0] === 'tsx') {
      const file = argv[argv[0] === 'npx' ? 2 : 1]!;
      // scripts/ and bench/ are developer harnesses, run from a checkout.
      if (!/^(scripts|bench)\//.test(file))
        return `${file} is not in the image; document the l2fed command that runs it`;
      return existsSync(join(ROOT, file)) ? undefined : `no file ${file}`;
    }
    await parseLikeTheCli(argv[0] === 'node' ? argv.slice(2) : argv.slice(1));
    return undefined;
  } catch (err) {
    if (
      c.excerpt &&
      err instanceof CommanderError &&
      /missingArgument|optionMissingArgument|missingMandatoryOptionValue|commander\.help$/.test(
        err.code,
      )
    )
      return undefined;
    return (err as Error).message.trim();
  }
}

const documented = markdownFiles().flatMap((f) =>
  commandsIn(readFileSync(join(ROOT, f), 'utf8'), relative(ROOT, join(ROOT, f))),
);

test('doc commands - the docs hold the commands this test is about', (t) => {
  // A broken extractor would pass everything; these must be among the lines it finds.
  const texts = documented.map((c) => c.text);
  for (const must of ['l2fed status', 'l2fed lab down', 'npm run demo', 'l2fed broker gen-auth'])
    t.true(
      texts.some((x) => x.startsWith(must)),
      `no documented command starts with "${must}"`,
    );
  t.true(documented.length > 40, `${documented.length} commands found`);
});

test('doc commands - every documented command parses as written', async (t) => {
  const broken: string[] = [];
  for (const c of documented) {
    const why = await check(c);
    if (why) broken.push(`${c.where}: ${c.text}\n    → ${why}`);
  }
  t.deepEqual(broken, [], `documented commands that do not parse:\n${broken.join('\n')}`);
});

test('doc commands - the checker refuses what a user would trip on', async (t) => {
  const bad = [
    'l2fed statsu',
    'l2fed get clusters --no-such-flag',
    'l2fed cordon madrid --reasn x',
    'l2fed pki init --san x', // --dir is required
    'l2fed broker gen-auth --cluster a --out d', // the flag is --clusters
    'l2fed broker serve --config x',
    'l2fed gateway run --configg x',
    'npm run no-such-script',
    'npx tsx scripts/no-such-file.ts',
    'tsx broker/main.ts run --config broker.yaml', // not in the image
  ];
  for (const text of bad) t.truthy(await check({ where: 'test', text }), text);
  // In prose, a command may be named without its arguments, but never misspelt.
  t.is(await check({ where: 'test', text: 'l2fed validate', excerpt: true }), undefined);
  t.truthy(await check({ where: 'test', text: 'l2fed validat', excerpt: true }));
  t.truthy(await check({ where: 'test', text: 'l2fed validate', excerpt: false }));
  for (const text of [
    'l2fed evict <id> --force --reason "gateway replaced"',
    'l2fed lab up [--segment ovs|bridge] [--once]',
    'l2fed topology > fed.dot',
    'l2fed broker run --config broker.yaml --admin-listen 0.0.0.0:7443',
  ])
    t.is(await check({ where: 'test', text }), undefined, text);
});

test('doc commands - extraction: continuations, prompts, inline code, comments', (t) => {
  const md = [
    'Run `l2fed get clusters` or:',
    '```sh',
    '$ l2fed pki init --dir pki \\',
    '    --client alice   # comment',
    'echo not-a-command',
    '```',
  ].join('\n');
  t.deepEqual(commandsIn(md, 'x.md'), [
    { where: 'x.md:1', text: 'l2fed get clusters', excerpt: true },
    { where: 'x.md:3', text: 'l2fed pki init --dir pki  --client alice   # comment' },
  ]);
  t.deepEqual(argvOf('l2fed pki init --dir pki  --client alice   # comment'), [
    'l2fed',
    'pki',
    'init',
    '--dir',
    'pki',
    '--client',
    'alice',
  ]);
});
