import { pino, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/**
 * One logger factory for every process. Logs go to stderr so that stdout stays free for program output
 * (the CLI streams module output there). LOG_LEVEL overrides the level; `silent` turns logging off.
 */
export function createLogger(name: string, options: LoggerOptions = {}): Logger {
  const level = process.env.LOG_LEVEL ?? options.level ?? 'info';
  return pino({ name, level, ...options }, pino.destination({ fd: 2, sync: false }));
}
