/**
 * The simulated agency's answers: one shape for every reply, one for every error
 * (`{ error: { code, message, … } }`), and body parsing that turns a zod failure into a 400 naming
 * the field. Shared by both personalities (reference and riverty).
 */
import type { z } from 'zod';
import { BookError } from './case-book';
import { describeBodyError } from './schemas';

export interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export function errorReply(status: number, code: string, message: string, detail: Record<string, unknown> = {}, top: Record<string, unknown> = {}): Reply {
  return { status, body: { error: { code, message, ...detail }, ...top } };
}

export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const problem = describeBodyError(parsed.error);
  throw new BookError(400, 'invalid_body', problem.message, { detail: { path: problem.path, issues: problem.issues } });
}
