import { pino, type Logger } from 'pino';

/**
 * The process logger: JSON lines on stderr (stdout stays free for command output).
 * LOG_LEVEL overrides the level; components get child loggers with `component`.
 */
export function createLogger(component: string, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({ level, base: { component } }, pino.destination(2));
}

export type { Logger };
