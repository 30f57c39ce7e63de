/** The command line of a daemon (`l2fed broker|gateway|agent VERB --flags`), as data. */
import type { ParseArgsConfig } from 'node:util';

export interface DaemonCommandLine {
  /** The first positional argument. */
  readonly verbs: readonly string[];
  /** node:util parseArgs options. */
  readonly options: NonNullable<ParseArgsConfig['options']>;
}
