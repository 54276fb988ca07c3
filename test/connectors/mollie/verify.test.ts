/**
 * Mollie webhook verification: classic form webhooks (shape only — Mollie does not sign them) and
 * next-gen signed events (`X-Mollie-Signature: sha256=<hex>`, psp-webhooks.md §2.4).
 *
 * Mollie publishes no test vector for its signature. The vectors here are self-computed with
 * node:crypto from a fixed secret and body, exactly as the documented algorithm says (hex
 * HMAC-SHA256 of the raw body): they pin our implementation to that algorithm, not to a
 * published value. The fixed vector below was computed once and is spelled out, so a change in
 * how the body or the header is read fails here. Verification is offline, so no HTTP can happen.
 */
import crypto from 'node:crypto';
import { mollieConnector } from '../../../connectors/psp/mollie';
import { mollieProviderConfigSchema, type MollieProviderConfig } from '../../../connectors/psp/mollie/schema';
import { mollieSignature, verifyMollieSignature } from '../../../connectors/psp/mollie/verify';
import { WebhookRejection, type InboundRequest, type VerifiedDelivery } from '../../../connectors/psp/types';

const SECRET = 'mollie_whsec_test_0123456789abcdef';
const OTHER_SECRET = 'mollie_whsec_other_fedcba9876543210';
const NOW = new Date('2024-06-04T09:12:05.000Z');
const FORM = 'application/x-www-form-urlencoded';

const config = (webhookSigningSecret?: string | string[]): MollieProviderConfig =>
  mollieProviderConfigSchema.parse({ apiKey: 'test_dHar4XY7LxsDOtmnkVtjNVWXLSlXsM', ...(webhookSigningSecret ? { webhookSigningSecret } : {}) });

/** A next-gen event body (psp-webhooks.md §2.4 envelope), the bytes exactly as posted. */
const EVENT_BODY = JSON.stringify({
  resource: 'event',
  id: 'event_GvJ8WHrp5isUdRub9CJyH',
  type: 'payment.failed',
  entityId: 'tr_5B8cwPMGnU6qLbRvo7qEZo',
  createdAt: '2024-06-04T09:12:00+00:00',
  _links: { documentation: { href: 'https://docs.mollie.com/reference/webhooks-new', type: 'text/html' } },
});

/** Self-computed with node:crypto (see file comment); recomputed below so both must agree. */
const hmacHex = (body: string, secret: string) => crypto.createHmac('sha256', secret).update(body, 'utf8').digest('hex');
const sig = (body: string, secret = SECRET) => `sha256=${hmacHex(body, secret)}`;

const request = (body: string, contentType: string, headers: Record<string, string> = {}): InboundRequest => ({
  headers,
  rawBody: Buffer.from(body, 'utf8'),
  contentType,
});

const verify = (req: InboundRequest, cfg: MollieProviderConfig) => mollieConnector.verify(req, cfg, NOW) as VerifiedDelivery;

function rejection(fn: () => unknown): WebhookRejection {
  try {
    fn();
  } catch (err) {
    if (err instanceof WebhookRejection) return err;
    throw err;
  }
  throw new Error('expected a WebhookRejection');
}

describe('the fixed, self-computed signature vector', () => {
  // EVENT_BODY signed with SECRET; computed once with node:crypto and cross-checked with Python's
  // hmac.new(secret, body, hashlib.sha256).hexdigest(). Self-computed, not published by Mollie.
  const FIXED = 'sha256=6673bbd6aa79db5d558812bee75f3e2000b8359d89d13d12b6a5d7c0e3e28c92';

  it('is hex HMAC-SHA256 of the raw bytes with the signing secret', () => {
    expect(`sha256=${mollieSignature(EVENT_BODY, SECRET)}`).toBe(FIXED);
    expect(sig(EVENT_BODY)).toBe(FIXED);
  });

  it('verifies the fixed header over the fixed bytes', () => {
    const d = verify(request(EVENT_BODY, 'application/json', { 'x-mollie-signature': FIXED }), config(SECRET));
    expect(d.events[0].providerEventId).toBe('event_GvJ8WHrp5isUdRub9CJyH');
  });
});

describe('classic webhooks (no signing secret configured)', () => {
  it('accepts id=tr_… as one raw event per delivery, answered 200 with an empty body', () => {
    const d = verify(request('id=tr_5B8cwPMGnU6qLbRvo7qEZo', FORM), config());
    expect(d.events).toEqual([
      { providerEventId: `tr_5B8cwPMGnU6qLbRvo7qEZo:${NOW.getTime()}`, eventType: 'payment.webhook', payload: { id: 'tr_5B8cwPMGnU6qLbRvo7qEZo' } },
    ]);
    expect(d.ack).toEqual({ status: 200, body: '', contentType: 'text/plain' });
  });

  it('gives the same id delivered later its own event id (each delivery may report another status)', () => {
    const a = verify(request('id=tr_5B8cwPMGnU6qLbRvo7qEZo', FORM), config());
    const b = mollieConnector.verify(request('id=tr_5B8cwPMGnU6qLbRvo7qEZo', FORM), config(), new Date(NOW.getTime() + 60_000)) as VerifiedDelivery;
    expect(a.events[0].providerEventId).not.toBe(b.events[0].providerEventId);
  });

  it.each([
    ['a charset parameter on the content type', 'id=tr_abc123', `${FORM}; charset=utf-8`, 'tr_abc123', 'payment.webhook'],
    ['an order id', 'id=ord_pbjz8x', FORM, 'ord_pbjz8x', 'order.webhook'],
    ['a payment link id', 'id=pl_4Y0eZitmBnQ6IDoMqZQKh', FORM, 'pl_4Y0eZitmBnQ6IDoMqZQKh', 'payment-link.webhook'],
  ])('accepts %s', (_name, body, contentType, id, type) => {
    const d = verify(request(body, contentType), config());
    expect(d.events[0]).toMatchObject({ eventType: type, payload: { id } });
  });

  it.each([
    ['a JSON body', '{"id":"tr_5B8cwPMGnU6qLbRvo7qEZo"}', 'application/json'],
    ['no content type', 'id=tr_5B8cwPMGnU6qLbRvo7qEZo', ''],
    ['a form without id', 'foo=bar', FORM],
    ['an empty body', '', FORM],
    ['an empty id', 'id=', FORM],
    ['an id with an unknown prefix', 'id=in_1PFail00000000000000001', FORM],
    ['an id without prefix', 'id=5B8cwPMGnU6qLbRvo7qEZo', FORM],
    ['an id with characters Mollie never uses', 'id=tr_abc%27%3B--', FORM],
    ['two ids', 'id=tr_a1&id=tr_b2', FORM],
    ['a too long id', `id=tr_${'a'.repeat(65)}`, FORM],
  ])('refuses %s with 400', (_name, body, contentType) => {
    const r = rejection(() => verify(request(body, contentType), config()));
    expect(r.status).toBe(400);
  });

  it('refuses a signed request when no signing secret is configured to check it (401)', () => {
    const r = rejection(() => verify(request(EVENT_BODY, 'application/json', { 'x-mollie-signature': sig(EVENT_BODY) }), config()));
    expect(r.status).toBe(401);
  });
});

describe('signed next-gen webhooks (signing secret configured)', () => {
  type Case = [name: string, secrets: string | string[], body: string, header: string | undefined, expected: number | 'ok'];
  const cases: Case[] = [
    ['a valid signature over the raw body', SECRET, EVENT_BODY, sig(EVENT_BODY), 'ok'],
    ['a valid signature with an upper-case hex digest', SECRET, EVENT_BODY, `sha256=${hmacHex(EVENT_BODY, SECRET).toUpperCase()}`, 'ok'],
    ['a valid signature without the sha256= prefix', SECRET, EVENT_BODY, hmacHex(EVENT_BODY, SECRET), 'ok'],
    ['a tampered body (signature of the original)', SECRET, EVENT_BODY.replace('payment.failed', 'payment.paid__'), sig(EVENT_BODY), 401],
    ['the same JSON re-serialized with spaces', SECRET, JSON.stringify(JSON.parse(EVENT_BODY), null, 1), sig(EVENT_BODY), 401],
    ['a signature made with another key', SECRET, EVENT_BODY, sig(EVENT_BODY, OTHER_SECRET), 401],
    ['a missing header', SECRET, EVENT_BODY, undefined, 401],
    ['an empty header', SECRET, EVENT_BODY, '', 401],
    ['a header of another scheme only', SECRET, EVENT_BODY, `sha1=${crypto.createHmac('sha1', SECRET).update(EVENT_BODY).digest('hex')}`, 401],
    ['a truncated digest', SECRET, EVENT_BODY, sig(EVENT_BODY).slice(0, -2), 401],
    ['rotation: two secrets, the second matches', [OTHER_SECRET, SECRET], EVENT_BODY, sig(EVENT_BODY, SECRET), 'ok'],
    ['rotation: two signature headers joined by Node, the second matches', SECRET, EVENT_BODY, `${sig(EVENT_BODY, OTHER_SECRET)}, ${sig(EVENT_BODY, SECRET)}`, 'ok'],
    ['rotation: two secrets, neither matches', [OTHER_SECRET, 'mollie_whsec_third'], EVENT_BODY, sig(EVENT_BODY, SECRET), 401],
  ];

  it.each(cases)('%s', (_name, secrets, body, header, expected) => {
    const req = request(body, 'application/json', header === undefined ? {} : { 'x-mollie-signature': header });
    if (expected === 'ok') {
      const d = verify(req, config(secrets));
      expect(d.events).toEqual([
        { providerEventId: 'event_GvJ8WHrp5isUdRub9CJyH', eventType: 'payment.failed', occurredAt: '2024-06-04T09:12:00.000Z', payload: JSON.parse(body) },
      ]);
      return;
    }
    expect(rejection(() => verify(req, config(secrets))).status).toBe(expected);
  });

  it('refuses an unsigned classic webhook once a secret is configured (401), so dropping the header bypasses nothing', () => {
    expect(rejection(() => verify(request('id=tr_5B8cwPMGnU6qLbRvo7qEZo', FORM), config(SECRET))).status).toBe(401);
  });

  it.each([
    ['a body that is not JSON', 'id=tr_5B8cwPMGnU6qLbRvo7qEZo'],
    ['JSON that is not an event', '{"resource":"payment","id":"tr_x"}'],
    ['an event without id', '{"resource":"event","type":"payment.paid","entityId":"tr_x"}'],
  ])('refuses a validly signed %s with 400', (_name, body) => {
    expect(rejection(() => verify(request(body, 'application/json', { 'x-mollie-signature': sig(body) }), config(SECRET))).status).toBe(400);
  });

  it('never puts a secret or the expected signature in a rejection message', () => {
    const r = rejection(() => verify(request(EVENT_BODY, 'application/json', { 'x-mollie-signature': sig(EVENT_BODY, OTHER_SECRET) }), config(SECRET)));
    expect(r.message).not.toContain(SECRET);
    expect(r.message).not.toContain(hmacHex(EVENT_BODY, SECRET));
  });

  it('verifyMollieSignature compares against every configured secret (the signature layer alone)', () => {
    expect(() => verifyMollieSignature(Buffer.from(EVENT_BODY), sig(EVENT_BODY, SECRET), [OTHER_SECRET, SECRET])).not.toThrow();
    expect(() => verifyMollieSignature(Buffer.from(EVENT_BODY), sig(EVENT_BODY, SECRET), [OTHER_SECRET])).toThrow(WebhookRejection);
  });
});
