/**
 * The l2fed CLI entry point. The command tree is in program.ts; subcommands live in
 * files of their own.
 */
import { explainCliError } from './errors.js';
import { exitQuietlyWhenStdoutCloses } from './output.js';
import { buildProgram } from './program.js';
import { quietTlsIpServerNameWarning } from '../lib/warnings.js';

exitQuietlyWhenStdoutCloses();
// `--server 10.0.0.5:7443 --ca …` is a supported way to reach the broker (IP SAN).
quietTlsIpServerNameWarning();

buildProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    console.error(`l2fed: ${explainCliError(err)}`);
    process.exitCode = 1;
  });
