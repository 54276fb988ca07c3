/**
 * The Stripe connector's lookups (connectors/psp/stripe/lookup.ts composed in index.ts) against
 * the local fake (sim/psp/fake-stripe.ts) over real loopback HTTP, through the official SDK.
 *
 * Real invoice.payment_failed events name the payment by id (pre-basil) or not at all (basil), so
 * the decline code is fetched; a dispute names only its charge, so its invoice is fetched.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { stripeConnector } from '../../../connectors/psp/stripe';
import { stripeProviderConfigSchema, type StripeProviderConfig } from '../../../connectors/psp/stripe/schema';
import type { NormalizeContext, RawInboundEvent } from '../../../connectors/psp/types';
import type { PaymentEvent } from '../../../src/domain/types';
import { loadPspMapping } from '../../../src/mappings/load';
import { Permanent } from '../../../src/pipeline/errors';
import { createFakeStripe, type FakeStripe } from '../../../sim/psp/fake-stripe';

type Json = Record<string, any>;

const FIXTURES = path.resolve(__dirname, '../../fixtures/stripe');
const fixture = (name: string): Json => JSON.parse(fs.readFileSync(path.join(FIXTURES, `${name}.json`), 'utf8'));

const PI = 'pi_1PFail00000000000000001';
const CH = 'ch_1PFail00000000000000001';
const IN = 'in_1PFail00000000000000001';
const BASIL_IN = 'in_1QBasil0000000000000001';
const mapping = loadPspMapping('stripe');

/** A loopback port nothing listens on. */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

let fake: FakeStripe;
let apiBase: string;

beforeAll(async () => {
  fake = createFakeStripe();
  apiBase = (await fake.start()).url;
});
afterAll(async () => {
  await fake.stop();
});
beforeEach(() => fake.reset());

function ctx(config: Json = {}): NormalizeContext<StripeProviderConfig> {
  return {
    merchantId: 'acme',
    config: stripeProviderConfigSchema.parse({ webhookSecret: 'whsec_test_secret', apiKey: 'sk_test_x', apiBase, ...config }),
    mapping,
  };
}

function raw(event: Json): RawInboundEvent {
  return { providerEventId: event.id, eventType: event.type, payload: event };
}

async function normalize(event: Json, c = ctx()): Promise<PaymentEvent> {
  return stripeConnector.normalize(raw(event), c);
}

/** The pre-basil example of psp-webhooks.md §1.5: `payment_intent` and `charge` are ids. */
function preBasil(patch: Json = {}): Json {
  const e = fixture('invoice-payment-failed-pre-basil');
  Object.assign(e.data.object, patch);
  return e;
}

/** A PaymentIntent as GET /v1/payment_intents/:id answers it after a card decline (§1.4). */
function declinedPaymentIntent(id: string, declineCode: string, method = 'card'): Json {
  return {
    id,
    object: 'payment_intent',
    amount: 4900,
    currency: 'eur',
    customer: 'cus_PFail000000001',
    status: 'requires_payment_method',
    latest_charge: null,
    payment_method_types: [method],
    last_payment_error: {
      type: 'card_error',
      code: 'card_declined',
      decline_code: declineCode,
      message: 'Your card has insufficient funds.',
      payment_method: { id: 'pm_1', object: 'payment_method', type: method },
    },
  };
}

describe('invoice failure lookup', () => {
  it('pre-basil event with a payment_intent id → the decline code of the fetched PaymentIntent', async () => {
    fake.paymentIntents.set(PI, { ...declinedPaymentIntent(PI, 'insufficient_funds'), latest_charge: CH });
    fake.charges.set(CH, {
      id: CH,
      object: 'charge',
      failure_code: 'card_declined',
      failure_message: 'Your card has insufficient funds.',
      outcome: { network_status: 'declined_by_network', reason: 'insufficient_funds', type: 'issuer_declined' },
      payment_method_details: { type: 'card' },
    });
    const e = await normalize(preBasil());
    expect(e.failure).toEqual({
      code: 'insufficient_funds',
      reason: 'insufficient_funds',
      message: 'Your card has insufficient funds.',
      retryable: true,
      final: false,
      nextAttemptAt: '2024-06-04T00:00:00.000Z',
    });
    expect(e.payment).toMatchObject({ ref: PI, method: 'card' });
    expect(e.detail).toMatchObject({ failureLookup: 'payment_intent' });
    expect(e.detail).not.toHaveProperty('failureLookupError');
    // One call, through the SDK: its version header and the qs-style expand the fake parsed.
    expect(fake.requests).toEqual([
      { method: 'GET', path: `/v1/payment_intents/${PI}`, query: { expand: ['latest_charge'] }, body: {}, stripeVersion: expect.any(String) },
    ]);
  });

  it('basil event with only the invoice id → found through the invoice payments', async () => {
    const pi = 'pi_1QBasil0000000000000001';
    fake.paymentIntents.set(pi, {
      ...declinedPaymentIntent(pi, 'unused', 'sepa_debit'),
      last_payment_error: {
        type: 'invalid_request_error',
        code: 'debit_not_authorized',
        message: 'The customer has notified their bank that this payment was unauthorized.',
        payment_method: { id: 'pm_2', object: 'payment_method', type: 'sepa_debit' },
      },
    });
    fake.invoicePayments.set('inpay_1QBasil0000000000000001', {
      id: 'inpay_1QBasil0000000000000001',
      object: 'invoice_payment',
      amount_paid: null,
      amount_requested: 10000,
      created: 1748736000,
      currency: 'eur',
      invoice: BASIL_IN,
      is_default: true,
      livemode: false,
      payment: { type: 'payment_intent', payment_intent: pi },
      status: 'open',
    });
    // Another invoice's payment must not be picked.
    fake.invoicePayments.set('inpay_other', { id: 'inpay_other', object: 'invoice_payment', invoice: 'in_other', is_default: true, created: 1, payment: { type: 'payment_intent', payment_intent: 'pi_other' } });

    const e = await normalize(fixture('invoice-payment-failed-basil'));
    expect(e.failure).toMatchObject({ code: 'debit_not_authorized', reason: 'mandate_invalid', retryable: false, final: true });
    expect(e.payment).toMatchObject({ ref: pi, method: 'sepa_debit', attempt: 4 });
    expect(e.detail).toMatchObject({ failureLookup: 'invoice_payments' });
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]).toMatchObject({
      method: 'GET',
      path: '/v1/invoice_payments',
      query: { invoice: BASIL_IN, expand: ['data.payment.payment_intent', 'data.payment.charge'] },
    });
  });

  it('basil event whose payments name a PaymentIntent id → that PaymentIntent is fetched', async () => {
    const pi = 'pi_1QBasil0000000000000002';
    fake.paymentIntents.set(pi, declinedPaymentIntent(pi, 'expired_card'));
    const e = fixture('invoice-payment-failed-basil');
    e.data.object.payments = { object: 'list', data: [{ id: 'inpay_x', object: 'invoice_payment', is_default: true, payment: { type: 'payment_intent', payment_intent: pi } }] };
    const n = await normalize(e);
    expect(n.failure).toMatchObject({ code: 'expired_card', reason: 'card_expired' });
    expect(n.detail).toMatchObject({ failureLookup: 'payment_intent' });
    expect(fake.requests.map((r) => r.path)).toEqual([`/v1/payment_intents/${pi}`]);
  });

  it('charge only → the charge failure_code', async () => {
    fake.charges.set(CH, {
      id: CH,
      object: 'charge',
      payment_intent: null,
      failure_code: 'expired_card',
      failure_message: 'Your card has expired.',
      outcome: { network_status: 'declined_by_network', reason: null, type: 'issuer_declined' },
      payment_method_details: { type: 'card' },
    });
    const e = await normalize(preBasil({ payment_intent: null }));
    expect(e.failure).toMatchObject({ code: 'expired_card', reason: 'card_expired', retryable: false, message: 'Your card has expired.' });
    expect(e.payment).toMatchObject({ ref: CH, method: 'card' });
    expect(e.detail).toMatchObject({ failureLookup: 'charge' });
    expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET /v1/charges/${CH}`]);
  });

  it('the charge outcome.reason when the charge has no failure_code the mapping knows', async () => {
    fake.charges.set(CH, { id: CH, object: 'charge', failure_code: 'card_declined', outcome: { reason: 'highest_risk_level', type: 'blocked' } });
    const e = await normalize(preBasil({ payment_intent: null }));
    // The most specific known code wins; both are kept.
    expect(e.failure).toMatchObject({ code: 'highest_risk_level', reason: 'fraud_suspected' });
    expect(e.detail).toMatchObject({ failureLookup: 'charge', failureCodes: ['highest_risk_level', 'card_declined'] });
  });

  it('an unknown PaymentIntent (404) → code unknown with the error kept, no throw', async () => {
    const e = await normalize(preBasil());
    expect(e.failure).toMatchObject({ code: 'unknown', reason: 'unknown', retryable: false });
    expect(e.detail).not.toHaveProperty('failureLookup');
    // The payment intent first, then the charge the event also names; both missing.
    expect(e.detail?.failureLookupError).toBe(
      `payment_intent ${PI}: 404 StripeInvalidRequestError resource_missing: No such payment_intent: '${PI}'; ` +
        `charge ${CH}: 404 StripeInvalidRequestError resource_missing: No such charge: '${CH}'`,
    );
  });

  it('a 404 on the PaymentIntent falls back to the charge and keeps both facts', async () => {
    fake.charges.set(CH, { id: CH, object: 'charge', failure_code: 'insufficient_funds' });
    const e = await normalize(preBasil());
    expect(e.failure).toMatchObject({ code: 'insufficient_funds', reason: 'insufficient_funds' });
    expect(e.detail).toMatchObject({ failureLookup: 'charge', failureLookupError: expect.stringContaining(`payment_intent ${PI}: 404`) });
  });

  it('a 401 keeps the event with code unknown; the error names no key', async () => {
    fake.fail({ path: /^\/v1\//, status: 401, error: { type: 'invalid_request_error', message: 'Invalid API Key provided: sk_test_x' } });
    const e = await normalize(preBasil());
    expect(e.failure).toMatchObject({ code: 'unknown', reason: 'unknown' });
    const error = String(e.detail?.failureLookupError);
    expect(error).toContain('401 StripeAuthenticationError: Invalid API Key provided: [redacted]');
    expect(error).not.toContain('sk_test_x');
  });

  it('a 500 from Stripe throws a retryable (non-Permanent) error, after one request', async () => {
    fake.fail({ path: `/v1/payment_intents/${PI}`, status: 500, error: { message: 'fake outage' } });
    const err = await normalize(preBasil()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(Permanent);
    expect((err as Error).message).toBe(`stripe lookup of payment_intent ${PI} failed, will retry: 500 StripeAPIError: fake outage`);
    expect(fake.requests).toHaveLength(1); // maxNetworkRetries 0 against apiBase
  });

  it('a 429 throws a retryable error', async () => {
    fake.fail({ path: /invoice_payments/, status: 429, error: { type: 'invalid_request_error', code: 'rate_limit', message: 'Too many requests' } });
    await expect(normalize(fixture('invoice-payment-failed-basil'))).rejects.toThrow(/will retry: 429 StripeRateLimitError rate_limit: Too many requests/);
  });

  it('an unreachable Stripe throws a retryable error', async () => {
    const closed = `http://127.0.0.1:${await closedPort()}`;
    await expect(normalize(preBasil(), ctx({ apiBase: closed }))).rejects.toThrow(/will retry: .*connection to Stripe/);
  });

  it('without apiKey no request is made (and the result is synchronous)', async () => {
    const c = ctx();
    const noKey = { ...c, config: stripeProviderConfigSchema.parse({ webhookSecret: 'whsec_test_secret', apiBase }) };
    const result = stripeConnector.normalize(raw(preBasil()), noKey);
    expect(result).not.toBeInstanceOf(Promise);
    expect((result as PaymentEvent).failure).toMatchObject({ code: 'unknown' });
    expect((result as PaymentEvent).detail).not.toHaveProperty('failureLookup');
    await new Promise((r) => setTimeout(r, 50));
    expect(fake.requests).toEqual([]);
  });

  it('an event that already carries a known code → no request', async () => {
    const expanded = preBasil({ payment_intent: declinedPaymentIntent(PI, 'insufficient_funds') });
    const e = await normalize(expanded);
    expect(e.failure).toMatchObject({ code: 'insufficient_funds' });
    expect(e.detail).not.toHaveProperty('failureLookup');
    // A known generic code (card_declined) counts as known too.
    const generic = preBasil({ payment_intent: { ...declinedPaymentIntent(PI, 'x'), last_payment_error: { type: 'card_error', code: 'card_declined' } } });
    expect((await normalize(generic)).failure).toMatchObject({ code: 'card_declined' });
    expect(fake.requests).toEqual([]);
  });

  it('invoice.marked_uncollectible is looked up as well; other kinds are not', async () => {
    fake.paymentIntents.set(PI, declinedPaymentIntent(PI, 'do_not_honor'));
    const e = await normalize({ ...preBasil({ status: 'uncollectible' }), type: 'invoice.marked_uncollectible' });
    expect(e.failure).toMatchObject({ code: 'do_not_honor', reason: 'card_declined', final: true });
    expect(fake.requests).toHaveLength(1);
    fake.requests.length = 0;
    const paid = await normalize({ ...preBasil({ status: 'paid' }), type: 'invoice.paid' });
    expect(paid.kind).toBe('payment_succeeded');
    expect(fake.requests).toEqual([]);
  });

  it('never changes the stored raw event', async () => {
    fake.paymentIntents.set(PI, declinedPaymentIntent(PI, 'insufficient_funds'));
    const event = preBasil();
    const before = JSON.stringify(event);
    await normalize(event);
    expect(JSON.stringify(event)).toBe(before);
  });
});

describe('dispute → invoice lookup', () => {
  const DP_CH = 'ch_1PDisp00000000000000001';
  const DP_PI = 'pi_1PDisp00000000000000001';

  it('a dispute without invoice → invoice.ref found through the (pre-basil) charge', async () => {
    fake.charges.set(DP_CH, {
      id: DP_CH,
      object: 'charge',
      customer: 'cus_Disp01',
      invoice: 'in_1PDisp00000000000000001',
      payment_intent: DP_PI,
      billing_details: { name: 'Jan Jansen', email: 'jan@example.nl', address: { country: 'nl' } },
      payment_method_details: { type: 'card' },
    });
    const e = await normalize(fixture('charge-dispute-created'));
    expect(e.kind).toBe('chargeback');
    expect(e.invoice).toEqual({ ref: 'in_1PDisp00000000000000001', amountDue: { value: 4900, currency: 'EUR' } });
    expect(e.customer).toMatchObject({ ref: 'cus_Disp01', name: 'Jan Jansen', country: 'NL' });
    expect(e.failure).toEqual({ code: 'fraudulent', reason: 'disputed', retryable: false, final: true });
    expect(e.detail).toMatchObject({ invoiceLookup: 'charge', disputeRef: 'dp_1PDisp00000000000000001' });
    expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual([`GET /v1/charges/${DP_CH}`]);
  });

  it('a basil charge (no invoice field) → the invoice payments of its payment intent', async () => {
    fake.charges.set(DP_CH, { id: DP_CH, object: 'charge', payment_intent: DP_PI, payment_method_details: { type: 'card' } });
    fake.invoicePayments.set('inpay_d1', { id: 'inpay_d1', object: 'invoice_payment', invoice: 'in_basilDisp1', is_default: true, status: 'paid', created: 5, payment: { type: 'payment_intent', payment_intent: DP_PI } });
    fake.invoicePayments.set('inpay_d2', { id: 'inpay_d2', object: 'invoice_payment', invoice: 'in_unrelated', is_default: true, status: 'paid', created: 6, payment: { type: 'payment_intent', payment_intent: 'pi_unrelated' } });
    const e = await normalize(fixture('charge-dispute-created'));
    expect(e.invoice).toEqual({ ref: 'in_basilDisp1', amountDue: { value: 4900, currency: 'EUR' } });
    expect(e.detail).toMatchObject({ invoiceLookup: 'invoice_payments' });
    expect(fake.requests[1]).toMatchObject({ path: '/v1/invoice_payments', query: { payment: { type: 'payment_intent', payment_intent: DP_PI } } });
  });

  it('a charge outside invoicing (invoice: null) → no invoice, no further calls', async () => {
    fake.charges.set(DP_CH, { id: DP_CH, object: 'charge', invoice: null, payment_intent: DP_PI });
    const e = await normalize(fixture('charge-dispute-created'));
    expect(e.invoice).toBeUndefined();
    expect(e.detail).not.toHaveProperty('invoiceLookup');
    expect(fake.requests).toHaveLength(1);
  });

  it('an unknown charge → the payment intent; nothing found keeps the event with the error', async () => {
    const e = await normalize(fixture('charge-dispute-created'));
    expect(e.invoice).toBeUndefined();
    expect(e.failure).toMatchObject({ reason: 'disputed' });
    expect(String(e.detail?.invoiceLookupError)).toMatch(new RegExp(`^charge ${DP_CH}: 404 .*; payment_intent ${DP_PI}: 404`));
  });

  it('no apiKey → no request', async () => {
    const c = ctx();
    const e = (await stripeConnector.normalize(raw(fixture('charge-dispute-created')), {
      ...c,
      config: stripeProviderConfigSchema.parse({ webhookSecret: 'whsec_test_secret' }),
    })) as PaymentEvent;
    expect(e.invoice).toBeUndefined();
    expect(fake.requests).toEqual([]);
  });
});
