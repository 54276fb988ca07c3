/**
 * The leakage report's category of one failed invoice (src/reports/leakage.ts `classify`), a pure
 * function of the invoice row and the facts beside it (issue 12, hole 7): an invoice the hub holds
 * back for a reason it can name gets that reason and the date it waits until; "unexplained" is
 * only what no rule explains.
 */
import { classify, type LeakageInvoice } from '../../src/reports/leakage';

const DAY = 86_400_000;
const now = new Date('2026-03-10T12:00:00Z');
const at = (days: number) => new Date(now.getTime() + days * DAY);

const invoice = (patch: Partial<LeakageInvoice> = {}): LeakageInvoice => ({
  status: 'pending_handover',
  resolution: null,
  failure_final: true,
  handover_due_at: at(-5),
  last_failed_at: at(-20),
  currency: 'EUR',
  amount_owed_back: 0,
  hold_until: null,
  ...patch,
});

describe('leakage category of a failed invoice', () => {
  it('waiting for the notice gate: its own category, until the gate (not the un-gated due date)', () => {
    const gate = at(4);
    const r = classify(invoice({ handover_due_at: at(-2) }), now, { noticeEndsAt: gate, minAmount: { value: 0, currency: 'EUR' }, debtorOpenAmount: 5000 });
    expect(r).toMatchObject({ bucket: 'waiting_notice_gate' });
    expect(r.until?.toISOString()).toBe(gate.toISOString());
  });

  it('a country rule that asks for a letter the hub has no evidence of: waiting_letter_evidence, with no date', () => {
    const r = classify(invoice({ handover_due_at: at(-2) }), now, { awaitingLetter: true, noticeEndsAt: null });
    expect(r).toMatchObject({ bucket: 'waiting_letter_evidence', until: null });
    expect(r.why).toMatch(/reminder/);
  });

  it('a notice gate earlier than the merchant’s own hand-over date leaves it pending hand-over, until that date', () => {
    const r = classify(invoice({ handover_due_at: at(6) }), now, { noticeEndsAt: at(2) });
    expect(r.bucket).toBe('pending_handover');
    expect(r.until?.toISOString()).toBe(at(6).toISOString());
  });

  it('a notice gate that has passed no longer holds it', () => {
    expect(classify(invoice({ handover_due_at: at(-3) }), now, { noticeEndsAt: at(-2) }).bucket).toBe('unexplained');
  });

  it('due, but the debtor owes less than minAmount and has no live case: below_min_amount, not unexplained', () => {
    const r = classify(invoice(), now, { minAmount: { value: 2500, currency: 'EUR' }, debtorOpenAmount: 1200, liveCase: false });
    expect(r).toMatchObject({ bucket: 'below_min_amount', until: null });
    expect(r.why).toMatch(/1200 is below the minimum 2500 EUR/);
  });

  it('the minimum does not apply with a live case to stack onto, nor in another currency', () => {
    expect(classify(invoice(), now, { minAmount: { value: 2500, currency: 'EUR' }, debtorOpenAmount: 1200, liveCase: true }).bucket).toBe('unexplained');
    expect(classify(invoice({ currency: 'GBP' }), now, { minAmount: { value: 2500, currency: 'EUR' }, debtorOpenAmount: 1200 }).bucket).toBe('unexplained');
  });

  it('held by the merchant: held_by_merchant until hold_until; once that date passes the normal rules apply again', () => {
    const r = classify(invoice({ hold_until: at(20) }), now, { noticeEndsAt: at(3) });
    expect(r).toMatchObject({ bucket: 'held_by_merchant' });
    expect(r.until?.toISOString()).toBe(at(20).toISOString());
    expect(classify(invoice({ hold_until: at(-1) }), now).bucket).toBe('unexplained');
    expect(classify(invoice({ status: 'open', failure_final: false, hold_until: at(2) }), now).bucket).toBe('held_by_merchant');
  });

  it('a hand-over the agency refused (dead-lettered) is handover_refused, not in collection', () => {
    for (const status of ['submitted', 'in_collection', 'on_hold']) {
      const r = classify(invoice({ status }), now, { handoverRefused: '422 debtor address missing' });
      expect(r.bucket).toBe('handover_refused');
      expect(r.why).toMatch(/422 debtor address missing/);
    }
    expect(classify(invoice({ status: 'submitted' }), now, { handoverRefused: null }).bucket).toBe('in_collection');
  });

  it('paid through the PSP while the agency collected too: owed_back_to_debtor whatever its status', () => {
    for (const [status, resolution] of [['partially_paid', null], ['paid', 'paid_to_merchant'], ['paid', 'paid_in_full'], ['in_collection', null]] as const) {
      const r = classify(invoice({ status, resolution, amount_owed_back: 1500 }), now);
      expect(r.bucket).toBe('owed_back_to_debtor');
      expect(r.why).toMatch(/1500 EUR/);
    }
    expect(classify(invoice({ status: 'paid', resolution: 'paid_to_merchant', amount_owed_back: '0' }), now).bucket).toBe('paid_to_merchant_after_handover');
  });

  it('pending hand-over inside the merchant’s period: pending_handover until its due date', () => {
    const r = classify(invoice({ handover_due_at: at(3) }), now, { minAmount: { value: 99_999, currency: 'EUR' }, debtorOpenAmount: 1 });
    expect(r.bucket).toBe('pending_handover');
    expect(r.until?.toISOString()).toBe(at(3).toISOString());
  });

  it('unexplained is left for what no rule explains: overdue with nothing holding it, a final failure never marked, a silent PSP', () => {
    expect(classify(invoice({ handover_due_at: at(-3) }), now, { minAmount: { value: 500, currency: 'EUR' }, debtorOpenAmount: 5000 })).toMatchObject({ bucket: 'unexplained' });
    expect(classify(invoice({ status: 'open', failure_final: true }), now).bucket).toBe('unexplained');
    expect(classify(invoice({ status: 'open', failure_final: false, last_failed_at: at(-31) }), now).bucket).toBe('unexplained');
    expect(classify(invoice({ status: 'open', failure_final: false, last_failed_at: at(-2) }), now).bucket).toBe('psp_retrying');
  });

  it('the other statuses keep their categories', () => {
    const cases: [string, string | null, string][] = [
      ['recovered', null, 'recovered_by_psp'], ['in_collection', null, 'in_collection'], ['paid', 'paid_in_full', 'collected'],
      ['uncollectible', 'written_off', 'written_off'], ['disputed', null, 'disputed'], ['withdrawn', 'withdrawn_by_merchant', 'cancelled'], ['voided', null, 'cancelled'],
    ];
    for (const [status, resolution, bucket] of cases) expect(classify(invoice({ status, resolution }), now).bucket).toBe(bucket);
  });
});
