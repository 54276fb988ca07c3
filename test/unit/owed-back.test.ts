/**
 * "Paid in full while the agency still collects" (issue 12, hole 1) on an in-memory PGlite, through
 * the real ledger (applyPaymentEvent) and the real agency-update side (applyPartnerUpdate):
 *
 *  - a PSP payment on an invoice whose claim is live is ALWAYS reported to the agency at once
 *    (`agency.report_payment`), also when the agency has already collected part of it;
 *  - a full payment ends the claim (paid / paid_to_merchant); a partial one leaves it live;
 *  - PSP-paid + agency-collected beyond what was due is an explicit "owed back to the debtor"
 *    record (invoices.amount_owed_back + a status_history row `owed_back`), in whichever order the
 *    PSP's payment and the agency's collection arrive.
 */
import { createPglite } from '../../src/store/pglite';
import { migrate } from '../../src/store/migrate';
import type { Database } from '../../src/store/db';
import { applyPaymentEvent } from '../../src/ledger/payment-ledger';
import { applyPartnerUpdate } from '../../src/sync/partner-updates';
import { runHandoverCheck } from '../../src/pipeline/handover-check';
import { makeCommit, type HubContext, type MerchantSettings, type OutboxWriter } from '../../src/context';
import type { OutboxInput, OutboxRow } from '../../src/outbox/outbox';
import type { AgencyUpdate, PaymentEvent } from '../../src/domain/types';
import { ManualClock, DAY_MS } from '../../src/domain/clock';
import { createLogger } from '../../src/observability/logger';
import { createMetrics } from '../../src/observability/metrics';
import type { Dispatcher } from '../../src/queue/dispatcher';
import { eventTypeOf } from '../../src/notify/events';
import { policySchema } from '../../src/config/schema';
import { testIdentifierHasher } from '../support/secrets';

const merchant: MerchantSettings = {
  id: 'acme',
  name: 'Acme Subscriptions BV',
  country: 'NL',
  providers: {},
  partner: 'refagency',
  // Through the schema, so settings other engineers add get their defaults.
  policy: policySchema.parse({ handoverAfterDays: 14, minAmount: { value: 500, currency: 'EUR' }, stackWindowDays: 45, defaultDebtorType: 'consumer', countryRules: false }),
};

const T1 = new Date('2026-03-02T10:00:00.000Z');
const after = (days: number) => new Date(T1.getTime() + days * DAY_MS);

let db: Database;
let ctx: HubContext;
beforeAll(async () => {
  db = await createPglite();
  await migrate(db);
  const clock = new ManualClock(after(30).getTime());
  ctx = {
    db, clock, logger: createLogger({ silent: true }), metrics: createMetrics(), merchants: new Map([[merchant.id, merchant]]),
    commit: makeCommit(db, { kind: 'in-process', dispatch: async () => undefined } as unknown as Dispatcher, clock),
  } as unknown as HubContext;
});
afterAll(async () => {
  await db.close();
});

let seq = 0;
const refs = () => {
  seq++;
  return { customer: `cus_O${seq}`, invoice: `in_O${seq}`, pi: `pi_O${seq}` };
};
type Refs = ReturnType<typeof refs>;

function failed(r: Refs, at: Date): PaymentEvent {
  return {
    merchantId: 'acme', provider: 'stripe', providerEventId: `evt_fail_${r.invoice}`, providerEventType: 'invoice.payment_failed', kind: 'payment_failed',
    occurredAt: at.toISOString(), customer: { ref: r.customer, name: 'Jan Jansen', type: 'consumer' },
    invoice: { ref: r.invoice, amountDue: { value: 4900, currency: 'EUR' } },
    payment: { ref: r.pi, method: 'card' },
    failure: { code: 'insufficient_funds', reason: 'insufficient_funds', retryable: true, final: true },
  };
}

function paid(r: Refs, at: Date, amount = 4900): PaymentEvent {
  return {
    merchantId: 'acme', provider: 'stripe', providerEventId: `evt_paid_${r.invoice}_${at.getTime()}_${amount}`, providerEventType: 'invoice.paid', kind: 'payment_succeeded',
    occurredAt: at.toISOString(), customer: { ref: r.customer, name: 'Jan Jansen', type: 'consumer' },
    invoice: { ref: r.invoice, amountDue: { value: 0, currency: 'EUR' } },
    payment: { ref: `${r.pi}_ok`, method: 'card', amount: { value: amount, currency: 'EUR' } },
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

interface Money3 { status: string; resolution: string | null; paid: number; collected: number; owedBack: number }
const invoiceOf = async (r: Refs): Promise<Money3 & { id: string }> => {
  const i = (await db.query<Record<string, any>>(`SELECT * FROM invoices WHERE provider_ref = $1`, [r.invoice])).rows[0];
  return { id: i.id, status: i.status, resolution: i.resolution, paid: Number(i.amount_paid), collected: Number(i.amount_collected), owedBack: Number(i.amount_owed_back) };
};
const claimOf = async (invoiceId: string) =>
  (await db.query<{ id: string; case_id: string; status: string; resolution: string | null; amount_collected: string | number }>(`SELECT * FROM claims WHERE invoice_id = $1`, [invoiceId])).rows[0];
const historyOf = async (entityId: string) =>
  (await db.query<{ status: string; reason: string | null; detail: any }>(`SELECT status, reason, detail FROM status_history WHERE entity_id = $1 ORDER BY id`, [entityId])).rows;

/** A final failure, handed over by the real check: the invoice is in a live (submitted) claim. */
async function handedOver(r: Refs) {
  await apply(failed(r, T1), after(0));
  const inv = await invoiceOf(r);
  const customerId = (await db.query<{ customer_id: string }>(`SELECT customer_id FROM invoices WHERE id = $1`, [inv.id])).rows[0].customer_id;
  await runHandoverCheck(ctx, { id: -1, payload: { customerId }, merchant_id: 'acme', kind: 'handover_check', lane: 'hub' } as OutboxRow<'handover_check'>);
  const claim = await claimOf(inv.id);
  expect(claim.status).toBe('submitted');
  await db.query(`UPDATE cases SET partner_ref = $2 WHERE id = $1`, [claim.case_id, `AG-${r.invoice}`]);
  return { inv, claim };
}

let u = 0;
/** Store an agency update as push would and run its apply_update row. */
async function agencyUpdate(claim: { id: string; case_id: string }, r: Refs, over: Pick<AgencyUpdate, 'status' | 'occurredAt'> & Partial<AgencyUpdate>): Promise<string> {
  u++;
  const upd: AgencyUpdate = { id: `upd_O${u}`, seq: u, caseId: `AG-${r.invoice}`, caseReference: claim.case_id, claimReference: claim.id, ...over };
  const stored = (await db.query<{ id: number }>(`INSERT INTO partner_updates (partner_id, update_id, via, payload) VALUES ('refagency',$1,'push',$2) RETURNING id`, [upd.id, JSON.stringify(upd)])).rows[0];
  const row = (await db.query<OutboxRow<'apply_update'>>(
    `INSERT INTO outbox (kind, lane, payload, idempotency_key, status) VALUES ('apply_update','hub',$1,$2,'in_flight') RETURNING *`,
    [JSON.stringify({ partnerUpdateId: stored.id }), `update-refagency-${upd.id}`],
  )).rows[0];
  await applyPartnerUpdate(ctx, row);
  return (await db.query<{ status: string }>(`SELECT status FROM partner_updates WHERE id = $1`, [stored.id])).rows[0].status;
}

const eur = (value: number) => ({ value, currency: 'EUR' });

describe('a PSP payment while the agency collects (PSP payment after the agency collection)', () => {
  it('paid in full through the PSP after the agency collected part: reported to the agency at once, the claim ends paid_to_merchant, the overlap is owed back', async () => {
    const r = refs();
    const { inv, claim } = await handedOver(r);
    expect(await agencyUpdate(claim, r, { status: 'partially_paid', amountCollected: eur(1000), occurredAt: after(18).toISOString() })).toBe('applied');
    expect(await invoiceOf(r)).toMatchObject({ status: 'partially_paid', collected: 1000 });

    const { result, rows } = await apply(paid(r, after(20)));
    expect(rows.map((x) => x.kind)).toEqual(['agency.report_payment']);
    expect(rows[0]).toMatchObject({ lane: 'partner.refagency', caseId: claim.case_id, payload: { caseId: claim.case_id, claimId: claim.id, amount: eur(4900), channel: 'stripe' } });
    expect(await claimOf(inv.id)).toMatchObject({ status: 'paid', resolution: 'paid_to_merchant' });
    expect(await invoiceOf(r)).toMatchObject({ status: 'paid', resolution: 'paid_to_merchant', paid: 4900, collected: 1000, owedBack: 1000 });
    const owed = (await historyOf(inv.id)).filter((h) => h.status === 'owed_back');
    expect(owed).toEqual([{ status: 'owed_back', reason: null, detail: expect.objectContaining({ amount: 1000, currency: 'EUR', paidToMerchant: 4900, collectedByAgency: 1000 }) }]);
    expect(result.note).toMatch(/reported to the partner.*1000 EUR is owed back to the debtor/);
  });

  it('paid in full through the PSP during an arrangement (instalments paid): the same — reported, ended, the instalments owed back', async () => {
    const r = refs();
    const { inv, claim } = await handedOver(r);
    await agencyUpdate(claim, r, { status: 'arrangement', arrangement: { installments: 3, amount: eur(1634), firstDueAt: after(30).toISOString() }, occurredAt: after(17).toISOString() });
    await agencyUpdate(claim, r, { status: 'arrangement', amountCollected: eur(3268), occurredAt: after(19).toISOString() });
    const { rows } = await apply(paid(r, after(20)));
    expect(rows.map((x) => x.kind)).toEqual(['agency.report_payment']);
    expect(await claimOf(inv.id)).toMatchObject({ status: 'paid', resolution: 'paid_to_merchant' });
    expect(await invoiceOf(r)).toMatchObject({ status: 'paid', owedBack: 3268 });
  });

  it('a part paid through the PSP is reported too, and the claim stays live with what is left', async () => {
    const r = refs();
    const { inv, claim } = await handedOver(r);
    const { rows, result } = await apply(paid(r, after(20), 2000));
    expect(rows.map((x) => x.kind)).toEqual(['agency.report_payment']);
    expect(rows[0].payload).toMatchObject({ amount: eur(2000) });
    expect(await claimOf(inv.id)).toMatchObject({ status: 'submitted', resolution: null });
    expect(await invoiceOf(r)).toMatchObject({ status: 'submitted', paid: 2000, owedBack: 0 });
    expect(result.note).toMatch(/part paid after hand-over: reported to the partner/);
    // The rest, paid later: only the new money is reported, and now the claim ends.
    const rest = await apply(paid(r, after(21), 4900));
    expect(rest.rows.map((x) => [x.kind, (x.payload as { amount: unknown }).amount])).toEqual([['agency.report_payment', eur(2900)]]);
    expect(await claimOf(inv.id)).toMatchObject({ status: 'paid', resolution: 'paid_to_merchant' });
    expect((await invoiceOf(r)).owedBack).toBe(0);
  });

  it('the rest of what the agency did not collect, paid through the PSP, settles it with nothing owed back', async () => {
    const r = refs();
    const { inv, claim } = await handedOver(r);
    await agencyUpdate(claim, r, { status: 'partially_paid', amountCollected: eur(1000), occurredAt: after(18).toISOString() });
    const { rows } = await apply(paid(r, after(20), 3900));
    expect(rows.map((x) => [x.kind, (x.payload as { amount: unknown }).amount])).toEqual([['agency.report_payment', eur(3900)]]);
    expect(await claimOf(inv.id)).toMatchObject({ status: 'paid', resolution: 'paid_to_merchant' });
    expect(await invoiceOf(r)).toMatchObject({ status: 'paid', paid: 3900, collected: 1000, owedBack: 0 });
    expect((await historyOf(inv.id)).map((h) => h.status)).not.toContain('owed_back');
  });

  it('after the agency collected all of it (claim ended), a PSP payment has nothing to report and is owed back in full', async () => {
    const r = refs();
    const { inv, claim } = await handedOver(r);
    await agencyUpdate(claim, r, { status: 'paid', reason: 'paid_in_full', amountCollected: eur(4900), occurredAt: after(18).toISOString() });
    const { rows, result } = await apply(paid(r, after(20)));
    expect(rows).toEqual([]);
    expect(await invoiceOf(r)).toMatchObject({ status: 'paid', resolution: 'paid_in_full', paid: 4900, collected: 4900, owedBack: 4900 });
    expect(result.note).toMatch(/4900 EUR is owed back to the debtor/);
    // The same payment again (Stripe sends invoice.paid and invoice.payment_succeeded): not owed back twice.
    await apply({ ...paid(r, after(20)), providerEventId: `evt_again_${r.invoice}`, providerEventType: 'invoice.payment_succeeded' });
    expect((await invoiceOf(r)).owedBack).toBe(4900);
    expect((await historyOf(inv.id)).filter((h) => h.status === 'owed_back')).toHaveLength(1);
  });
});

describe('the agency reports a collection after the PSP payment', () => {
  it('the collection is kept on the invoice and the overlap is owed back, once', async () => {
    const r = refs();
    const { inv, claim } = await handedOver(r);
    await apply(paid(r, after(20)));
    expect(await invoiceOf(r)).toMatchObject({ status: 'paid', resolution: 'paid_to_merchant', owedBack: 0 });
    // The agency collected 1500 before it heard of the payment, and says so afterwards (its
    // own time is older than the hub's end of the claim: the status stays, the money counts).
    await agencyUpdate(claim, r, { status: 'partially_paid', amountCollected: eur(1500), occurredAt: after(19).toISOString() });
    expect(await invoiceOf(r)).toMatchObject({ status: 'paid', resolution: 'paid_to_merchant', paid: 4900, collected: 1500, owedBack: 1500 });
    // Then it confirms the end of the claim with the same total: nothing owed twice.
    await agencyUpdate(claim, r, { status: 'paid', reason: 'paid_to_merchant', amountCollected: eur(1500), occurredAt: after(21).toISOString() });
    expect(await invoiceOf(r)).toMatchObject({ status: 'paid', owedBack: 1500 });
    const owed = (await historyOf(inv.id)).filter((h) => h.status === 'owed_back');
    expect(owed).toEqual([{ status: 'owed_back', reason: null, detail: expect.objectContaining({ amount: 1500, currency: 'EUR', paidToMerchant: 4900, collectedByAgency: 1500 }) }]);
    // …and the sync log says it for the merchant.
    const log = (await db.query<{ summary: string }>(`SELECT summary FROM exchanges WHERE invoice_id = $1 AND summary LIKE '%owed back%'`, [inv.id])).rows;
    expect(log).toHaveLength(1);
    expect(log[0].summary).toMatch(/1500 EUR owed back to the debtor/);
  });
});

describe('a case-level update on a case of one claim', () => {
  it('carries that claim\'s amount: applied before the claim-level one, the invoice is never paid with nothing collected', async () => {
    const r = refs();
    const { inv, claim } = await handedOver(r);
    // The agency's final case-level update overtakes its claim-level one (two workers, services mode).
    expect(await agencyUpdate(claim, r, { claimReference: null, status: 'paid', reason: 'paid_in_full', amountCollected: eur(4900), occurredAt: after(20).toISOString() })).toBe('applied');
    expect(await invoiceOf(r)).toMatchObject({ status: 'paid', resolution: 'paid_in_full', collected: 4900 });
    expect(Number((await claimOf(inv.id)).amount_collected)).toBe(4900);
  });
});

describe('the merchant hears of it', () => {
  it('an owed_back row of an invoice is an invoice.owed_back webhook event', () => {
    expect(eventTypeOf({ entity: 'invoice', status: 'owed_back' })).toBe('invoice.owed_back');
    expect(eventTypeOf({ entity: 'invoice', status: 'paid' })).toBe('invoice.status_changed');
  });
});
