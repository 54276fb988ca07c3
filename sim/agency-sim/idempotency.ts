/**
 * `Idempotency-Key` handling for the simulated agency's mutating calls (contract §5): the first
 * answer to a key is kept with a fingerprint of the request, the same request again gets the
 * same answer without doing the work twice, and the same key on a different request is refused.
 */
import crypto from 'node:crypto';

export interface StoredReply {
  status: number;
  body: unknown;
  fingerprint: string;
}

export const MAX_IDEMPOTENCY_KEY_LENGTH = 255;

/** JSON with object keys sorted, so `{a,b}` and `{b,a}` count as the same body. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.keys(value as object)
      .sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** Method and path are part of it: the same key sent to another endpoint is another request. */
export function requestFingerprint(method: string, path: string, body: unknown): string {
  return crypto.createHash('sha256').update(`${method} ${path}\n${canonicalJson(body)}`).digest('hex');
}

export class IdempotencyStore {
  private readonly replies = new Map<string, StoredReply>();

  get(key: string): StoredReply | undefined {
    return this.replies.get(key);
  }

  put(key: string, reply: StoredReply): void {
    this.replies.set(key, reply);
  }

  get size(): number {
    return this.replies.size;
  }
}
