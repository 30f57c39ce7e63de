/**
 * Output formats shared by the read commands: `-o table` (aligned columns for
 * humans), `-o json` (stable, machine-readable: the proto JSON mapping) and `-o yaml`.
 */
import { Option } from 'commander';
import { stringify as toYaml } from 'yaml';

export const FORMATS = ['table', 'json', 'yaml'] as const;
export type Format = (typeof FORMATS)[number];

/** The `-o, --output` option. */
export function outputOption(): Option {
  return new Option('-o, --output <format>', 'output format').choices(FORMATS).default('table');
}

/** Renders rows as left-aligned columns with a header; "-" for empty cells. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const cells = [header, ...rows.map((r) => r.map((c) => (c === '' ? '-' : c)))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
        .join('   ')
        .trimEnd(),
    )
    .join('\n');
}

/** Writes data (already in JSON form) as json or yaml; table output is the caller's. */
export function printData(format: Exclude<Format, 'table'>, data: unknown): void {
  process.stdout.write(format === 'json' ? JSON.stringify(data, null, 2) + '\n' : toYaml(data));
}

/** "12s", "3m", "2h", "5d" since an instant (for tables). */
export function age(d: Date | undefined, now = Date.now()): string {
  if (!d) return '';
  const s = Math.max(0, Math.round((now - d.getTime()) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

/**
 * A closed stdout (`l2fed … | head`) ends the process quietly with exit 0, as git and
 * kubectl do; any other stdout error is thrown as before.
 */
export function exitQuietlyWhenStdoutCloses(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}
