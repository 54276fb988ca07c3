/**
 * Mollie normalization, end to end through the official SDK: a stored webhook (classic or
 * next-gen) → the payment fetched from the local fake Mollie (sim/psp/fake-mollie.ts, reached via
 * `apiBase`) → one canonical PaymentEvent. Payloads are the documented failed recurring SEPA
 * payment of shared/reference/psp-webhooks.md §2.6 and builders shaped like it (§2.5).
 */
import { mollieConnector, normalizeWithLookup } from '../../../connectors/psp/mollie';
import { createMollieApi, MollieRejected, MollieRetryable, apiEndpointOf, type MollieApi } from '../../../connectors/psp/mollie/client';
import { MolliePayloadError } from '../../../connectors/psp/mollie/normalize';
import { mollieProviderConfigSchema, type MollieProviderConfig } from '../../../connectors/psp/mollie/schema';
import type { NormalizeContext, RawInboundEvent, VerifiedDelivery } from '../../../connectors/psp/types';
import type { PaymentEvent } from '../../../src/domain/types';
import { loadPspMapping } from '../../../src/mappings/load';
import { Permanent } from '../../../src/pipeline/errors';
import { createFakeMollie, type FakeMollie } from '../../../sim/psp/fake-mollie';
import {
  classicBody,
  mollieChargeback,
  mollieCustomer,
  mollieId,
  molliePayments,
  mollieRefund,
  nextGenEvent,
} from '../../../sim/psp/mollie-events';

type Json = Record<string, any>;

const API_KEY = 'test_dHar4XY7LxsDOtmnkVtjNVWXLSlXsM';
const RECEIVED = new Date('2024-06-04T09:12:05.000Z');
/** The month Mollie created a subscription payment in, as invoice-link-keys.ts reads it. */
const amsterdamMonth = (at: string) => new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Amsterdam', year: 'numeric', month: '2-digit' }).format(new Date(at));

/** The fetched payment of psp-webhooks.md §2.6, verbatim. */
const SECTION_2_6_PAYMENT: Json = {
  resource: 'payment',
  id: 'tr_5B8cwPMGnU6qLbRvo7qEZo',
  mode: 'test',
  createdAt: '2024-06-01T08:00:00+00:00',
  status: 'failed',
  failedAt: '2024-06-04T09:12:00+00:00',
  amount: { currency: 'EUR', value: '49.00' },
  description: 'Subscription June 2024 - ACME-0042',
  method: 'directdebit',
  metadata: { invoiceId: 'ACME-0042' },
  profileId: 'pfl_QkEhN94Ba',
  sequenceType: 'recurring',
  redirectUrl: null,
  webhookUrl: 'https://collector.example.com/webhooks/mollie',
  customerId: 'cst_8wmqcHMN4U',
  mandateId: 'mdt_h3gAaD5zP',
  subscriptionId: 'sub_rVKGtNd6s3',
  details: {
    transferReference: 'SD12-3456-7890-1234',
    creditorIdentifier: 'NL08ZZZ502057730000',
    consumerName: 'Jan Jansen',
    consumerAccount: 'NL55INGB0000000000',
    consumerBic: 'INGBNL2A',
    dueDate: '2024-06-03',
    signatureDate: '2024-01-15',
    bankReasonCode: 'AM04',
    bankReason: 'Insufficient funds',
    endToEndIdentifier: 'E2E-ACME-0042',
    mandateReference: 'ACME-MANDATE-7',
    batchReference: 'BATCH-20240603',
    fileReference: 'FILE-20240603',
  },
  _links: {
    self: { href: 'https://api.mollie.com/v2/payments/tr_5B8cwPMGnU6qLbRvo7qEZo', type: 'application/hal+json' },
    mandate: { href: 'https://api.mollie.com/v2/customers/cst_8wmqcHMN4U/mandates/mdt_h3gAaD5zP', type: 'application/hal+json' },
    subscription: { href: 'https://api.mollie.com/v2/customers/cst_8wmqcHMN4U/subscriptions/sub_rVKGtNd6s3', type: 'application/hal+json' },
    customer: { href: 'https://api.mollie.com/v2/customers/cst_8wmqcHMN4U', type: 'application/hal+json' },
  },
};

let fake: FakeMollie;
let ctx: NormalizeContext<MollieProviderConfig>;

beforeAll(async () => {
  fake = createFakeMollie();
  const { apiBase } = await fake.start();
  ctx = { merchantId: 'acme', config: mollieProviderConfigSchema.parse({ apiKey: API_KEY, apiBase }), mapping: loadPspMapping('mollie') };
});

afterAll(async () => {
  await fake.stop();
});

beforeEach(() => fake.reset());

/** What ingress stores for a classic delivery of `id` (the connector's own verify). */
function classic(id: string, at = RECEIVED): RawInboundEvent {
  const req = { headers: {}, rawBody: Buffer.from(classicBody(id)), contentType: 'application/x-www-form-urlencoded' };
  return (mollieConnector.verify(req, ctx.config, at) as VerifiedDelivery).events[0];
}

const normalize = (raw: RawInboundEvent) => mollieConnector.normalize(raw, ctx) as Promise<PaymentEvent>;

/** A payment and its customer on the fake. */
function serve(payment: Json, customer: Json | null = payment.customerId ? mollieCustomer({ id: payment.customerId }) : null): Json {
  fake.setPayment(payment);
  if (customer) fake.setCustomer(customer);
  return payment;
}

const paths = () => fake.requests.map((r) => `${r.method} ${r.path}`);

describe('a failed recurring SEPA payment (psp-webhooks.md §2.6)', () => {
  it('becomes payment_failed with every canonical field read from the fetched payment and customer', async () => {
    serve(SECTION_2_6_PAYMENT, mollieCustomer({ id: 'cst_8wmqcHMN4U', name: 'Jan Jansen', email: 'jan@example.nl', locale: 'nl_NL' }));
    const raw = classic('tr_5B8cwPMGnU6qLbRvo7qEZo');

    expect(await normalize(raw)).toEqual({
      merchantId: 'acme',
      provider: 'mollie',
      providerEventId: `tr_5B8cwPMGnU6qLbRvo7qEZo:${RECEIVED.getTime()}`,
      providerEventType: 'payment.failed',
      kind: 'payment_failed',
      occurredAt: '2024-06-04T09:12:00.000Z',
      customer: {
        ref: 'cst_8wmqcHMN4U',
        name: 'Jan Jansen',
        email: 'jan@example.nl',
        // No billing address or countryCode on a recurring debit: the IBAN's country.
        country: 'NL',
        locale: 'nl-NL',
        type: 'consumer',
      },
      invoice: {
        ref: 'tr_5B8cwPMGnU6qLbRvo7qEZo',
        number: 'ACME-0042',
        amountDue: { value: 4900, currency: 'EUR' },
        dueAt: '2024-06-03T00:00:00.000Z',
        issuedAt: '2024-06-01T08:00:00.000Z',
        subscriptionRef: 'sub_rVKGtNd6s3',
        description: 'Subscription June 2024 - ACME-0042',
        // A subscription payment: its metadata is the subscription's, kept for a re-payment to use.
        linkKeys: [
          { rule: 'metadata.invoiceId', key: 'ACME-0042', registerOnly: true },
          { rule: 'subscriptionPeriod', key: 'sub_rVKGtNd6s3|2024-06' },
        ],
      },
      payment: { ref: 'tr_5B8cwPMGnU6qLbRvo7qEZo', method: 'sepa_debit', iban: 'NL55INGB0000000000' },
      failure: { code: 'AM04', reason: 'insufficient_funds', message: 'Insufficient funds', retryable: true, final: true },
      factKey: 'tr_5B8cwPMGnU6qLbRvo7qEZo:failed',
      detail: { status: 'failed', method: 'directdebit', sequenceType: 'recurring', mandateRef: 'mdt_h3gAaD5zP', mode: 'test', webhookType: 'payment.webhook' },
    });
    // Through the SDK: the payment with refunds and chargebacks embedded, then its customer.
    expect(fake.requests).toEqual([
      { method: 'GET', path: '/v2/payments/tr_5B8cwPMGnU6qLbRvo7qEZo', query: { embed: 'refunds,chargebacks' }, keyMode: 'test_' },
      { method: 'GET', path: '/v2/customers/cst_8wmqcHMN4U', query: {}, keyMode: 'test_' },
    ]);
  });

  it.each([
    ['AC04', 'account_closed', false],
    ['MD01', 'mandate_invalid', false],
    ['MS02', 'debtor_refused', false],
    ['ZZ99', 'unknown', false],
  ])('maps bank reason code %s to %s through sepa.yaml (raw code kept)', async (code, reason, retryable) => {
    const p = serve(molliePayments.sepaRecurring({ status: 'failed', bankReasonCode: code }));
    const ev = await normalize(classic(p.id));
    expect(ev.failure).toMatchObject({ code, reason, retryable, final: true });
  });

  it('without a bank reason code keeps the status as the code (reason unknown, still final)', async () => {
    const p = serve(molliePayments.sepaRecurring({ status: 'failed', bankReasonCode: null }));
    const ev = await normalize(classic(p.id));
    expect(ev.failure).toEqual({ code: 'failed', reason: 'unknown', retryable: false, final: true });
  });
});

describe('amounts are exact minor units with the currency exponent (contract §2)', () => {
  it.each([
    ['49.00', 'EUR', 4900],
    ['0.01', 'EUR', 1],
    ['1234567.89', 'EUR', 123456789],
    ['1000', 'JPY', 1000],
    ['12.345', 'KWD', 12345],
    ['10.000', 'KWD', 10000],
  ])('"%s" %s → %i', async (value, currency, minor) => {
    const p = serve(molliePayments.card({ status: 'failed', value, currency, customerId: mollieId('cst'), failureReason: 'card_declined' }));
    const ev = await normalize(classic(p.id));
    expect(ev.invoice?.amountDue).toEqual({ value: minor, currency });
  });

  it('refuses more decimals than the currency has as a permanent payload error', async () => {
    const p = serve(molliePayments.card({ status: 'failed', value: '10.50', currency: 'JPY', customerId: mollieId('cst'), failureReason: 'card_declined' }));
    const err = await normalize(classic(p.id)).catch((e) => e);
    expect(err).toBeInstanceOf(MolliePayloadError);
    expect(err).toBeInstanceOf(Permanent);
  });
});

/** The customer the sim's payments belong to, as the normalizer builds it from the fetched Mollie customer. */
const JAN = (ref: string) => ({ ref, name: 'Jan Jansen', email: 'jan@example.nl', country: 'NL', locale: 'nl-NL', type: 'consumer' });
/** What the normalizer keeps of a payment for the timeline (`detail`), common to every kind. */
const paymentDetail = (p: Json) => ({
  status: p.status, method: p.method, sequenceType: 'recurring', mandateRef: p.mandateId, mode: 'test', webhookType: 'payment.webhook',
});

describe('a failed card payment', () => {
  it.each([
    ['insufficient_funds', 'insufficient_funds', true],
    ['card_expired', 'card_expired', false],
    ['card_declined', 'card_declined', true],
    ['authentication_failed', 'authentication_required', false],
    ['possible_fraud', 'fraud_suspected', false],
    ['refused_by_issuer', 'card_declined', true],
    ['a_reason_mollie_adds_later', 'unknown', false],
  ])('maps details.failureReason %s to %s', async (failureReason, reason, retryable) => {
    const p = serve(molliePayments.card({ status: 'failed', customerId: mollieId('cst'), failureReason, failureMessage: 'Localized message' }));
    const ev = await normalize(classic(p.id));
    expect(ev).toEqual({
      merchantId: 'acme',
      provider: 'mollie',
      providerEventId: `${p.id}:${RECEIVED.getTime()}`,
      providerEventType: 'payment.failed',
      kind: 'payment_failed',
      occurredAt: new Date(p.failedAt).toISOString(),
      customer: JAN(p.customerId),
      invoice: { ref: p.id, amountDue: { value: 4900, currency: 'EUR' }, issuedAt: new Date(p.createdAt).toISOString(), description: p.description },
      payment: { ref: p.id, method: 'card' },
      factKey: `${p.id}:failed`,
      failure: { code: failureReason, reason, retryable, final: true, message: 'Localized message' },
      detail: paymentDetail(p),
    });
  });
});

describe('expired and canceled payments are final failures (contract §7)', () => {
  it('expired without a code → code expired, reason expired_or_canceled', async () => {
    const p = serve(molliePayments.ideal({ status: 'expired', customerId: mollieId('cst') }));
    const ev = await normalize(classic(p.id));
    expect(ev).toMatchObject({
      kind: 'payment_failed',
      providerEventType: 'payment.expired',
      occurredAt: new Date(p.expiredAt).toISOString(),
      payment: { ref: p.id, method: 'ideal' },
      failure: { code: 'expired', reason: 'expired_or_canceled', retryable: true, final: true },
      factKey: `${p.id}:expired`,
    });
  });

  it('canceled without a code → code canceled, reason expired_or_canceled', async () => {
    const p = serve(molliePayments.card({ status: 'canceled', customerId: mollieId('cst') }));
    const ev = await normalize(classic(p.id));
    expect(ev).toMatchObject({
      kind: 'payment_failed',
      occurredAt: new Date(p.canceledAt).toISOString(),
      failure: { code: 'canceled', reason: 'expired_or_canceled', final: true },
      factKey: `${p.id}:canceled`,
    });
  });
});

describe('a paid payment (recovery)', () => {
  it('becomes payment_succeeded with the paid amount, at paidAt', async () => {
    const p = serve(molliePayments.sepaRecurring({ status: 'paid', value: '49.00' }));
    const ev = await normalize(classic(p.id));
    expect(ev).toEqual({
      merchantId: 'acme',
      provider: 'mollie',
      providerEventId: `${p.id}:${RECEIVED.getTime()}`,
      providerEventType: 'payment.paid',
      kind: 'payment_succeeded',
      occurredAt: new Date(p.paidAt).toISOString(),
      customer: JAN(p.customerId),
      invoice: {
        ref: p.id, number: 'ACME-0042', amountDue: { value: 4900, currency: 'EUR' }, dueAt: '2024-06-03T00:00:00.000Z',
        issuedAt: new Date(p.createdAt).toISOString(), subscriptionRef: p.subscriptionId, description: p.description,
        linkKeys: [
          { rule: 'metadata.invoiceId', key: 'ACME-0042', registerOnly: true },
          { rule: 'subscriptionPeriod', key: `${p.subscriptionId}|${amsterdamMonth(p.createdAt)}` },
        ],
      },
      payment: { ref: p.id, method: 'sepa_debit', iban: 'NL55INGB0000000000', amount: { value: 4900, currency: 'EUR' } },
      factKey: `${p.id}:paid`,
      // No failure on a recovery.
      detail: { ...paymentDetail(p), amountPaid: { value: 4900, currency: 'EUR' } },
    });
  });
});

describe('chargebacks and refunds of a paid payment', () => {
  it('a chargeback becomes kind chargeback, keyed by the chargeback id, reason disputed', async () => {
    const p = serve(molliePayments.sepaRecurring({ status: 'paid', value: '49.00' }));
    const cb = mollieChargeback({ paymentId: p.id, value: '49.00', createdAt: '2024-07-01T10:00:00+00:00', reasonCode: 'MD06', reasonDescription: 'Refund request by end customer' });
    fake.addChargeback(cb);
    const ev = await normalize(classic(p.id));
    expect(ev).toEqual({
      merchantId: 'acme',
      provider: 'mollie',
      providerEventId: `${p.id}:${RECEIVED.getTime()}`,
      providerEventType: 'payment.chargeback',
      kind: 'chargeback',
      occurredAt: '2024-07-01T10:00:00.000Z',
      customer: JAN(p.customerId),
      invoice: {
        ref: p.id, number: 'ACME-0042', amountDue: { value: 4900, currency: 'EUR' }, dueAt: '2024-06-03T00:00:00.000Z',
        issuedAt: new Date(p.createdAt).toISOString(), subscriptionRef: p.subscriptionId, description: p.description,
        linkKeys: [
          { rule: 'metadata.invoiceId', key: 'ACME-0042', registerOnly: true },
          { rule: 'subscriptionPeriod', key: `${p.subscriptionId}|${amsterdamMonth(p.createdAt)}` },
        ],
      },
      payment: { ref: p.id, method: 'sepa_debit', iban: 'NL55INGB0000000000', amount: { value: 4900, currency: 'EUR' } },
      factKey: `${p.id}:chargeback:${cb.id}`,
      failure: { code: 'MD06', reason: 'disputed', message: 'Refund request by end customer', retryable: false, final: true },
      detail: {
        ...paymentDetail(p), chargebackRef: cb.id, chargebackReason: 'MD06',
        amount: { value: 4900, currency: 'EUR' }, amountChargedBack: { value: 4900, currency: 'EUR' },
      },
    });
  });

  it('fetches the chargebacks through the SDK when the payment did not embed them', async () => {
    const p = serve(molliePayments.card({ status: 'paid', value: '20.00', customerId: mollieId('cst') }));
    const cb = mollieChargeback({ paymentId: p.id, value: '20.00' });
    fake.addChargeback(cb);
    const sdk = createMollieApi(ctx.config);
    // An answer without `_embedded` (as when Mollie ignores `embed`): only amountChargedBack and _links say so.
    const api: MollieApi = {
      ...sdk,
      getPayment: async (id) => {
        const payment = (await sdk.getPayment(id)) as Json;
        delete payment._embedded;
        return payment;
      },
    };
    const ev = await normalizeWithLookup(classic(p.id), ctx, api);
    expect(ev).toMatchObject({ kind: 'chargeback', factKey: `${p.id}:chargeback:${cb.id}`, failure: { code: 'chargeback', reason: 'disputed' } });
    expect(paths()).toContain(`GET /v2/payments/${p.id}/chargebacks`);
  });

  it('a refund becomes kind refund with the refunded amount, keyed by the refund id', async () => {
    const p = serve(molliePayments.card({ status: 'paid', value: '30.00', customerId: mollieId('cst') }));
    const rf = mollieRefund({ paymentId: p.id, value: '10.00', createdAt: '2024-07-02T10:00:00+00:00' });
    fake.addRefund(rf);
    const ev = await normalize(classic(p.id));
    expect(ev).toMatchObject({
      kind: 'refund',
      occurredAt: '2024-07-02T10:00:00.000Z',
      payment: { ref: p.id, amount: { value: 1000, currency: 'EUR' } },
      factKey: `${p.id}:refund:${rf.id}`,
      detail: { refundRef: rf.id, refundStatus: 'refunded', amountRefunded: { value: 1000, currency: 'EUR' } },
    });
  });

  it('with both, the newer fact is reported', async () => {
    const p = serve(molliePayments.card({ status: 'paid', value: '30.00', customerId: mollieId('cst') }));
    const cb = mollieChargeback({ paymentId: p.id, value: '30.00', createdAt: '2024-07-01T10:00:00+00:00' });
    const rf = mollieRefund({ paymentId: p.id, value: '5.00', createdAt: '2024-07-03T10:00:00+00:00' });
    fake.addChargeback(cb);
    fake.addRefund(rf);
    expect((await normalize(classic(p.id))).factKey).toBe(`${p.id}:refund:${rf.id}`);
  });

  it('a failed refund is no refund: the payment is still reported as paid', async () => {
    const p = serve(molliePayments.card({ status: 'paid', value: '30.00', customerId: mollieId('cst') }));
    fake.addRefund(mollieRefund({ paymentId: p.id, value: '5.00', status: 'failed' }));
    expect(await normalize(classic(p.id))).toMatchObject({ kind: 'payment_succeeded', factKey: `${p.id}:paid` });
  });

  it('a reversed chargeback is no chargeback: the payment is reported as paid, the reversal kept in detail', async () => {
    const p = serve(molliePayments.card({ status: 'paid', value: '30.00', customerId: mollieId('cst') }));
    const cb = mollieChargeback({ paymentId: p.id, value: '30.00', reversedAt: '2024-07-05T10:00:00+00:00' });
    fake.addChargeback(cb);
    const ev = await normalize(classic(p.id));
    expect(ev).toMatchObject({ kind: 'payment_succeeded', factKey: `${p.id}:paid`, detail: { chargebacksReversed: [cb.id] } });
  });
});

describe('statuses that are not (yet) a fact for the hub', () => {
  it.each(['open', 'pending', 'authorized'] as const)('%s → ignored', async (status) => {
    const p = serve(molliePayments.card({ status, customerId: mollieId('cst') }));
    const ev = await normalize(classic(p.id));
    expect(ev).toMatchObject({ kind: 'ignored', providerEventType: `payment.${status}`, factKey: `${p.id}:${status}` });
    expect(ev.failure).toBeUndefined();
  });

  it('a status Mollie adds later → ignored, with a note naming it', async () => {
    const p = serve({ ...molliePayments.card({ status: 'paid', customerId: mollieId('cst') }), status: 'settling' });
    const ev = await normalize(classic(p.id));
    expect(ev).toMatchObject({ kind: 'ignored', detail: { note: expect.stringContaining('settling') } });
  });
});

describe('the debtor', () => {
  it('is a business when the payment metadata says debtorType business', async () => {
    const p = serve(molliePayments.sepaRecurring({ status: 'failed', metadata: { invoiceNumber: 'INV-7', debtorType: 'business' } }));
    const ev = await normalize(classic(p.id));
    expect(ev.customer?.type).toBe('business');
    expect(ev.invoice?.number).toBe('INV-7');
  });

  it('is a business when the customer metadata says so', async () => {
    const p = molliePayments.sepaRecurring({ status: 'failed' });
    serve(p, mollieCustomer({ id: p.customerId, metadata: { debtorType: 'business' } }));
    expect((await normalize(classic(p.id))).customer?.type).toBe('business');
  });

  it("carries the merchant's customer id: the Mollie customer's metadata first, then the payment's (issue 12, hole 3)", async () => {
    const p = molliePayments.sepaRecurring({ status: 'failed', metadata: { invoiceId: 'ACME-7', customer_id: 'CRM-PAY' } });
    serve(p, mollieCustomer({ id: p.customerId, metadata: { customer_id: 'CRM-CST' } }));
    expect((await normalize(classic(p.id))).customer?.merchantRef).toBe('CRM-CST');
    const q = serve(molliePayments.sepaRecurring({ status: 'failed', metadata: { invoiceId: 'ACME-8', merchantCustomerId: 'CRM-PAY' } }));
    expect((await normalize(classic(q.id))).customer?.merchantRef).toBe('CRM-PAY');
    const r = serve(molliePayments.sepaRecurring({ status: 'failed' }));
    expect((await normalize(classic(r.id))).customer).not.toHaveProperty('merchantRef');
  });

  it('takes the billing address, and its country over the IBAN', async () => {
    const p = serve(
      molliePayments.card({
        status: 'failed',
        failureReason: 'card_expired',
        customerId: mollieId('cst'),
        billingAddress: { givenName: 'Anna', familyName: 'Schmidt', streetAndNumber: 'Hauptstr. 1', postalCode: '10115', city: 'Berlin', country: 'DE', email: 'anna@example.de' },
      }),
      null,
    );
    fake.setCustomer(mollieCustomer({ id: p.customerId, name: null, email: null, locale: 'de_DE' }));
    const ev = await normalize(classic(p.id));
    expect(ev.customer).toEqual({
      ref: p.customerId,
      name: 'Anna Schmidt',
      email: 'anna@example.de',
      address: { line1: 'Hauptstr. 1', postalCode: '10115', city: 'Berlin', country: 'DE' },
      country: 'DE',
      locale: 'de-DE',
      type: 'consumer',
    });
  });

  it('a customer Mollie no longer knows (404) keeps the payment’s own facts and a note', async () => {
    const p = serve(molliePayments.sepaRecurring({ status: 'failed' }), null);
    const ev = await normalize(classic(p.id));
    expect(ev.customer).toEqual({ ref: p.customerId, name: 'Jan Jansen', country: 'NL', type: 'consumer' });
    expect(ev.detail?.lookupNotes).toEqual([expect.stringContaining('404')]);
  });

  it('a one-off payment without a Mollie customer names no debtor', async () => {
    const p = serve(molliePayments.ideal({ status: 'expired' }));
    const ev = await normalize(classic(p.id));
    expect(ev.customer).toBeUndefined();
    expect(paths()).toEqual([`GET /v2/payments/${p.id}`]);
  });
});

describe('deduplication keys (factKey)', () => {
  it('three deliveries of the same failed state: three event ids, one fact', async () => {
    const p = serve(molliePayments.sepaRecurring({ status: 'failed' }));
    const evs = await Promise.all([0, 60_000, 180_000].map((ms) => normalize(classic(p.id, new Date(RECEIVED.getTime() + ms)))));
    expect(new Set(evs.map((e) => e.providerEventId)).size).toBe(3);
    expect(new Set(evs.map((e) => e.factKey))).toEqual(new Set([`${p.id}:failed`]));
  });

  it('the same id after the payment changed reports the new fact', async () => {
    const p = serve(molliePayments.sepaRecurring({ status: 'failed' }));
    expect((await normalize(classic(p.id))).factKey).toBe(`${p.id}:failed`);
    serve({ ...p, status: 'paid', paidAt: '2024-06-10T09:00:00+00:00' });
    expect((await normalize(classic(p.id))).factKey).toBe(`${p.id}:paid`);
  });
});

describe('next-gen events', () => {
  it('fetch the payment named by entityId; the event id is kept, the fact key is the same as for classic', async () => {
    const p = serve(molliePayments.sepaRecurring({ status: 'failed' }));
    // A stale snapshot in the event is not trusted: the fetched state is.
    const event = nextGenEvent({ id: 'event_GvJ8WHrp5isUdRub9CJyH', type: 'payment.failed', entityId: p.id, entity: { ...p, status: 'open' } });
    const raw: RawInboundEvent = { providerEventId: event.id, eventType: event.type, occurredAt: event.createdAt, payload: event };
    const ev = await normalize(raw);
    expect(ev).toMatchObject({ providerEventId: 'event_GvJ8WHrp5isUdRub9CJyH', kind: 'payment_failed', factKey: `${p.id}:failed`, failure: { code: 'AM04' } });
    expect(paths()[0]).toBe(`GET /v2/payments/${p.id}`);
  });

  it('a refund event is followed to its payment through the snapshot’s paymentId', async () => {
    const p = serve(molliePayments.card({ status: 'paid', value: '30.00', customerId: mollieId('cst') }));
    const rf = mollieRefund({ paymentId: p.id, value: '30.00' });
    fake.addRefund(rf);
    const event = nextGenEvent({ type: 'refund.refunded', entityId: rf.id, entity: rf });
    const ev = await normalize({ providerEventId: event.id, eventType: event.type, payload: event });
    expect(ev).toMatchObject({ kind: 'refund', factKey: `${p.id}:refund:${rf.id}` });
  });

  it('an event about something else is ignored without calling Mollie', async () => {
    const event = nextGenEvent({ type: 'payment-link.paid', entityId: 'pl_4Y0eZitmBnQ6IDoMqZQKh' });
    const ev = await normalize({ providerEventId: event.id, eventType: event.type, occurredAt: event.createdAt, payload: event });
    expect(ev).toMatchObject({ kind: 'ignored', detail: { note: expect.stringContaining('pl_4Y0eZitmBnQ6IDoMqZQKh') } });
    expect(fake.requests).toHaveLength(0);
  });
});

describe('what Mollie answers besides the payment', () => {
  it('an unknown id (404) → ignored with a note, no fact key, nothing thrown', async () => {
    const ev = await normalize(classic('tr_doesNotExist123'));
    expect(ev).toEqual({
      merchantId: 'acme',
      provider: 'mollie',
      providerEventId: `tr_doesNotExist123:${RECEIVED.getTime()}`,
      providerEventType: 'payment.webhook',
      kind: 'ignored',
      occurredAt: RECEIVED.toISOString(),
      detail: {
        note: 'payment tr_doesNotExist123 is unknown to Mollie under this API key',
        webhookType: 'payment.webhook',
        paymentRef: 'tr_doesNotExist123',
        lookupError: expect.stringContaining('404 Not Found: No payment exists with token tr_doesNotExist123.'),
      },
    });
  });

  it('a classic webhook for an order is ignored without calling Mollie', async () => {
    const ev = await normalize(classic('ord_pbjz8x'));
    expect(ev.kind).toBe('ignored');
    expect(fake.requests).toHaveLength(0);
  });

  it('a 500 throws a plain (retryable) Error after the SDK’s own three attempts', async () => {
    const p = serve(molliePayments.sepaRecurring({ status: 'failed' }));
    fake.failAll(500);
    const err = await normalize(classic(p.id)).catch((e) => e);
    expect(err).toBeInstanceOf(MollieRetryable);
    expect(err).not.toBeInstanceOf(Permanent);
    expect(err.message).toContain('500');
    expect(fake.requests.filter((r) => r.path === `/v2/payments/${p.id}`)).toHaveLength(3);
  });

  it('a 5xx on the customer is retryable too (the event is not produced half-read)', async () => {
    const p = serve(molliePayments.sepaRecurring({ status: 'failed' }));
    fake.fail({ path: `/v2/customers/${p.customerId}`, status: 503 });
    await expect(normalize(classic(p.id))).rejects.toBeInstanceOf(MollieRetryable);
  });

  it('Mollie not answering in time is retryable', async () => {
    const p = serve(molliePayments.sepaRecurring({ status: 'failed' }));
    fake.fail({ path: `/v2/payments/${p.id}`, delayMs: 500 });
    const api = createMollieApi(ctx.config, { timeoutMs: 100 });
    const err = await normalizeWithLookup(classic(p.id), ctx, api).catch((e) => e);
    expect(err).toBeInstanceOf(MollieRetryable);
    expect(err.message).toContain('no answer within 100 ms');
  });

  it('a refused API key (401) is permanent, and the message never carries the key', async () => {
    const p = serve(molliePayments.sepaRecurring({ status: 'failed' }));
    fake.fail({ status: 401 });
    const err = await normalize(classic(p.id)).catch((e) => e);
    expect(err).toBeInstanceOf(MollieRejected);
    expect(err).toBeInstanceOf(Permanent);
    expect(err.message).not.toContain(API_KEY);
  });

  it('a network failure (nothing listening) is retryable', async () => {
    const closed = createFakeMollie();
    const { apiBase } = await closed.start();
    await closed.stop();
    const config = mollieProviderConfigSchema.parse({ apiKey: API_KEY, apiBase });
    const err = await normalizeWithLookup(classic('tr_abc123'), { ...ctx, config }).catch((e) => e);
    expect(err).toBeInstanceOf(MollieRetryable);
  });
});

describe('apiBase → the SDK’s apiEndpoint', () => {
  it.each([
    [undefined, 'https://api.mollie.com:443/v2/'],
    ['http://127.0.0.1:4010', 'http://127.0.0.1:4010/v2/'],
    ['http://127.0.0.1:4010/', 'http://127.0.0.1:4010/v2/'],
    ['http://127.0.0.1:4010/v2', 'http://127.0.0.1:4010/v2/'],
    ['https://sandbox.example.test/mollie/v2/', 'https://sandbox.example.test/mollie/v2/'],
  ])('%s → %s', (apiBase, endpoint) => {
    expect(apiEndpointOf({ apiBase })).toBe(endpoint);
  });
});
