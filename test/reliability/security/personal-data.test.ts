/**
 * Personal data kept small (issue 13, item 6), embedded mode:
 *  - the sync log masks card numbers and IBANs when it WRITES them, so the CSV export (which
 *    showed what the JSON API masked) and the table itself never hold them;
 *  - raw PSP payloads, sync-log bodies and agency notes are purged after the retention period,
 *    while the accounting trail (invoices, claims, cases, amounts, the timeline) stays;
 *  - an erasure call for one debtor (GDPR art. 17) does the same at once, is refused while the
 *    hub still pursues the debtor's unpaid invoice (legal hold), and is in the sync log either way.
 */
import { startStack, type Stack } from '../../support/stack';
import { waitFor } from '../../support/services';
import { stripeEvents } from '../../../sim/psp/stripe-events';
import { parseCsv } from '../../../src/dashboard/csv';
import { recordExchanges } from '../../../src/exchanges/exchange-log';
import { purgeExpired, retentionCutoff } from '../../../src/privacy/retention';
import { legalHolds } from '../../../src/privacy/erasure';
import { DAY_MS } from '../../../src/domain/clock';

const PAN = '4242 4242 4242 4242';
const IBAN = 'NL91ABNA0417164300';
const nowS = () => Math.floor(Date.now() / 1000);

describe('personal data (embedded mode)', () => {
  let stack: Stack;
  const db = () => stack.hub.ctx.db;
  const post = (path: string, merchant = 'acme') =>
    fetch(`${stack.hubUrl}${path}`, { method: 'POST', headers: { authorization: `Bearer ${stack.token(merchant)}` } }).then(async (r) => ({ status: r.status, body: (await r.json().catch(() => null)) as any }));

  beforeAll(async () => {
    stack = await startStack({ mode: 'embedded', sim: { stepMs: 60_000 } });
    stack.sim.pause();
  }, 30_000);
  afterAll(async () => {
    await stack?.stop();
  });

  describe('the sync log redacts when it writes', () => {
    it('stores a summary with a card number and an IBAN masked, and the CSV export shows it masked', async () => {
      const summary = `debtor said: card ${PAN}, account ${IBAN}`;
      await db().tx((sql) => recordExchanges(sql, [{ merchantId: 'acme', direction: 'in', party: 'stripe', operation: 'redaction.probe', outcome: 'ok', summary, at: new Date() }]));
      // A row written before masking-on-write (or by hand): the export masks it too.
      await db().query(`INSERT INTO exchanges (merchant_id, direction, party, operation, outcome, summary) VALUES ('acme','in','stripe','redaction.legacy','ok',$1)`, [summary]);
      const stored = (await db().query<{ summary: string }>(`SELECT summary FROM exchanges WHERE operation = 'redaction.probe'`)).rows[0].summary;
      expect(stored).not.toContain('4242');
      expect(stored).not.toContain(IBAN);
      expect(stored).toContain('[pan redacted]');
      expect(stored).toContain('[iban redacted]');

      const r = await fetch(`${stack.hubUrl}/v1/sync-log.csv`, { headers: { authorization: `Bearer ${stack.token('acme')}` } });
      expect(r.status).toBe(200);
      const text = await r.text();
      const rows = parseCsv(text);
      const ops = rows.map((x) => x[4]);
      expect(ops).toEqual(expect.arrayContaining(['redaction.probe', 'redaction.legacy']));
      expect(text).not.toContain('4242 4242');
      expect(text).not.toContain(IBAN);
    });
  });

  describe('retention', () => {
    it('purges raw payloads, exchange bodies and agency notes past the period, keeps the young, the unprocessed and the accounting trail', async () => {
      const now = new Date();
      const old = new Date(now.getTime() - 200 * DAY_MS);
      const young = new Date(now.getTime() - 10 * DAY_MS);
      const payload = JSON.stringify({ customer_email: 'jan@example.nl', iban: IBAN });
      await db().query(
        `INSERT INTO inbound_events (merchant_id, provider, provider_event_id, event_type, received_at, payload, status) VALUES
         ('acme','stripe','evt_ret_old','invoice.payment_failed',$1,$2,'processed'),
         ('acme','stripe','evt_ret_young','invoice.payment_failed',$3,$2,'processed'),
         ('acme','stripe','evt_ret_waiting','invoice.payment_failed',$1,$2,'received')`,
        [old, payload, young],
      );
      await db().query(
        `INSERT INTO exchanges (merchant_id, direction, party, operation, outcome, summary, request, response, created_at) VALUES
         ('acme','out','refagency','retention.old','ok','sent',$2,$2,$1), ('acme','out','refagency','retention.young','ok','sent',$2,$2,$3)`,
        [old, payload, young],
      );
      await db().query(
        `INSERT INTO partner_updates (partner_id, update_id, via, payload, status, received_at) VALUES ('refagency','upd_ret_old','push',$2,'applied',$1)`,
        [old, JSON.stringify({ id: 'upd_ret_old', status: 'in_collection', note: 'debtor Jan at Keizersgracht 1 called', occurredAt: old.toISOString() })],
      );
      const trail = async () => (await db().query<{ n: string }>(`SELECT (SELECT count(*) FROM invoices) + (SELECT count(*) FROM status_history) + (SELECT count(*) FROM claims) AS n`)).rows[0].n;
      const before = await trail();

      const purged = await db().tx((sql) => purgeExpired(sql, now, { retentionDays: 180, purgeEveryMinutes: 60 }));
      expect(purged.inboundEvents).toBeGreaterThanOrEqual(1);
      expect(purged.exchanges).toBeGreaterThanOrEqual(1);
      expect(purged.partnerUpdates).toBeGreaterThanOrEqual(1);

      const events = Object.fromEntries((await db().query<{ provider_event_id: string; payload: any; purged_at: Date | null }>(`SELECT provider_event_id, payload, purged_at FROM inbound_events WHERE provider_event_id LIKE 'evt_ret_%'`)).rows.map((r) => [r.provider_event_id, r]));
      expect(events.evt_ret_old.payload).toMatchObject({ purged: true, why: 'retention' });
      expect(JSON.stringify(events.evt_ret_old.payload)).not.toContain('example.nl');
      expect(events.evt_ret_young.payload).toEqual(JSON.parse(payload));
      expect(events.evt_ret_waiting.payload).toEqual(JSON.parse(payload)); // still work to do
      const ex = Object.fromEntries((await db().query<{ operation: string; request: unknown; response: unknown; summary: string }>(`SELECT operation, request, response, summary FROM exchanges WHERE operation LIKE 'retention.%'`)).rows.map((r) => [r.operation, r]));
      expect(ex['retention.old']).toMatchObject({ request: null, response: null, summary: 'sent' });
      expect(ex['retention.young'].request).not.toBeNull();
      const note = (await db().query<{ payload: any }>(`SELECT payload FROM partner_updates WHERE update_id = 'upd_ret_old'`)).rows[0].payload;
      expect(note.note).toBeUndefined();
      expect(note.status).toBe('in_collection');
      expect(await trail()).toBe(before);
      // A second pass finds nothing more.
      expect(await db().tx((sql) => purgeExpired(sql, now, { retentionDays: 180, purgeEveryMinutes: 60 }))).toEqual({ inboundEvents: 0, exchanges: 0, partnerUpdates: 0 });
      expect(retentionCutoff(now, 180).getTime()).toBe(now.getTime() - 180 * DAY_MS);
    });
  });

  describe('erasure (GDPR art. 17)', () => {
    it('a legal hold covers unpaid invoices the hub still pursues, and nothing else', () => {
      expect(legalHolds([{ id: 'a', status: 'recovered', failure_count: 1 }, { id: 'b', status: 'closed', failure_count: 1 }, { id: 'c', status: 'open', failure_count: 0 }])).toEqual([]);
      expect(legalHolds([{ id: 'd', status: 'pending_handover', failure_count: 1 }, { id: 'e', status: 'in_collection', failure_count: 1 }, { id: 'f', status: 'open', failure_count: 2 }]).map((h) => h.invoiceId)).toEqual(['d', 'e', 'f']);
    });

    it('is refused while the debtor is in collection, then erases the personal data and keeps the accounting once the debt is paid', async () => {
      const t = nowS();
      const f = { invoice: 'in_erase1', customer: 'cus_erase1', customerName: 'Jan Jansen', customerEmail: 'jan.jansen@example.nl', amount: 4200, created: t - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
      expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
      await waitFor(async () => (await stack.get('/v1/invoices/in_erase1')).body?.case?.partnerRef, 20_000, 50, 'the case at the agency');

      const refused = await post('/v1/customers/cus_erase1/erase');
      expect(refused.status).toBe(409);
      expect(refused.body.error.code).toBe('legal_hold');
      expect(refused.body.holds.map((h: { status: string }) => h.status)).toEqual(['submitted']);
      expect((await db().query(`SELECT name FROM customers WHERE provider_ref = 'cus_erase1'`)).rows[0].name).toBe('Jan Jansen');
      expect(await post('/v1/customers/cus_erase1/erase', 'globex')).toMatchObject({ status: 404 });

      // Paid through the PSP: the claim ends, nothing is pursued any more.
      expect((await stack.sendStripe('acme', stripeEvents.paid({ ...f, created: t }))).status).toBe(200);
      await waitFor(async () => ['paid', 'closed'].includes((await stack.get('/v1/invoices/in_erase1')).body?.status), 20_000, 50, 'the invoice paid');
      const owed = async (status: string) => (await stack.get(`/v1/deliveries?status=${status}&scope=all`)).body?.data?.length;
      await waitFor(async () => (await owed('pending')) === 0 && (await owed('in_flight')) === 0, 20_000, 50, 'the outbox drained');

      const done = await post('/v1/customers/cus_erase1/erase');
      expect(done.status).toBe(200);
      expect(done.body.erased).toBe(true);
      expect(done.body.purged.inboundEvents).toBeGreaterThanOrEqual(2);
      const c = (await db().query(`SELECT id, name, email, phone, address, erased_at, country FROM customers WHERE provider_ref = 'cus_erase1'`)).rows[0];
      expect(c).toMatchObject({ name: null, email: null, phone: null, address: null });
      expect(c.erased_at).not.toBeNull();
      const raw = (await db().query<{ payload: unknown }>(
        `SELECT payload FROM inbound_events WHERE id IN (SELECT inbound_event_id FROM exchanges WHERE customer_id = $1 AND inbound_event_id IS NOT NULL)`,
        [c.id],
      )).rows;
      expect(raw.length).toBeGreaterThanOrEqual(2);
      for (const r of raw) expect(JSON.stringify(r.payload)).not.toMatch(/Jansen|example\.nl/);
      const bodies = (await db().query<{ request: unknown; response: unknown }>(`SELECT request, response FROM exchanges WHERE customer_id = $1 AND purged_at IS NOT NULL`, [c.id])).rows;
      for (const b of bodies) expect(b).toEqual({ request: null, response: null });
      // The accounting trail stays: the invoice, its amounts and its timeline.
      const inv = await stack.get('/v1/invoices/in_erase1');
      expect(inv.body.amountDue).toEqual({ value: 4200, currency: 'EUR' });
      expect(inv.body.timeline.length).toBeGreaterThanOrEqual(3);
      // Both calls are in the sync log.
      const log = (await db().query<{ outcome: string; summary: string }>(`SELECT outcome, summary FROM exchanges WHERE operation = 'POST /v1/customers/:ref/erase' AND customer_id = $1 ORDER BY id`, [c.id])).rows;
      expect(log.map((l) => l.outcome)).toEqual(['rejected', 'ok']);
      expect(log[1].summary).toMatch(/GDPR art\. 17/);
      expect(JSON.stringify((await stack.get('/v1/customers/cus_erase1')).body)).not.toMatch(/Jansen|example\.nl/);
    });
  });
});
