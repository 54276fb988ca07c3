/**
 * The status-history scanner (src/notify/scanner.ts): which history rows owe a merchant webhook
 * or a Stripe write-back, idempotency (a row scanned twice owes nothing twice), the cursor (only
 * what is new), only configured merchants, and — on PostgreSQL — that a row committed late,
 * behind one already visible, is not stepped over.
 */
import { Client } from 'pg';
import { notifyFromHistory, scanStatusHistory, writeBackActionOf } from '../../src/notify/scanner';
import { notifyLanes } from '../../src/notify/kinds';
import { verify } from '../../src/notify/standard-webhooks';
import { createPostgres } from '../../src/store/postgres';
import { migrate } from '../../src/store/migrate';
import { parseConfig } from '../../src/config/load';
import { testConfigYaml } from '../support/stack';
import { createTestDatabase, postgresAvailable, waitFor } from '../support/services';
import { history, notifyHub, outboxRows, seedInvoice, WEBHOOK_SECRET, type NotifyHub } from './support';

/** A status-change event's row (not a debtor's customer.flags_changed). */
const statusEvent = (r: { idempotency_key: string }) => r.idempotency_key.startsWith('webhook-');

const hooks = (extra = '') => `    webhooks: { url: "http://127.0.0.1:9/hooks", secret: "${WEBHOOK_SECRET}"${extra} }`;

describe('status history → merchant webhooks', () => {
  let h: NotifyHub;
  beforeAll(async () => {
    h = await notifyHub({ acmeExtra: hooks() });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('owes one signed-event row per invoice and case status change of a configured merchant, and nothing for the rest', async () => {
    const { ctx } = h;
    const acme = await seedInvoice(ctx, { ref: 'in_scan1', inCase: true });
    const globex = await seedInvoice(ctx, { merchantId: 'globex', ref: 'in_scan2', inCase: true });
    const invoiceChange = await history(ctx, { entity: 'invoice', entityId: acme.invoiceId, status: 'submitted', source: 'hub' });
    const caseChange = await history(ctx, { entity: 'case', entityId: acme.caseId!, status: 'in_collection', source: 'refagency' });
    // Timeline entries that are not statuses, and claim rows: no event.
    await history(ctx, { entity: 'invoice', entityId: acme.invoiceId, status: 'payment_failed', reason: 'insufficient_funds', source: 'stripe' });
    await history(ctx, { entity: 'claim', entityId: acme.claimId!, status: 'in_collection', source: 'refagency' });
    await history(ctx, { entity: 'case', entityId: acme.caseId!, status: 'withdrawal_sent', source: 'hub' });
    // Globex has no webhooks configured.
    await history(ctx, { merchantId: 'globex', entity: 'invoice', entityId: globex.invoiceId, status: 'paid', reason: 'paid_in_full', source: 'refagency' });

    const r = await scanStatusHistory(ctx);
    expect(r).toMatchObject({ scanned: 6, webhooks: 2, writeBacks: 0, busy: false });
    // (The debtor's customer.flags_changed, owed too: test/notify/flags-changed.test.ts.)
    const rows = (await outboxRows(ctx, 'merchant.webhook')).filter(statusEvent);
    expect(rows.map((x) => [x.lane, x.idempotency_key, x.merchant_id, x.case_id])).toEqual([
      ['merchant.acme', `webhook-${invoiceChange}`, 'acme', null],
      ['merchant.acme', `webhook-${caseChange}`, 'acme', null],
    ]);
    expect(rows[0].payload.event).toMatchObject({
      id: `msg_h${invoiceChange}`,
      type: 'invoice.status_changed',
      data: { id: acme.invoiceId, ref: 'in_scan1', status: 'submitted', case: { id: acme.caseId }, change: { status: 'submitted', source: 'hub', reason: null } },
    });
    expect(rows[1].payload.event).toMatchObject({
      id: `msg_h${caseChange}`,
      type: 'case.status_changed',
      data: { id: acme.caseId, status: 'in_collection', claims: [{ id: acme.claimId, invoiceId: acme.invoiceId, invoiceRef: 'in_scan1' }], change: { status: 'in_collection', source: 'refagency' } },
    });
  });

  it('is idempotent: a second scan, and a scan from a cursor set back, owe nothing twice', async () => {
    const { ctx } = h;
    const before = (await outboxRows(ctx, 'merchant.webhook')).length;
    expect((await scanStatusHistory(ctx)).scanned).toBe(0);
    // As if the cursor's move was lost (a crash after the outbox rows, say): everything is read again.
    await ctx.db.query(`UPDATE notify_cursors SET last_txid = '0'::xid8, last_id = 0`);
    const again = await scanStatusHistory(ctx);
    expect(again.scanned).toBeGreaterThanOrEqual(6);
    expect(await outboxRows(ctx, 'merchant.webhook')).toHaveLength(before);
  });

  it('reads only what came after the cursor', async () => {
    const { ctx } = h;
    const s = await seedInvoice(ctx, { ref: 'in_scan3', inCase: true });
    const id = await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'paid', reason: 'paid_in_full', source: 'refagency' });
    const r = await notifyFromHistory(ctx);
    expect(r).toMatchObject({ scanned: 1, webhooks: 1 });
    const last = (await outboxRows(ctx, 'merchant.webhook')).filter(statusEvent).pop()!;
    expect(last.idempotency_key).toBe(`webhook-${id}`);
    expect(last.payload.event.data).toMatchObject({ status: 'submitted', change: { status: 'paid', reason: 'paid_in_full', source: 'refagency' } });
  });

  it('the event stored is what gets signed and verifies with the merchant secret', async () => {
    const { ctx } = h;
    const row = (await outboxRows(ctx, 'merchant.webhook'))[0];
    const body = JSON.stringify(row.payload.event);
    const { signedHeaders } = await import('../../src/notify/standard-webhooks');
    expect(verify(WEBHOOK_SECRET, { ...signedHeaders(WEBHOOK_SECRET, row.payload.event.id, body) }, body)).toEqual(row.payload.event);
  });
});

describe('event filter and write-back rules', () => {
  let h: NotifyHub;
  beforeAll(async () => {
    h = await notifyHub({ acmeExtra: `${hooks(', events: [case.status_changed]')}\n    writeBack: { stripe: { markUncollectible: true } }` });
  });
  afterAll(async () => {
    await h?.stop();
  });

  it('sends only the event types the merchant asked for', async () => {
    const { ctx } = h;
    const s = await seedInvoice(ctx, { ref: 'in_filt1', inCase: true });
    await history(ctx, { entity: 'invoice', entityId: s.invoiceId, status: 'in_collection', source: 'refagency' });
    await history(ctx, { entity: 'case', entityId: s.caseId!, status: 'in_collection', source: 'refagency' });
    const r = await scanStatusHistory(ctx);
    expect(r.webhooks).toBe(1);
    expect((await outboxRows(ctx, 'merchant.webhook')).map((x) => x.payload.event.type)).toEqual(['case.status_changed']);
  });

  it('owes a Stripe write-back only for a Stripe invoice (in_…) a partner collected or wrote off', async () => {
    const { ctx } = h;
    const paidByAgency = await seedInvoice(ctx, { ref: 'in_wb1', inCase: true });
    const paidViaStripe = await seedInvoice(ctx, { ref: 'in_wb2', inCase: true });
    const writtenOff = await seedInvoice(ctx, { ref: 'in_wb3', inCase: true });
    const notAnInvoiceId = await seedInvoice(ctx, { ref: 'pi_wb4', inCase: true });
    const mollie = await seedInvoice(ctx, { ref: 'tr_wb5', provider: 'mollie', inCase: true });
    const partial = await seedInvoice(ctx, { ref: 'in_wb6', inCase: true });
    const pay = await history(ctx, { entity: 'invoice', entityId: paidByAgency.invoiceId, status: 'paid', reason: 'paid_in_full', source: 'refagency' });
    await history(ctx, { entity: 'invoice', entityId: paidViaStripe.invoiceId, status: 'paid', reason: 'paid_to_merchant', source: 'stripe' });
    const off = await history(ctx, { entity: 'invoice', entityId: writtenOff.invoiceId, status: 'uncollectible', reason: 'debtor_insolvent', source: 'refagency' });
    await history(ctx, { entity: 'invoice', entityId: notAnInvoiceId.invoiceId, status: 'paid', reason: 'paid_in_full', source: 'refagency' });
    await history(ctx, { entity: 'invoice', entityId: mollie.invoiceId, status: 'paid', reason: 'paid_in_full', source: 'refagency' });
    await history(ctx, { entity: 'invoice', entityId: partial.invoiceId, status: 'partially_paid', source: 'refagency' });
    // Stripe's own "uncollectible" (the merchant marked it there) is not written back to Stripe.
    await history(ctx, { entity: 'invoice', entityId: partial.invoiceId, status: 'uncollectible', source: 'stripe' });

    const r = await scanStatusHistory(ctx);
    expect(r.writeBacks).toBe(2);
    const rows = await outboxRows(ctx, 'psp.writeback');
    expect(rows.map((x) => [x.lane, x.idempotency_key, x.invoice_id, x.payload.action, x.payload.ref])).toEqual([
      ['psp.stripe', `writeback-${pay}`, paidByAgency.invoiceId, 'pay', 'in_wb1'],
      ['psp.stripe', `writeback-${off}`, writtenOff.invoiceId, 'mark_uncollectible', 'in_wb3'],
    ]);
    expect(await scanStatusHistory(ctx)).toMatchObject({ scanned: 0 });
  });

  it('writeBackActionOf follows the merchant settings', () => {
    const inv = { provider: 'stripe', provider_ref: 'in_x' };
    const partner = (s: string) => s === 'refagency';
    const paid = { entity: 'invoice', status: 'paid', reason: 'paid_via_arrangement', source: 'refagency' };
    const off = { entity: 'invoice', status: 'uncollectible', reason: 'written_off', source: 'refagency' };
    expect(writeBackActionOf(paid, inv, {}, partner)).toBeNull();
    expect(writeBackActionOf(paid, inv, { writeBack: { stripe: { markPaid: true, markUncollectible: false } } }, partner)).toBe('pay');
    expect(writeBackActionOf(paid, inv, { writeBack: { stripe: { markPaid: false, markUncollectible: true } } }, partner)).toBeNull();
    expect(writeBackActionOf(off, inv, { writeBack: { stripe: { markPaid: true, markUncollectible: false } } }, partner)).toBeNull();
    expect(writeBackActionOf(off, inv, { writeBack: { stripe: { markPaid: true, markUncollectible: true } } }, partner)).toBe('mark_uncollectible');
  });

  it('names the lanes whose workers must run', () => {
    expect(notifyLanes(h.ctx.config).sort()).toEqual(['merchant.acme', 'psp.stripe']);
  });
});

describe('merchant webhook and write-back config', () => {
  const yaml = (acmeExtra: string, stripeExtra = '') =>
    testConfigYaml({ simUrl: 'http://127.0.0.1:9', hubPort: 0, handoverAfterDays: 0, minAmount: 0, stackWindowDays: 45, acmeExtra, stripeExtra });

  it('takes webhooks and writeBack with their defaults', () => {
    const c = parseConfig(yaml(`${hooks()}\n    writeBack: { stripe: {} }`));
    const acme = c.merchants.find((m) => m.id === 'acme')!;
    expect(acme.webhooks).toEqual({ url: 'http://127.0.0.1:9/hooks', secret: WEBHOOK_SECRET });
    expect(acme.writeBack).toEqual({ stripe: { markPaid: true, markUncollectible: false } });
    expect(c.merchants.find((m) => m.id === 'globex')!.webhooks).toBeUndefined();
  });

  it.each([
    ['a short secret', `    webhooks: { url: "http://x.test/h", secret: "whsec_${Buffer.alloc(8).toString('base64')}" }`, /merchants\.0\.webhooks\.secret: must decode to 24–64 bytes/],
    ['a non-http url', `    webhooks: { url: "ftp://x.test/h", secret: "${WEBHOOK_SECRET}" }`, /merchants\.0\.webhooks\.url/],
    ['an unknown event type', `    webhooks: { url: "http://x.test/h", secret: "${WEBHOOK_SECRET}", events: [invoice.created] }`, /merchants\.0\.webhooks\.events/],
    ['a typo in writeBack', '    writeBack: { stripe: { markPayed: true } }', /merchants\.0\.writeBack\.stripe/],
  ])('refuses %s, naming the field', (_why, extra, message) => {
    expect(() => parseConfig(yaml(extra))).toThrow(message);
  });

  it('refuses Stripe write-back without the Stripe apiKey', () => {
    const text = yaml('    writeBack: { stripe: {} }').replace('apiKey: sk_test_acme', '');
    expect(() => parseConfig(text)).toThrow(/merchants\.0\.writeBack\.stripe: needs providers\.stripe\.apiKey/);
  });
});

describe('a history row committed late is not stepped over (PostgreSQL)', () => {
  let available = true;
  let url = '';
  let drop: (() => Promise<void>) | undefined;
  let h: NotifyHub | undefined;
  const clients: Client[] = [];

  beforeAll(async () => {
    available = await postgresAvailable();
    if (!available) return;
    const tdb = await createTestDatabase();
    url = tdb.url;
    drop = tdb.drop;
    const db = createPostgres(url);
    await migrate(db);
    h = await notifyHub({ acmeExtra: hooks(), db });
  }, 30_000);

  afterAll(async () => {
    for (const c of clients) await c.end().catch(() => undefined);
    if (h) {
      await h.stop();
      await h.ctx.db.close();
    }
    if (drop) await drop();
  }, 30_000);

  it('waits for the transaction that took the lower id, then delivers both', async () => {
    if (!available) return;
    const { ctx } = h!;
    const s = await seedInvoice(ctx, { ref: 'in_late1', inCase: true });
    const a = new Client({ connectionString: url });
    const b = new Client({ connectionString: url });
    clients.push(a, b);
    await a.connect();
    await b.connect();
    const insert = `INSERT INTO status_history (merchant_id, entity, entity_id, status, source, occurred_at) VALUES ('acme', $1, $2, $3, 'refagency', now()) RETURNING id`;
    // A takes the lower id and stays open; B takes a higher one and commits.
    await a.query('BEGIN');
    const lowId = Number((await a.query(insert, ['invoice', s.invoiceId, 'in_collection'])).rows[0].id);
    await b.query('BEGIN');
    const highId = Number((await b.query(insert, ['case', s.caseId, 'in_collection'])).rows[0].id);
    await b.query('COMMIT');
    expect(highId).toBeGreaterThan(lowId);

    // B's row is visible, but A might still commit a lower id: nothing is read past A.
    for (let i = 0; i < 5; i++) expect((await scanStatusHistory(ctx)).scanned).toBe(0);

    await a.query('COMMIT');
    // (Other writers on the same server hold the horizon back for a moment at most.)
    const keys = await waitFor(async () => {
      await scanStatusHistory(ctx);
      const k = (await outboxRows(ctx, 'merchant.webhook')).filter(statusEvent).map((x) => x.idempotency_key).sort();
      return k.length >= 2 ? k : null;
    }, 10_000, 50, 'both rows scanned');
    expect(keys).toEqual([`webhook-${lowId}`, `webhook-${highId}`].sort());
  }, 30_000);
});
