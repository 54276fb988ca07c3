/**
 * Stripe normalization, specified on both Invoice shapes: before 2025-03-31.basil (the documented
 * example in shared/reference/psp-webhooks.md §1.5) and after it (subscription under
 * `parent.subscription_details`, no `charge`/`payment_intent`/`subscription`). Pure: no HTTP.
 */
import fs from 'node:fs';
import path from 'node:path';
import { stripeConnector } from '../../../connectors/psp/stripe';
import { StripePayloadError } from '../../../connectors/psp/stripe/normalize';
import { stripeProviderConfigSchema } from '../../../connectors/psp/stripe/schema';
import type { NormalizeContext, RawInboundEvent } from '../../../connectors/psp/types';
import type { PaymentEvent } from '../../../src/domain/types';
import { loadPspMapping } from '../../../src/mappings/load';
import { Permanent } from '../../../src/pipeline/errors';

/** Fixtures are patched freely in tests; the normalizer itself parses them with zod. */
type Json = Record<string, any>;

const FIXTURES = path.resolve(__dirname, '../../fixtures/stripe');
const fixture = (name: string): Json => JSON.parse(fs.readFileSync(path.join(FIXTURES, `${name}.json`), 'utf8'));
const iso = (unixSeconds: number) => new Date(unixSeconds * 1000).toISOString();

const ctx: NormalizeContext<ReturnType<typeof stripeProviderConfigSchema.parse>> = {
  merchantId: 'acme',
  config: stripeProviderConfigSchema.parse({ webhookSecret: 'whsec_test_secret' }),
  mapping: loadPspMapping('stripe'),
};

function normalize(event: Json): PaymentEvent {
  const raw: RawInboundEvent = { providerEventId: event.id, eventType: event.type, occurredAt: iso(event.created), payload: event };
  return stripeConnector.normalize(raw, ctx) as PaymentEvent;
}

/** The pre-basil example with its object patched (and optionally another event type). */
function preBasil(patch: Json = {}, type?: string): Json {
  const e = fixture('invoice-payment-failed-pre-basil');
  Object.assign(e.data.object, patch);
  if (type) e.type = type;
  return e;
}

function basil(patch: Json = {}): Json {
  const e = fixture('invoice-payment-failed-basil');
  Object.assign(e.data.object, patch);
  return e;
}

/** The companion PaymentIntent of §1.5, expanded in place of its id. */
const expandedPaymentIntent = {
  id: 'pi_1PFail00000000000000001',
  object: 'payment_intent',
  latest_charge: 'ch_1PFail00000000000000001',
  last_payment_error: {
    type: 'card_error',
    code: 'card_declined',
    decline_code: 'insufficient_funds',
    message: 'Your card has insufficient funds.',
    payment_method: { id: 'pm_1PFail00000000000000001', object: 'payment_method', type: 'card' },
  },
};

const PRE_BASIL_BASE = {
  merchantId: 'acme',
  provider: 'stripe',
  providerEventId: 'evt_1PFail00000000000000001',
  providerEventType: 'invoice.payment_failed',
  occurredAt: '2024-06-01T00:00:00.000Z',
  customer: { ref: 'cus_PFail000000001', name: 'Jan Jansen', email: 'jan@example.nl', type: 'consumer' },
  invoice: {
    ref: 'in_1PFail00000000000000001',
    number: 'ACME-0042',
    amountDue: { value: 4900, currency: 'EUR' },
    // status_transitions.finalized_at, not the draft's `created` (1717196400).
    issuedAt: '2024-06-01T00:00:00.000Z',
    subscriptionRef: 'sub_1PFail00000000000000001',
  },
};

describe('invoice.payment_failed, pre-basil shape (psp-webhooks.md §1.5)', () => {
  it('reads every canonical field of the documented example; an unexpanded attempt gives code unknown', () => {
    expect(normalize(preBasil())).toStrictEqual({
      ...PRE_BASIL_BASE,
      kind: 'payment_failed',
      payment: {
        ref: 'pi_1PFail00000000000000001',
        method: 'other',
        attempt: 1,
        relatedRefs: ['pi_1PFail00000000000000001', 'ch_1PFail00000000000000001'],
      },
      failure: { code: 'unknown', reason: 'unknown', retryable: false, final: false, nextAttemptAt: '2024-06-04T00:00:00.000Z' },
      detail: { apiVersion: '2024-06-20', invoiceStatus: 'open', billingReason: 'subscription_cycle' },
    });
  });

  it('reads the decline code of an expanded payment_intent and maps it through the mapping', () => {
    const e = normalize(preBasil({ payment_intent: expandedPaymentIntent }));
    expect(e.failure).toStrictEqual({
      code: 'insufficient_funds',
      reason: 'insufficient_funds',
      message: 'Your card has insufficient funds.',
      retryable: true,
      final: false,
      nextAttemptAt: '2024-06-04T00:00:00.000Z',
    });
    expect(e.payment).toStrictEqual({
      ref: 'pi_1PFail00000000000000001',
      method: 'card',
      attempt: 1,
      relatedRefs: ['pi_1PFail00000000000000001', 'ch_1PFail00000000000000001'],
    });
    expect(e.detail?.failureCodes).toEqual(['insufficient_funds', 'card_declined']);
  });

  it('is final when Stripe schedules no further attempt (next_payment_attempt null, contract §7)', () => {
    const e = normalize(preBasil({ next_payment_attempt: null, attempt_count: 4 }));
    expect(e.failure).toStrictEqual({ code: 'unknown', reason: 'unknown', retryable: false, final: true });
    expect(e.payment?.attempt).toBe(4);
  });

  it('is not final while a retry is scheduled, and says when', () => {
    const e = normalize(preBasil({ next_payment_attempt: 1717545600 }));
    expect(e.failure).toMatchObject({ final: false, nextAttemptAt: '2024-06-05T00:00:00.000Z' });
  });

  it("reads the failure from an expanded charge: Radar's outcome.reason beats the generic failure_code", () => {
    const charge = {
      id: 'ch_1PFail00000000000000001',
      object: 'charge',
      failure_code: 'card_declined',
      failure_message: 'Your card was declined.',
      outcome: { type: 'blocked', reason: 'highest_risk_level' },
      payment_method_details: { type: 'card' },
    };
    const e = normalize(preBasil({ charge, payment_intent: null }));
    expect(e.failure).toMatchObject({ code: 'highest_risk_level', reason: 'fraud_suspected', retryable: false, message: 'Your card was declined.' });
    expect(e.payment).toMatchObject({ ref: 'ch_1PFail00000000000000001', method: 'card' });
  });

  it('falls back to last_finalization_error when no attempt is readable', () => {
    const e = normalize(preBasil({ last_finalization_error: { type: 'invalid_request_error', code: 'invoice_no_payment_method_types', message: 'No payment method types.' } }));
    // Not in the mapping: kept raw, reason unknown, never a crash.
    expect(e.failure).toMatchObject({ code: 'invoice_no_payment_method_types', reason: 'unknown', retryable: false, message: 'No payment method types.' });
  });

  it('prefers a code the mapping knows over an unknown more specific one, and keeps both', () => {
    const pi = { ...expandedPaymentIntent, last_payment_error: { ...expandedPaymentIntent.last_payment_error, decline_code: 'brand_new_decline' } };
    const e = normalize(preBasil({ payment_intent: pi }));
    expect(e.failure).toMatchObject({ code: 'card_declined', reason: 'card_declined', retryable: true });
    expect(e.detail?.failureCodes).toEqual(['brand_new_decline', 'card_declined']);
  });

  it("never takes the merchant's account_country as the customer's country", () => {
    const e = normalize(preBasil({ account_country: 'NL' }));
    expect(e.customer).not.toHaveProperty('country');
    const withAddress = normalize(preBasil({ customer_address: { country: 'be', city: 'Gent', line1: null } }));
    expect(withAddress.customer).toMatchObject({ country: 'BE', address: { country: 'BE', city: 'Gent' } });
  });

  it('reads an expanded customer and subscription', () => {
    const e = normalize(
      preBasil({
        customer: { id: 'cus_PFail000000001', object: 'customer', phone: '+3161234', preferred_locales: ['nl-NL', 'en'] },
        subscription: { id: 'sub_1PFail00000000000000001', object: 'subscription' },
      }),
    );
    expect(e.customer).toStrictEqual({ ...PRE_BASIL_BASE.customer, phone: '+3161234', locale: 'nl-NL' });
    expect(e.invoice?.subscriptionRef).toBe('sub_1PFail00000000000000001');
  });

  it("reads the merchant's customer id: the expanded customer's metadata first, then the subscription's copied onto the invoice, then the invoice's (issue 12, hole 3)", () => {
    const sub = { subscription_details: { metadata: { customer_id: 'CRM-SUB' } }, metadata: { customer_id: 'CRM-INV' } };
    expect(normalize(preBasil({ ...sub, customer: { id: 'cus_PFail000000001', object: 'customer', metadata: { merchantCustomerId: 'CRM-CUS' } } })).customer?.merchantRef).toBe('CRM-CUS');
    expect(normalize(preBasil(sub)).customer?.merchantRef).toBe('CRM-SUB');
    expect(normalize(preBasil({ metadata: { customer_id: 'CRM-INV' } })).customer?.merchantRef).toBe('CRM-INV');
    expect(normalize(basil({ parent: { type: 'subscription_details', subscription_details: { metadata: { customer_id: 'CRM-B' }, subscription: 'sub_1' } } })).customer?.merchantRef).toBe('CRM-B');
    expect(normalize(preBasil()).customer).not.toHaveProperty('merchantRef');
  });

  it('keeps JPY amounts in minor units (exponent 0): ¥4900 stays 4900', () => {
    const e = normalize(preBasil({ currency: 'jpy', amount_due: 4900, amount_remaining: 4900 }));
    expect(e.invoice?.amountDue).toStrictEqual({ value: 4900, currency: 'JPY' });
  });
});

describe('invoice.payment_failed, basil shape (2025-03-31.basil)', () => {
  it('reads every canonical field without charge, payment_intent or subscription', () => {
    expect(normalize(basil())).toStrictEqual({
      merchantId: 'acme',
      provider: 'stripe',
      providerEventId: 'evt_1QBasil0000000000000001',
      providerEventType: 'invoice.payment_failed',
      kind: 'payment_failed',
      occurredAt: '2025-06-01T00:00:00.000Z',
      customer: {
        ref: 'cus_QBasil000000001',
        name: 'Bakkerij de Vries BV',
        email: 'billing@bakkerij-de-vries.nl',
        phone: '+31201234567',
        address: { line1: 'Keizersgracht 1', line2: '3hoog', postalCode: '1015 CJ', city: 'Amsterdam', country: 'NL' },
        country: 'NL',
        // customer_tax_ids is not empty.
        type: 'business',
      },
      invoice: {
        ref: 'in_1QBasil0000000000000001',
        number: 'BAKK-2025-06',
        // amount_remaining (10000) after a partial payment, not amount_due (12000).
        amountDue: { value: 10000, currency: 'EUR' },
        dueAt: '2025-06-15T00:00:00.000Z',
        issuedAt: '2025-06-01T00:00:00.000Z',
        subscriptionRef: 'sub_1QBasil0000000000000001',
        description: 'Monthly plan, June 2025',
      },
      // No payment ref is readable from a basil invoice without `payments`; the attempt count stays visible.
      failure: { code: 'unknown', reason: 'unknown', retryable: false, final: true },
      detail: { apiVersion: '2025-03-31.basil', invoiceStatus: 'open', billingReason: 'subscription_cycle', attemptCount: 4 },
    });
  });

  it('reads the payment and its failure from invoice.payments when present', () => {
    const payments = {
      object: 'list',
      data: [
        {
          id: 'inpay_1QBasilOld',
          object: 'invoice_payment',
          is_default: false,
          status: 'canceled',
          payment: { type: 'payment_intent', payment_intent: 'pi_1QBasilOld' },
        },
        {
          id: 'inpay_1QBasil',
          object: 'invoice_payment',
          is_default: true,
          status: 'open',
          payment: {
            type: 'payment_intent',
            payment_intent: {
              id: 'pi_1QBasil',
              object: 'payment_intent',
              latest_charge: 'py_1QBasil',
              payment_method_types: ['sepa_debit'],
              last_payment_error: {
                type: 'invalid_request_error',
                code: 'insufficient_funds',
                message: "The customer's account has insufficient funds to cover this payment.",
                payment_method_type: 'sepa_debit',
              },
            },
          },
        },
      ],
      has_more: false,
    };
    const e = normalize(basil({ payments }));
    expect(e.payment).toStrictEqual({
      ref: 'pi_1QBasil',
      method: 'sepa_debit',
      attempt: 4,
      relatedRefs: ['pi_1QBasil', 'py_1QBasil', 'pi_1QBasilOld'],
    });
    expect(e.failure).toStrictEqual({
      code: 'insufficient_funds',
      reason: 'insufficient_funds',
      message: "The customer's account has insufficient funds to cover this payment.",
      retryable: true,
      final: true,
    });
    expect(e.detail).not.toHaveProperty('attemptCount');
  });

  it('reads an expanded parent.subscription_details.subscription', () => {
    const e = normalize(basil({ parent: { type: 'subscription_details', subscription_details: { subscription: { id: 'sub_1QBasilX' } } } }));
    expect(e.invoice?.subscriptionRef).toBe('sub_1QBasilX');
  });

  it('takes the method from payment_settings only when it names one canonical method', () => {
    const withPayment = (types: string[]) =>
      normalize(basil({ payment_settings: { payment_method_types: types }, payments: { data: [{ payment: { payment_intent: 'pi_1' } }] } })).payment?.method;
    expect(withPayment(['sepa_debit'])).toBe('sepa_debit');
    expect(withPayment(['customer_balance'])).toBe('bank_transfer');
    expect(withPayment(['card', 'sepa_debit'])).toBe('other');
  });
});

describe('the other invoice events', () => {
  it('invoice.marked_uncollectible → invoice_uncollectible, its failure final whatever next_payment_attempt says', () => {
    const e = normalize(preBasil({ status: 'uncollectible' }, 'invoice.marked_uncollectible'));
    expect(e.kind).toBe('invoice_uncollectible');
    expect(e.failure).toStrictEqual({ code: 'unknown', reason: 'unknown', retryable: false, final: true });
    expect(e.invoice).toStrictEqual(PRE_BASIL_BASE.invoice);
  });

  it('invoice.voided → invoice_voided, with no failure', () => {
    const e = normalize(preBasil({ status: 'void', next_payment_attempt: null }, 'invoice.voided'));
    expect(e.kind).toBe('invoice_voided');
    expect(e).not.toHaveProperty('failure');
    expect(e.invoice).toStrictEqual(PRE_BASIL_BASE.invoice);
    expect(e.customer).toStrictEqual(PRE_BASIL_BASE.customer);
  });

  it.each(['invoice.paid', 'invoice.payment_succeeded'])('%s → payment_succeeded with the amount paid', (type) => {
    const e = normalize(preBasil({ status: 'paid', amount_paid: 4900, amount_remaining: 0, next_payment_attempt: null, attempt_count: 2 }, type));
    expect(e).toStrictEqual({
      ...PRE_BASIL_BASE,
      providerEventType: type,
      kind: 'payment_succeeded',
      invoice: { ...PRE_BASIL_BASE.invoice, amountDue: { value: 0, currency: 'EUR' } },
      payment: {
        ref: 'pi_1PFail00000000000000001',
        method: 'other',
        attempt: 2,
        relatedRefs: ['pi_1PFail00000000000000001', 'ch_1PFail00000000000000001'],
        amount: { value: 4900, currency: 'EUR' },
      },
      detail: { apiVersion: '2024-06-20', invoiceStatus: 'paid', billingReason: 'subscription_cycle', amountPaid: { value: 4900, currency: 'EUR' } },
    });
  });
});

describe('charge.dispute.created', () => {
  it('→ chargeback on the charge, failure disputed and final, no invoice when the charge is not expanded', () => {
    expect(normalize(fixture('charge-dispute-created'))).toStrictEqual({
      merchantId: 'acme',
      provider: 'stripe',
      providerEventId: 'evt_1PDisp00000000000000001',
      providerEventType: 'charge.dispute.created',
      kind: 'chargeback',
      occurredAt: '2024-07-01T00:00:00.000Z',
      payment: { ref: 'ch_1PDisp00000000000000001', method: 'card', relatedRefs: ['pi_1PDisp00000000000000001'] },
      failure: { code: 'fraudulent', reason: 'disputed', retryable: false, final: true },
      detail: {
        apiVersion: '2024-06-20',
        disputeRef: 'dp_1PDisp00000000000000001',
        disputeReason: 'fraudulent',
        disputeStatus: 'needs_response',
        amount: { value: 4900, currency: 'EUR' },
      },
    });
  });

  it('names the invoice and the customer when the expanded (pre-basil) charge carries them', () => {
    const e = fixture('charge-dispute-created');
    e.data.object.charge = {
      id: 'ch_1PDisp00000000000000001',
      object: 'charge',
      customer: 'cus_PFail000000001',
      invoice: 'in_1PFail00000000000000001',
      payment_intent: 'pi_1PDisp00000000000000001',
      billing_details: { name: 'Jan Jansen', email: 'jan@example.nl', phone: null, address: { country: 'NL', city: null } },
    };
    e.data.object.payment_intent = null;
    const out = normalize(e);
    expect(out.invoice).toStrictEqual({ ref: 'in_1PFail00000000000000001', amountDue: { value: 4900, currency: 'EUR' } });
    expect(out.customer).toStrictEqual({
      ref: 'cus_PFail000000001',
      name: 'Jan Jansen',
      email: 'jan@example.nl',
      address: { country: 'NL' },
      country: 'NL',
      type: 'consumer',
    });
    expect(out.payment).toStrictEqual({ ref: 'ch_1PDisp00000000000000001', method: 'card', relatedRefs: ['pi_1PDisp00000000000000001'] });
  });
});

describe('types the normalizer does not act on', () => {
  it('an unlisted type → ignored, still carrying the refs it can read', () => {
    const e = normalize(preBasil({ status: 'open' }, 'invoice.finalized'));
    expect(e.kind).toBe('ignored');
    expect(e).not.toHaveProperty('failure');
    expect(e.customer?.ref).toBe('cus_PFail000000001');
    expect(e.invoice?.ref).toBe('in_1PFail00000000000000001');
    expect(e.payment?.ref).toBe('pi_1PFail00000000000000001');
  });

  it('an unknown object → ignored, with its type and id in detail', () => {
    const e = normalize({
      id: 'evt_1Balance',
      object: 'event',
      created: 1717200000,
      type: 'balance.available',
      data: { object: { object: 'balance', available: [] } },
    });
    expect(e).toStrictEqual({
      merchantId: 'acme',
      provider: 'stripe',
      providerEventId: 'evt_1Balance',
      providerEventType: 'balance.available',
      kind: 'ignored',
      occurredAt: '2024-06-01T00:00:00.000Z',
      detail: { objectType: 'balance' },
    });
  });

  it('charge.failed on an invoice-backed charge stays on its invoice: no failure, the codes in detail (more in normalize-more.test.ts)', () => {
    const e = normalize({
      id: 'evt_1ChargeFailed',
      object: 'event',
      created: 1717200000,
      type: 'charge.failed',
      data: {
        object: {
          id: 'ch_1X',
          object: 'charge',
          amount: 4900,
          currency: 'eur',
          customer: 'cus_1X',
          payment_intent: 'pi_1X',
          invoice: 'in_1X',
          failure_code: 'insufficient_funds',
          payment_method_details: { type: 'sepa_debit' },
        },
      },
    });
    expect(e.kind).toBe('payment_failed');
    expect(e).not.toHaveProperty('failure');
    expect(e.invoice).toStrictEqual({ ref: 'in_1X', amountDue: { value: 4900, currency: 'EUR' } });
    expect(e.customer).toStrictEqual({ ref: 'cus_1X', type: 'consumer' });
    expect(e.payment).toStrictEqual({ ref: 'pi_1X', method: 'sepa_debit', relatedRefs: ['ch_1X', 'pi_1X'] });
    expect(e.detail).toMatchObject({ objectType: 'charge', objectRef: 'ch_1X', invoiceBacked: true, failureCodes: ['insufficient_funds'] });
  });

  it('customer.subscription.updated → subscription_status with old and new status', () => {
    const e = normalize({
      id: 'evt_1Sub',
      object: 'event',
      created: 1717200000,
      type: 'customer.subscription.updated',
      data: { object: { id: 'sub_1', object: 'subscription', customer: 'cus_1', status: 'past_due' }, previous_attributes: { status: 'active' } },
    });
    expect(e.kind).toBe('subscription_status');
    expect(e.detail).toMatchObject({ subscriptionRef: 'sub_1', status: 'past_due', previousStatus: 'active' });
  });
});

describe('payloads that do not fit', () => {
  it('an invoice we act on without its currency is refused, naming the event and field', () => {
    const e = preBasil();
    delete e.data.object.currency;
    expect(() => normalize(e)).toThrow(StripePayloadError);
    // Bad bytes do not improve with retries: the outbox dead-letters a Permanent at once.
    expect(() => normalize(e)).toThrow(Permanent);
    expect(() => normalize(e)).toThrow('stripe event evt_1PFail00000000000000001: data.object (invoice): currency:');
  });

  it('an ignored invoice event with the same gap is still normalized', () => {
    const e = preBasil({}, 'invoice.finalized');
    delete e.data.object.currency;
    expect(normalize(e)).toMatchObject({ kind: 'ignored', customer: { ref: 'cus_PFail000000001' } });
  });

  it('a non-integer amount is refused rather than rounded', () => {
    expect(() => normalize(preBasil({ amount_remaining: 49.5 }))).toThrow(/amount_remaining/);
  });
});

describe('mappings/psp/stripe.yaml', () => {
  it('maps every event type the normalizer handles to its kind', () => {
    expect(ctx.mapping.events).toMatchObject({
      'invoice.payment_failed': 'payment_failed',
      'invoice.paid': 'payment_succeeded',
      'invoice.payment_succeeded': 'payment_succeeded',
      'invoice.marked_uncollectible': 'invoice_uncollectible',
      'invoice.voided': 'invoice_voided',
      'charge.dispute.created': 'chargeback',
    });
  });
});
