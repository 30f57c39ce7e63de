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
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { Command } from 'commander';
import { CommanderError } from 'commander';
import { buildProgram } from './program.js';
import { COMMAND_LINE as BROKER } from '../broker/main.js';
import { COMMAND_LINE as GATEWAY } from '../gateway/main.js';
import { COMMAND_LINE as AGENT } from '../cluster-agent/main.js';
import type { DaemonCommandLine } from '../lib/command-line.js';
import {
  argvOf,
  commandsIn,
  docKey,
  documentedCommands,
  ROOT,
  type DocCommand,
} from '../test/fixtures/doc-commands.js';
import { classOf, DOC_COMMAND_CLASSES } from '../test/fixtures/doc-command-classes.js';

const DAEMONS: Record<string, DaemonCommandLine> = {
  broker: BROKER,
  gateway: GATEWAY,
  agent: AGENT,
};

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

/** Does `pattern` (a path, `*` within one name) name an existing file or folder? */
function pathExists(pattern: string): boolean {
  if (!pattern.includes('*')) return existsSync(join(ROOT, pattern));
  const dir = pattern.slice(0, pattern.lastIndexOf('/') + 1);
  const name = new RegExp(
    `^${pattern
      .slice(dir.length)
      .replace(/[.+?^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '[^/]*')}$`,
  );
  return existsSync(join(ROOT, dir)) && readdirSync(join(ROOT, dir)).some((f) => name.test(f));
}

/** l2fed commands inside another tool's line: `$(l2fed …)`, `<(l2fed …)`, `exec … -- l2fed …`. */
const EMBEDDED = /(?:\$\(|<\(|--\s+)((?:l2fed|node bin\/l2fed\.js)\s[^)]*)/g;

async function check(c: DocCommand): Promise<string | undefined> {
  const argv = argvOf(c.text);
  try {
    if (['kubectl', 'grpcurl', 'source', 'export'].includes(argv[0]!)) {
      // Not ours to parse; the l2fed commands inside are.
      for (const m of c.text.matchAll(EMBEDDED)) {
        const why = await check({ where: c.where, text: m[1]!.trim(), excerpt: true });
        if (why) return why;
      }
      return undefined;
    }
    if (argv[0] === 'npm') {
      const script = argv[1] === 'test' ? 'test' : argv[2]!;
      return packageScripts.includes(script) ? undefined : `no npm script "${script}"`;
    }
    if (argv[0] === 'bash')
      return existsSync(join(ROOT, argv[1]!)) ? undefined : `no file ${argv[1]}`;
    if (argv[0] === 'npx' && argv[1] === 'ava') {
      const missing = argv.slice(2).filter((a) => !a.startsWith('-') && !pathExists(a));
      return missing.length ? `no test file or folder ${missing.join(', ')}` : undefined;
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

const documented = documentedCommands();

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

test('doc commands - extraction: inline code wrapped onto the next line, tools around l2fed', async (t) => {
  const md = [
    'First `l2fed broker gen-auth',
    '--add-clusters oslo --out auth`, then',
    '',
    '```sh',
    'kubectl --kubeconfig "$(l2fed lab kubeconfig madrid)" get fednet',
    'source <(l2fed completion bash)',
    '```',
  ].join('\n');
  t.deepEqual(commandsIn(md, 'x.md'), [
    {
      where: 'x.md:1',
      text: 'l2fed broker gen-auth --add-clusters oslo --out auth',
      excerpt: true,
    },
    { where: 'x.md:5', text: 'kubectl --kubeconfig "$(l2fed lab kubeconfig madrid)" get fednet' },
    { where: 'x.md:6', text: 'source <(l2fed completion bash)' },
  ]);
  // The l2fed command inside another tool's line is parsed too.
  t.is(
    await check({
      where: 'x',
      text: 'kubectl --kubeconfig "$(l2fed lab kubeconfig madrid)" get fednet',
    }),
    undefined,
  );
  t.truthy(
    await check({
      where: 'x',
      text: 'kubectl --kubeconfig "$(l2fed lab kubeconfg madrid)" get fednet',
    }),
  );
  t.truthy(await check({ where: 'x', text: 'source <(l2fed completon bash)' }));
  t.truthy(await check({ where: 'x', text: 'npx ava test/integration/no-such.test.ts' }));
  t.is(await check({ where: 'x', text: 'npx ava test/integration/lab-*.test.ts' }), undefined);
  t.is(docKey('l2fed status   # tables  and more'), 'l2fed status');
});

test('doc commands - every documented command is classified (test/fixtures/doc-command-classes.ts)', (t) => {
  const unclassified = documented
    .filter((c) => classOf(docKey(c.text)) === undefined)
    .map((c) => `${c.where}: ${docKey(c.text)}`);
  t.deepEqual(
    unclassified,
    [],
    `documented commands with no class: add each to DOC_COMMAND_CLASSES in ` +
      `test/fixtures/doc-command-classes.ts (runs against the lab, offline, or why not), ` +
      `so test/integration/doc-commands-lab.test.ts runs it:\n${unclassified.join('\n')}`,
  );
  const keys = new Set(documented.map((c) => docKey(c.text)));
  const stale = DOC_COMMAND_CLASSES.filter((e) => !keys.has(e.doc)).map((e) => e.doc);
  t.deepEqual(stale, [], 'entries no doc holds any more: remove them or fix their text');
  const dup = DOC_COMMAND_CLASSES.filter(
    (e, i) => DOC_COMMAND_CLASSES.findIndex((x) => x.doc === e.doc) !== i,
  ).map((e) => e.doc);
  t.deepEqual(dup, [], 'entries given twice');
  for (const e of DOC_COMMAND_CLASSES) {
    if (e.is.class !== 'excerpt') continue;
    const covered = classOf(e.is.covered);
    t.true(
      covered !== undefined &&
        !['excerpt', 'daemon', 'real-cluster', 'own-lab', 'dev', 'not-here'].includes(
          covered.class,
        ),
      `"${e.doc}" is covered by "${e.is.covered}", which must be an entry that runs`,
    );
  }
  t.is(DOC_COMMAND_CLASSES.filter((e) => e.is.class === 'lab-up' && e.is.start).length, 1);
  t.is(
    classOf('l2fed some-new-verb --flag'),
    undefined,
    'a new command has no class until given one',
  );
});
