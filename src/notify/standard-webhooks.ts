/**
 * Standard Webhooks signatures (standardwebhooks.com, spec v1.0.0; the same scheme as Svix):
 * three headers — `webhook-id`, `webhook-timestamp` (Unix seconds), `webhook-signature` — where
 * the signature is `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` keyed with the base64-decoded
 * part of the secret after `whsec_`. The header may list several space-separated signatures
 * (secret rotation); any `v1` one that matches is enough. Pinned to the spec's published vector
 * in test/notify/standard-webhooks.test.ts.
 *
 * One sign function for the hub, one verify function for receivers (and our tests), one error type.
 */
import crypto from 'node:crypto';

/** How far a timestamp may be from the receiver's clock, either way (the reference libraries' 5 minutes). */
export const WEBHOOK_TOLERANCE_SECONDS = 5 * 60;

const SECRET_PREFIX = 'whsec_';

export class WebhookVerificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebhookVerificationError';
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

export interface WebhookHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

/** The key bytes of a secret: the base64 after `whsec_` (a bare base64 key is accepted too, as the reference libraries do). */
export function secretKey(secret: string): Buffer {
  if (typeof secret !== 'string' || secret.length === 0) throw new Error('standard webhooks: the secret is empty');
  const body = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  const key = Buffer.from(body, 'base64');
  if (key.length === 0) throw new Error('standard webhooks: the secret is not base64');
  return key;
}

function assertId(msgId: string): void {
  // The id is the first part of "id.timestamp.body": a dot in it would make two messages sign alike.
  if (!msgId || msgId.includes('.')) throw new Error(`standard webhooks: a message id must be non-empty and contain no "." (got "${msgId}")`);
}

/** `v1,<base64 signature>` of one message. */
export function sign(secret: string, msgId: string, timestampSeconds: number, payload: string | Buffer): string {
  assertId(msgId);
  if (!Number.isInteger(timestampSeconds)) throw new Error('standard webhooks: the timestamp must be whole Unix seconds');
  const mac = crypto.createHmac('sha256', secretKey(secret));
  mac.update(`${msgId}.${timestampSeconds}.`);
  mac.update(payload);
  return `v1,${mac.digest('base64')}`;
}

/** The three headers for sending `payload` (exactly these bytes) as message `msgId` at `now`. */
export function signedHeaders(secret: string, msgId: string, payload: string | Buffer, now: Date = new Date()): WebhookHeaders {
  const timestamp = Math.floor(now.getTime() / 1000);
  return { 'webhook-id': msgId, 'webhook-timestamp': String(timestamp), 'webhook-signature': sign(secret, msgId, timestamp, payload) };
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  for (const [k, v] of Object.entries(headers)) {
    if (k.toLowerCase() !== name) continue;
    return Array.isArray(v) ? v.join(' ') : v;
  }
  return undefined;
}

/**
 * Verify a delivery over its exact body bytes, then parse it. Throws WebhookVerificationError
 * for a missing header, a timestamp outside the tolerance (too old or too new), or no matching
 * `v1` signature. Signatures of other versions (`v1a`, `v2`) are ignored, not failures.
 */
export function verify(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  payload: string | Buffer,
  opts: { now?: Date; toleranceSeconds?: number } = {},
): unknown {
  const key = secretKey(secret);
  const msgId = header(headers, 'webhook-id');
  const timestampText = header(headers, 'webhook-timestamp');
  const signatures = header(headers, 'webhook-signature');
  if (!msgId || !timestampText || !signatures) throw new WebhookVerificationError('missing required headers (webhook-id, webhook-timestamp, webhook-signature)');
  if (!/^[0-9]{1,15}$/.test(timestampText)) throw new WebhookVerificationError('invalid webhook-timestamp');
  const timestamp = Number(timestampText);
  const now = Math.floor((opts.now ?? new Date()).getTime() / 1000);
  const tolerance = opts.toleranceSeconds ?? WEBHOOK_TOLERANCE_SECONDS;
  if (now - timestamp > tolerance) throw new WebhookVerificationError('message timestamp too old');
  if (timestamp - now > tolerance) throw new WebhookVerificationError('message timestamp too new');

  const expected = crypto.createHmac('sha256', key).update(`${msgId}.${timestamp}.`).update(payload).digest();
  const matched = signatures
    .split(' ')
    .filter(Boolean)
    .some((entry) => {
      const comma = entry.indexOf(',');
      if (comma < 0 || entry.slice(0, comma) !== 'v1') return false;
      const given = Buffer.from(entry.slice(comma + 1), 'base64');
      return given.length === expected.length && crypto.timingSafeEqual(given, expected);
    });
  if (!matched) throw new WebhookVerificationError('no matching signature found');
  const text = Buffer.isBuffer(payload) ? payload.toString('utf8') : payload;
  return JSON.parse(text);
}
