/**
 * The customer-level picture (src/reports/customer-picture.ts) from plain rows: failure reasons
 * month by month, what was collected by whom and how, the arrangement that runs with its
 * instalments, the open / collected / under-arrangement roll-up, and the payment-behaviour summary
 * with its risk band and reasons.
 */
import { customerPicture, type PictureHistoryRow, type PictureInput } from '../../src/reports/customer-picture';
import type { CaseRow, ClaimRow, InvoiceRow } from '../../src/ledger/rows';

const T = (s: string) => new Date(s);
let hid = 0;

function invoice(o: Partial<InvoiceRow> & { id: string }): InvoiceRow {
  return {
    merchant_id: 'acme', customer_id: 'cust_1', provider: 'stripe', provider_ref: `in_${o.id}`, number: null, currency: 'EUR', amount_due: 3000,
    amount_paid: 0, amount_collected: 0, issued_at: null, due_at: null, subscription_ref: null, description: null, status: 'open', resolution: null,
    resolved_by: null, failure_code: null, failure_reason: null, failure_message: null, failure_retryable: null, failure_final: false, failure_count: 0,
    first_failed_at: null, last_failed_at: null, handover_due_at: null, payment_method: 'card', arrangement: null, case_id: null, last_event_at: null,
    last_update_at: null, last_update_seq: null, reminder_sent_at: null, created_at: T('2026-01-01'), updated_at: T('2026-01-01'),
    ...o,
  };
}

const kase = (id: string, partner = 'refagency'): CaseRow => ({
  id, merchant_id: 'acme', customer_id: 'cust_1', partner_id: partner, partner_ref: `case_${id}`, status: 'in_collection', resolution: null, currency: 'EUR',
  opened_at: T('2026-02-01'), submitted_at: T('2026-02-01'), closed_at: null, last_claim_at: T('2026-02-01'), last_update_at: null, last_update_seq: null,
  collection_costs: null, collection_costs_basis: null, debtor_id: 'dbt_1',
});

const claim = (id: string, caseId: string, invoiceId: string, o: Partial<ClaimRow> = {}): ClaimRow => ({
  id, case_id: caseId, invoice_id: invoiceId, merchant_id: 'acme', principal: 3000, currency: 'EUR', status: 'in_collection', resolution: null,
  amount_collected: 0, arrangement: null, sent_at: T('2026-02-01'), last_update_at: null, last_update_seq: null, ...o,
});

const h = (entity: string, entityId: string, status: string, at: string, o: Partial<PictureHistoryRow> = {}): PictureHistoryRow => ({
  id: ++hid, entity, entity_id: entityId, status, reason: null, source: 'stripe', detail: null, occurred_at: T(at), ...o,
});

const plan = { installments: 3, amount: { value: 2000, currency: 'EUR' }, firstDueAt: '2026-03-01T00:00:00.000Z' };
const EUR = (value: number) => ({ value, currency: 'EUR' });

/** Two invoices in one case under a 3 × 20.00 arrangement, two instalments in; one paid on time; one recovered by Stripe. */
function arrangementCustomer(): PictureInput {
  const invA = invoice({
    id: 'a', status: 'paid', resolution: 'paid_via_arrangement', resolved_by: 'refagency', amount_collected: 3000, failure_count: 2, failure_reason: 'insufficient_funds',
    first_failed_at: T('2026-01-10'), case_id: 'cse_1', arrangement: plan,
  });
  const invB = invoice({
    id: 'b', status: 'partially_paid', amount_collected: 1000, failure_count: 1, failure_reason: 'card_expired', first_failed_at: T('2026-02-05'), case_id: 'cse_1', arrangement: plan,
  });
  const onTime = invoice({ id: 'c', status: 'settled', amount_paid: 3000, resolution: 'paid_in_full', resolved_by: 'stripe' });
  const recovered = invoice({ id: 'd', status: 'recovered', amount_paid: 2500, amount_due: 2500, resolution: 'paid_in_full', resolved_by: 'stripe', failure_count: 1, failure_reason: 'insufficient_funds', first_failed_at: T('2026-01-20') });
  const history = [
    h('invoice', 'a', 'payment_failed', '2026-01-10', { reason: 'insufficient_funds' }),
    h('invoice', 'a', 'payment_failed', '2026-01-13', { reason: 'insufficient_funds' }),
    h('invoice', 'd', 'payment_failed', '2026-01-20', { reason: 'insufficient_funds' }),
    h('invoice', 'd', 'recovered', '2026-01-22', { reason: 'paid_in_full' }),
    h('invoice', 'b', 'payment_failed', '2026-02-05', { reason: 'card_expired' }),
    // Stripe marking it uncollectible is kept as a failure entry too, but is no payment attempt.
    h('invoice', 'b', 'payment_failed', '2026-02-06', { reason: 'card_expired', detail: { code: 'marked_uncollectible', final: true } }),
    h('invoice', 'a', 'in_collection', '2026-02-02', { source: 'refagency' }),
    h('invoice', 'a', 'arrangement', '2026-02-10', { source: 'refagency', detail: { arrangement: plan } }),
    h('invoice', 'b', 'arrangement', '2026-02-10', { source: 'refagency', detail: { arrangement: plan } }),
    h('invoice', 'a', 'partially_paid', '2026-03-01', { source: 'refagency', detail: { amountCollected: EUR(2000) } }),
    h('invoice', 'a', 'paid', '2026-04-01', { source: 'refagency', reason: 'paid_via_arrangement', detail: { amountCollected: EUR(3000) } }),
    h('invoice', 'b', 'partially_paid', '2026-04-01', { source: 'refagency', detail: { amountCollected: EUR(1000) } }),
  ];
  return {
    invoices: [invA, invB, onTime, recovered],
    cases: [kase('cse_1')],
    claims: [claim('clm_a', 'cse_1', 'a', { status: 'paid', amount_collected: 3000, arrangement: plan }), claim('clm_b', 'cse_1', 'b', { status: 'partially_paid', amount_collected: 1000, arrangement: plan })],
    history,
  };
}

describe('customer picture', () => {
  it('counts why payments failed, month by month, every attempt', () => {
    const p = customerPicture(arrangementCustomer());
    expect(p.failureReasonsOverTime).toEqual([
      { period: '2026-01', attempts: 3, reasons: [{ reason: 'insufficient_funds', count: 3 }] },
      { period: '2026-02', attempts: 1, reasons: [{ reason: 'card_expired', count: 1 }] },
    ]);
  });

  it('says what was collected, by whom and how', () => {
    const p = customerPicture(arrangementCustomer());
    expect(p.collected).toEqual([
      { by: 'refagency', how: 'arrangement', amount: EUR(4000), invoices: 2 },
      { by: 'stripe', how: 'paid_after_failure', amount: EUR(2500), invoices: 1 },
    ]);
  });

  it('shows the arrangement that runs, with the instalments paid on each invoice', () => {
    const p = customerPicture(arrangementCustomer());
    expect(p.arrangements.map((a) => [a.invoiceId, a.state])).toEqual([['b', 'running'], ['a', 'completed']]);
    expect(p.arrangements[0]).toMatchObject({
      partner: 'refagency', caseId: 'cse_1', installments: 3, installmentAmount: EUR(2000), firstDueAt: plan.firstDueAt, agreedAt: '2026-02-10T00:00:00.000Z',
      paid: [{ at: '2026-04-01T00:00:00.000Z', amount: EUR(1000), total: EUR(1000) }], collected: EUR(1000), open: EUR(2000),
    });
    expect(p.arrangements[1].paid).toEqual([
      { at: '2026-03-01T00:00:00.000Z', amount: EUR(2000), total: EUR(2000) },
      { at: '2026-04-01T00:00:00.000Z', amount: EUR(1000), total: EUR(3000) },
    ]);
  });

  it('rolls up open, collected and under arrangement', () => {
    const p = customerPicture(arrangementCustomer());
    expect(p.rollup).toEqual([{ currency: 'EUR', open: EUR(2000), collected: EUR(4000), underArrangement: EUR(2000), invoicesUnderArrangement: 1 }]);
  });

  it('summarises payment behaviour: on time, after failure, via collection, days to recovery, and a band with reasons', () => {
    const b = customerPicture(arrangementCustomer()).behaviour;
    expect(b).toMatchObject({ invoices: 4, paidOnTime: 1, paidAfterFailure: 1, paidViaCollection: 1, writtenOff: 0, disputed: 0, unpaid: 1 });
    // a: 10 Jan → 1 Apr = 81 days; d: 20 → 22 Jan = 2 days.
    expect(b.averageDaysToRecovery).toBe(41.5);
    expect(b.riskBand).toBe('high');
    expect(b.riskReasons).toEqual(['2 invoices needed a collection agency', '3 invoices failed', 'payment came 41.5 days after a failure on average']);
  });

  it('a customer who always paid on time is low risk; one with no invoices is unknown', () => {
    const good = customerPicture({ invoices: [invoice({ id: 'x', status: 'settled', amount_paid: 3000 })], claims: [], cases: [], history: [] });
    expect(good.behaviour).toMatchObject({ paidOnTime: 1, riskBand: 'low', riskReasons: ['no failed payments'], averageDaysToRecovery: null });
    expect(good.rollup).toEqual([{ currency: 'EUR', open: EUR(0), collected: EUR(0), underArrangement: EUR(0), invoicesUnderArrangement: 0 }]);
    expect(customerPicture({ invoices: [], claims: [], cases: [], history: [] }).behaviour.riskBand).toBe('unknown');
  });

  it('one failure recovered quickly is low; one hand-over is medium; a write-off or dispute is high', () => {
    const quick = invoice({ id: 'q', status: 'recovered', amount_paid: 3000, failure_count: 1, first_failed_at: T('2026-01-01') });
    const quickHistory = [h('invoice', 'q', 'recovered', '2026-01-03')];
    expect(customerPicture({ invoices: [quick], claims: [], cases: [], history: quickHistory }).behaviour).toMatchObject({ riskBand: 'low', averageDaysToRecovery: 2 });

    const handed = invoice({ id: 'm', status: 'in_collection', failure_count: 1, first_failed_at: T('2026-01-01'), case_id: 'cse_m' });
    expect(customerPicture({ invoices: [quick, handed], claims: [], cases: [kase('cse_m')], history: quickHistory }).behaviour).toMatchObject({
      riskBand: 'medium', unpaid: 1, riskReasons: ['1 invoice needed a collection agency', '2 invoices failed'],
    });

    const off = invoice({ id: 'o', status: 'uncollectible', resolution: 'debtor_insolvent', failure_count: 1, first_failed_at: T('2026-01-01') });
    expect(customerPicture({ invoices: [off], claims: [], cases: [], history: [] }).behaviour).toMatchObject({ riskBand: 'high', writtenOff: 1 });
    const chargeback = [h('customer', 'cust_1', 'chargeback', '2026-02-01', { reason: 'fraud_suspected' })];
    const disputed = customerPicture({ invoices: [invoice({ id: 's', status: 'settled', amount_paid: 3000 })], claims: [], cases: [], history: chargeback });
    expect(disputed.behaviour).toMatchObject({ riskBand: 'high', disputed: 1 });
    expect(disputed.failureReasonsOverTime).toEqual([{ period: '2026-02', attempts: 1, reasons: [{ reason: 'fraud_suspected', count: 1 }] }]);
  });

  it('a paid-to-merchant after hand-over counts as paid after failure, with the PSP as collector', () => {
    const inv = invoice({ id: 'p', status: 'paid', resolution: 'paid_to_merchant', resolved_by: 'mollie', provider: 'mollie', amount_paid: 3000, failure_count: 1, first_failed_at: T('2026-01-01'), case_id: 'cse_p' });
    const p = customerPicture({ invoices: [inv], claims: [], cases: [kase('cse_p')], history: [h('invoice', 'p', 'paid', '2026-01-11', { reason: 'paid_to_merchant' })] });
    expect(p.collected).toEqual([{ by: 'mollie', how: 'paid_to_merchant', amount: EUR(3000), invoices: 1 }]);
    expect(p.behaviour).toMatchObject({ paidAfterFailure: 1, paidViaCollection: 0, averageDaysToRecovery: 10 });
  });
});
