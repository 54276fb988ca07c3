/**
 * Stripe webhook verification, pinned to the vector in shared/reference/psp-webhooks.md §1.2 and
 * to headers made by the SDK's own generateTestHeaderString, negative cases included.
 * Verification is offline (HMAC only), so no HTTP can happen here.
 */
import Stripe from 'stripe';
import { stripeConnector } from '../../../connectors/psp/stripe';
import { stripeProviderConfigSchema, type StripeProviderConfig } from '../../../connectors/psp/stripe/schema';
import { verifyStripeSignature } from '../../../connectors/psp/stripe/verify';
import { WebhookRejection, type InboundRequest } from '../../../connectors/psp/types';

const SECRET = 'whsec_test_secret';
const OTHER_SECRET = 'whsec_other_secret';
const T = 1_700_000_000;
const at = (unixSeconds: number) => new Date(unixSeconds * 1000);

const config = (webhookSecret: string | string[] = SECRET): StripeProviderConfig =>
  stripeProviderConfigSchema.parse({ webhookSecret });

const EVENT = JSON.stringify({
  id: 'evt_1Verify0000000000000001',
  object: 'event',
  api_version: '2024-06-20',
  created: T - 5,
  livemode: false,
  type: 'invoice.payment_failed',
  data: { object: { id: 'in_1Verify', object: 'invoice' } },
});

const sign = (payload: string, secret = SECRET, timestamp = T, scheme?: string) =>
  Stripe.webhooks.generateTestHeaderString({ payload, secret, timestamp, scheme });

/** The bare `v1=<hex>` part of a header made by the SDK. */
const v1Of = (header: string) => header.split(',').find((p) => p.startsWith('v1='))!;

const request = (body: string | Buffer, signature?: string): InboundRequest => ({
  headers: signature === undefined ? {} : { 'stripe-signature': signature },
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

describe('the self-computed vector (psp-webhooks.md §1.2)', () => {
  const payload = '{"id":"evt_test_webhook","object":"event"}';
  const header = 't=1700000000,v1=d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990';

  it('is what the SDK computes for the same secret, payload and timestamp', () => {
    expect(sign(payload, SECRET, T)).toBe(header);
  });

  it('verifies with now pinned 10 s after t, and yields the parsed body', () => {
    expect(verifyStripeSignature(Buffer.from(payload), header, config(), at(T + 10))).toEqual({
      id: 'evt_test_webhook',
      object: 'event',
    });
  });

  it('fails once one byte of the body changes', () => {
    const err = rejectionOf(() => verifyStripeSignature(Buffer.from(payload.replace('evt_', 'evx_')), header, config(), at(T + 10)));
    expect(err.message).toMatch(/^No signatures found matching the expected signature/);
  });
});

type Case = {
  name: string;
  body?: string;
  header: () => string | undefined;
  secrets?: string | string[];
  now?: number;
} & ({ passes: true } | { passes: false; status?: number; message: RegExp });

const cases: Case[] = [
  { name: 'a header made with the configured secret', header: () => sign(EVENT), passes: true },
  {
    name: 'a tampered body',
    body: EVENT.replace('invoice.payment_failed', 'invoice.paid'),
    header: () => sign(EVENT),
    passes: false,
    message: /^No signatures found matching the expected signature for payload/,
  },
  {
    name: 'a header signed with another secret',
    header: () => sign(EVENT, OTHER_SECRET),
    passes: false,
    message: /^No signatures found matching the expected signature for payload/,
  },
  { name: 'a delivery exactly 300 s old', header: () => sign(EVENT, SECRET, T - 300), passes: true },
  {
    name: 'a delivery 301 s old',
    header: () => sign(EVENT, SECRET, T - 301),
    passes: false,
    message: /^Timestamp outside the tolerance zone$/,
  },
  { name: 'a timestamp 300 s ahead (clock skew)', header: () => sign(EVENT, SECRET, T + 300), passes: true },
  {
    name: 'a timestamp 301 s in the future',
    header: () => sign(EVENT, SECRET, T + 301),
    passes: false,
    message: /^Timestamp outside the tolerance zone \(in the future\)$/,
  },
  { name: 'no Stripe-Signature header', header: () => undefined, passes: false, message: /^missing Stripe-Signature header$/ },
  { name: 'an empty Stripe-Signature header', header: () => '', passes: false, message: /^missing Stripe-Signature header$/ },
  {
    name: 'a header without t=',
    header: () => v1Of(sign(EVENT)),
    passes: false,
    message: /^Unable to extract timestamp and signatures from header$/,
  },
  {
    name: 'only a decoy v0 signature (even a correct HMAC)',
    header: () => sign(EVENT, SECRET, T, 'v0'),
    passes: false,
    message: /^No signatures found with expected scheme$/,
  },
  {
    name: 'a decoy v0 beside a valid v1',
    header: () => `t=${T},v0=${'0'.repeat(64)},${v1Of(sign(EVENT))}`,
    passes: true,
  },
  {
    name: 'two v1 signatures of which one is valid (Stripe rolling its secret)',
    header: () => `t=${T},${v1Of(sign(EVENT, OTHER_SECRET))},${v1Of(sign(EVENT))}`,
    passes: true,
  },
  {
    name: 'two configured secrets, the second matching (our rotation)',
    header: () => sign(EVENT),
    secrets: [OTHER_SECRET, SECRET],
    passes: true,
  },
  {
    name: 'two configured secrets, neither matching',
    header: () => sign(EVENT, 'whsec_third_secret'),
    secrets: [OTHER_SECRET, SECRET],
    passes: false,
    message: /^No signatures found matching the expected signature for payload/,
  },
  {
    name: 'the second configured secret matching a delivery 301 s old',
    header: () => sign(EVENT, SECRET, T - 301),
    secrets: [OTHER_SECRET, SECRET],
    passes: false,
    message: /^Timestamp outside the tolerance zone$/,
  },
];

describe('stripeConnector.verify', () => {
  it.each(cases)('$name → passes: $passes', (c) => {
    const body = c.body ?? EVENT;
    const run = () => stripeConnector.verify(request(body, c.header()), config(c.secrets), at(c.now ?? T));
    if (c.passes) {
      expect(run()).toEqual({
        events: [
          {
            providerEventId: 'evt_1Verify0000000000000001',
            eventType: 'invoice.payment_failed',
            occurredAt: new Date((T - 5) * 1000).toISOString(),
            payload: JSON.parse(EVENT),
          },
        ],
      });
    } else {
      const err = rejectionOf(run);
      expect(err.status).toBe(c.status ?? 400);
      expect(err.message).toMatch(c.message);
      // No secret, and no expected signature, ever reaches a message (design.md habit 8).
      for (const s of [SECRET, OTHER_SECRET]) expect(err.message).not.toContain(s);
      expect(err.message).not.toMatch(/[0-9a-f]{64}/);
    }
  });

  it('refuses a correctly signed thin event (v2.core.event) with a clear message', () => {
    const thin = JSON.stringify({ id: 'evt_test_thin', object: 'v2.core.event', type: 'v1.billing.meter.error_report_triggered' });
    const err = rejectionOf(() => stripeConnector.verify(request(thin, sign(thin)), config(), at(T)));
    expect(err.status).toBe(400);
    expect(err.message).toMatch(/thin event \(v2\.core\.event\)/);
  });

  it('refuses a correctly signed body that is not JSON, only after verifying it', () => {
    const notJson = 'id=evt_1&object=event';
    expect(rejectionOf(() => stripeConnector.verify(request(notJson, sign(notJson)), config(), at(T))).message).toBe(
      'Stripe webhook body is not valid JSON',
    );
    // Unsigned garbage is a signature failure, not a parse failure.
    expect(rejectionOf(() => stripeConnector.verify(request(notJson, sign('x')), config(), at(T))).message).toMatch(
      /^No signatures found matching/,
    );
  });

  it('refuses a correctly signed JSON body that is not a Stripe event', () => {
    const notEvent = JSON.stringify({ id: 'evt_1', object: 'event' });
    expect(rejectionOf(() => stripeConnector.verify(request(notEvent, sign(notEvent)), config(), at(T))).message).toMatch(
      /^not a Stripe event: type:/,
    );
  });

  it('verifies the exact bytes: re-serialised JSON with other whitespace fails', () => {
    const pretty = JSON.stringify(JSON.parse(EVENT), null, 2);
    expect(rejectionOf(() => stripeConnector.verify(request(pretty, sign(EVENT)), config(), at(T))).message).toMatch(
      /^No signatures found matching/,
    );
  });

  it('verifies non-ASCII bodies byte for byte (UTF-8)', () => {
    const body = EVENT.replace('"livemode":false', '"livemode":false,"note":"Bakkerij Über € ✓"');
    expect(stripeConnector.verify(request(Buffer.from(body, 'utf8'), sign(body)), config(), at(T))).toMatchObject({
      events: [{ providerEventId: 'evt_1Verify0000000000000001' }],
    });
  });
});
