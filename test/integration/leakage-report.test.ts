/**
 * The leakage report's edge (src/reports/leakage.ts `buildLeakageReport`) on a real store (PGlite):
 * the facts it reads beside each invoice — the debtor's open amount against minAmount, the notice
 * gate and letter evidence of the debtor's country rule, a hand-over in the dead letter, money owed
 * back, the merchant's hold — put each failed invoice in its own category with its until date
 * (issue 12, hole 7). The categories themselves are unit-tested in test/unit/leakage.test.ts.
 */
import { buildLeakageReport } from '../../src/reports/leakage';
import type { MerchantSettings } from '../../src/context';
import { notifyHub, seedInvoice, type NotifyHub } from '../notify/support';

const DAY = 86_400_000;

describe('leakage report on the store', () => {
  let h: NotifyHub;
  beforeAll(async () => {
    h = await notifyHub();
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('names the reason each invoice waits or is stuck, and leaves unexplained only what no rule explains', async () => {
    const { ctx } = h;
    const now = new Date();
    const ago = (days: number) => new Date(now.getTime() - days * DAY);
    const set = (id: string, sets: string, params: unknown[]) => ctx.db.query(`UPDATE invoices SET ${sets} WHERE id = $1`, [id, ...params]);
    const pending = async (ref: string, amount: number, country = 'DE') => {
      const s = await seedInvoice(ctx, { ref, amount, status: 'pending_handover' });
      await set(s.invoiceId, 'handover_due_at = $2, first_failed_at = $3, last_failed_at = $3', [ago(2), ago(5)]);
      await ctx.db.query(`UPDATE customers SET country = $2 WHERE id = $1`, [s.customerId, country]);
      return s;
    };

    const small = await pending('in_lk_small', 1200);
    const big = await pending('in_lk_big', 9000);
    const held = await pending('in_lk_held', 9000);
    await set(held.invoiceId, 'hold_until = $2', [new Date(now.getTime() + 10 * DAY)]);
    const nlNoLetter = await pending('in_lk_nl0', 9000, 'NL');
    const nlLetter = await pending('in_lk_nl1', 9000, 'NL');
    await set(nlLetter.invoiceId, 'reminder_sent_at = $2', [ago(3)]);
    const refused = await seedInvoice(ctx, { ref: 'in_lk_refused', status: 'submitted', inCase: true });
    await ctx.db.query(
      `INSERT INTO outbox (merchant_id, kind, lane, payload, idempotency_key, status, last_error, last_status, case_id)
       VALUES ('acme', 'agency.create_case', 'partner.refagency', '{}', $1, 'dead', 'debtor address missing', 422, $2)`,
      [`case-${refused.caseId}`, refused.caseId],
    );
    const collecting = await seedInvoice(ctx, { ref: 'in_lk_coll', status: 'in_collection', inCase: true });
    const twice = await seedInvoice(ctx, { ref: 'in_lk_twice', status: 'paid', inCase: true });
    await set(twice.invoiceId, `resolution = 'paid_to_merchant', amount_paid = 4900, amount_collected = 1000, amount_owed_back = 1000`, []);

    const acme = ctx.merchants.get('acme')!;
    const merchant = { ...acme, policy: { ...acme.policy, minAmount: { value: 5000, currency: 'EUR' }, countryRules: true } } as MerchantSettings;
    const report = await buildLeakageReport(ctx.db, 'acme', { now, merchant });
    const of = (ref: string) => report.items.find((i) => i.ref === ref)!;

    expect(of('in_lk_small')).toMatchObject({ bucket: 'below_min_amount', until: null });
    expect(of('in_lk_big')).toMatchObject({ bucket: 'unexplained' });
    expect(of('in_lk_held')).toMatchObject({ bucket: 'held_by_merchant', until: new Date(now.getTime() + 10 * DAY).toISOString() });
    expect(of('in_lk_nl0')).toMatchObject({ bucket: 'waiting_letter_evidence', until: null });
    const gated = of('in_lk_nl1');
    expect(gated.bucket).toBe('waiting_notice_gate');
    // The gate (letter + delivery + 14 days), not the un-gated due date two days ago.
    expect(new Date(gated.until!).getTime()).toBeGreaterThan(now.getTime() + 10 * DAY);
    expect(of('in_lk_refused')).toMatchObject({ bucket: 'handover_refused', why: expect.stringContaining('422 debtor address missing') });
    expect(of('in_lk_coll')).toMatchObject({ bucket: 'in_collection' });
    expect(of('in_lk_twice')).toMatchObject({ bucket: 'owed_back_to_debtor' });
    expect(report.unexplained.map((i: any) => i.ref)).toEqual(['in_lk_big']);
    expect(report.totals.below_min_amount).toEqual({ count: 1, amounts: { EUR: 1200 } });
    void small; void big; void nlNoLetter; void collecting;
  });
});
