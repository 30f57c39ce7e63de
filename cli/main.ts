/**
 * The l2fed CLI entry point. The command tree is in program.ts; subcommands live in
 * files of their own.
 */
import { explainCliError } from './errors.js';
import { exitQuietlyWhenStdoutCloses } from './output.js';
import { buildProgram } from './program.js';

exitQuietlyWhenStdoutCloses();

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    console.error(`l2fed: ${explainCliError(err)}`);
    process.exitCode = 1;
  });
