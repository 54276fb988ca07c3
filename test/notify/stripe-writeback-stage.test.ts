/**
 * Stripe write-back (src/notify/stripe-writeback-stage.ts) through the official SDK against the
 * local fake of Stripe's API (sim/psp/fake-stripe.ts, reached via the merchant's `apiBase`),
 * called directly with a hub context built by createHub: an invoice the agency collected is
 * marked paid out of band once — however often the write-back runs —; one Stripe already shows
 * paid counts as done; an uncollectible one is marked so only when the merchant's setting says;
 * an invoice paid through Stripe itself is never written back; Stripe's errors drive retry or
 * dead letter.
 */
import { writeBackToStripe } from '../../src/notify/stripe-writeback-stage';
import { scanStatusHistory } from '../../src/notify/scanner';
import { DeliveryError } from '../../connectors/agency/types';
import { createFakeStripe, type FakeStripe } from '../../sim/psp/fake-stripe';
import { backToPending, claim, history, notifyHub, outboxRows, seedInvoice, type NotifyHub } from './support';

function stripeInvoice(id: string, status = 'open', amount = 4900) {
  return { id, object: 'invoice', status, amount_due: amount, amount_paid: 0, amount_remaining: amount, currency: 'eur', customer: 'cus_wb', paid: false };
}

describe('Stripe write-back', () => {
  let fake: FakeStripe;
  let apiBase: string;
  beforeAll(async () => {
    fake = createFakeStripe();
    apiBase = (await fake.start()).url;
  });
  afterAll(async () => {
    await fake?.stop();
  });

  /** An invoice the agency moved to `status`, scanned into its write-back row (if owed). */
  async function agencyOutcome(h: NotifyHub, status: 'paid' | 'uncollectible', o: { stripeStatus?: string; reason?: string; source?: string } = {}) {
    const ref = `in_wb${Math.random().toString(36).slice(2, 10)}`;
    fake.invoices.set(ref, stripeInvoice(ref, o.stripeStatus ?? 'open'));
    const s = await seedInvoice(h.ctx, { ref, inCase: true, partnerRef: `case_${ref}`, status });
    const historyId = await history(h.ctx, { entity: 'invoice', entityId: s.invoiceId, status, reason: o.reason ?? (status === 'paid' ? 'paid_in_full' : 'written_off'), source: o.source ?? 'refagency' });
    await scanStatusHistory(h.ctx);
    const row = (await outboxRows(h.ctx, 'psp.writeback')).find((r) => r.idempotency_key === `writeback-${historyId}`);
    return { ...s, ref, historyId, row };
  }
  const calls = (ref: string) => fake.requests.filter((r) => r.path.startsWith(`/v1/invoices/${ref}`));

  describe('markPaid (default) and markUncollectible off', () => {
    let h: NotifyHub;
    beforeAll(async () => {
      h = await notifyHub({ stripeExtra: `\n        apiBase: ${apiBase}`, acmeExtra: '    writeBack: { stripe: {} }' });
    });
    afterAll(async () => {
      await h?.stop();
    });

    it('marks the Stripe invoice paid out of band, once, however often the write-back runs', async () => {
      const c = await agencyOutcome(h, 'paid');
      expect(c.row).toMatchObject({ kind: 'psp.writeback', lane: 'psp.stripe', payload: { action: 'pay', ref: c.ref } });
      const row = await claim(h.ctx, c.row!.id);
      await writeBackToStripe(h.ctx, row);
      // Again with the same row (a duplicate run), and again after a re-scan (nothing new is owed).
      await writeBackToStripe(h.ctx, row);
      await scanStatusHistory(h.ctx);
      expect((await outboxRows(h.ctx, 'psp.writeback')).filter((r) => r.invoice_id === c.invoiceId)).toHaveLength(1);

      expect(calls(c.ref)).toEqual([expect.objectContaining({ method: 'POST', path: `/v1/invoices/${c.ref}/pay`, body: { paid_out_of_band: 'true' } })]);
      expect(fake.invoices.get(c.ref)).toMatchObject({ status: 'paid', paid_out_of_band: true });
      const out = (await h.ctx.db.query(`SELECT status, last_response FROM outbox WHERE id = $1`, [c.row!.id])).rows[0];
      expect(out).toMatchObject({ status: 'done', last_response: { id: c.ref, status: 'paid' } });
      const log = (await h.ctx.db.query(`SELECT party, operation, outcome, http_status FROM exchanges WHERE outbox_id = $1`, [c.row!.id])).rows;
      expect(log).toEqual([{ party: 'stripe', operation: `POST /v1/invoices/${c.ref}/pay`, outcome: 'ok', http_status: 200 }]);
      const timeline = (await h.ctx.db.query(`SELECT status, source FROM status_history WHERE entity_id = $1 ORDER BY id`, [c.invoiceId])).rows;
      expect(timeline).toContainEqual({ status: 'psp_marked_paid', source: 'hub' });
    });

    it('sends the SDK an idempotency key derived from the outbox row', async () => {
      const c = await agencyOutcome(h, 'paid');
      const seen: { id: string; params: unknown; options: unknown }[] = [];
      const api = {
        invoices: {
          pay: async (id: string, params: unknown, options: unknown) => (seen.push({ id, params, options }), { id, status: 'paid' }),
          markUncollectible: async () => ({ id: c.ref, status: 'uncollectible' }),
          retrieve: async () => ({ id: c.ref, status: 'open' }),
        },
      };
      await writeBackToStripe(h.ctx, await claim(h.ctx, c.row!.id), api);
      expect(seen).toEqual([{ id: c.ref, params: { paid_out_of_band: true }, options: expect.objectContaining({ idempotencyKey: `collection-hub-writeback-${c.historyId}` }) }]);
    });

    it('a second write-back row for the same invoice (the agency said paid twice) sends nothing more', async () => {
      const c = await agencyOutcome(h, 'paid');
      await writeBackToStripe(h.ctx, await claim(h.ctx, c.row!.id));
      const again = await history(h.ctx, { entity: 'invoice', entityId: c.invoiceId, status: 'paid', reason: 'paid_in_full', source: 'refagency' });
      await scanStatusHistory(h.ctx);
      const second = (await outboxRows(h.ctx, 'psp.writeback')).find((r) => r.idempotency_key === `writeback-${again}`)!;
      await writeBackToStripe(h.ctx, await claim(h.ctx, second.id));
      expect(calls(c.ref).filter((r) => r.method === 'POST')).toHaveLength(1);
      expect((await h.ctx.db.query(`SELECT status, last_response FROM outbox WHERE id = $1`, [second.id])).rows[0]).toMatchObject({ status: 'done', last_response: { note: expect.stringMatching(/already written back/) } });
    });

    it('Stripe answering "already paid" is success', async () => {
      const c = await agencyOutcome(h, 'paid', { stripeStatus: 'paid' });
      await writeBackToStripe(h.ctx, await claim(h.ctx, c.row!.id));
      expect((await h.ctx.db.query(`SELECT status, last_response FROM outbox WHERE id = $1`, [c.row!.id])).rows[0]).toMatchObject({
        status: 'done',
        last_response: { status: 'paid', note: expect.stringMatching(/already paid/) },
      });
    });

    it('a void Stripe invoice is left as it is (done, with a note), not dead-lettered', async () => {
      const c = await agencyOutcome(h, 'paid', { stripeStatus: 'void' });
      await writeBackToStripe(h.ctx, await claim(h.ctx, c.row!.id));
      expect(calls(c.ref).map((r) => `${r.method} ${r.path}`)).toEqual([`POST /v1/invoices/${c.ref}/pay`, `GET /v1/invoices/${c.ref}`]);
      expect((await h.ctx.db.query(`SELECT status, last_response FROM outbox WHERE id = $1`, [c.row!.id])).rows[0]).toMatchObject({
        status: 'done',
        last_response: { status: 'void', note: expect.stringMatching(/left as it is/) },
      });
    });

    it('an invoice paid through Stripe itself, or written off with the setting off, owes nothing', async () => {
      const viaStripe = await agencyOutcome(h, 'paid', { reason: 'paid_to_merchant', source: 'stripe' });
      const writtenOff = await agencyOutcome(h, 'uncollectible');
      expect(viaStripe.row).toBeUndefined();
      expect(writtenOff.row).toBeUndefined();
      expect(calls(viaStripe.ref)).toEqual([]);
      expect(calls(writtenOff.ref)).toEqual([]);
    });

    it('a Stripe outage (500) is retried, then lands; a refusal (404) is dead at once', async () => {
      const c = await agencyOutcome(h, 'paid');
      fake.fail({ method: 'POST', path: `/v1/invoices/${c.ref}/pay`, status: 500, times: 1 });
      const err = await writeBackToStripe(h.ctx, await claim(h.ctx, c.row!.id)).catch((e) => e);
      expect(err).toBeInstanceOf(DeliveryError);
      expect(err).toMatchObject({ retryable: true, status: 500 });
      await backToPending(h.ctx, c.row!.id, 500);
      await writeBackToStripe(h.ctx, await claim(h.ctx, c.row!.id));
      expect(fake.invoices.get(c.ref)).toMatchObject({ status: 'paid' });
      const log = (await h.ctx.db.query(`SELECT outcome, http_status FROM exchanges WHERE outbox_id = $1 ORDER BY id`, [c.row!.id])).rows;
      expect(log).toEqual([{ outcome: 'retrying', http_status: 500 }, { outcome: 'ok', http_status: 200 }]);

      const gone = await agencyOutcome(h, 'paid');
      fake.invoices.delete(gone.ref);
      const refused = await writeBackToStripe(h.ctx, await claim(h.ctx, gone.row!.id)).catch((e) => e);
      expect(refused).toMatchObject({ retryable: false, status: 404 });
      expect(refused.message).not.toMatch(/sk_test/);
    });
  });

  describe('markUncollectible on', () => {
    let h: NotifyHub;
    beforeAll(async () => {
      h = await notifyHub({ stripeExtra: `\n        apiBase: ${apiBase}`, acmeExtra: '    writeBack: { stripe: { markUncollectible: true } }' });
    });
    afterAll(async () => {
      await h?.stop();
    });

    it('marks the Stripe invoice uncollectible when the agency wrote it off', async () => {
      const c = await agencyOutcome(h, 'uncollectible', { reason: 'debtor_insolvent' });
      expect(c.row).toMatchObject({ payload: { action: 'mark_uncollectible' } });
      await writeBackToStripe(h.ctx, await claim(h.ctx, c.row!.id));
      expect(calls(c.ref)).toEqual([expect.objectContaining({ method: 'POST', path: `/v1/invoices/${c.ref}/mark_uncollectible` })]);
      expect(fake.invoices.get(c.ref)).toMatchObject({ status: 'uncollectible' });
    });

    it('one Stripe already shows uncollectible counts as done', async () => {
      const c = await agencyOutcome(h, 'uncollectible', { stripeStatus: 'uncollectible' });
      await writeBackToStripe(h.ctx, await claim(h.ctx, c.row!.id));
      expect((await h.ctx.db.query(`SELECT status, last_response FROM outbox WHERE id = $1`, [c.row!.id])).rows[0]).toMatchObject({
        status: 'done',
        last_response: { status: 'uncollectible', note: expect.stringMatching(/already uncollectible/) },
      });
    });

    it('a row whose setting was turned off since is cancelled without a call', async () => {
      const c = await agencyOutcome(h, 'uncollectible');
      const settings = h.ctx.merchants.get('acme')!.writeBack!.stripe!;
      settings.markUncollectible = false;
      try {
        await writeBackToStripe(h.ctx, await claim(h.ctx, c.row!.id));
      } finally {
        settings.markUncollectible = true;
      }
      expect(calls(c.ref)).toEqual([]);
      expect((await h.ctx.db.query(`SELECT status FROM outbox WHERE id = $1`, [c.row!.id])).rows[0].status).toBe('cancelled');
    });
  });
});
