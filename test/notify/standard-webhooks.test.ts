/**
 * Standard Webhooks signing, pinned to the spec's published vector
 * (standard-webhooks/standard-webhooks libraries/javascript/src/webhook.test.ts, "sign function
 * works"; shared/reference/webhook-infra-and-style.md §1.2) and to the negative cases of the same
 * test file: missing headers, a bad timestamp, bogus and truncated signatures, too old and too
 * new, decoy signatures of other versions beside a valid one, the key with and without `whsec_`.
 */
import { sign, signedHeaders, verify, WebhookVerificationError, WEBHOOK_TOLERANCE_SECONDS } from '../../src/notify/standard-webhooks';
import { standardWebhookSecretSchema } from '../../src/config/schema';

const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  msgId: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  payload: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};
const at = (seconds: number) => new Date(seconds * 1000);
const headers = (over: Record<string, string | undefined> = {}) => ({
  'webhook-id': VECTOR.msgId,
  'webhook-timestamp': String(VECTOR.timestamp),
  'webhook-signature': VECTOR.signature,
  ...over,
});

describe('Standard Webhooks: the published vector', () => {
  it('signs the vector exactly as the spec does', () => {
    expect(sign(VECTOR.secret, VECTOR.msgId, VECTOR.timestamp, VECTOR.payload)).toBe(VECTOR.signature);
    expect(sign(VECTOR.secret, VECTOR.msgId, VECTOR.timestamp, Buffer.from(VECTOR.payload))).toBe(VECTOR.signature);
  });

  it('signs with the key with or without the whsec_ prefix', () => {
    expect(sign(VECTOR.secret.slice('whsec_'.length), VECTOR.msgId, VECTOR.timestamp, VECTOR.payload)).toBe(VECTOR.signature);
  });

  it('verifies the vector and returns the parsed payload', () => {
    expect(verify(VECTOR.secret, headers(), VECTOR.payload, { now: at(VECTOR.timestamp) })).toEqual({ test: 2432232314 });
    expect(verify(VECTOR.secret.slice('whsec_'.length), headers(), VECTOR.payload, { now: at(VECTOR.timestamp) })).toEqual({ test: 2432232314 });
  });

  it('signedHeaders gives the three headers for a delivery at a given moment', () => {
    expect(signedHeaders(VECTOR.secret, VECTOR.msgId, VECTOR.payload, at(VECTOR.timestamp))).toEqual({
      'webhook-id': VECTOR.msgId,
      'webhook-timestamp': String(VECTOR.timestamp),
      'webhook-signature': VECTOR.signature,
    });
  });

  it('finds headers whatever their case, as HTTP servers hand them over', () => {
    const upper = { 'Webhook-Id': VECTOR.msgId, 'WEBHOOK-TIMESTAMP': String(VECTOR.timestamp), 'Webhook-Signature': VECTOR.signature };
    expect(verify(VECTOR.secret, upper, VECTOR.payload, { now: at(VECTOR.timestamp) })).toEqual({ test: 2432232314 });
  });
});

describe('Standard Webhooks: what must be refused', () => {
  const refuse = (h: Record<string, string | undefined>, opts: { now?: Date; payload?: string; secret?: string } = {}) =>
    expect(() => verify(opts.secret ?? VECTOR.secret, h, opts.payload ?? VECTOR.payload, { now: opts.now ?? at(VECTOR.timestamp) }));

  it('an empty key throws', () => {
    expect(() => sign('', VECTOR.msgId, VECTOR.timestamp, VECTOR.payload)).toThrow(/empty/);
    expect(() => verify('', headers(), VECTOR.payload)).toThrow(/empty/);
  });

  it.each(['webhook-id', 'webhook-timestamp', 'webhook-signature'])('a missing %s', (name) => {
    refuse(headers({ [name]: undefined })).toThrow(WebhookVerificationError);
  });

  it('a timestamp that is not a number', () => {
    refuse(headers({ 'webhook-timestamp': 'hello' })).toThrow(/invalid webhook-timestamp/);
  });

  it('a bogus signature', () => {
    refuse(headers({ 'webhook-signature': 'v1,dawfeoifkpqwoekfpqoekf' })).toThrow(/no matching signature/);
  });

  it.each([VECTOR.signature.slice(0, 8), 'v1,', 'v1', VECTOR.signature.slice(0, -4)])('a truncated signature (%s)', (sig) => {
    refuse(headers({ 'webhook-signature': sig })).toThrow(/no matching signature/);
  });

  it('a tampered body', () => {
    refuse(headers(), { payload: '{"test": 2432232315}' }).toThrow(/no matching signature/);
  });

  it('the wrong key', () => {
    refuse(headers(), { secret: 'whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }).toThrow(/no matching signature/);
  });

  it('a timestamp older than the tolerance', () => {
    refuse(headers(), { now: at(VECTOR.timestamp + WEBHOOK_TOLERANCE_SECONDS + 1) }).toThrow(/too old/);
  });

  it('a timestamp further in the future than the tolerance', () => {
    refuse(headers(), { now: at(VECTOR.timestamp - WEBHOOK_TOLERANCE_SECONDS - 1) }).toThrow(/too new/);
  });

  it('accepts right at the edge of the tolerance, both ways', () => {
    expect(verify(VECTOR.secret, headers(), VECTOR.payload, { now: at(VECTOR.timestamp + WEBHOOK_TOLERANCE_SECONDS) })).toEqual({ test: 2432232314 });
    expect(verify(VECTOR.secret, headers(), VECTOR.payload, { now: at(VECTOR.timestamp - WEBHOOK_TOLERANCE_SECONDS) })).toEqual({ test: 2432232314 });
  });

  it('a signature moved to another message id or timestamp', () => {
    refuse(headers({ 'webhook-id': 'msg_other' })).toThrow(/no matching signature/);
    refuse(headers({ 'webhook-timestamp': String(VECTOR.timestamp + 1) })).toThrow(/no matching signature/);
  });

  it('decoys of other versions beside one valid v1 pass (secret rotation); decoys alone do not', () => {
    const good = VECTOR.signature;
    const sigPart = good.slice(3);
    const many = `v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= ${good} v2,${sigPart}`;
    expect(verify(VECTOR.secret, headers({ 'webhook-signature': many }), VECTOR.payload, { now: at(VECTOR.timestamp) })).toEqual({ test: 2432232314 });
    // The right bytes under another version are not a v1 signature.
    refuse(headers({ 'webhook-signature': `v2,${sigPart} v1a,${sigPart} v0,${sigPart}` })).toThrow(/no matching signature/);
  });

  it('a message id with a dot cannot be signed (it would blur "id.timestamp.body")', () => {
    expect(() => sign(VECTOR.secret, 'msg.1', VECTOR.timestamp, VECTOR.payload)).toThrow(/no "\."/);
  });
});

describe('the merchant webhook secret in config', () => {
  it('takes the spec vector key (24 bytes) and a 32-byte key', () => {
    expect(standardWebhookSecretSchema.safeParse(VECTOR.secret).success).toBe(true);
    expect(standardWebhookSecretSchema.safeParse(`whsec_${Buffer.alloc(32, 7).toString('base64')}`).success).toBe(true);
  });

  it.each([
    ['no prefix', VECTOR.secret.slice('whsec_'.length)],
    ['not base64', 'whsec_not base64 at all!'],
    ['shorter than 24 bytes', `whsec_${Buffer.alloc(16, 1).toString('base64')}`],
    ['longer than 64 bytes', `whsec_${Buffer.alloc(65, 1).toString('base64')}`],
  ])('refuses a secret with %s', (_why, secret) => {
    expect(standardWebhookSecretSchema.safeParse(secret).success).toBe(false);
  });
});
