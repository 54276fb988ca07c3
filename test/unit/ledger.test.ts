/**
 * The ledger stage for PSP events (applyPaymentEvent) on an in-memory PGlite: invoice states,
 * ordering by the PSP's occurredAt (contract §3–§4), and the outbox rows each change owes.
 */
import { createPglite } from '../../src/store/pglite';
import { migrate } from '../../src/store/migrate';
import type { Database } from '../../src/store/db';
import { applyPaymentEvent } from '../../src/ledger/payment-ledger';
import { runHandoverCheck } from '../../src/pipeline/handover-check';
import { makeCommit, type HubContext, type MerchantSettings, type OutboxWriter } from '../../src/context';
import type { OutboxInput, OutboxRow } from '../../src/outbox/outbox';
import type { InvoiceRow, CustomerRow } from '../../src/ledger/rows';
import type { PaymentEvent, FailureInfo } from '../../src/domain/types';
import { ManualClock, DAY_MS } from '../../src/domain/clock';
import { createLogger } from '../../src/observability/logger';
import { createMetrics } from '../../src/observability/metrics';
import type { Dispatcher } from '../../src/queue/dispatcher';
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
const after = (days: number, ms = 0) => new Date(T1.getTime() + days * DAY_MS + ms);
const NOW = after(0, 5_000);

let db: Database;
beforeAll(async () => {
  db = await createPglite();
  await migrate(db);
});
afterAll(async () => {
  await db.close();
});

/** Unique PSP ids per test, so every test owns its customer and invoice. */
let seq = 0;
function refs() {
  seq++;
  return { customer: `cus_L${seq}`, invoice: `in_L${seq}`, pi: `pi_L${seq}`, charge: `ch_L${seq}` };
}
type Refs = ReturnType<typeof refs>;

const FINAL: FailureInfo = { code: 'insufficient_funds', reason: 'insufficient_funds', retryable: true, final: true };
const RETRYING: FailureInfo = { code: 'insufficient_funds', reason: 'insufficient_funds', retryable: true, final: false, nextAttemptAt: after(3).toISOString() };

function baseEvent(r: Refs, kind: PaymentEvent['kind'], occurredAt: Date, id: string): PaymentEvent {
  return {
    merchantId: 'acme',
    provider: 'stripe',
    providerEventId: id,
    providerEventType: kind,
    kind,
    occurredAt: occurredAt.toISOString(),
    customer: { ref: r.customer, name: 'Jan Jansen', email: 'jan@example.nl', type: 'consumer' },
  };
}

function failed(r: Refs, occurredAt: Date, failure: FailureInfo | undefined, id = `evt_fail_${r.invoice}_${occurredAt.getTime()}`): PaymentEvent {
  return {
    ...baseEvent(r, 'payment_failed', occurredAt, id),
    providerEventType: 'invoice.payment_failed',
    invoice: { ref: r.invoice, number: 'ACME-1', amountDue: { value: 4900, currency: 'EUR' } },
    payment: { ref: r.pi, method: 'card', relatedRefs: [r.charge] },
    ...(failure ? { failure } : {}),
  };
}

function paid(r: Refs, occurredAt: Date, id = `evt_paid_${r.invoice}_${occurredAt.getTime()}`): PaymentEvent {
  return {
    ...baseEvent(r, 'payment_succeeded', occurredAt, id),
    providerEventType: 'invoice.paid',
    invoice: { ref: r.invoice, amountDue: { value: 4900, currency: 'EUR' } },
    payment: { ref: `${r.pi}_ok`, method: 'card', amount: { value: 4900, currency: 'EUR' } },
  };
}

interface Recorder extends OutboxWriter {
  rows: OutboxInput[];
}
const recorder = (): Recorder => {
  const rows: OutboxInput[] = [];
  return { rows, add: async (row) => void rows.push(row) };
};

async function apply(ev: PaymentEvent, outbox: Recorder = recorder(), now: Date = NOW) {
  const result = await db.tx((sql) => applyPaymentEvent(sql, outbox, merchant, ev, now, testIdentifierHasher()));
  return { result, outbox: outbox.rows };
}

async function invoiceOf(r: Refs): Promise<InvoiceRow | undefined> {
  return (await db.query<InvoiceRow>(`SELECT * FROM invoices WHERE merchant_id = 'acme' AND provider = 'stripe' AND provider_ref = $1`, [r.invoice])).rows[0];
}
async function customerOf(r: Refs): Promise<CustomerRow> {
  return (await db.query<CustomerRow>(`SELECT * FROM customers WHERE merchant_id = 'acme' AND provider = 'stripe' AND provider_ref = $1`, [r.customer])).rows[0];
}
async function historyOf(invoiceId: string): Promise<{ status: string; reason: string | null }[]> {
  return (await db.query<{ status: string; reason: string | null }>(
    `SELECT status, reason FROM status_history WHERE entity = 'invoice' AND entity_id = $1 ORDER BY id`,
    [invoiceId],
  )).rows;
}

/** Run the real hand-over check for a customer at `at`, as the outbox worker would. */
async function runCheck(customerId: string, at: Date) {
  const clock = new ManualClock(at.getTime());
  const dispatcher = { kind: 'in-process', dispatch: async () => undefined } as unknown as Dispatcher;
  const ctx = {
    clock,
    logger: createLogger({ silent: true }),
    metrics: createMetrics(),
    merchants: new Map([[merchant.id, merchant]]),
    commit: makeCommit(db, dispatcher, clock),
  } as unknown as HubContext;
  await runHandoverCheck(ctx, { id: -1, payload: { customerId }, merchant_id: merchant.id, kind: 'handover_check', lane: 'hub' } as OutboxRow<'handover_check'>);
  const cases = (await db.query<{ id: string; status: string }>(`SELECT id, status FROM cases WHERE customer_id = $1`, [customerId])).rows;
  const claims = (await db.query<{ invoice_id: string; principal: string }>(`SELECT invoice_id, principal FROM claims WHERE merchant_id = 'acme' AND case_id = ANY($1::text[])`, [cases.map((c) => c.id)])).rows;
  return { cases, claims };
}

describe('applyPaymentEvent: failures', () => {
  it('a final failure makes the invoice pending_handover, due first failure + handoverAfterDays, with a handover_check owed then', async () => {
    const r = refs();
    const { outbox, result } = await apply(failed(r, T1, FINAL));
    const inv = (await invoiceOf(r))!;
    const due = after(14);
    expect(inv).toMatchObject({
      status: 'pending_handover',
      failure_code: 'insufficient_funds',
      failure_reason: 'insufficient_funds',
      failure_final: true,
      failure_count: 1,
      currency: 'EUR',
    });
    expect(Number(inv.amount_due)).toBe(4900);
    expect(new Date(inv.first_failed_at!)).toEqual(T1);
    expect(new Date(inv.handover_due_at!)).toEqual(due);
    expect(outbox).toEqual([
      expect.objectContaining({ kind: 'handover_check', lane: 'hub', invoiceId: inv.id, customerId: inv.customer_id, merchantId: 'acme', dueAt: due, payload: { customerId: inv.customer_id } }),
    ]);
    expect(result).toMatchObject({ invoiceId: inv.id, customerId: inv.customer_id });
    expect((await historyOf(inv.id)).map((h) => h.status)).toEqual(['payment_failed', 'pending_handover']);
    const cust = await customerOf(r);
    expect(cust).toMatchObject({ last_failure_code: 'insufficient_funds', last_failure_reason: 'insufficient_funds' });
  });

  it('a non-final failure (the PSP will retry) leaves the invoice open and owes no outbox row', async () => {
    const r = refs();
    const { outbox } = await apply(failed(r, T1, RETRYING));
    const inv = (await invoiceOf(r))!;
    expect(inv).toMatchObject({ status: 'open', failure_final: false, failure_count: 1, handover_due_at: null });
    expect(outbox).toEqual([]);
  });

  it('when the last retry fails for good, the hand-over is still counted from the first failure', async () => {
    const r = refs();
    await apply(failed(r, T1, RETRYING));
    const { outbox } = await apply(failed(r, after(7), FINAL));
    const inv = (await invoiceOf(r))!;
    expect(inv).toMatchObject({ status: 'pending_handover', failure_final: true, failure_count: 2 });
    expect(new Date(inv.first_failed_at!)).toEqual(T1);
    expect(new Date(inv.handover_due_at!)).toEqual(after(14));
    expect(outbox).toEqual([expect.objectContaining({ kind: 'handover_check', dueAt: after(14) })]);
  });

  it('a payment_failed without failure facts does not make an open invoice final (timeline only)', async () => {
    const r = refs();
    await apply(failed(r, T1, RETRYING));
    const { outbox, result } = await apply(failed(r, after(1), undefined));
    const inv = (await invoiceOf(r))!;
    expect(inv).toMatchObject({ status: 'open', failure_final: false, failure_count: 1, handover_due_at: null });
    expect(outbox).toEqual([]);
    expect(result.note).toMatch(/timeline/);
    expect((await historyOf(inv.id)).map((h) => h.status)).toEqual(['payment_failed', 'payment_attempt_failed']);
  });

  it('a payment_failed without failure facts for an unknown invoice creates nothing to hand over', async () => {
    const r = refs();
    const { outbox } = await apply(failed(r, T1, undefined));
    expect(await invoiceOf(r)).toBeUndefined();
    expect(outbox).toEqual([]);
  });
});

describe('applyPaymentEvent: payments and ordering by occurredAt', () => {
  it('a payment after the failure (newer) recovers the invoice before hand-over', async () => {
    const r = refs();
    await apply(failed(r, T1, FINAL));
    const { outbox } = await apply(paid(r, after(2)));
    const inv = (await invoiceOf(r))!;
    expect(inv).toMatchObject({ status: 'recovered', resolution: 'paid_in_full', resolved_by: 'stripe' });
    expect(Number(inv.amount_paid)).toBe(4900);
    expect(outbox).toEqual([]);
  });

  it('a payment for an invoice with no known failure is recorded as settled', async () => {
    const r = refs();
    await apply(paid(r, T1));
    expect((await invoiceOf(r))!).toMatchObject({ status: 'settled', failure_count: 0 });
  });

  it('out of order: paid (t2) applied before the failure (t1) leaves the invoice paid, not pending_handover, with no hand-over owed', async () => {
    const r = refs();
    await apply(paid(r, after(2)));
    const { outbox } = await apply(failed(r, T1, FINAL));
    const inv = (await invoiceOf(r))!;
    expect(['settled', 'recovered']).toContain(inv.status);
    expect(inv.handover_due_at).toBeNull();
    expect(outbox).toEqual([]);
    // The failure facts are still kept for the payment-behaviour picture.
    expect(inv).toMatchObject({ failure_code: 'insufficient_funds', failure_count: 1 });
    expect(new Date(inv.last_event_at!)).toEqual(after(2));
    expect((await historyOf(inv.id)).map((h) => h.status)).not.toContain('pending_handover');
  });

  it('out of order: an older payment arriving after a newer failure does not hide the newer failure', async () => {
    // t1 paid (invoice 1st attempt), t3 failure — delivered failure first, then the older payment.
    const r = refs();
    await apply(failed(r, after(3), FINAL));
    await apply(paid(r, T1));
    const inv = (await invoiceOf(r))!;
    expect(inv.status).toBe('pending_handover');
  });

  it('a later failure after the payment (SEPA return, t3 > t2) reopens the invoice for hand-over', async () => {
    const r = refs();
    await apply(failed(r, T1, FINAL));
    await apply(paid(r, after(2)));
    expect((await invoiceOf(r))!.status).toBe('recovered');
    const { outbox } = await apply(failed(r, after(5), { code: 'MD06', reason: 'debtor_refused', retryable: false, final: true }));
    const inv = (await invoiceOf(r))!;
    expect(inv).toMatchObject({ status: 'pending_handover', resolution: null, failure_code: 'MD06', failure_reason: 'debtor_refused' });
    expect(outbox).toEqual([expect.objectContaining({ kind: 'handover_check', invoiceId: inv.id })]);
    expect((await historyOf(inv.id)).map((h) => h.status)).toEqual(['payment_failed', 'pending_handover', 'recovered', 'payment_failed', 'pending_handover']);
  });

  // Regression test: this once failed (found by these tests, fixed in src).
  it('a reopened invoice (returned payment) is handed over for the amount owed once due', async () => {
    const r = refs();
    await apply(failed(r, T1, FINAL));
    await apply(paid(r, after(2)));
    await apply(failed(r, after(5), { code: 'MD06', reason: 'debtor_refused', retryable: false, final: true }));
    const inv = (await invoiceOf(r))!;
    expect(Number(inv.amount_due) - Number(inv.amount_paid)).toBe(4900);
    const { cases, claims } = await runCheck(inv.customer_id, after(20));
    expect(cases).toHaveLength(1);
    expect(claims).toEqual([{ invoice_id: inv.id, principal: expect.anything() }]);
    expect(Number(claims[0].principal)).toBe(4900);
  });

  it('the same event applied twice does not change the status or hand-over date the second time', async () => {
    const r = refs();
    const ev = failed(r, T1, FINAL);
    const first = await apply(ev);
    const before = (await invoiceOf(r))!;
    const second = await apply(ev);
    const afterwards = (await invoiceOf(r))!;
    expect(afterwards.status).toBe('pending_handover');
    expect(afterwards.handover_due_at).toEqual(before.handover_due_at);
    expect(afterwards.first_failed_at).toEqual(before.first_failed_at);
    expect(afterwards.failure_code).toBe(before.failure_code);
    // No second status transition on the timeline.
    expect((await historyOf(before.id)).filter((h) => h.status === 'pending_handover')).toHaveLength(1);
    // The hand-over check it owes again carries the same idempotency key, so the outbox keeps one row.
    expect(second.outbox.map((o) => o.idempotencyKey)).toEqual(first.outbox.map((o) => o.idempotencyKey));
  });

  it('the same payment applied twice leaves the invoice recovered with one recovery on the timeline', async () => {
    const r = refs();
    await apply(failed(r, T1, FINAL));
    const ev = paid(r, after(2));
    await apply(ev);
    const { outbox } = await apply(ev);
    const inv = (await invoiceOf(r))!;
    expect(inv.status).toBe('recovered');
    expect(Number(inv.amount_paid)).toBe(4900);
    expect(outbox).toEqual([]);
    expect((await historyOf(inv.id)).filter((h) => h.status === 'recovered')).toHaveLength(1);
  });
});

describe('applyPaymentEvent: not collectible', () => {
  it('a chargeback found only through the charge id the failure recorded makes the invoice disputed, never handed over', async () => {
    const r = refs();
    await apply(failed(r, T1, FINAL));
    const dispute: PaymentEvent = {
      ...baseEvent(r, 'chargeback', after(1), `evt_dp_${r.charge}`),
      providerEventType: 'charge.dispute.created',
      payment: { ref: r.charge, method: 'card' },
      failure: { code: 'fraudulent', reason: 'disputed', retryable: false, final: true },
      detail: { disputeRef: `dp_${r.charge}` },
    };
    const { outbox, result } = await apply(dispute);
    const inv = (await invoiceOf(r))!;
    expect(result.invoiceId).toBe(inv.id);
    expect(inv.status).toBe('disputed');
    expect(outbox).toEqual([]);
    const { cases } = await runCheck(inv.customer_id, after(30));
    expect(cases).toEqual([]);
    expect((await invoiceOf(r))!.status).toBe('disputed');
  });

  it('a chargeback for a payment the hub has no invoice for stays on the customer timeline only', async () => {
    const r = refs();
    const { result } = await apply({
      ...baseEvent(r, 'chargeback', T1, `evt_dp_orphan_${r.charge}`),
      payment: { ref: r.charge, method: 'card' },
      failure: { code: 'fraudulent', reason: 'disputed', retryable: false, final: true },
    });
    expect(result.invoiceId).toBeNull();
    expect(await invoiceOf(r)).toBeUndefined();
  });

  it('a voided invoice becomes voided (credit note) and is never handed over', async () => {
    const r = refs();
    await apply(failed(r, T1, FINAL));
    const { outbox } = await apply({
      ...baseEvent(r, 'invoice_voided', after(1), `evt_void_${r.invoice}`),
      providerEventType: 'invoice.voided',
      invoice: { ref: r.invoice, amountDue: { value: 4900, currency: 'EUR' } },
    });
    const inv = (await invoiceOf(r))!;
    expect(inv).toMatchObject({ status: 'voided', resolution: 'credit_note' });
    expect(outbox).toEqual([]);
    expect((await runCheck(inv.customer_id, after(30))).cases).toEqual([]);
  });

  it('a pending invoice still due is handed over by the check (control for the two tests above)', async () => {
    const r = refs();
    await apply(failed(r, T1, FINAL));
    const inv = (await invoiceOf(r))!;
    const { cases, claims } = await runCheck(inv.customer_id, after(14));
    expect(cases).toEqual([{ id: expect.any(String), status: 'submitted' }]);
    expect(claims.map((c) => [c.invoice_id, Number(c.principal)])).toEqual([[inv.id, 4900]]);
    expect((await invoiceOf(r))!.status).toBe('submitted');
  });
});

describe('applyPaymentEvent: customer facts', () => {
  it('mandate_revoked sets the customer mandate_status to revoked', async () => {
    const r = refs();
    await apply(failed(r, T1, RETRYING));
    const { outbox } = await apply({ ...baseEvent(r, 'mandate_revoked', after(1), `evt_mandate_${r.customer}`), providerEventType: 'mandate.updated' });
    const cust = await customerOf(r);
    expect(cust.mandate_status).toBe('revoked');
    expect(outbox).toEqual([]);
    const h = (await db.query(`SELECT status FROM status_history WHERE entity = 'customer' AND entity_id = $1`, [cust.id])).rows;
    expect(h).toEqual([{ status: 'mandate_revoked' }]);
    // The invoice itself is untouched.
    expect((await invoiceOf(r))!.status).toBe('open');
  });
});

// ---------------------------------------------------------------------------------------------
// Disputes after the first, refunds full and partial, subscription status, one-off items
// (issue 3, items 4 and 6).

async function claimsOf(invoiceId: string): Promise<{ id: string; status: string; case_id: string }[]> {
  return (await db.query<{ id: string; status: string; case_id: string }>(`SELECT id, status, case_id FROM claims WHERE invoice_id = $1 ORDER BY created_at`, [invoiceId])).rows;
}
async function fullHistoryOf(invoiceId: string): Promise<{ status: string; reason: string | null; detail: any }[]> {
  return (await db.query<{ status: string; reason: string | null; detail: any }>(
    `SELECT status, reason, detail FROM status_history WHERE entity = 'invoice' AND entity_id = $1 ORDER BY id`,
    [invoiceId],
  )).rows;
}

function dispute(r: Refs, occurredAt: Date, disputeStatus: string, type = 'charge.dispute.updated', withFailure = true): PaymentEvent {
  return {
    ...baseEvent(r, 'chargeback', occurredAt, `evt_${type}_${disputeStatus}_${r.charge}_${occurredAt.getTime()}`),
    providerEventType: type,
    payment: { ref: r.charge, method: 'card', relatedRefs: [r.pi] },
    ...(withFailure ? { failure: { code: 'fraudulent', reason: 'disputed' as const, retryable: false, final: true } } : {}),
    detail: { disputeRef: `dp_${r.charge}`, disputeStatus, amount: { value: 4900, currency: 'EUR' } },
  };
}

function refund(r: Refs, occurredAt: Date, amount?: number): PaymentEvent {
  return {
    ...baseEvent(r, 'refund', occurredAt, `evt_refund_${r.charge}_${occurredAt.getTime()}_${amount ?? 'x'}`),
    providerEventType: 'charge.refunded',
    payment: { ref: r.pi, method: 'card', relatedRefs: [r.charge, r.pi], ...(amount !== undefined ? { amount: { value: amount, currency: 'EUR' } } : {}) },
    ...(amount !== undefined ? { detail: { amountRefunded: { value: amount, currency: 'EUR' } } } : {}),
  };
}

/** A final failure handed over by the real check: the invoice is in a live claim. */
async function inCase(r: Refs) {
  await apply(failed(r, T1, FINAL));
  const inv = (await invoiceOf(r))!;
  await runCheck(inv.customer_id, after(14));
  const [claim] = await claimsOf(inv.id);
  expect(claim.status).toBe('submitted');
  return { inv, claim };
}

describe('applyPaymentEvent: a dispute after the first', () => {
  it('a second chargeback on an already disputed invoice only adds a timeline entry', async () => {
    const r = refs();
    await apply(failed(r, T1, RETRYING));
    await apply(dispute(r, after(1), 'needs_response', 'charge.dispute.created'));
    const disputed = (await invoiceOf(r))!;
    expect(disputed).toMatchObject({ status: 'disputed', resolution: null, resolved_by: 'stripe' });

    const { outbox, result } = await apply(dispute(r, after(2), 'under_review'));
    const second = await apply(dispute(r, after(3), 'lost', 'charge.dispute.closed'));
    const inv = (await invoiceOf(r))!;
    expect(inv).toMatchObject({ status: 'disputed', resolution: null, resolved_by: 'stripe' });
    expect(new Date(inv.updated_at)).toEqual(new Date(disputed.updated_at));
    expect([...outbox, ...second.outbox]).toEqual([]);
    expect(result.note).toMatch(/kept on the timeline/);
    const h = await fullHistoryOf(inv.id);
    expect(h.map((x) => x.status)).toEqual(['payment_failed', 'disputed', 'dispute_under_review', 'dispute_lost']);
    expect(h[3]).toMatchObject({ reason: 'disputed', detail: expect.objectContaining({ event: 'charge.dispute.closed', disputeStatus: 'lost' }) });
    expect(new Date(inv.last_event_at!)).toEqual(after(3));
  });

  it('a disputed invoice in a case is withdrawn once (reason chargeback); later dispute events neither withdraw again nor change the resolution', async () => {
    const r = refs();
    const { inv: before, claim } = await inCase(r);
    const first = await apply(dispute(r, after(15), 'needs_response', 'charge.dispute.created'));
    expect(first.outbox).toEqual([expect.objectContaining({ kind: 'agency.withdraw', payload: { caseId: claim.case_id, claimId: claim.id, reason: 'chargeback' } })]);
    expect((await invoiceOf(r))!).toMatchObject({ status: 'disputed', resolution: 'withdrawn_by_merchant' });

    const later = [await apply(dispute(r, after(16), 'lost', 'charge.dispute.closed')), await apply(dispute(r, after(17), 'lost', 'charge.dispute.funds_withdrawn'))];
    expect(later.flatMap((l) => l.outbox)).toEqual([]);
    expect((await invoiceOf(r))!).toMatchObject({ status: 'disputed', resolution: 'withdrawn_by_merchant' });
    expect(await claimsOf(before.id)).toEqual([expect.objectContaining({ status: 'withdrawn' })]);
  });

  it('after the agency confirmed the withdrawal (invoice now withdrawn), a later dispute event is still only a timeline entry', async () => {
    const r = refs();
    const { inv } = await inCase(r);
    await apply(dispute(r, after(15), 'needs_response', 'charge.dispute.created'));
    // What src/sync/partner-updates.ts does with the agency's "withdrawn" confirmation: the invoice mirrors its claim.
    await db.query(`UPDATE invoices SET status = 'withdrawn', resolution = 'withdrawn_by_merchant', resolved_by = 'refagency' WHERE id = $1`, [inv.id]);
    const { outbox, result } = await apply(dispute(r, after(16), 'lost', 'charge.dispute.closed'));
    expect(outbox).toEqual([]);
    expect(result.note).toBe('chargeback (lost): kept on the timeline (invoice is withdrawn)');
    expect((await invoiceOf(r))!).toMatchObject({ status: 'withdrawn', resolution: 'withdrawn_by_merchant', resolved_by: 'refagency' });
    expect((await fullHistoryOf(inv.id)).map((h) => h.status).slice(-2)).toEqual(['disputed', 'dispute_lost']);
  });

  it('an invoice the agency reported disputed (claim still live) is still withdrawn by a PSP chargeback', async () => {
    const r = refs();
    const { inv, claim } = await inCase(r);
    await db.query(`UPDATE invoices SET status = 'disputed' WHERE id = $1`, [inv.id]);
    await db.query(`UPDATE claims SET status = 'disputed' WHERE id = $1`, [claim.id]);
    const { outbox } = await apply(dispute(r, after(15), 'needs_response', 'charge.dispute.created'));
    expect(outbox).toEqual([expect.objectContaining({ kind: 'agency.withdraw', payload: expect.objectContaining({ reason: 'chargeback' }) })]);
  });

  it('a dispute the merchant won changes nothing but the timeline (the money stayed with the merchant)', async () => {
    const r = refs();
    await apply(paid(r, T1));
    await apply({ ...failed(r, T1, undefined), payment: { ref: r.charge, method: 'card' } }); // remember the charge id
    const { outbox } = await apply(dispute(r, after(40), 'won', 'charge.dispute.closed', false));
    const inv = (await invoiceOf(r))!;
    expect(inv).toMatchObject({ status: 'settled', resolution: null });
    expect(outbox).toEqual([]);
    expect((await fullHistoryOf(inv.id)).map((h) => h.status)).toEqual(['payment_attempt_failed', 'dispute_won']);
  });

  it('a dispute on a pending invoice means it is never handed over', async () => {
    const r = refs();
    await apply(failed(r, T1, FINAL));
    await apply(dispute(r, after(1), 'needs_response', 'charge.dispute.created'));
    const inv = (await invoiceOf(r))!;
    expect((await runCheck(inv.customer_id, after(30))).cases).toEqual([]);
    expect((await invoiceOf(r))!.status).toBe('disputed');
  });
});

describe('applyPaymentEvent: refunds', () => {
  it('a full refund of a paid (settled) invoice closes it with credit_note', async () => {
    const r = refs();
    await apply(paid(r, T1));
    const { outbox } = await apply({ ...refund(r, after(3), 4900), invoice: { ref: r.invoice, amountDue: { value: 4900, currency: 'EUR' } } });
    expect((await invoiceOf(r))!).toMatchObject({ status: 'closed', resolution: 'credit_note', resolved_by: 'stripe' });
    expect(outbox).toEqual([]);
  });

  it('a full refund of an invoice paid to the merchant after hand-over (status paid) closes it too, nothing more to tell the agency', async () => {
    const r = refs();
    const { inv } = await inCase(r);
    await apply(paid(r, after(15)));
    expect((await invoiceOf(r))!.status).toBe('paid');
    const { outbox } = await apply({ ...refund(r, after(16), 4900), invoice: { ref: r.invoice, amountDue: { value: 4900, currency: 'EUR' } } });
    expect((await invoiceOf(r))!).toMatchObject({ status: 'closed', resolution: 'credit_note' });
    expect(outbox).toEqual([]);
    expect(await claimsOf(inv.id)).toEqual([expect.objectContaining({ status: 'paid' })]);
  });

  it('a full refund of an invoice in a live claim withdraws it (reason refund), closes it, and it is never handed over again', async () => {
    const r = refs();
    const { inv, claim } = await inCase(r);
    const { outbox, result } = await apply(refund(r, after(15), 4900));
    expect(result.note).toBe(`refund: withdrawn from case ${claim.case_id}`);
    expect(outbox).toEqual([expect.objectContaining({ kind: 'agency.withdraw', payload: { caseId: claim.case_id, claimId: claim.id, reason: 'refund' } })]);
    expect((await invoiceOf(r))!).toMatchObject({ status: 'closed', resolution: 'credit_note' });
    expect(await claimsOf(inv.id)).toEqual([expect.objectContaining({ status: 'withdrawn' })]);

    // A later failure event for it changes nothing to hand over; the check finds nothing.
    const again = await apply(failed(r, after(20), FINAL, `evt_fail_again_${r.invoice}`));
    expect(again.outbox).toEqual([]);
    expect((await invoiceOf(r))!.status).toBe('closed');
    await runCheck(inv.customer_id, after(40));
    expect(await claimsOf(inv.id)).toHaveLength(1);
  });

  it('a partial refund only records the amount on the timeline: the claim stays live, the status as it was', async () => {
    const r = refs();
    const { inv, claim } = await inCase(r);
    const { outbox, result } = await apply(refund(r, after(15), 1500));
    expect(outbox).toEqual([]);
    expect(result.note).toMatch(/^partial refund \(1500 of 4900 EUR\)/);
    expect((await invoiceOf(r))!).toMatchObject({ status: 'submitted', resolution: null });
    expect(await claimsOf(inv.id)).toEqual([expect.objectContaining({ id: claim.id, status: 'submitted' })]);
    const last = (await fullHistoryOf(inv.id)).pop()!;
    expect(last).toMatchObject({ status: 'refund_partial', detail: expect.objectContaining({ event: 'charge.refunded', amountRefunded: { value: 1500, currency: 'EUR' } }) });

    // The rest refunded later (amount_refunded is cumulative): now it is a full refund.
    const rest = await apply(refund(r, after(16), 4900));
    expect(rest.outbox).toEqual([expect.objectContaining({ kind: 'agency.withdraw', payload: expect.objectContaining({ reason: 'refund' }) })]);
  });

  it('a refund event without an amount (a PSP that does not say) is taken as full, as before', async () => {
    const r = refs();
    await apply(paid(r, T1));
    await apply({ ...refund(r, after(3)), invoice: { ref: r.invoice, amountDue: { value: 4900, currency: 'EUR' } } });
    expect((await invoiceOf(r))!).toMatchObject({ status: 'closed', resolution: 'credit_note' });
  });
});

describe('applyPaymentEvent: one-off payments and their echoes', () => {
  it('a one-off item (invoice ref = the PaymentIntent id, final failure) is pending hand-over; an invoice-backed echo keeps its codes on the timeline', async () => {
    const r = refs();
    const { outbox } = await apply({ ...failed(r, T1, FINAL), invoice: { ref: r.pi, amountDue: { value: 12500, currency: 'EUR' }, description: 'Order 1042' }, payment: { ref: r.pi, method: 'card', relatedRefs: [r.pi, r.charge] } });
    const item = (await db.query<InvoiceRow>(`SELECT * FROM invoices WHERE provider_ref = $1`, [r.pi])).rows[0];
    expect(item).toMatchObject({ status: 'pending_handover', description: 'Order 1042', failure_final: true });
    expect(outbox).toEqual([expect.objectContaining({ kind: 'handover_check', invoiceId: item.id })]);

    const r2 = refs();
    await apply(failed(r2, T1, RETRYING));
    await apply({ ...failed(r2, after(0, 1000), undefined), providerEventType: 'payment_intent.payment_failed', detail: { failureCodes: ['insufficient_funds', 'card_declined'] } });
    const inv = (await invoiceOf(r2))!;
    expect(inv).toMatchObject({ status: 'open', failure_count: 1, failure_final: false });
    expect((await fullHistoryOf(inv.id)).pop()).toMatchObject({ status: 'payment_attempt_failed', detail: expect.objectContaining({ failureCodes: ['insufficient_funds', 'card_declined'] }) });
  });
});

describe('applyPaymentEvent: subscription status and ignored events', () => {
  it('subscription_status sets the customer subscription_status and adds it to the customer timeline', async () => {
    const r = refs();
    const { outbox, result } = await apply({ ...baseEvent(r, 'subscription_status', T1, `evt_sub_${r.customer}`), providerEventType: 'customer.subscription.updated', detail: { subscriptionRef: 'sub_1', status: 'past_due', previousStatus: 'active' } });
    const cust = await customerOf(r);
    expect(cust.subscription_status).toBe('past_due');
    expect(outbox).toEqual([]);
    expect(result.note).toBe('subscription_status is past_due');
    const h = (await db.query(`SELECT status, detail FROM status_history WHERE entity = 'customer' AND entity_id = $1`, [cust.id])).rows;
    expect(h).toEqual([{ status: 'subscription_past_due', detail: expect.objectContaining({ event: 'customer.subscription.updated', previousStatus: 'active' }) }]);
  });

  it('an ignored event with a note from the connector says why in its result (the sync-log line)', async () => {
    const r = refs();
    const { result } = await apply({ ...baseEvent(r, 'ignored', T1, `evt_mandate_ign_${r.customer}`), customer: undefined, detail: { note: 'mandate m_1 is inactive, but …' } });
    expect(result.note).toBe('ignored: mandate m_1 is inactive, but …');
    const plain = await apply({ ...baseEvent(r, 'ignored', T1, `evt_plain_ign_${r.customer}`), customer: undefined });
    expect(plain.result.note).toBe('ignored event type');
  });
});
