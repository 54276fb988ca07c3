/**
 * Echoes of the hub's own PSP write-back (src/ledger/payment-ledger.ts writeBackEcho) on an
 * in-memory PGlite: after the agency collected an invoice and the hub marked it paid out of band
 * at Stripe, Stripe's `invoice.paid` is not a new payment; after a write-off write-back, its
 * `invoice.marked_uncollectible` is not a new failure. A payment that is not ours is still one.
 */
import { createPglite } from '../../src/store/pglite';
import { migrate } from '../../src/store/migrate';
import type { Database } from '../../src/store/db';
import { applyPaymentEvent, writeBackEcho } from '../../src/ledger/payment-ledger';
import { runHandoverCheck } from '../../src/pipeline/handover-check';
import { makeCommit, type HubContext, type MerchantSettings, type OutboxWriter } from '../../src/context';
import { addToOutbox, type OutboxInput, type OutboxRow } from '../../src/outbox/outbox';
import type { InvoiceRow } from '../../src/ledger/rows';
import type { PaymentEvent } from '../../src/domain/types';
import { ManualClock, DAY_MS } from '../../src/domain/clock';
import { createLogger } from '../../src/observability/logger';
import { createMetrics } from '../../src/observability/metrics';
import type { Dispatcher } from '../../src/queue/dispatcher';
import { writeBackIdempotencyKey } from '../../src/notify/stripe-writeback-stage';
import { normalizeStripeEvent } from '../../connectors/psp/stripe/normalize';
import { loadPspMapping } from '../../src/mappings/load';
import { stripeEchoes, stripeEvents } from '../../sim/psp/stripe-events';
import { testIdentifierHasher } from '../support/secrets';

const merchant: MerchantSettings = {
  id: 'acme',
  name: 'Acme Subscriptions BV',
  country: 'NL',
  providers: {},
  partner: 'refagency',
  policy: { handoverAfterDays: 14, minAmount: { value: 500, currency: 'EUR' }, stackWindowDays: 45, defaultDebtorType: 'consumer', countryRules: false, noticeAfterDays: 0 },
};

const T1 = new Date('2026-03-02T10:00:00.000Z');
const after = (days: number) => new Date(T1.getTime() + days * DAY_MS);

let db: Database;
beforeAll(async () => {
  db = await createPglite();
  await migrate(db);
});
afterAll(async () => {
  await db.close();
});

let seq = 0;
const refs = () => {
  seq++;
  return { customer: `cus_E${seq}`, invoice: `in_E${seq}`, pi: `pi_E${seq}` };
};
type Refs = ReturnType<typeof refs>;

function event(r: Refs, kind: PaymentEvent['kind'], type: string, at: Date, detail: Record<string, unknown> = {}): PaymentEvent {
  return {
    merchantId: 'acme',
    provider: 'stripe',
    providerEventId: `evt_${type}_${r.invoice}_${at.getTime()}_${Object.keys(detail).join('_')}`,
    providerEventType: type,
    kind,
    occurredAt: at.toISOString(),
    customer: { ref: r.customer, name: 'Jan Jansen', type: 'consumer' },
    invoice: { ref: r.invoice, amountDue: { value: kind === 'payment_succeeded' ? 0 : 4900, currency: 'EUR' } },
    payment: { ref: r.pi, method: 'card', ...(kind === 'payment_succeeded' ? { amount: { value: 4900, currency: 'EUR' } } : {}) },
    ...(kind !== 'payment_succeeded' ? { failure: { code: 'insufficient_funds', reason: 'insufficient_funds' as const, retryable: true, final: true } } : {}),
    detail,
  };
}

const recorder = (): OutboxWriter & { rows: OutboxInput[] } => {
  const rows: OutboxInput[] = [];
  return { rows, add: async (row) => void rows.push(row) };
};

async function apply(ev: PaymentEvent, now = after(30)) {
  const outbox = recorder();
  const result = await db.tx((sql) => applyPaymentEvent(sql, outbox, merchant, ev, now, testIdentifierHasher()));
  return { result, rows: outbox.rows };
}

const invoiceOf = async (r: Refs) => (await db.query<InvoiceRow>(`SELECT * FROM invoices WHERE provider_ref = $1`, [r.invoice])).rows[0];
const historyOf = async (id: string) => (await db.query<{ status: string; detail: any }>(`SELECT status, detail FROM status_history WHERE entity = 'invoice' AND entity_id = $1 ORDER BY id`, [id])).rows;

/** A final failure, handed over (the real hand-over check), optionally collected by the agency and written back. */
async function handedOver(r: Refs, opts: { collected?: 'paid' | 'uncollectible'; writeBack?: 'pay' | 'mark_uncollectible'; writeBackStatus?: string } = {}) {
  await apply(event(r, 'payment_failed', 'invoice.payment_failed', T1), after(0));
  const inv = await invoiceOf(r);
  const clock = new ManualClock(after(15).getTime());
  const ctx = {
    clock, logger: createLogger({ silent: true }), metrics: createMetrics(), merchants: new Map([[merchant.id, merchant]]),
    commit: makeCommit(db, { dispatch: async () => undefined } as unknown as Dispatcher, clock),
  } as unknown as HubContext;
  await runHandoverCheck(ctx, { id: -1, payload: { customerId: inv.customer_id }, merchant_id: 'acme', kind: 'handover_check', lane: 'hub' } as OutboxRow<'handover_check'>);
  const claim = (await db.query<{ id: string; case_id: string }>(`SELECT id, case_id FROM claims WHERE invoice_id = $1`, [inv.id])).rows[0];
  expect(claim).toBeDefined();
  if (opts.collected === 'paid') {
    await db.query(`UPDATE claims SET status = 'paid', resolution = 'paid_in_full', amount_collected = 4900 WHERE id = $1`, [claim.id]);
    await db.query(`UPDATE invoices SET status = 'paid', resolution = 'paid_in_full', resolved_by = 'refagency', amount_collected = 4900 WHERE id = $1`, [inv.id]);
  } else if (opts.collected === 'uncollectible') {
    await db.query(`UPDATE claims SET status = 'uncollectible', resolution = 'debtor_insolvent' WHERE id = $1`, [claim.id]);
    await db.query(`UPDATE invoices SET status = 'uncollectible', resolution = 'debtor_insolvent', resolved_by = 'refagency' WHERE id = $1`, [inv.id]);
  }
  let key: string | null = null;
  if (opts.writeBack) {
    const rowKey = `writeback-test-${r.invoice}`;
    await db.tx(async (sql) => {
      const item = await addToOutbox(sql, { kind: 'psp.writeback', lane: 'psp.stripe', payload: { historyId: 0, invoiceId: inv.id, provider: 'stripe', ref: r.invoice, action: opts.writeBack! }, idempotencyKey: rowKey, merchantId: 'acme', customerId: inv.customer_id, invoiceId: inv.id }, after(20));
      await sql.query(`UPDATE outbox SET status = $2 WHERE id = $1`, [item!.id, opts.writeBackStatus ?? 'done']);
    });
    key = writeBackIdempotencyKey(rowKey);
  }
  return { inv: await invoiceOf(r), claim, key };
}

describe('the Stripe connector reads what an echo needs', () => {
  const mapping = loadPspMapping('stripe');
  const normalize = (e: { id: string; type: string; created: number }) =>
    normalizeStripeEvent({ providerEventId: e.id, eventType: e.type, payload: e }, { merchantId: 'acme', config: { webhookSecret: 'whsec_x' } as never, mapping });
  const f = { invoice: 'in_echo1', customer: 'cus_echo1', amount: 3900, created: 1767366000 };

  it('invoice.paid out of band, with the idempotency key of the call that caused it', () => {
    const ev = normalize(stripeEchoes.paidOutOfBand(f, { idempotencyKey: 'collection-hub-writeback-7' }));
    expect(ev).toMatchObject({ kind: 'payment_succeeded', detail: { paidOutOfBand: true, requestIdempotencyKey: 'collection-hub-writeback-7' } });
    expect(normalize(stripeEchoes.markedUncollectible(f, { idempotencyKey: 'collection-hub-writeback-8' }))).toMatchObject({ kind: 'invoice_uncollectible', detail: { requestIdempotencyKey: 'collection-hub-writeback-8' } });
  });

  it('a card payment has neither; an old-style string request is read as no key', () => {
    const ev = normalize(stripeEvents.paid(f));
    expect(ev.detail).not.toHaveProperty('paidOutOfBand');
    expect(ev.detail).not.toHaveProperty('requestIdempotencyKey');
    expect(normalize({ ...stripeEvents.paid(f), request: 'req_old' } as never).detail).not.toHaveProperty('requestIdempotencyKey');
  });
});

describe('echoes of our own Stripe write-back', () => {
  it('invoice.paid naming our idempotency key: no report, no second count, no status change; on the timeline as an echo', async () => {
    const r = refs();
    const { inv, key } = await handedOver(r, { collected: 'paid', writeBack: 'pay' });
    const { result, rows } = await apply(event(r, 'payment_succeeded', 'invoice.paid', after(21), { paidOutOfBand: true, requestIdempotencyKey: key }));
    expect(rows).toEqual([]);
    expect(result.note).toMatch(/echo of our write-back \(pay/);
    const now = await invoiceOf(r);
    expect({ status: now.status, resolution: now.resolution, paid: Number(now.amount_paid), collected: Number(now.amount_collected), last: now.last_event_at }).toEqual({
      status: 'paid', resolution: 'paid_in_full', paid: 0, collected: 4900, last: inv.last_event_at,
    });
    expect((await historyOf(inv.id)).at(-1)).toEqual({ status: 'psp_writeback_echo', detail: expect.objectContaining({ action: 'pay', matchedBy: 'idempotency_key', event: 'invoice.paid' }) });
  });

  it('out of band without a key (an echo whose request is unknown) is recognised by the write-back owed, even while it is in flight', async () => {
    const r = refs();
    await handedOver(r, { collected: 'paid', writeBack: 'pay', writeBackStatus: 'in_flight' });
    const { result, rows } = await apply(event(r, 'payment_succeeded', 'invoice.paid', after(21), { paidOutOfBand: true }));
    expect(rows).toEqual([]);
    expect(result.note).toMatch(/echo/);
    expect(Number((await invoiceOf(r)).amount_paid)).toBe(0);
  });

  it('invoice.marked_uncollectible naming our key changes nothing (failure, amount, status) and owes nothing', async () => {
    const r = refs();
    const { inv, key } = await handedOver(r, { collected: 'uncollectible', writeBack: 'mark_uncollectible' });
    const ev = event(r, 'invoice_uncollectible', 'invoice.marked_uncollectible', after(21), { requestIdempotencyKey: key });
    ev.invoice!.amountDue = { value: 0, currency: 'EUR' };
    const { result, rows } = await apply(ev);
    expect(rows).toEqual([]);
    expect(result.note).toMatch(/echo of our write-back \(mark_uncollectible/);
    const now = await invoiceOf(r);
    expect({ status: now.status, due: Number(now.amount_due), lastFailed: now.last_failed_at }).toEqual({ status: 'uncollectible', due: 4900, lastFailed: inv.last_failed_at });
    expect((await historyOf(inv.id)).map((h) => h.status).filter((s) => s === 'payment_failed')).toHaveLength(1);
  });

  it('not echoes: a card payment after hand-over, an out-of-band payment with no write-back owed, a key that is not ours, a cancelled write-back', async () => {
    // The customer pays by card while the agency collects: reported to the agency.
    const card = refs();
    await handedOver(card);
    const paidByCard = await apply(event(card, 'payment_succeeded', 'invoice.paid', after(21)));
    expect(paidByCard.rows.map((x) => x.kind)).toEqual(['agency.report_payment']);
    expect((await invoiceOf(card)).status).toBe('paid');

    // The merchant marks it paid out of band by hand while the agency collects: reported too.
    const manual = refs();
    await handedOver(manual);
    const byHand = await apply(event(manual, 'payment_succeeded', 'invoice.paid', after(21), { paidOutOfBand: true }));
    expect(byHand.rows.map((x) => x.kind)).toEqual(['agency.report_payment']);

    // An uncollectible mark someone else made (another idempotency key) while our row was cancelled: not ours.
    const other = refs();
    const { inv } = await handedOver(other, { collected: 'uncollectible', writeBack: 'mark_uncollectible', writeBackStatus: 'cancelled' });
    const ev = event(other, 'invoice_uncollectible', 'invoice.marked_uncollectible', after(21), { requestIdempotencyKey: 'dashboard-key' });
    expect(await db.tx((sql) => writeBackEcho(sql, ev, inv.id))).toBeNull();
    // And a key that is not ours, not out of band, with a write-back done: a new fact.
    const notOurs = refs();
    const done = await handedOver(notOurs, { collected: 'paid', writeBack: 'pay' });
    const ev2 = event(notOurs, 'payment_succeeded', 'invoice.paid', after(21), { requestIdempotencyKey: 'someone-else' });
    expect(await db.tx((sql) => writeBackEcho(sql, ev2, done.inv.id))).toBeNull();
  });
});

describe('a payment on an invoice the agency already collected', () => {
  // Was "paid twice" (a timeline entry only); since issue 12 an explicit owed-back record
  // (test/unit/owed-back.test.ts has the rest: partial collections, both orders).
  it('is owed back to the debtor (amount_owed_back + an owed_back timeline row), not reported to the agency, and the status stays', async () => {
    const r = refs();
    const { inv } = await handedOver(r, { collected: 'paid' });
    const { result, rows } = await apply(event(r, 'payment_succeeded', 'invoice.paid', after(22)));
    expect(rows).toEqual([]);
    expect(result.note).toMatch(/4900 EUR is owed back to the debtor: paid 4900 through the PSP and 4900 collected by the agency/);
    const now = await invoiceOf(r);
    expect({ status: now.status, paid: Number(now.amount_paid), collected: Number(now.amount_collected), owedBack: Number(now.amount_owed_back) }).toEqual({ status: 'paid', paid: 4900, collected: 4900, owedBack: 4900 });
    expect((await historyOf(inv.id)).at(-1)).toEqual({ status: 'owed_back', detail: expect.objectContaining({ collectedByAgency: 4900, paidToMerchant: 4900, amount: 4900, currency: 'EUR' }) });
  });
});
