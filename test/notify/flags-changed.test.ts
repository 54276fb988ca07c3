/**
 * `customer.flags_changed` from the notification scanner (src/profile/flags-sync.ts): a debtor's
 * history changing makes the hub compute its flags again; exactly one webhook row per change of the
 * flag set (keyed by debtor + new set + history row), none when nothing changed, none twice when
 * the same rows are scanned again; the flag set is stored per debtor (debtor_profiles); a merchant
 * that filtered the type out gets nothing; an erased debtor is profiled no more; a flag that ages
 * out of its window is noticed by the re-check. With `writeBack.stripe.customerFlags`, the set goes
 * into the Stripe customers' metadata through the SDK (the fake Stripe API), the newest set whatever
 * the order the rows run in, and is removed when the debtor is erased.
 */
import { notifyFromHistory, recheckDueFlags, scanStatusHistory } from '../../src/notify/scanner';
import { flagsIdempotencyKey } from '../../src/profile/flags-sync';
import { eraseCustomer } from '../../src/privacy/erasure';
import type { CustomerRow } from '../../src/ledger/rows';
import type { HubContext } from '../../src/context';
import { writeBackToStripe, FLAGS_METADATA_KEY } from '../../src/notify/stripe-writeback-stage';
import { createFakeStripe, type FakeStripe } from '../../sim/psp/fake-stripe';
import { claim, history, notifyHub, outboxRows, seedInvoice, WEBHOOK_SECRET, type NotifyHub } from './support';

const hooks = (events?: string) => `    webhooks: { url: "http://127.0.0.1:9/hooks", secret: "${WEBHOOK_SECRET}"${events ? `, events: [${events}]` : ''} }`;

const flagRows = async (ctx: HubContext) => (await outboxRows(ctx, 'merchant.webhook')).filter((r) => r.payload.event.type === 'customer.flags_changed');
const debtorOf = async (ctx: HubContext, customerId: string) => (await ctx.db.query<{ debtor_id: string }>(`SELECT debtor_id FROM customers WHERE id = $1`, [customerId])).rows[0].debtor_id;
const stored = async (ctx: HubContext, debtorId: string) =>
  (await ctx.db.query<{ flags: string[]; history_id: string | null; recheck_at: Date | null }>(`SELECT flags, history_id, recheck_at FROM debtor_profiles WHERE debtor_id = $1`, [debtorId])).rows[0];

describe('customer.flags_changed from the scanner', () => {
  let h: NotifyHub;
  beforeAll(async () => {
    h = await notifyHub({ acmeExtra: hooks() });
  }, 30_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('one webhook per change of the flag set, none when nothing changed, none twice on a rescan', async () => {
    const { ctx } = h;
    const s = await seedInvoice(ctx, { ref: 'in_flags1', inCase: true });
    const debtorId = await debtorOf(ctx, s.customerId);
    const first = await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'in_collection', source: 'refagency' });
    const r = await scanStatusHistory(ctx);
    expect(r.flagChanges).toBe(1);
    let rows = (await flagRows(ctx)).filter((x) => x.payload.debtorId === debtorId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ lane: 'merchant.acme', merchant_id: 'acme', customer_id: s.customerId, idempotency_key: flagsIdempotencyKey(debtorId, ['in_collection_now'], { historyId: first }) });
    const event = rows[0].payload.event;
    expect(event).toMatchObject({ type: 'customer.flags_changed', data: { debtorId, previous: [], turnedOn: ['in_collection_now'], turnedOff: [], customers: [{ id: s.customerId, provider: 'stripe' }] } });
    expect(event.id).toMatch(/^msg_f[0-9a-f]{32}$/);
    expect(event.data.flags[0]).toMatchObject({ name: 'in_collection_now', on: true });
    expect(event.data.flags[0].why).toMatch(/^In collection now with refagency/);
    expect(await stored(ctx, debtorId)).toMatchObject({ flags: ['in_collection_now'], history_id: expect.anything() });

    // A timeline-only row and a status repeat: the set is the same, nothing owed.
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'reminder_sent', source: 'merchant' });
    await history(ctx, { entity: 'case', entityId: s.caseId!, status: 'in_collection', source: 'refagency' });
    expect((await scanStatusHistory(ctx)).flagChanges).toBe(0);
    expect((await flagRows(ctx)).filter((x) => x.payload.debtorId === debtorId)).toHaveLength(1);

    // The agency agrees a plan, then reports the claim back in collection: the plan is broken.
    await history(ctx, { entity: 'claim', entityId: s.claimId!, status: 'arrangement', source: 'refagency', detail: { arrangement: { installments: 3 } } });
    await history(ctx, { entity: 'claim', entityId: s.claimId!, status: 'in_collection', source: 'refagency' });
    expect((await scanStatusHistory(ctx)).flagChanges).toBe(1);
    rows = (await flagRows(ctx)).filter((x) => x.payload.debtorId === debtorId);
    expect(rows).toHaveLength(2);
    expect(rows[1].payload.event.data).toMatchObject({ previous: ['in_collection_now'], turnedOn: ['broken_arrangement_12m'], turnedOff: [] });
    expect(rows[1].payload.event.data.flags.map((f: { name: string }) => f.name)).toEqual(['in_collection_now', 'broken_arrangement_12m']);
    expect(await stored(ctx, debtorId)).toMatchObject({ flags: ['broken_arrangement_12m', 'in_collection_now'] });
    // The broken plan ages out of its 12-month window: that is when the hub looks again.
    expect((await stored(ctx, debtorId)).recheck_at).not.toBeNull();

    // Scanning the same rows again (a cursor set back) owes nothing twice.
    await ctx.db.query(`UPDATE notify_cursors SET last_txid = '0'::xid8, last_id = 0 WHERE name = 'status_history'`);
    await notifyFromHistory(ctx);
    expect((await flagRows(ctx)).filter((x) => x.payload.debtorId === debtorId)).toHaveLength(2);

    // The case ends: in_collection_now turns off (the broken plan stays).
    await ctx.db.query(`UPDATE cases SET status = 'closed' WHERE id = $1`, [s.caseId]);
    await ctx.db.query(`UPDATE claims SET status = 'closed' WHERE id = $1`, [s.claimId]);
    const closed = await history(ctx, { entity: 'case', entityId: s.caseId!, status: 'closed', source: 'refagency' });
    expect((await scanStatusHistory(ctx)).flagChanges).toBe(1);
    const last = (await flagRows(ctx)).filter((x) => x.payload.debtorId === debtorId).pop()!;
    expect(last.idempotency_key).toBe(flagsIdempotencyKey(debtorId, ['broken_arrangement_12m'], { historyId: closed }));
    expect(last.payload.event.data).toMatchObject({ previous: ['broken_arrangement_12m', 'in_collection_now'], turnedOn: [], turnedOff: ['in_collection_now'] });
  });

  it('a flag that ages out of its window is noticed by the re-check, once', async () => {
    const { ctx } = h;
    const s = await seedInvoice(ctx, { ref: 'in_flags2', status: 'disputed', failed: false });
    const debtorId = await debtorOf(ctx, s.customerId);
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'disputed', source: 'stripe' });
    await scanStatusHistory(ctx);
    const row = await stored(ctx, debtorId);
    expect(row.flags).toEqual(['disputed_12m']);
    const recheckAt = new Date(row.recheck_at!);
    expect(recheckAt.getTime()).toBeGreaterThan(Date.now() + 360 * 86_400_000);

    // Time passes (the hub's clock a year and a day on): the dispute leaves the 12-month window.
    const realNow = ctx.clock.now.bind(ctx.clock);
    ctx.clock.now = () => new Date(recheckAt.getTime() + 86_400_000);
    try {
      expect(await recheckDueFlags(ctx)).toBeGreaterThanOrEqual(1);
      expect(await recheckDueFlags(ctx)).toBe(0);
    } finally {
      ctx.clock.now = realNow;
    }
    const rows = (await flagRows(ctx)).filter((x) => x.payload.debtorId === debtorId);
    expect(rows).toHaveLength(2);
    expect(rows[1].idempotency_key).toBe(flagsIdempotencyKey(debtorId, [], { recheckAt }));
    expect(rows[1].payload.event.data).toMatchObject({ flags: [], previous: ['disputed_12m'], turnedOff: ['disputed_12m'] });
    expect(await stored(ctx, debtorId)).toMatchObject({ flags: [], recheck_at: null });
  });

  it('an erased debtor is profiled no more: its row is gone and nothing is sent for it', async () => {
    const { ctx } = h;
    const s = await seedInvoice(ctx, { ref: 'in_flags3', status: 'disputed', failed: false });
    const debtorId = await debtorOf(ctx, s.customerId);
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'disputed', source: 'stripe' });
    await scanStatusHistory(ctx);
    expect(await stored(ctx, debtorId)).toBeDefined();
    const customer = (await ctx.db.query<CustomerRow>(`SELECT * FROM customers WHERE id = $1`, [s.customerId])).rows[0];
    const outcome = await ctx.db.tx((sql) => eraseCustomer(sql, customer, new Date(), 'merchant'));
    expect(outcome.erased).toBe(true);
    expect(await stored(ctx, debtorId)).toBeUndefined();
    const before = (await flagRows(ctx)).length;
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'dispute_closed', source: 'stripe' });
    await scanStatusHistory(ctx);
    expect(await flagRows(ctx)).toHaveLength(before);
    expect(await stored(ctx, debtorId)).toBeUndefined();
  });
});

describe('customer.flags_changed filtered out', () => {
  let h: NotifyHub;
  beforeAll(async () => {
    h = await notifyHub({ acmeExtra: hooks('invoice.status_changed, case.status_changed') });
  }, 30_000);
  afterAll(async () => {
    await h?.stop();
  });

  it('a merchant whose webhooks do not take the type gets no row and no stored flags', async () => {
    const { ctx } = h;
    const s = await seedInvoice(ctx, { ref: 'in_flags4', inCase: true });
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'in_collection', source: 'refagency' });
    const r = await scanStatusHistory(ctx);
    expect(r).toMatchObject({ webhooks: 1, flagChanges: 0 });
    expect(await flagRows(ctx)).toEqual([]);
    expect((await ctx.db.query(`SELECT 1 FROM debtor_profiles`)).rows).toEqual([]);
  });
});

describe('customer flags written to the Stripe customer (writeBack.stripe.customerFlags, no webhooks)', () => {
  let fake: FakeStripe;
  let h: NotifyHub;
  beforeAll(async () => {
    fake = createFakeStripe();
    const apiBase = (await fake.start()).url;
    h = await notifyHub({ stripeExtra: `\n        apiBase: ${apiBase}`, acmeExtra: '    writeBack: { stripe: { markPaid: false, customerFlags: true } }' });
  }, 30_000);
  afterAll(async () => {
    await h?.stop();
    await fake?.stop();
  });

  const flagWrites = async (customerId: string) =>
    (await outboxRows(h.ctx, 'psp.writeback')).filter((r) => r.payload.action === 'customer_flags' && r.payload.customerId === customerId);

  it('writes the newest flag set into the metadata, removes it once none is on, and when the debtor is erased', async () => {
    const { ctx } = h;
    const s = await seedInvoice(ctx, { ref: 'in_flags5', inCase: true, customerRef: 'cus_flags5' });
    fake.customers.set('cus_flags5', { id: 'cus_flags5', object: 'customer', metadata: { customer_id: 'CRM-5' } });
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'in_collection', source: 'refagency' });
    expect((await scanStatusHistory(ctx)).flagChanges).toBe(1);
    // No webhooks configured: nothing for the merchant's endpoint, one write-back row.
    expect(await flagRows(ctx)).toEqual([]);
    let rows = await flagWrites(s.customerId);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ lane: 'psp.stripe', payload: { provider: 'stripe', ref: 'cus_flags5', flags: ['in_collection_now'] } });

    // The plan is broken before the first row runs: the first row already writes the newest set.
    await history(ctx, { entity: 'claim', entityId: s.claimId!, status: 'arrangement', source: 'refagency' });
    await history(ctx, { entity: 'claim', entityId: s.claimId!, status: 'in_collection', source: 'refagency' });
    await scanStatusHistory(ctx);
    rows = await flagWrites(s.customerId);
    expect(rows).toHaveLength(2);
    await writeBackToStripe(ctx, await claim(ctx, rows[0].id));
    expect(fake.customers.get('cus_flags5')!.metadata).toEqual({ customer_id: 'CRM-5', [FLAGS_METADATA_KEY]: 'broken_arrangement_12m in_collection_now' });
    await writeBackToStripe(ctx, await claim(ctx, rows[1].id));
    const posts = fake.requests.filter((r) => r.method === 'POST' && r.path === '/v1/customers/cus_flags5');
    expect(posts.map((r) => r.body)).toEqual([
      { metadata: { [FLAGS_METADATA_KEY]: 'broken_arrangement_12m in_collection_now' } },
      { metadata: { [FLAGS_METADATA_KEY]: 'broken_arrangement_12m in_collection_now' } },
    ]);
    expect((await ctx.db.query(`SELECT status FROM outbox WHERE id = ANY($1::bigint[])`, [rows.map((r) => r.id)])).rows).toEqual([{ status: 'done' }, { status: 'done' }]);
    const log = (await ctx.db.query<{ summary: string; party: string }>(`SELECT party, summary FROM exchanges WHERE outbox_id = $1`, [rows[0].id])).rows;
    expect(log).toEqual([{ party: 'stripe', summary: 'customer flags written: broken_arrangement_12m in_collection_now' }]);

    // The debtor pays, the case ends; erasure then removes what the hub wrote (and nothing else).
    await ctx.db.query(`UPDATE cases SET status = 'paid' WHERE id = $1`, [s.caseId]);
    await ctx.db.query(`UPDATE claims SET status = 'paid' WHERE id = $1`, [s.claimId]);
    await ctx.db.query(`UPDATE invoices SET status = 'paid' WHERE id = $1`, [s.invoiceId]);
    await history(ctx, { entity: 'case', entityId: s.caseId!, status: 'paid', source: 'refagency' });
    await scanStatusHistory(ctx);
    const customer = (await ctx.db.query<CustomerRow>(`SELECT * FROM customers WHERE id = $1`, [s.customerId])).rows[0];
    expect((await ctx.db.tx((sql) => eraseCustomer(sql, customer, new Date(), 'merchant'))).erased).toBe(true);
    await scanStatusHistory(ctx); // the erasure's own history row
    await scanStatusHistory(ctx);
    rows = await flagWrites(s.customerId);
    const erased = rows.filter((r) => r.idempotency_key === `writeback-erased-${s.customerId}`);
    expect(erased).toHaveLength(1);
    await writeBackToStripe(ctx, await claim(ctx, erased[0].id));
    expect(fake.customers.get('cus_flags5')!.metadata).toEqual({ customer_id: 'CRM-5' });
  });

  it('a Stripe outage is retried; a customer Stripe no longer has is done with a note', async () => {
    const { ctx } = h;
    const s = await seedInvoice(ctx, { ref: 'in_flags6', inCase: true, customerRef: 'cus_flags6' });
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'in_collection', source: 'refagency' });
    await scanStatusHistory(ctx);
    const [row] = await flagWrites(s.customerId);
    fake.fail({ method: 'POST', path: '/v1/customers/cus_flags6', status: 500, error: { type: 'api_error', message: 'down' }, times: 1 });
    await expect(writeBackToStripe(ctx, await claim(ctx, row.id))).rejects.toMatchObject({ retryable: true });
    // Stripe is back, but the customer is gone there (404): nothing to write.
    await ctx.db.query(`UPDATE outbox SET status = 'pending', locked_until = NULL WHERE id = $1`, [row.id]);
    await writeBackToStripe(ctx, await claim(ctx, row.id));
    expect((await ctx.db.query(`SELECT status, last_response FROM outbox WHERE id = $1`, [row.id])).rows[0]).toMatchObject({ status: 'done', last_response: { note: 'Stripe has no such customer any more: nothing to write' } });
  });

  it('the Stripe connector declares the capability', async () => {
    const { PSP_CONNECTORS } = await import('../../connectors/registry');
    expect(PSP_CONNECTORS.filter((c) => c.capabilities?.customerMetadata).map((c) => c.id)).toEqual(['stripe']);
  });
});
