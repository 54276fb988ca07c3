/**
 * GoCardless webhook verification, pinned to the official SDK's test vector
 * (`gocardless/gocardless-nodejs:src/__tests__/webhooks.test.ts`, quoted in
 * shared/reference/psp-webhooks.md §4.2) and its negative case, plus tampering, wrong and rotated
 * secrets, a missing header (498 each time), and batches. Verification is offline (HMAC only).
 */
import crypto from 'node:crypto';
import { gocardlessConnector } from '../../../connectors/psp/gocardless';
import { gocardlessProviderConfigSchema, type GoCardlessProviderConfig } from '../../../connectors/psp/gocardless/schema';
import {
  gocardlessSignature,
  INVALID_SIGNATURE_MESSAGE,
  verifyGoCardlessSignature,
  verifyGoCardlessWebhook,
} from '../../../connectors/psp/gocardless/verify';
import { WebhookRejection, type InboundRequest, type VerifiedDelivery } from '../../../connectors/psp/types';
import { gocardlessEvents, signGoCardless, webhookBody } from '../../../sim/psp/gocardless-events';

/** The SDK's vector, exactly (psp-webhooks.md §4.2). */
const SDK_SECRET = 'ED7D658C-D8EB-4941-948B-3973214F2D49';
const SDK_BODY =
  '{"events":[{"id":"EV00BD05S5VM2T","created_at":"2018-07-05T09:13:51.404Z","resource_type":"subscriptions","action":"created","links":{"subscription":"SB0003JJQ2MR06"},"details":{"origin":"api","cause":"subscription_created","description":"Subscription created via the API."},"metadata":{}},{"id":"EV00BD05TB8K63","created_at":"2018-07-05T09:13:56.893Z","resource_type":"mandates","action":"created","links":{"mandate":"MD000AMA19XGEC"},"details":{"origin":"api","cause":"mandate_created","description":"Mandate created via the API."},"metadata":{}}]}';
const SDK_SIGNATURE = '2693754819d3e32d7e8fcb13c729631f316c6de8dc1cf634d6527f1c07276e7e';
/** The SDK test's invalid header. */
const SDK_BAD_SIGNATURE = 'NOTVERYCONVINCING';

const NOW = new Date('2026-01-01T00:00:00Z');
const SECRET = 'gc_whsec_current_0123456789';
const OLD_SECRET = 'gc_whsec_previous_0123456789';

const config = (webhookSecret: string | string[] = SDK_SECRET): GoCardlessProviderConfig =>
  gocardlessProviderConfigSchema.parse({ webhookSecret, accessToken: 'sandbox_test_token_000000' });

const request = (body: string | Buffer, signature?: string): InboundRequest => ({
  headers: signature === undefined ? {} : { 'webhook-signature': signature },
  rawBody: Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8'),
  contentType: 'application/json',
});

function rejectionOf(fn: () => unknown): WebhookRejection {
  try {
    fn();
  } catch (err) {
    if (err instanceof WebhookRejection) return err;
    throw err;
  }
  throw new Error('expected a WebhookRejection, got none');
}

const verify = (req: InboundRequest, cfg = config()) => gocardlessConnector.verify(req, cfg, NOW) as VerifiedDelivery;

describe('the SDK test vector (psp-webhooks.md §4.2)', () => {
  it('is what node:crypto computes for the secret and the exact body', () => {
    expect(gocardlessSignature(SDK_BODY, SDK_SECRET)).toBe(SDK_SIGNATURE);
    expect(signGoCardless(JSON.parse(SDK_BODY), SDK_SECRET)).toEqual({ body: SDK_BODY, signature: SDK_SIGNATURE });
  });

  it('verifies and yields its two events, in order, each a raw event of its own', () => {
    const delivery = verify(request(SDK_BODY, SDK_SIGNATURE));
    const parsed = JSON.parse(SDK_BODY).events;
    expect(delivery.events).toEqual([
      { providerEventId: 'EV00BD05S5VM2T', eventType: 'subscriptions.created', occurredAt: '2018-07-05T09:13:51.404Z', payload: parsed[0] },
      { providerEventId: 'EV00BD05TB8K63', eventType: 'mandates.created', occurredAt: '2018-07-05T09:13:56.893Z', payload: parsed[1] },
    ]);
  });

  it('acknowledges with 204 and an empty body', () => {
    expect(verify(request(SDK_BODY, SDK_SIGNATURE)).ack).toEqual({ status: 204, body: '' });
  });
});

type Case = { name: string; body?: string | Buffer; signature: string | undefined; secrets?: string | string[]; message?: RegExp };

const rejected: Case[] = [
  { name: "the SDK test's invalid header (NOTVERYCONVINCING)", signature: SDK_BAD_SIGNATURE, message: /hex HMAC-SHA256/ },
  { name: 'a missing header', signature: undefined, message: /missing Webhook-Signature/ },
  { name: 'an empty header', signature: '   ', message: /missing Webhook-Signature/ },
  { name: 'a body tampered by one byte', body: SDK_BODY.replace('EV00BD05S5VM2T', 'EV00BD05S5VM2U'), signature: SDK_SIGNATURE },
  { name: 'a body with a trailing newline', body: `${SDK_BODY}\n`, signature: SDK_SIGNATURE },
  { name: 'the wrong secret', signature: SDK_SIGNATURE, secrets: 'ED7D658C-D8EB-4941-948B-3973214F2D4A' },
  { name: 'a signature one hex digit off', signature: SDK_SIGNATURE.replace(/e$/, 'f') },
  // Buffer.from(hex) in the SDK stops at the first non-hex character, so this would pass there.
  { name: 'the valid signature with junk appended', signature: `${SDK_SIGNATURE}zz`, message: /hex HMAC-SHA256/ },
  { name: 'a truncated signature', signature: SDK_SIGNATURE.slice(0, 62), message: /hex HMAC-SHA256/ },
  { name: 'the signature of the body as base64', signature: Buffer.from(SDK_SIGNATURE, 'hex').toString('base64'), message: /hex HMAC-SHA256/ },
  { name: 'an HMAC-SHA1 of the body', signature: crypto.createHmac('sha1', SDK_SECRET).update(SDK_BODY).digest('hex'), message: /hex HMAC-SHA256/ },
];

describe.each(rejected)('refused with 498: $name', ({ body = SDK_BODY, signature, secrets, message }) => {
  it('throws WebhookRejection(498) before reading the body', () => {
    const err = rejectionOf(() => verify(request(body, signature), config(secrets)));
    expect(err.status).toBe(498);
    expect(err.message).toMatch(message ?? new RegExp(INVALID_SIGNATURE_MESSAGE.replace(/[!]/g, '\\!')));
    // Never the secret or the expected signature in what is logged and answered.
    expect(err.message).not.toContain(SDK_SECRET);
    expect(err.message).not.toContain(SDK_SIGNATURE);
  });
});

describe('the signature layer alone', () => {
  it('accepts upper-case hex and surrounding whitespace (the same bytes)', () => {
    expect(() => verifyGoCardlessSignature(SDK_BODY, ` ${SDK_SIGNATURE.toUpperCase()} `, SDK_SECRET)).not.toThrow();
  });

  it('works on a Buffer as on a string', () => {
    expect(() => verifyGoCardlessSignature(Buffer.from(SDK_BODY), SDK_SIGNATURE, [SDK_SECRET])).not.toThrow();
  });

  it('uses the constant-time comparison for every configured secret (no early exit)', () => {
    const spy = jest.spyOn(crypto, 'timingSafeEqual');
    try {
      verifyGoCardlessSignature(SDK_BODY, SDK_SIGNATURE, [SDK_SECRET, OLD_SECRET, SECRET]);
      expect(spy).toHaveBeenCalledTimes(3);
    } finally {
      spy.mockRestore();
    }
  });
});

describe('secret rotation (a list of secrets)', () => {
  const body = JSON.stringify(webhookBody([gocardlessEvents.paymentFailed({ payment: 'PM000ROTATE01', createdAt: '2024-05-01T10:00:00.000Z' })]));

  it.each([
    ['the new secret', SECRET],
    ['the old secret', OLD_SECRET],
  ])('accepts a delivery signed with %s while both are configured', (_name, secret) => {
    const { signature } = signGoCardless(body, secret);
    expect(verify(request(body, signature), config([SECRET, OLD_SECRET])).events.map((e) => e.providerEventId)).toHaveLength(1);
  });

  it('refuses one signed with a secret no longer configured', () => {
    const { signature } = signGoCardless(body, OLD_SECRET);
    expect(rejectionOf(() => verify(request(body, signature), config([SECRET]))).status).toBe(498);
  });
});

describe('batches', () => {
  const events = [
    gocardlessEvents.paymentPaidOut({ payment: 'PM000BATCH003', id: 'EV000BATCH003', createdAt: '2024-05-03T09:00:00.000Z' }),
    gocardlessEvents.paymentFailed({ payment: 'PM000BATCH001', id: 'EV000BATCH001', createdAt: '2024-05-01T09:00:00.000Z' }),
    gocardlessEvents.mandateCancelled({ mandate: 'MD000BATCH002', id: 'EV000BATCH002', createdAt: '2024-05-02T09:00:00.000Z' }),
    gocardlessEvents.paymentConfirmed({ payment: 'PM000BATCH001', id: 'EV000BATCH001B', createdAt: '2024-05-01T09:00:00.000Z' }),
  ];
  const { body, signature } = signGoCardless(webhookBody(events), SECRET);

  it('returns every event as its own raw event, sorted by created_at (ties keep the delivery order)', () => {
    const delivery = verify(request(body, signature), config(SECRET));
    expect(delivery.events.map((e) => [e.providerEventId, e.eventType, e.occurredAt])).toEqual([
      ['EV000BATCH001', 'payments.failed', '2024-05-01T09:00:00.000Z'],
      ['EV000BATCH001B', 'payments.confirmed', '2024-05-01T09:00:00.000Z'],
      ['EV000BATCH002', 'mandates.cancelled', '2024-05-02T09:00:00.000Z'],
      ['EV000BATCH003', 'payments.paid_out', '2024-05-03T09:00:00.000Z'],
    ]);
    // The stored payload is the event itself, untouched.
    expect(delivery.events[0].payload).toEqual(events[1]);
  });

  it('puts an event without a readable created_at last, and still stores it', () => {
    const odd = { ...gocardlessEvents.paymentFailed({ payment: 'PM000BATCH009', id: 'EV000BATCH009' }), created_at: 'yesterday' };
    const signed = signGoCardless(webhookBody([odd, ...events]), SECRET);
    const delivery = verify(request(signed.body, signed.signature), config(SECRET));
    expect(delivery.events.map((e) => e.providerEventId).at(-1)).toBe('EV000BATCH009');
    expect(delivery.events.at(-1)?.occurredAt).toBeUndefined();
  });

  it('accepts an empty batch (nothing to store, still 204)', () => {
    const signed = signGoCardless(webhookBody([]), SECRET);
    expect(verify(request(signed.body, signed.signature), config(SECRET))).toEqual({ events: [], ack: { status: 204, body: '' } });
  });
});

describe('a correctly signed body that is not a GoCardless webhook', () => {
  it.each([
    ['not JSON', 'events: []', /not valid JSON/],
    ['no events array', '{"event":{"id":"EV1"}}', /expected \{"events"/],
    ['an event without an id', '{"events":[{"created_at":"2024-05-01T00:00:00Z","resource_type":"payments","action":"failed"}]}', /event #0 has no id/],
  ])('%s → 400', (_name, body, message) => {
    const { signature } = signGoCardless(body, SECRET);
    const err = rejectionOf(() => verifyGoCardlessWebhook(request(body, signature), config(SECRET), NOW));
    expect(err.status).toBe(400);
    expect(err.message).toMatch(message);
  });
});

describe('config schema', () => {
  it('takes one secret or a list, an access token and an optional apiBase', () => {
    expect(gocardlessProviderConfigSchema.parse({ webhookSecret: ['a', 'b'], accessToken: 't', apiBase: 'http://127.0.0.1:1234' })).toEqual({
      webhookSecret: ['a', 'b'],
      accessToken: 't',
      apiBase: 'http://127.0.0.1:1234',
    });
  });

  it.each([
    ['an unknown key (strict)', { webhookSecret: 'a', accessToken: 't', acessToken: 't' }],
    ['no access token', { webhookSecret: 'a' }],
    ['an empty secret list', { webhookSecret: [], accessToken: 't' }],
    ['a blank secret', { webhookSecret: '  ', accessToken: 't' }],
    ['an apiBase that is not http(s)', { webhookSecret: 'a', accessToken: 't', apiBase: 'ftp://example.com' }],
  ])('refuses %s', (_name, block) => {
    expect(gocardlessProviderConfigSchema.safeParse(block).success).toBe(false);
  });
});
