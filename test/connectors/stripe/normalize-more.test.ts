/**
 * Stripe normalization of the events beyond invoices (issue 3, item 4): failed PaymentIntents and
 * Charges — one-off (a collectible item of its own) vs invoice-backed (timeline only) in the
 * pre-basil shape (the object names its invoice or says `invoice: null`) and in the basil shape
 * (no `invoice` field: the heuristic without an apiKey, Stripe's invoice payments with one) —,
 * the dispute lifecycle, refunds, inactive mandates and delinquent subscriptions.
 *
 * Payloads come from sim/psp/stripe-events.ts (Stripe's shapes, psp-webhooks.md §1.1/§1.4) with
 * fixed ids and times. The lookups run through the official SDK against the local fake Stripe.
 */
import { stripeConnector } from '../../../connectors/psp/stripe';
import { StripePayloadError } from '../../../connectors/psp/stripe/normalize';
import { StripeLookupRetryable } from '../../../connectors/psp/stripe/lookup';
import { stripeProviderConfigSchema, type StripeProviderConfig } from '../../../connectors/psp/stripe/schema';
import type { NormalizeContext, RawInboundEvent } from '../../../connectors/psp/types';
import type { PaymentEvent } from '../../../src/domain/types';
import { loadPspMapping } from '../../../src/mappings/load';
import { stripeEvents, stripeObjects, type PaymentFacts } from '../../../sim/psp/stripe-events';
import { createFakeStripe, type FakeStripe } from '../../../sim/psp/fake-stripe';

type Json = Record<string, any>;

const mapping = loadPspMapping('stripe');
const pure: NormalizeContext<StripeProviderConfig> = {
  merchantId: 'acme',
  config: stripeProviderConfigSchema.parse({ webhookSecret: 'whsec_test_secret' }),
  mapping,
};

const raw = (event: Json): RawInboundEvent => ({ providerEventId: event.id, eventType: event.type, payload: event });
/** Without an apiKey the connector is the pure normalizer: synchronous. */
const normalize = (event: Json): PaymentEvent => stripeConnector.normalize(raw(event), pure) as PaymentEvent;

const CREATED = 1750000000; // 2025-06-15T15:06:40Z
const AT = '2025-06-15T15:06:40.000Z';
const ATTEMPT_AT = '2025-06-15T15:06:35.000Z'; // the builders create the object 5 s before the event

/** A one-off card payment of €125 for an order, declined for insufficient funds. */
const ONE_OFF: PaymentFacts = {
  paymentIntent: 'pi_3OneOff0001',
  customer: 'cus_OneOff0001',
  amount: 12500,
  created: CREATED,
  description: 'Order 1042',
  failureCode: 'insufficient_funds',
  customerName: 'Jan Jansen',
  customerEmail: 'jan@example.nl',
  country: 'NL',
};

const JAN = {
  ref: 'cus_OneOff0001',
  name: 'Jan Jansen',
  email: 'jan@example.nl',
  address: { country: 'NL' },
  country: 'NL',
  type: 'consumer',
};

const envelopeOf = (e: Json, type: string, apiVersion = '2024-06-20') => ({
  merchantId: 'acme',
  provider: 'stripe',
  providerEventId: e.id,
  providerEventType: type,
  occurredAt: AT,
  apiVersion,
});

function expectEnvelope(out: PaymentEvent, e: Json) {
  expect(out).toMatchObject({ merchantId: 'acme', provider: 'stripe', providerEventId: e.id, providerEventType: e.type, occurredAt: AT });
}

describe('one-off payments (no invoice) become a collectible item', () => {
  it('payment_intent.payment_failed, pre-basil `invoice: null`: every canonical field; final because Stripe does not retry a PaymentIntent', () => {
    const e = stripeEvents.paymentIntentFailed(ONE_OFF);
    expect(e.data.object).toHaveProperty('invoice', null);
    const { apiVersion, ...env } = envelopeOf(e, 'payment_intent.payment_failed');
    expect(normalize(e)).toStrictEqual({
      ...env,
      kind: 'payment_failed',
      customer: JAN,
      invoice: {
        // The PaymentIntent is the item: its id is the invoice ref the hub and the agency use.
        ref: 'pi_3OneOff0001',
        amountDue: { value: 12500, currency: 'EUR' },
        issuedAt: ATTEMPT_AT,
        description: 'Order 1042',
      },
      payment: { ref: 'pi_3OneOff0001', method: 'card', relatedRefs: ['pi_3OneOff0001', 'ch_3OneOff0001'] },
      failure: {
        code: 'insufficient_funds',
        reason: 'insufficient_funds',
        message: 'Your card was declined (insufficient_funds).',
        retryable: true,
        final: true,
      },
      detail: {
        apiVersion,
        objectType: 'payment_intent',
        objectRef: 'pi_3OneOff0001',
        paymentIntentStatus: 'requires_payment_method',
        oneOff: true,
        invoiceLink: 'payload',
        failureCodes: ['insufficient_funds', 'card_declined'],
      },
    });
  });

  it('charge.failed for the same payment: the same item (ref = the PaymentIntent id), code from outcome.reason before failure_code', () => {
    const e = stripeEvents.chargeFailed(ONE_OFF);
    const { apiVersion, ...env } = envelopeOf(e, 'charge.failed');
    expect(normalize(e)).toStrictEqual({
      ...env,
      kind: 'payment_failed',
      customer: JAN,
      invoice: { ref: 'pi_3OneOff0001', amountDue: { value: 12500, currency: 'EUR' }, issuedAt: ATTEMPT_AT, description: 'Order 1042' },
      payment: { ref: 'pi_3OneOff0001', method: 'card', relatedRefs: ['ch_3OneOff0001', 'pi_3OneOff0001'] },
      failure: { code: 'insufficient_funds', reason: 'insufficient_funds', message: 'Your card was declined.', retryable: true, final: true },
      detail: {
        apiVersion,
        objectType: 'charge',
        objectRef: 'ch_3OneOff0001',
        chargeStatus: 'failed',
        oneOff: true,
        invoiceLink: 'payload',
        failureCodes: ['insufficient_funds', 'card_declined'],
      },
    });
  });

  it('a Charges-API charge without a PaymentIntent is one-off in either shape; its id is the item', () => {
    for (const shape of ['legacy', 'basil'] as const) {
      const e = stripeEvents.chargeFailed({ ...ONE_OFF, shape, charge: 'ch_3Legacy0001' }) as Json;
      delete e.data.object.payment_intent;
      delete e.data.object.invoice;
      const out = normalize(e);
      expect(out.invoice).toStrictEqual({ ref: 'ch_3Legacy0001', amountDue: { value: 12500, currency: 'EUR' }, issuedAt: ATTEMPT_AT, description: 'Order 1042' });
      expect(out.payment).toStrictEqual({ ref: 'ch_3Legacy0001', method: 'card', relatedRefs: ['ch_3Legacy0001'] });
      expect(out.failure).toMatchObject({ code: 'insufficient_funds', final: true });
      expect(out.detail).toMatchObject({ oneOff: true, invoiceLink: 'payload' });
    }
  });

  it('a failed SEPA debit reads the bank code from last_payment_error.code (no decline_code)', () => {
    const out = normalize(stripeEvents.paymentIntentFailed({ ...ONE_OFF, method: 'sepa_debit', failureCode: 'bank_account_restricted' }));
    expect(out.payment).toStrictEqual({ ref: 'pi_3OneOff0001', method: 'sepa_debit', relatedRefs: ['pi_3OneOff0001', 'ch_3OneOff0001'] });
    expect(out.failure).toStrictEqual({
      code: 'bank_account_restricted',
      reason: 'account_invalid',
      message: 'The payment failed: bank_account_restricted.',
      retryable: false,
      final: true,
    });
    expect(out.detail).not.toHaveProperty('failureCodes'); // one code only
  });

  it('an unknown decline code: the known generic code is used, both kept in detail', () => {
    const out = normalize(stripeEvents.paymentIntentFailed({ ...ONE_OFF, failureCode: 'brand_new_decline' }));
    expect(out.failure).toMatchObject({ code: 'card_declined', reason: 'card_declined', retryable: true, final: true });
    expect(out.detail?.failureCodes).toEqual(['brand_new_decline', 'card_declined']);
  });

  it('takes name and address from an expanded customer, the email from receipt_email when nothing else has one', () => {
    const e = stripeEvents.paymentIntentFailed({ ...ONE_OFF, customerName: undefined, customerEmail: undefined, country: undefined, receiptEmail: 'receipts@example.nl' }) as Json;
    expect(normalize(e).customer).toStrictEqual({ ref: 'cus_OneOff0001', email: 'receipts@example.nl', type: 'consumer' });
    e.data.object.customer = { id: 'cus_OneOff0001', object: 'customer', name: 'Jansen BV', address: { country: 'be', city: 'Gent' }, preferred_locales: ['nl-BE'] };
    expect(normalize(e).customer).toStrictEqual({
      ref: 'cus_OneOff0001',
      name: 'Jansen BV',
      email: 'receipts@example.nl',
      address: { city: 'Gent', country: 'BE' },
      country: 'BE',
      locale: 'nl-BE',
      type: 'consumer',
    });
  });

  it('a guest payment (no customer) carries no customer: the ledger has no one to collect from', () => {
    const out = normalize(stripeEvents.paymentIntentFailed({ ...ONE_OFF, customer: null }));
    expect(out).not.toHaveProperty('customer');
    expect(out.invoice?.ref).toBe('pi_3OneOff0001');
  });

  it('a failed payment without amount or currency is refused (permanent), naming the event', () => {
    const e = stripeEvents.paymentIntentFailed(ONE_OFF) as Json;
    delete e.data.object.amount;
    expect(() => normalize(e)).toThrow(StripePayloadError);
    expect(() => normalize(e)).toThrow(`stripe event ${e.id}: data.object (payment_intent): amount and currency are required`);
  });
});

describe('invoice-backed payments stay on their invoice (timeline only)', () => {
  const BACKED: PaymentFacts = { ...ONE_OFF, invoice: 'in_1Backed0001', description: 'Subscription update' };

  it('pre-basil PaymentIntent naming its invoice: payment_failed on that invoice, NO failure, the codes in detail.failureCodes', () => {
    const e = stripeEvents.paymentIntentFailed(BACKED);
    const { apiVersion, ...env } = envelopeOf(e, 'payment_intent.payment_failed');
    expect(normalize(e)).toStrictEqual({
      ...env,
      kind: 'payment_failed',
      customer: JAN,
      invoice: { ref: 'in_1Backed0001', amountDue: { value: 12500, currency: 'EUR' } },
      payment: { ref: 'pi_3OneOff0001', method: 'card', relatedRefs: ['pi_3OneOff0001', 'ch_3OneOff0001'] },
      detail: {
        apiVersion,
        objectType: 'payment_intent',
        objectRef: 'pi_3OneOff0001',
        paymentIntentStatus: 'requires_payment_method',
        failureMessage: 'Your card was declined (insufficient_funds).',
        invoiceBacked: true,
        invoiceLink: 'payload',
        failureCodes: ['insufficient_funds', 'card_declined'],
      },
    });
  });

  it('pre-basil charge naming its invoice: the same, from the charge', () => {
    const out = normalize(stripeEvents.chargeFailed(BACKED));
    expect(out).not.toHaveProperty('failure');
    expect(out.invoice).toStrictEqual({ ref: 'in_1Backed0001', amountDue: { value: 12500, currency: 'EUR' } });
    expect(out.payment).toStrictEqual({ ref: 'pi_3OneOff0001', method: 'card', relatedRefs: ['ch_3OneOff0001', 'pi_3OneOff0001'] });
    expect(out.detail).toMatchObject({ objectType: 'charge', chargeStatus: 'failed', invoiceBacked: true, failureCodes: ['insufficient_funds', 'card_declined'] });
  });

  it('a basil charge whose expanded PaymentIntent names the invoice is invoice-backed', () => {
    const e = stripeEvents.chargeFailed({ ...BACKED, shape: 'basil' }) as Json;
    expect(e.data.object).not.toHaveProperty('invoice');
    e.data.object.payment_intent = { id: 'pi_3OneOff0001', object: 'payment_intent', invoice: 'in_1Backed0001' };
    expect(normalize(e).invoice?.ref).toBe('in_1Backed0001');
  });

  it.each<[string, Partial<PaymentFacts>, string]>([
    ['Stripe Billing\'s description ("Subscription creation")', { description: 'Subscription creation' }, 'description "Subscription creation"'],
    ['"Payment for Invoice"', { description: 'Payment for Invoice' }, 'description "Payment for Invoice"'],
    ['setup_future_usage (a payment method saved for the renewals)', { setupFutureUsage: 'off_session' }, 'setup_future_usage is off_session'],
    ['a metadata key naming a subscription', { metadata: { subscription_id: 'sub_42' } }, 'metadata subscription_id'],
  ])('basil without an apiKey: %s → taken as invoice-backed (no item, no failure), the reason in detail.heuristic', (_name, patch, why) => {
    const e = stripeEvents.paymentIntentFailed({ ...ONE_OFF, ...patch, shape: 'basil' });
    expect(e.data.object).not.toHaveProperty('invoice');
    const { apiVersion, ...env } = envelopeOf(e, 'payment_intent.payment_failed', '2025-03-31.basil');
    expect(normalize(e)).toStrictEqual({
      ...env,
      kind: 'payment_failed',
      customer: JAN,
      payment: { ref: 'pi_3OneOff0001', method: 'card', relatedRefs: ['pi_3OneOff0001', 'ch_3OneOff0001'] },
      detail: {
        apiVersion,
        objectType: 'payment_intent',
        objectRef: 'pi_3OneOff0001',
        paymentIntentStatus: 'requires_payment_method',
        failureMessage: 'Your card was declined (insufficient_funds).',
        invoiceBacked: 'suspected',
        invoiceLink: 'heuristic',
        heuristic: why,
        failureCodes: ['insufficient_funds', 'card_declined'],
      },
    });
  });

  it('basil without an apiKey: description and metadata say nothing, no setup_future_usage → one-off', () => {
    for (const build of [stripeEvents.paymentIntentFailed, stripeEvents.chargeFailed]) {
      const out = normalize(build({ ...ONE_OFF, shape: 'basil', metadata: { order_id: '1042' } }));
      expect(out.invoice).toStrictEqual({ ref: 'pi_3OneOff0001', amountDue: { value: 12500, currency: 'EUR' }, issuedAt: ATTEMPT_AT, description: 'Order 1042' });
      expect(out.failure).toMatchObject({ code: 'insufficient_funds', final: true });
      expect(out.detail).toMatchObject({ oneOff: true, invoiceLink: 'heuristic', apiVersion: '2025-03-31.basil' });
    }
  });
});

describe('basil shape with an apiKey: Stripe says whether a payment belongs to an invoice', () => {
  let fake: FakeStripe;
  let ctx: NormalizeContext<StripeProviderConfig>;
  beforeAll(async () => {
    fake = createFakeStripe();
    const { url } = await fake.start();
    ctx = { merchantId: 'acme', config: stripeProviderConfigSchema.parse({ webhookSecret: 'whsec_test_secret', apiKey: 'sk_test_x', apiBase: url }), mapping };
  });
  afterAll(async () => {
    await fake.stop();
  });
  beforeEach(() => fake.reset());

  const lookedUp = (event: Json) => Promise.resolve(stripeConnector.normalize(raw(event), ctx));
  const listCalls = () => fake.requests.filter((r) => r.path === '/v1/invoice_payments');

  it('an invoice payment of the PaymentIntent → invoice-backed on that invoice, although the description says nothing', async () => {
    fake.invoicePayments.set('inpay_3OneOff0001', stripeObjects.invoicePayment('in_1Basil0001', 'pi_3OneOff0001', 12500));
    const e = stripeEvents.paymentIntentFailed({ ...ONE_OFF, shape: 'basil' });
    const out = await lookedUp(e);
    expect(out).not.toHaveProperty('failure');
    expect(out.invoice).toStrictEqual({ ref: 'in_1Basil0001', amountDue: { value: 12500, currency: 'EUR' } });
    expect(out.detail).toMatchObject({ invoiceBacked: true, invoiceLookup: 'invoice_payments', failureCodes: ['insufficient_funds', 'card_declined'] });
    expect(listCalls()).toEqual([expect.objectContaining({ method: 'GET', query: { payment: { type: 'payment_intent', payment_intent: 'pi_3OneOff0001' } } })]);
  });

  it('no invoice payment → one-off, even when the description looks like a subscription', async () => {
    const e = stripeEvents.chargeFailed({ ...ONE_OFF, shape: 'basil', description: 'Subscription creation' });
    const out = await lookedUp(e);
    expect(out.invoice?.ref).toBe('pi_3OneOff0001');
    expect(out.failure).toMatchObject({ code: 'insufficient_funds', reason: 'insufficient_funds', final: true });
    expect(out.detail).toMatchObject({ oneOff: true, invoiceLookup: 'invoice_payments' });
    expect(listCalls()).toHaveLength(1);
  });

  it('Stripe refusing the lookup (401) leaves the heuristic to decide, with the error in detail; a 500 is retried', async () => {
    fake.fail({ path: '/v1/invoice_payments', status: 401, error: { message: 'Invalid API Key provided: sk_test_x' }, times: 1 });
    const out = await lookedUp(stripeEvents.paymentIntentFailed({ ...ONE_OFF, shape: 'basil' }));
    expect(out.detail).toMatchObject({ oneOff: true, invoiceLink: 'heuristic' });
    expect(out.detail?.invoiceLookupError).toMatch(/^invoice_payments payment_intent=pi_3OneOff0001: 401/);
    expect(String(out.detail?.invoiceLookupError)).not.toContain('sk_test_x');

    fake.fail({ path: '/v1/invoice_payments', status: 500, times: 1 });
    await expect(lookedUp(stripeEvents.paymentIntentFailed({ ...ONE_OFF, shape: 'basil' }))).rejects.toThrow(StripeLookupRetryable);
  });

  it('a pre-basil payload already says: no call', async () => {
    await lookedUp(stripeEvents.paymentIntentFailed(ONE_OFF));
    await lookedUp(stripeEvents.paymentIntentFailed({ ...ONE_OFF, invoice: 'in_1Backed0001' }));
    expect(fake.requests).toEqual([]);
  });

  it('a basil refund finds its invoice the same way', async () => {
    fake.invoicePayments.set('inpay_Refund0001', stripeObjects.invoicePayment('in_Refund0001', 'pi_Refund0001', 4900, 'paid'));
    const out = await lookedUp(stripeEvents.chargeRefunded({ invoice: 'in_Refund0001', customer: 'cus_Refund0001', amount: 4900, created: CREATED, shape: 'basil' }));
    expect(out.kind).toBe('refund');
    expect(out.invoice).toStrictEqual({ ref: 'in_Refund0001', amountDue: { value: 4900, currency: 'EUR' } });
    expect(out.detail).toMatchObject({ invoiceLookup: 'invoice_payments' });
  });
});

describe('charge.dispute.* → chargeback with detail.disputeStatus', () => {
  const INV = { invoice: 'in_Disp0001', customer: 'cus_Disp0001', amount: 4900, created: CREATED };
  const base = (e: Json) => ({
    merchantId: 'acme',
    provider: 'stripe',
    providerEventId: e.id,
    providerEventType: e.type,
    kind: 'chargeback',
    occurredAt: AT,
    payment: { ref: 'ch_Disp0001', method: 'other', relatedRefs: ['pi_Disp0001'] },
  });
  const detail = (status: string) => ({
    apiVersion: '2024-06-20',
    disputeRef: 'dp_Disp0001',
    disputeReason: 'fraudulent',
    disputeStatus: status,
    amount: { value: 4900, currency: 'EUR' },
  });
  const DISPUTED = { code: 'fraudulent', reason: 'disputed', retryable: false, final: true };

  it.each<[string, Json, string]>([
    ['charge.dispute.updated', stripeEvents.disputeUpdated({ ...INV, status: 'under_review' }), 'under_review'],
    ['charge.dispute.funds_withdrawn', stripeEvents.disputeFundsWithdrawn(INV), 'needs_response'],
    ['charge.dispute.closed (lost: the chargeback stands)', stripeEvents.disputeClosed({ ...INV, status: 'lost' }), 'lost'],
  ])('%s → chargeback, disputed and final', (_name, e, status) => {
    expect(normalize(e)).toStrictEqual({ ...base(e), failure: DISPUTED, detail: detail(status) });
  });

  it.each<[string, Json, string]>([
    ['charge.dispute.closed won', stripeEvents.disputeClosed({ ...INV, status: 'won' }), 'won'],
    ['charge.dispute.funds_reinstated', stripeEvents.disputeFundsReinstated(INV), 'won'],
    ['an inquiry closed without a chargeback', stripeEvents.disputeClosed({ ...INV, status: 'warning_closed' }), 'warning_closed'],
  ])('%s → chargeback with detail.disputeStatus, no failure (the merchant kept the money)', (_name, e, status) => {
    expect(normalize(e)).toStrictEqual({ ...base(e), detail: detail(status) });
  });
});

describe('charge.refunded → refund', () => {
  const INV = { invoice: 'in_Ref0001', customer: 'cus_Ref0001', amount: 4900, created: CREATED, customerName: 'Piet Pieters', country: 'NL' };

  it('pre-basil, fully refunded: every canonical field; payment.amount is the amount refunded so far', () => {
    const e = stripeEvents.chargeRefunded(INV);
    expect(normalize(e)).toStrictEqual({
      merchantId: 'acme',
      provider: 'stripe',
      providerEventId: e.id,
      providerEventType: 'charge.refunded',
      kind: 'refund',
      occurredAt: AT,
      customer: { ref: 'cus_Ref0001', name: 'Piet Pieters', address: { country: 'NL' }, country: 'NL', type: 'consumer' },
      invoice: { ref: 'in_Ref0001', amountDue: { value: 4900, currency: 'EUR' } },
      payment: { ref: 'pi_Ref0001', method: 'card', relatedRefs: ['ch_Ref0001', 'pi_Ref0001'], amount: { value: 4900, currency: 'EUR' } },
      detail: {
        apiVersion: '2024-06-20',
        objectType: 'charge',
        objectRef: 'ch_Ref0001',
        amountRefunded: { value: 4900, currency: 'EUR' },
        chargeAmount: { value: 4900, currency: 'EUR' },
        fullyRefunded: true,
        invoiceLink: 'payload',
      },
    });
  });

  it('basil, partially refunded, without an apiKey: no invoice ref (the ledger finds it by payment ids)', () => {
    const out = normalize(stripeEvents.chargeRefunded({ ...INV, shape: 'basil', amountRefunded: 1500 }));
    expect(out).not.toHaveProperty('invoice');
    expect(out.payment).toStrictEqual({ ref: 'pi_Ref0001', method: 'card', relatedRefs: ['ch_Ref0001', 'pi_Ref0001'], amount: { value: 1500, currency: 'EUR' } });
    expect(out.detail).toStrictEqual({
      apiVersion: '2025-03-31.basil',
      objectType: 'charge',
      objectRef: 'ch_Ref0001',
      amountRefunded: { value: 1500, currency: 'EUR' },
      chargeAmount: { value: 4900, currency: 'EUR' },
      fullyRefunded: false,
    });
  });

  it('a one-off payment (`invoice: null`) is refunded on its own item: ref = the PaymentIntent id', () => {
    const e = stripeEvents.chargeRefunded(INV) as Json;
    e.data.object.invoice = null;
    const out = normalize(e);
    expect(out.invoice).toStrictEqual({ ref: 'pi_Ref0001', amountDue: { value: 4900, currency: 'EUR' } });
    expect(out.detail).toMatchObject({ oneOff: true });
  });
});

describe('mandate.updated', () => {
  it('inactive, payment method expanded with its customer → mandate_revoked on that customer', () => {
    const e = stripeEvents.mandateUpdated({ paymentMethod: 'pm_Sepa0001', status: 'inactive', created: CREATED }) as Json;
    e.data.object.payment_method = stripeObjects.paymentMethod('pm_Sepa0001', 'cus_Sepa0001', { name: 'Hans Müller', email: 'hans@example.de', country: 'DE' });
    expect(normalize(e)).toStrictEqual({
      merchantId: 'acme',
      provider: 'stripe',
      providerEventId: e.id,
      providerEventType: 'mandate.updated',
      kind: 'mandate_revoked',
      occurredAt: AT,
      customer: { ref: 'cus_Sepa0001', name: 'Hans Müller', email: 'hans@example.de', address: { country: 'DE' }, country: 'DE', type: 'consumer' },
      detail: {
        apiVersion: '2024-06-20',
        objectType: 'mandate',
        mandateRef: 'mandate_Sepa0001',
        status: 'inactive',
        mandateType: 'multi_use',
        paymentMethodRef: 'pm_Sepa0001',
        method: 'sepa_debit',
      },
    });
  });

  it('inactive, payment method only an id, no apiKey → ignored with a note saying why', () => {
    const e = stripeEvents.mandateUpdated({ paymentMethod: 'pm_Sepa0002', status: 'inactive', created: CREATED });
    const out = normalize(e);
    expect(out).toStrictEqual({
      merchantId: 'acme',
      provider: 'stripe',
      providerEventId: e.id,
      providerEventType: 'mandate.updated',
      kind: 'ignored',
      occurredAt: AT,
      detail: {
        apiVersion: '2024-06-20',
        objectType: 'mandate',
        mandateRef: 'mandate_Sepa0002',
        status: 'inactive',
        mandateType: 'multi_use',
        paymentMethodRef: 'pm_Sepa0002',
        method: 'sepa_debit',
        note: expect.stringMatching(/^mandate mandate_Sepa0002 is inactive, but the event names only payment method pm_Sepa0002, not its customer/),
      },
    });
  });

  it.each(['active', 'pending'] as const)('%s → ignored', (status) => {
    const e = stripeEvents.mandateUpdated({ paymentMethod: 'pm_Sepa0003', status, created: CREATED }) as Json;
    e.data.object.payment_method = stripeObjects.paymentMethod('pm_Sepa0003', 'cus_Sepa0003');
    const out = normalize(e);
    expect(out.kind).toBe('ignored');
    expect(out).not.toHaveProperty('customer');
    expect(out.detail).toMatchObject({ status, mandateRef: 'mandate_Sepa0003' });
    expect(out.detail).not.toHaveProperty('note');
  });

  describe('with an apiKey: the payment method is fetched', () => {
    let fake: FakeStripe;
    let ctx: NormalizeContext<StripeProviderConfig>;
    beforeAll(async () => {
      fake = createFakeStripe();
      const { url } = await fake.start();
      ctx = { merchantId: 'acme', config: stripeProviderConfigSchema.parse({ webhookSecret: 'whsec_test_secret', apiKey: 'sk_test_x', apiBase: url }), mapping };
    });
    afterAll(async () => {
      await fake.stop();
    });
    beforeEach(() => fake.reset());
    const lookedUp = (event: Json) => Promise.resolve(stripeConnector.normalize(raw(event), ctx));

    it('→ mandate_revoked on the payment method’s customer, detail.customerLookup', async () => {
      fake.paymentMethods.set('pm_Sepa0004', stripeObjects.paymentMethod('pm_Sepa0004', 'cus_Sepa0004', { name: 'Hans Müller' }));
      const out = await lookedUp(stripeEvents.mandateUpdated({ paymentMethod: 'pm_Sepa0004', status: 'inactive', created: CREATED }));
      expect(out.kind).toBe('mandate_revoked');
      expect(out.customer).toStrictEqual({ ref: 'cus_Sepa0004', name: 'Hans Müller', type: 'consumer' });
      expect(out.detail).toMatchObject({ mandateRef: 'mandate_Sepa0004', paymentMethodRef: 'pm_Sepa0004', customerLookup: 'payment_method' });
      expect(fake.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /v1/payment_methods/pm_Sepa0004']);
    });

    it('a payment method Stripe does not know (404) → ignored, the note and the error kept', async () => {
      const out = await lookedUp(stripeEvents.mandateUpdated({ paymentMethod: 'pm_Gone0001', status: 'inactive', created: CREATED }));
      expect(out.kind).toBe('ignored');
      expect(out.detail?.note).toMatch(/not its customer/);
      expect(out.detail?.customerLookupError).toMatch(/^payment_method pm_Gone0001: 404 StripeInvalidRequestError resource_missing: No such payment_method: 'pm_Gone0001'$/);
    });

    it('a payment method that belongs to no customer → ignored, saying so', async () => {
      fake.paymentMethods.set('pm_Lone0001', stripeObjects.paymentMethod('pm_Lone0001', null));
      const out = await lookedUp(stripeEvents.mandateUpdated({ paymentMethod: 'pm_Lone0001', status: 'inactive', created: CREATED }));
      expect(out.kind).toBe('ignored');
      expect(out.detail?.note).toBe('mandate mandate_Lone0001 is inactive, but its payment method pm_Lone0001 belongs to no customer');
    });

    it('an active mandate is not looked up', async () => {
      await lookedUp(stripeEvents.mandateUpdated({ paymentMethod: 'pm_Sepa0005', status: 'active', created: CREATED }));
      expect(fake.requests).toEqual([]);
    });
  });
});

describe('customer.subscription.updated', () => {
  it.each(['past_due', 'unpaid'] as const)('to %s (previous_attributes.status present) → subscription_status on the customer', (status) => {
    const e = stripeEvents.subscriptionUpdated({ subscription: 'sub_Late0001', customer: 'cus_Late0001', status, previousStatus: 'active', latestInvoice: 'in_Late0001', created: CREATED });
    expect(normalize(e)).toStrictEqual({
      merchantId: 'acme',
      provider: 'stripe',
      providerEventId: e.id,
      providerEventType: 'customer.subscription.updated',
      kind: 'subscription_status',
      occurredAt: AT,
      customer: { ref: 'cus_Late0001', type: 'consumer' },
      detail: {
        apiVersion: '2024-06-20',
        objectType: 'subscription',
        subscriptionRef: 'sub_Late0001',
        status,
        previousStatus: 'active',
        latestInvoiceRef: 'in_Late0001',
      },
    });
  });

  it.each<[string, Parameters<typeof stripeEvents.subscriptionUpdated>[0]]>([
    ['past_due, but the status did not change (a metadata edit)', { subscription: 'sub_1', customer: 'cus_1', status: 'past_due', created: CREATED }],
    ['back to active', { subscription: 'sub_1', customer: 'cus_1', status: 'active', previousStatus: 'past_due', created: CREATED }],
    ['canceled', { subscription: 'sub_1', customer: 'cus_1', status: 'canceled', previousStatus: 'unpaid', created: CREATED }],
  ])('%s → ignored', (_name, f) => {
    const out = normalize(stripeEvents.subscriptionUpdated(f));
    expect(out.kind).toBe('ignored');
    expect(out.detail).toMatchObject({ subscriptionRef: 'sub_1', status: f.status });
  });
});

describe('mappings/psp/stripe.yaml', () => {
  it('maps the new event types to existing kinds only', () => {
    expect(mapping.events).toMatchObject({
      'payment_intent.payment_failed': 'payment_failed',
      'charge.failed': 'payment_failed',
      'charge.dispute.created': 'chargeback',
      'charge.dispute.updated': 'chargeback',
      'charge.dispute.closed': 'chargeback',
      'charge.dispute.funds_withdrawn': 'chargeback',
      'charge.dispute.funds_reinstated': 'chargeback',
      'charge.refunded': 'refund',
      'mandate.updated': 'mandate_revoked',
      'customer.subscription.updated': 'subscription_status',
    });
  });

  it('an unlisted payment event (payment_intent.succeeded) is ignored with its refs', () => {
    const e = stripeEvents.paymentIntentFailed(ONE_OFF) as Json;
    e.type = 'payment_intent.succeeded';
    const out = normalize(e);
    expectEnvelope(out, e);
    expect(out.kind).toBe('ignored');
    expect(out).not.toHaveProperty('failure');
    expect(out.payment?.ref).toBe('pi_3OneOff0001');
  });
});
