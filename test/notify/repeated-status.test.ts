/**
 * An agency repeating the current status sends the merchant no webhook event (issue 12, hole 9):
 * the repeat stays on the timeline (status_history), but the scanner owes no `merchant.webhook`
 * row for it. A new reason, amount collected or arrangement under the same status is news.
 */
import { repeatsPrevious, scanStatusHistory } from '../../src/notify/scanner';
import { history, notifyHub, outboxRows, seedInvoice, WEBHOOK_SECRET, type NotifyHub } from './support';

describe('a repeated status owes the merchant no webhook event', () => {
  let h: NotifyHub;
  beforeAll(async () => {
    h = await notifyHub({ acmeExtra: `    webhooks: { url: "http://127.0.0.1:9/hooks", secret: "${WEBHOOK_SECRET}" }` });
  });
  afterAll(async () => {
    await h?.stop();
  });

  // Status-change events only (a debtor's customer.flags_changed is test/notify/flags-changed.test.ts's).
  const changes = async () => (await outboxRows(h.ctx, 'merchant.webhook')).filter((r) => r.payload.event.type !== 'customer.flags_changed').map((r) => `${r.payload.event.type}:${r.payload.event.data.change.status}:${r.payload.event.data.change.source}`);

  it('the agency confirming the hub’s submitted, then saying in_collection twice: one event each for submitted and in_collection', async () => {
    const { ctx } = h;
    const s = await seedInvoice(ctx, { ref: 'in_rep1', inCase: true });
    await scanStatusHistory(ctx);
    const before = (await changes()).length;
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'submitted', source: 'hub' });
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'submitted', source: 'refagency', detail: { updateId: 'u1' } });
    // A timeline-only entry in between does not make the next repeat news.
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'reminder_sent', source: 'merchant' });
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'in_collection', source: 'refagency', detail: { updateId: 'u2' } });
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'in_collection', source: 'refagency', detail: { updateId: 'u3' } });
    await history(ctx, { entity: 'case', entityId: s.caseId!, status: 'in_collection', source: 'refagency', detail: { updateId: 'u4' } });
    await history(ctx, { entity: 'case', entityId: s.caseId!, status: 'in_collection', source: 'refagency', detail: { updateId: 'u5' } });
    const r = await scanStatusHistory(ctx);
    expect(r.scanned).toBe(7);
    expect((await changes()).slice(before)).toEqual([
      'invoice.status_changed:submitted:hub',
      'invoice.status_changed:in_collection:refagency',
      'case.status_changed:in_collection:refagency',
    ]);
    // The timeline keeps every row.
    const rows = (await ctx.db.query(`SELECT status FROM status_history WHERE entity_id = $1`, [s.invoiceId])).rows;
    expect(rows).toHaveLength(5);
  });

  it('the same status with a new amount collected or reason is news', async () => {
    const { ctx } = h;
    const s = await seedInvoice(ctx, { ref: 'in_rep2', inCase: true });
    await scanStatusHistory(ctx);
    const before = (await changes()).length;
    const amount = (value: number) => ({ amountCollected: { value, currency: 'EUR' } });
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'partially_paid', source: 'refagency', detail: amount(1000) });
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'partially_paid', source: 'refagency', detail: amount(1000) });
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'partially_paid', source: 'refagency', detail: amount(2000) });
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'closed', reason: 'debtor_untraceable', source: 'refagency' });
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'closed', reason: 'time_barred', source: 'refagency' });
    await scanStatusHistory(ctx);
    expect((await changes()).slice(before)).toEqual([
      'invoice.status_changed:partially_paid:refagency',
      'invoice.status_changed:partially_paid:refagency',
      'invoice.status_changed:closed:refagency',
      'invoice.status_changed:closed:refagency',
    ]);
  });

  it('repeatsPrevious compares status, reason, amount collected and arrangement', () => {
    const base = { status: 'in_collection', reason: null, detail: { updateId: 'a' } };
    expect(repeatsPrevious(null, base)).toBe(false);
    expect(repeatsPrevious(base, { ...base, detail: { updateId: 'b' } })).toBe(true);
    expect(repeatsPrevious(base, { ...base, status: 'arrangement' })).toBe(false);
    expect(repeatsPrevious(base, { ...base, detail: { arrangement: { installments: 3 } } })).toBe(false);
  });
});
