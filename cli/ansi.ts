/**
 * Plain ANSI colors, only when stdout is a terminal and NO_COLOR is unset (so pipes,
 * files and tests get plain text). No dependency: five colors are all we need.
 */
const CODES = { red: 31, green: 32, yellow: 33, blue: 34, gray: 90, bold: 1 } as const;
export type Color = keyof typeof CODES;

/** Whether to color output written to stdout. */
export function useColor(stream: NodeJS.WriteStream = process.stdout): boolean {
  return stream.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
}

/** Wraps text in a color when `on`. */
export function paint(text: string, color: Color, on = useColor()): string {
  return on ? `\u001b[${CODES[color]}m${text}\u001b[0m` : text;
}
