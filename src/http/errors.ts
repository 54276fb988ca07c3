/** HTTP-facing errors carry their status; they are turned into responses in one place (design.md habit 7). */
import type { ErrorRequestHandler } from 'express';
import type { Logger } from '../observability/logger';
import { DatabaseUnavailable } from '../store/db';

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

export const notFound = (what: string) => new HttpError(404, 'not_found', `${what} not found`);

export function errorBody(code: string, message: string) {
  return { error: { code, message } };
}

/** Codes for the 4xx that express and body-parser raise themselves (aborted upload, bad charset…). */
const CLIENT_ERROR_CODES: Record<number, string> = { 400: 'bad_request', 404: 'not_found', 413: 'payload_too_large', 415: 'unsupported_media_type' };

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    if (res.headersSent) return;
    if (err instanceof HttpError) {
      for (const [k, v] of Object.entries(err.headers)) res.setHeader(k, v);
      res.status(err.status).json(errorBody(err.code, err.message));
      return;
    }
    if (err instanceof DatabaseUnavailable) {
      // Never a 2xx for what was not stored: the PSP will retry (design.md).
      res.setHeader('Retry-After', '30');
      res.status(503).json(errorBody('unavailable', 'the database is unavailable; retry later'));
      return;
    }
    // body-parser errors carry a status and a type.
    const e = err as { status?: number; type?: string; message?: string };
    if (e.type === 'entity.too.large') {
      res.status(413).json(errorBody('payload_too_large', 'request body is larger than the limit'));
      return;
    }
    if (e.type === 'entity.parse.failed') {
      res.status(400).json(errorBody('malformed_body', 'request body is not valid JSON'));
      return;
    }
    if (e.type === 'encoding.unsupported') {
      res.status(415).json(errorBody('unsupported_media_type', 'compressed request bodies are not accepted (send Content-Encoding: identity)'));
      return;
    }
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500) {
      res.status(e.status).json(errorBody(CLIENT_ERROR_CODES[e.status] ?? 'bad_request', e.message || 'bad request'));
      return;
    }
    logger.error('unhandled error', { path: req.path, error: (err as Error).message, stack: (err as Error).stack });
    res.status(500).json(errorBody('internal', 'internal error'));
  };
}
