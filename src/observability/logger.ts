/**
 * JSON logs with winston. Every line goes through redact(), so a secret that slips into a
 * message or a field is masked before it is written (design.md habit 8).
 */
import winston from 'winston';
import { redact, redactText } from './redact';

export type Logger = winston.Logger;

const redactFormat = winston.format((info) => {
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
  return winston.createLogger({
    level: opts.level ?? 'info',
    silent: opts.silent,
    format: winston.format.combine(redactFormat(), winston.format.timestamp(), winston.format.errors({ stack: false }), winston.format.json()),
    defaultMeta: { service: 'collection-hub' },
    transports: [transport],
  });
}
