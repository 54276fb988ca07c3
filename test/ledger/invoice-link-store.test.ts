/**
 * The link step's SQL edges inside the ledger (src/ledger/invoice-link.ts via applyPaymentEvent),
 * on an in-memory PGlite: a later Mollie payment lands on the invoice a final failure opened
 * (issue 12, hole 2), its refunds and chargebacks follow it there, and an ambiguous name links
 * nothing.
 */
import { createPglite } from '../../src/store/pglite';
import { migrate } from '../../src/store/migrate';
import type { Database } from '../../src/store/db';
import { applyPaymentEvent } from '../../src/ledger/payment-ledger';
import type { MerchantSettings, OutboxWriter } from '../../src/context';
import type { InvoiceLinkKey, PaymentEvent } from '../../src/domain/types';
import { testIdentifierHasher } from '../support/secrets';

const merchant: MerchantSettings = {
  id: 'acme',
  name: 'Acme Subscriptions BV',
  country: 'NL',
  providers: {},
  partner: 'refagency',
  policy: { handoverAfterDays: 14, minAmount: { value: 500, currency: 'EUR' }, stackWindowDays: 45, defaultDebtorType: 'consumer', countryRules: false, noticeAfterDays: 0 },
} as MerchantSettings;

const T = new Date('2026-03-02T10:00:00.000Z');
const at = (days: number) => new Date(T.getTime() + days * 86_400_000).toISOString();

let db: Database;
beforeAll(async () => {
  db = await createPglite();
  await migrate(db);
});
afterAll(async () => {
  await db.close();
});

let seq = 0;
const EUR49 = { value: 4900, currency: 'EUR' };
const noOutbox: OutboxWriter = { add: async () => undefined };

function failedPayment(tr: string, customer: string, linkKeys: InvoiceLinkKey[], occurredAt = at(0)): PaymentEvent {
  return {
    merchantId: 'acme', provider: 'mollie', providerEventId: `${tr}:1`, providerEventType: 'payment.failed', kind: 'payment_failed', occurredAt,
    customer: { ref: customer, type: 'consumer' },
    invoice: { ref: tr, amountDue: EUR49, linkKeys },
    payment: { ref: tr, method: 'sepa_debit' },
    failure: { code: 'AM04', reason: 'insufficient_funds', retryable: true, final: true },
    factKey: `${tr}:failed`,
  };
}

function paidPayment(tr: string, customer: string, linkKeys: InvoiceLinkKey[], occurredAt = at(2)): PaymentEvent {
  return {
    merchantId: 'acme', provider: 'mollie', providerEventId: `${tr}:1`, providerEventType: 'payment.paid', kind: 'payment_succeeded', occurredAt,
    customer: { ref: customer, type: 'consumer' },
    invoice: { ref: tr, amountDue: EUR49, linkKeys },
    payment: { ref: tr, method: 'ideal', amount: EUR49 },
    factKey: `${tr}:paid`,
  };
}

const apply = (ev: PaymentEvent) => db.tx((sql) => applyPaymentEvent(sql, noOutbox, merchant, ev, new Date(ev.occurredAt), testIdentifierHasher()));
const invoiceByRef = async (ref: string) =>
  (await db.query<{ id: string; status: string; resolution: string | null }>(`SELECT id, status, resolution FROM invoices WHERE merchant_id = 'acme' AND provider = 'mollie' AND provider_ref = $1`, [ref])).rows[0];
const invoiceCount = async () => Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM invoices WHERE merchant_id = 'acme' AND provider = 'mollie'`)).rows[0].n);

describe('linking a later Mollie payment in the ledger', () => {
  it('before hand-over: the re-payment recovers the invoice the failure opened; no second invoice', async () => {
    seq++;
    const key = { rule: 'metadata.invoiceId', key: `INV-${seq}` };
    await apply(failedPayment(`tr_f${seq}`, `cst_${seq}`, [{ ...key, registerOnly: true }]));
    const before = await invoiceCount();
    const opened = await invoiceByRef(`tr_f${seq}`);
    expect(opened.status).toBe('pending_handover');

    const res = await apply(paidPayment(`tr_p${seq}`, `cst_${seq}`, [key]));
    expect(res.invoiceId).toBe(opened.id);
    expect(res.note).toContain(`linked to open invoice ${opened.id} by metadata.invoiceId INV-${seq}`);
    expect(await invoiceByRef(`tr_f${seq}`)).toMatchObject({ status: 'recovered', resolution: 'paid_in_full' });
    expect(await invoiceCount()).toBe(before);
    // The later payment's id now names the invoice, for its refunds and chargebacks.
    const refs = await db.query<{ invoice_id: string }>(`SELECT invoice_id FROM invoice_payment_refs WHERE merchant_id = 'acme' AND provider = 'mollie' AND payment_ref = $1`, [`tr_p${seq}`]);
    expect(refs.rows).toEqual([{ invoice_id: opened.id }]);
  });

  it('a chargeback on the later payment reaches the same invoice', async () => {
    seq++;
    const key = { rule: 'metadata.invoiceId', key: `INV-${seq}` };
    await apply(failedPayment(`tr_f${seq}`, `cst_${seq}`, [key]));
    await apply(paidPayment(`tr_p${seq}`, `cst_${seq}`, [key]));
    const cb: PaymentEvent = {
      ...paidPayment(`tr_p${seq}`, `cst_${seq}`, [key], at(5)),
      providerEventId: `tr_p${seq}:2`, providerEventType: 'payment.chargeback', kind: 'chargeback', factKey: `tr_p${seq}:chargeback:chb_1`,
      failure: { code: 'MD06', reason: 'disputed', retryable: false, final: true },
    };
    const res = await apply(cb);
    expect(res.invoiceId).toBe((await invoiceByRef(`tr_f${seq}`)).id);
    expect((await invoiceByRef(`tr_f${seq}`)).status).toBe('disputed');
  });

  it('two open invoices under one name: the payment is an invoice of its own, and the note says why', async () => {
    seq++;
    // Two months of one subscription failed; the debtor then pays the amount once, outside it.
    const key = { rule: 'customerAndAmount', key: `cst_${seq}|EUR|4900` };
    await apply(failedPayment(`tr_a${seq}`, `cst_${seq}`, [{ ...key, registerOnly: true }, { rule: 'subscriptionPeriod', key: `sub_${seq}|2026-02` }]));
    await apply(failedPayment(`tr_b${seq}`, `cst_${seq}`, [{ ...key, registerOnly: true }, { rule: 'subscriptionPeriod', key: `sub_${seq}|2026-03` }], at(1)));
    const res = await apply(paidPayment(`tr_p${seq}`, `cst_${seq}`, [key]));
    expect(res.note).toMatch(/not linked: customerAndAmount cst_\d+\|EUR\|4900 names 2 open invoices/);
    expect(await invoiceByRef(`tr_p${seq}`)).toMatchObject({ status: 'settled' });
    for (const tr of [`tr_a${seq}`, `tr_b${seq}`]) expect((await invoiceByRef(tr)).status).toBe('pending_handover');
  });

  it('an event without link keys (every other PSP) is never linked', async () => {
    seq++;
    const key = { rule: 'metadata.invoiceId', key: `INV-${seq}` };
    await apply(failedPayment(`tr_f${seq}`, `cst_${seq}`, [key]));
    const res = await apply(paidPayment(`tr_p${seq}`, `cst_${seq}`, []));
    expect(res.note).not.toContain('linked');
    expect(await invoiceByRef(`tr_p${seq}`)).toMatchObject({ status: 'settled' });
    expect((await invoiceByRef(`tr_f${seq}`)).status).toBe('pending_handover');
  });
});
