/**
 * JSON logs with winston. Every line goes through redact(), so a secret that slips into a
 * message or a field is masked before it is written (design.md habit 8).
 *
 * A disabled level costs nothing: winston runs the format (our redaction, a deep copy of the
 * metadata) before its transports drop a line below the level, so `logger.debug(...)` on the hot
 * path would redact and copy for nothing. The level methods and the format ask first.
 */
import winston from 'winston';
import { redact, redactText } from './redact';

export type Logger = winston.Logger;

const LEVELS: string[] = Object.keys(winston.config.npm.levels);
const LEVEL = Symbol.for('level');

const redactFormat = winston.format((info, opts: unknown) => {
  // `logger.log(level, …)` and `logger.write(info)` come here without the level methods' check.
  const enabled = (opts as { enabled?: (level: string) => boolean } | undefined)?.enabled;
  if (enabled && !enabled(String((info as any)[LEVEL] ?? info.level))) return false;
  const out = redact({ ...info }) as winston.Logform.TransformableInfo;
  if (typeof info.message === 'string') out.message = redactText(info.message);
  // winston keeps its level/message symbols on the original object.
  for (const sym of Object.getOwnPropertySymbols(info)) (out as any)[sym] = (info as any)[sym];
  return out;
});

export function createLogger(opts: { level?: string; silent?: boolean; stream?: NodeJS.WritableStream } = {}): Logger {
  const transport = opts.stream
    ? new winston.transports.Stream({ stream: opts.stream })
    : new winston.transports.Console({ stderrLevels: ['error', 'warn'] });
  let logger: Logger;
  // Asked per call, not cached: `logger.level` and `logger.silent` may change at run time. Both
  // are a few property reads.
  const enabled = (level: string) => !logger.silent && logger.isLevelEnabled(level);
  logger = winston.createLogger({
    level: opts.level ?? 'info',
    silent: opts.silent,
    format: winston.format.combine(redactFormat({ enabled }), winston.format.timestamp(), winston.format.errors({ stack: false }), winston.format.json()),
    defaultMeta: { service: 'collection-hub' },
    transports: [transport],
  });
  for (const level of LEVELS) {
    const write = (logger as any)[level] as (...args: unknown[]) => Logger;
    if (typeof write !== 'function') continue;
    (logger as any)[level] = function (this: Logger, ...args: unknown[]): Logger {
      if (!enabled(level)) return this ?? logger;
      return write.apply(this ?? logger, args);
    };
  }
  return logger;
}
