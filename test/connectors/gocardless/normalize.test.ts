/**
 * GoCardless normalization, specified on the documented failed SEPA payment
 * (shared/reference/psp-webhooks.md §4.4) and its variants, against the local fake of GoCardless's
 * API (sim/psp/fake-gocardless.ts): events carry only links, so the payment, its mandate and the
 * mandate's customer are fetched over real HTTP on loopback, and every canonical field is asserted.
 */
import { gocardlessConnector, normalizeWithLookups } from '../../../connectors/psp/gocardless';
import { createGoCardlessClient, GoCardlessRetryable, GOCARDLESS_VERSION } from '../../../connectors/psp/gocardless/client';
import { GoCardlessPayloadError } from '../../../connectors/psp/gocardless/normalize';
import { gocardlessProviderConfigSchema, type GoCardlessProviderConfig } from '../../../connectors/psp/gocardless/schema';
import type { NormalizeContext, RawInboundEvent } from '../../../connectors/psp/types';
import type { PaymentEvent } from '../../../src/domain/types';
import { loadPspMapping } from '../../../src/mappings/load';
import { Permanent } from '../../../src/pipeline/errors';
import { createFakeGoCardless, type FakeGoCardless } from '../../../sim/psp/fake-gocardless';
import { gocardlessEvents, gocardlessResources } from '../../../sim/psp/gocardless-events';

type Json = Record<string, any>;

const TOKEN = 'sandbox_normalize_test_token_0123';

/** The documented example (§4.4), with `events` as the array real deliveries carry. */
const DOCUMENTED_BODY = {
  events: [
    {
      id: 'EV123',
      created_at: '2014-04-08T17:01:06.000Z',
      resource_type: 'payments',
      action: 'failed',
      details: {
        origin: 'bank',
        cause: 'insufficient_funds',
        description: "The customer's account had insufficient funds to make this payment.",
        scheme: 'sepa_core',
        reason_code: 'AM04',
        will_attempt_retry: false,
      },
      metadata: {},
      links: { payment: 'PM123' },
    },
  ],
  meta: { webhook_id: 'WB123' },
};

let fake: FakeGoCardless;
let ctx: NormalizeContext<GoCardlessProviderConfig>;

const raw = (event: Json): RawInboundEvent => ({
  providerEventId: event.id,
  eventType: `${event.resource_type}.${event.action}`,
  occurredAt: Number.isNaN(Date.parse(event.created_at)) ? undefined : new Date(event.created_at).toISOString(),
  payload: event,
});

const normalize = (event: Json, c = ctx) => gocardlessConnector.normalize(raw(event), c) as Promise<PaymentEvent>;

/** The payment PM123 of the example, on mandate MD123 of customer CU123 (a consumer in NL). */
function seedDocumentedPayment(payment: Partial<Parameters<typeof gocardlessResources.payment>[0]> = {}): void {
  fake.customers.set(
    'CU123',
    gocardlessResources.customer({
      id: 'CU123', givenName: 'Jan', familyName: 'Jansen', email: 'jan@example.nl', countryCode: 'NL', language: 'nl',
      addressLine1: 'Keizersgracht 1', postalCode: '1015 CJ', city: 'Amsterdam', phoneNumber: '+31201234567',
    }),
  );
  fake.mandates.set('MD123', gocardlessResources.mandate({ id: 'MD123', customer: 'CU123', scheme: 'sepa_core' }));
  fake.payments.set(
    'PM123',
    gocardlessResources.payment({
      id: 'PM123', mandate: 'MD123', amount: 4900, currency: 'EUR', chargeDate: '2014-04-08', createdAt: '2014-04-02T10:00:00.000Z',
      description: 'Gold plan, April 2014', subscription: 'SB123', reference: 'ACME-0042', ...payment,
    }),
  );
}

const JAN = {
  ref: 'CU123',
  name: 'Jan Jansen',
  email: 'jan@example.nl',
  phone: '+31201234567',
  address: { line1: 'Keizersgracht 1', postalCode: '1015 CJ', city: 'Amsterdam', country: 'NL' },
  country: 'NL',
  locale: 'nl',
  type: 'consumer',
};

const PM123_INVOICE = {
  ref: 'PM123',
  amountDue: { value: 4900, currency: 'EUR' },
  dueAt: '2014-04-08T00:00:00.000Z',
  issuedAt: '2014-04-02T10:00:00.000Z',
  subscriptionRef: 'SB123',
  description: 'Gold plan, April 2014',
};

beforeAll(async () => {
  fake = createFakeGoCardless({ accessToken: TOKEN });
  const { url } = await fake.start();
  ctx = {
    merchantId: 'acme',
    config: gocardlessProviderConfigSchema.parse({ webhookSecret: 'gc_whsec_test', accessToken: TOKEN, apiBase: url }),
    mapping: loadPspMapping('gocardless'),
  };
});
afterAll(() => fake.stop());
beforeEach(() => fake.reset());

describe('the documented failed SEPA payment (§4.4)', () => {
  it('becomes a final payment_failed with the fetched amount, invoice and customer', async () => {
    seedDocumentedPayment();
    const event = await normalize(DOCUMENTED_BODY.events[0]);
    expect(event).toEqual({
      merchantId: 'acme',
      provider: 'gocardless',
      providerEventId: 'EV123',
      providerEventType: 'payments.failed',
      kind: 'payment_failed',
      occurredAt: '2014-04-08T17:01:06.000Z',
      customer: JAN,
      invoice: PM123_INVOICE,
      payment: { ref: 'PM123', method: 'sepa_debit' },
      failure: {
        code: 'insufficient_funds',
        reason: 'insufficient_funds',
        message: "The customer's account had insufficient funds to make this payment.",
        retryable: true,
        final: true,
      },
      detail: {
        origin: 'bank',
        cause: 'insufficient_funds',
        reasonCode: 'AM04',
        scheme: 'sepa_core',
        description: "The customer's account had insufficient funds to make this payment.",
        willAttemptRetry: false,
        paymentStatus: 'failed',
        paymentReference: 'ACME-0042',
        mandateRef: 'MD123',
      },
    });
  });

  it('fetches payment → mandate → customer, with the bearer token and GoCardless-Version', async () => {
    seedDocumentedPayment();
    await normalize(DOCUMENTED_BODY.events[0]);
    expect(fake.requests).toEqual([
      { method: 'GET', path: '/payments/PM123', authorized: true, gocardlessVersion: GOCARDLESS_VERSION, status: 200 },
      { method: 'GET', path: '/mandates/MD123', authorized: true, gocardlessVersion: GOCARDLESS_VERSION, status: 200 },
      { method: 'GET', path: '/customers/CU123', authorized: true, gocardlessVersion: '2015-07-06', status: 200 },
    ]);
  });

  it('is not final when GoCardless will retry it (will_attempt_retry: true)', async () => {
    seedDocumentedPayment();
    const e = DOCUMENTED_BODY.events[0];
    const event = await normalize({ ...e, id: 'EV124', details: { ...e.details, will_attempt_retry: true } });
    expect(event.kind).toBe('payment_failed');
    expect(event.failure).toEqual({
      code: 'insufficient_funds',
      reason: 'insufficient_funds',
      message: "The customer's account had insufficient funds to make this payment.",
      retryable: true,
      final: false,
    });
    expect(event.detail).toMatchObject({ willAttemptRetry: true });
    expect(event.invoice).toEqual(PM123_INVOICE);
  });

  it('is final when will_attempt_retry is absent (only an explicit true means GoCardless retries)', async () => {
    seedDocumentedPayment();
    const e = DOCUMENTED_BODY.events[0];
    const { will_attempt_retry: _drop, ...details } = e.details;
    const event = await normalize({ ...e, id: 'EV125', details: { ...details, not_retried_reason: 'failure_filter_applied' } });
    expect(event.failure?.final).toBe(true);
    expect(event.detail).toMatchObject({ notRetriedReason: 'failure_filter_applied' });
    expect(event.detail).not.toHaveProperty('willAttemptRetry');
  });
});

describe("the merchant's customer id (issue 12, hole 3)", () => {
  it("is read from the customer's metadata first, then from the event's resource_metadata", async () => {
    seedDocumentedPayment();
    const event = { ...DOCUMENTED_BODY.events[0], resource_metadata: { customer_id: 'CRM-RES' } };
    expect((await normalize(event)).customer?.merchantRef).toBe('CRM-RES');
    fake.customers.set('CU123', { ...fake.customers.get('CU123'), metadata: { merchantCustomerId: 'CRM-CUS' } });
    expect((await normalize(event)).customer?.merchantRef).toBe('CRM-CUS');
    fake.customers.set('CU123', { ...fake.customers.get('CU123'), metadata: {} });
    expect((await normalize(DOCUMENTED_BODY.events[0])).customer).toEqual(JAN);
  });
});

describe('failure codes: the cause first, the SEPA reason code when the cause says nothing', () => {
  it.each([
    ['insufficient_funds', 'AM04', 'insufficient_funds', 'insufficient_funds', true],
    ['bank_account_closed', 'AC04', 'bank_account_closed', 'account_closed', false],
    ['bank_account_transferred', undefined, 'bank_account_transferred', 'account_invalid', false],
    ['invalid_bank_details', 'AC01', 'invalid_bank_details', 'account_invalid', false],
    ['mandate_cancelled', 'MD01', 'mandate_cancelled', 'mandate_invalid', false],
    ['authorisation_disputed', 'MD01', 'authorisation_disputed', 'disputed', false],
    ['direct_debit_not_enabled', 'AG01', 'direct_debit_not_enabled', 'account_invalid', false],
    ['payment_stopped', undefined, 'payment_stopped', 'debtor_refused', false],
    // `other` is not listed: the reason code decides.
    ['other', 'MD01', 'MD01', 'mandate_invalid', false],
    // A cause mapped to `unknown` yields to a reason code that says more.
    ['refer_to_payer', 'AM04', 'AM04', 'insufficient_funds', true],
    ['refer_to_payer', undefined, 'refer_to_payer', 'unknown', true],
    // Nothing known: the raw cause is kept, reason unknown, not retryable.
    ['some_new_cause', undefined, 'some_new_cause', 'unknown', false],
  ])('cause %s / reason_code %s → code %s, reason %s, retryable %s', async (cause, reasonCode, code, reason, retryable) => {
    seedDocumentedPayment();
    const event = await normalize(gocardlessEvents.paymentFailed({ payment: 'PM123', cause, reasonCode, createdAt: '2014-04-08T17:01:06.000Z' }));
    expect(event.failure).toMatchObject({ code, reason, retryable, final: true });
    expect(event.detail).toMatchObject({ cause });
    if (reasonCode) expect(event.detail).toMatchObject({ reasonCode });
  });
});

describe('other payment events', () => {
  it('a chargeback is a final, disputed, non-retryable chargeback on the payment', async () => {
    seedDocumentedPayment({ status: 'charged_back' });
    const event = await normalize(
      gocardlessEvents.paymentChargedBack({ payment: 'PM123', id: 'EV200', createdAt: '2014-05-20T08:00:00.000Z' }),
    );
    expect(event).toEqual({
      merchantId: 'acme',
      provider: 'gocardless',
      providerEventId: 'EV200',
      providerEventType: 'payments.charged_back',
      kind: 'chargeback',
      occurredAt: '2014-05-20T08:00:00.000Z',
      customer: JAN,
      invoice: PM123_INVOICE,
      payment: { ref: 'PM123', method: 'sepa_debit' },
      failure: {
        code: 'refund_requested',
        reason: 'disputed',
        message: 'The customer has requested a refund of this payment from their bank.',
        retryable: false,
        final: true,
      },
      detail: {
        origin: 'bank',
        cause: 'refund_requested',
        reasonCode: 'MD06',
        scheme: 'sepa_core',
        description: 'The customer has requested a refund of this payment from their bank.',
        paymentStatus: 'charged_back',
        paymentReference: 'ACME-0042',
        mandateRef: 'MD123',
      },
    });
  });

  it('paid_out (a recovery) is payment_succeeded with the amount paid', async () => {
    seedDocumentedPayment({ status: 'paid_out' });
    const event = await normalize(
      gocardlessEvents.paymentPaidOut({ payment: 'PM123', id: 'EV300', payout: 'PO123', createdAt: '2014-04-20T12:00:00.000Z' }),
    );
    expect(event).toEqual({
      merchantId: 'acme',
      provider: 'gocardless',
      providerEventId: 'EV300',
      providerEventType: 'payments.paid_out',
      kind: 'payment_succeeded',
      occurredAt: '2014-04-20T12:00:00.000Z',
      customer: JAN,
      invoice: PM123_INVOICE,
      // No scheme on the event: the mandate's scheme tells the method.
      payment: { ref: 'PM123', method: 'sepa_debit', amount: { value: 4900, currency: 'EUR' } },
      detail: {
        origin: 'gocardless',
        cause: 'payment_paid_out',
        description: 'The payment has been paid out by GoCardless.',
        paymentStatus: 'paid_out',
        paymentReference: 'ACME-0042',
        mandateRef: 'MD123',
        payoutRef: 'PO123',
        amountPaid: { value: 4900, currency: 'EUR' },
      },
    });
  });

  it('confirmed is payment_succeeded too', async () => {
    seedDocumentedPayment({ status: 'confirmed' });
    const event = await normalize(gocardlessEvents.paymentConfirmed({ payment: 'PM123', createdAt: '2014-04-12T12:00:00.000Z' }));
    expect(event.kind).toBe('payment_succeeded');
    expect(event.payment).toEqual({ ref: 'PM123', method: 'sepa_debit', amount: { value: 4900, currency: 'EUR' } });
    expect(event.failure).toBeUndefined();
  });

  it("takes the merchant's invoice reference and number from the payment's metadata", async () => {
    seedDocumentedPayment({ metadata: { invoice_ref: 'INV-2014-0042', invoice_number: '2014-0042' } });
    const event = await normalize(DOCUMENTED_BODY.events[0]);
    expect(event.invoice).toEqual({ ...PM123_INVOICE, ref: 'INV-2014-0042', number: '2014-0042' });
    // The payment id stays the payment ref, so a later chargeback on PM123 finds the invoice.
    expect(event.payment?.ref).toBe('PM123');
  });

  it('reads a company customer as a business, a digit-string amount exactly, and another currency', async () => {
    fake.customers.set('CU900', gocardlessResources.customer({ id: 'CU900', companyName: 'Widgets Ltd', givenName: 'Ann', familyName: 'Smith', countryCode: 'gb', language: 'EN', email: 'ap@widgets.example' }));
    fake.mandates.set('MD900', gocardlessResources.mandate({ id: 'MD900', customer: 'CU900', scheme: 'bacs' }));
    fake.payments.set('PM900', { ...gocardlessResources.payment({ id: 'PM900', mandate: 'MD900', amount: 0, currency: 'GBP' }), amount: '123456' });
    const event = await normalize(gocardlessEvents.paymentFailed({ payment: 'PM900', cause: 'refer_to_payer', scheme: 'bacs', reasonCode: '0' }));
    expect(event.customer).toEqual({ ref: 'CU900', name: 'Widgets Ltd', email: 'ap@widgets.example', address: { country: 'GB' }, country: 'GB', locale: 'en', type: 'business' });
    expect(event.invoice?.amountDue).toEqual({ value: 123456, currency: 'GBP' });
    expect(event.payment?.method).toBe('other');
    expect(event.failure).toMatchObject({ code: 'refer_to_payer', reason: 'unknown', retryable: true });
  });
});

describe('mandate events → mandate_revoked on the customer', () => {
  it('a mandate cancelled because the account closed (bank_account_closed / AC04)', async () => {
    seedDocumentedPayment();
    fake.mandates.set('MD123', gocardlessResources.mandate({ id: 'MD123', customer: 'CU123', scheme: 'sepa_core', status: 'cancelled' }));
    const event = await normalize(gocardlessEvents.mandateCancelled({ mandate: 'MD123', id: 'EV400', createdAt: '2014-06-01T07:00:00.000Z' }));
    expect(event).toEqual({
      merchantId: 'acme',
      provider: 'gocardless',
      providerEventId: 'EV400',
      providerEventType: 'mandates.cancelled',
      kind: 'mandate_revoked',
      occurredAt: '2014-06-01T07:00:00.000Z',
      customer: JAN,
      failure: {
        code: 'bank_account_closed',
        reason: 'account_closed',
        message: 'The mandate was cancelled: bank account closed.',
        retryable: false,
        final: true,
      },
      detail: {
        origin: 'bank',
        cause: 'bank_account_closed',
        reasonCode: 'AC04',
        scheme: 'sepa_core',
        description: 'The mandate was cancelled: bank account closed.',
        mandateRef: 'MD123',
        mandateStatus: 'cancelled',
        mandateScheme: 'sepa_core',
      },
    });
    expect(fake.requests.map((r) => r.path)).toEqual(['/mandates/MD123', '/customers/CU123']);
  });

  it.each([
    ['failed', gocardlessEvents.mandateFailed, 'invalid_bank_details', 'account_invalid'],
    ['expired', gocardlessEvents.mandateExpired, 'mandate_expired', 'expired_or_canceled'],
  ])('a mandate %s is mandate_revoked too', async (_action, build, code, reason) => {
    seedDocumentedPayment();
    const event = await normalize(build({ mandate: 'MD123' }));
    expect(event.kind).toBe('mandate_revoked');
    expect(event.customer?.ref).toBe('CU123');
    expect(event.failure).toMatchObject({ code, reason, retryable: false, final: true });
  });
});

describe('what cannot be fetched', () => {
  it('a payment GoCardless does not know (404) keeps the event, the payment ref and a note', async () => {
    const event = await normalize(DOCUMENTED_BODY.events[0]);
    expect(event).toMatchObject({ kind: 'payment_failed', payment: { ref: 'PM123', method: 'sepa_debit' }, failure: { code: 'insufficient_funds', final: true } });
    expect(event.invoice).toBeUndefined();
    expect(event.customer).toBeUndefined();
    expect(event.detail?.lookupErrors).toEqual([expect.stringMatching(/payment PM123: 404 invalid_api_usage resource_not_found/)]);
  });

  it('a customer that cannot be read still ties the event to the customer ref from the mandate', async () => {
    seedDocumentedPayment();
    fake.customers.clear();
    const event = await normalize(DOCUMENTED_BODY.events[0]);
    expect(event.customer).toEqual({ ref: 'CU123', type: 'consumer' });
    expect(event.invoice).toEqual(PM123_INVOICE);
    expect(event.detail?.lookupErrors).toEqual([expect.stringMatching(/customer CU123: 404/)]);
  });

  it('a wrong access token (401) keeps the event with a note that never shows the token', async () => {
    seedDocumentedPayment();
    const wrong = { ...ctx, config: { ...ctx.config, accessToken: 'sandbox_wrong_token_abcdef012345' } };
    const event = await normalize(DOCUMENTED_BODY.events[0], wrong);
    expect(event.kind).toBe('payment_failed');
    expect(event.detail?.lookupErrors).toEqual([expect.stringMatching(/payment PM123: 401/)]);
    expect(JSON.stringify(event)).not.toContain('sandbox_wrong_token');
    expect(fake.requests[0]).toMatchObject({ authorized: false, status: 401 });
  });

  it('a GoCardless 500 throws a plain, retryable Error (the outbox retries), never Permanent', async () => {
    seedDocumentedPayment();
    fake.fail({ path: '/mandates/MD123', times: 1 });
    const err = await normalize(DOCUMENTED_BODY.events[0]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GoCardlessRetryable);
    expect(err).not.toBeInstanceOf(Permanent);
    expect((err as Error).message).toMatch(/mandate MD123 failed, will retry: 500 gocardless internal_server_error/);
    // The next attempt succeeds.
    expect((await normalize(DOCUMENTED_BODY.events[0])).customer).toEqual(JAN);
  });

  it.each([429, 409, 503])('%s is retryable as well', async (status) => {
    seedDocumentedPayment();
    fake.fail({ path: '/payments/PM123', status, times: 1 });
    await expect(normalize(DOCUMENTED_BODY.events[0])).rejects.toBeInstanceOf(GoCardlessRetryable);
  });

  it('no answer at all (nothing listening) is retryable', async () => {
    const api = createGoCardlessClient({ accessToken: TOKEN, apiBase: 'http://127.0.0.1:9' }, { timeoutMs: 2000 });
    await expect(normalizeWithLookups(raw(DOCUMENTED_BODY.events[0]), ctx, api)).rejects.toBeInstanceOf(GoCardlessRetryable);
  });

  it('an answer that is not the resource keeps the event with a note', async () => {
    fake.payments.set('PM123', { id: 'PM123', currency: 'EUR' }); // no amount
    const event = await normalize(DOCUMENTED_BODY.events[0]);
    expect(event.invoice).toBeUndefined();
    expect(event.detail?.lookupErrors).toEqual([expect.stringMatching(/payment PM123: the answer is not a payment: payments\.amount/)]);
  });
});

describe('events the hub does not act on, and broken payloads', () => {
  it('an unmapped type (the SDK fixture’s subscriptions.created) is ignored without any API call', async () => {
    const event = await normalize({
      id: 'EV00BD05S5VM2T',
      created_at: '2018-07-05T09:13:51.404Z',
      resource_type: 'subscriptions',
      action: 'created',
      links: { subscription: 'SB0003JJQ2MR06' },
      details: { origin: 'api', cause: 'subscription_created', description: 'Subscription created via the API.' },
      metadata: {},
    });
    expect(event).toEqual({
      merchantId: 'acme',
      provider: 'gocardless',
      providerEventId: 'EV00BD05S5VM2T',
      providerEventType: 'subscriptions.created',
      kind: 'ignored',
      occurredAt: '2018-07-05T09:13:51.404Z',
      detail: { origin: 'api', cause: 'subscription_created', description: 'Subscription created via the API.' },
    });
    expect(fake.requests).toEqual([]);
  });

  it('an unmapped payment action (payments.created) is ignored with its payment ref, no API call', async () => {
    const event = await normalize(gocardlessEvents.other('payments', 'created', { payment: 'PM123' }, { createdAt: '2014-04-02T10:00:00.000Z' }));
    expect(event).toMatchObject({ kind: 'ignored', payment: { ref: 'PM123', method: 'other' } });
    expect(fake.requests).toEqual([]);
  });

  it('a payments.failed without links.payment is a permanent payload error', async () => {
    const e = DOCUMENTED_BODY.events[0];
    await expect(normalize({ ...e, links: {} })).rejects.toBeInstanceOf(GoCardlessPayloadError);
    await expect(normalize({ ...e, links: {} })).rejects.toBeInstanceOf(Permanent);
  });

  it('an event without a readable created_at is a permanent payload error', async () => {
    await expect(normalize({ ...DOCUMENTED_BODY.events[0], created_at: 'soon' })).rejects.toThrow(/created_at: not a timestamp/);
  });
});
