/**
 * Merchant webhooks end to end, in both run modes: a Stripe failure goes to the agency simulator,
 * which collects it; every invoice and case status change on the way reaches the merchant's
 * endpoint (a small express receiver here) as an event signed per Standard Webhooks — verified
 * with our own verify() — through the outbox: the endpoint answering 500 once is retried and the
 * event delivered, with the same webhook-id.
 */
import { startStack, type Mode, type Stack } from '../support/stack';
import { postgresAvailable, redisAvailable, waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { verify } from '../../src/notify/standard-webhooks';
import { eventTypeOf } from '../../src/notify/events';
import { repeatsPrevious } from '../../src/notify/scanner';
import { startReceiver, type Receiver } from '../notify/receiver';
import { WEBHOOK_SECRET } from '../notify/support';

const now = () => Math.floor(Date.now() / 1000);

async function modeAvailable(mode: Mode): Promise<boolean> {
  if (mode === 'embedded') return true;
  return (await postgresAvailable()) && (await redisAvailable());
}

describe.each<Mode>(['embedded', 'services'])('merchant webhooks (%s mode)', (mode) => {
  let stack: Stack;
  let receiver: Receiver;
  let available = true;

  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    receiver = await startReceiver();
    stack = await startStack({ mode, sim: { stepMs: 100 }, acmeExtra: `    webhooks: { url: "${receiver.url}", secret: "${WEBHOOK_SECRET}" }` });
    stack.sim.setScenario(null, 'paid');
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
    await receiver?.stop();
  });

  it('every invoice and case status change arrives signed; a 500 is retried and delivered', async () => {
    if (!available) return;
    receiver.answer(500);
    const t = `${mode[0]}${Date.now().toString(36)}`;
    const f = { invoice: `in_wh${t}`, customer: `cus_wh${t}`, amount: 4900, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
    expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.body?.status === 'paid' && r.body.case ? r.body : null;
    }, 30_000, 100, 'the invoice collected');
    await waitFor(async () => (await stack.get(`/v1/cases/${inv.case.id}`)).body.status === 'paid', 15_000, 100, 'the case closed');

    // What the merchant must get: every status change of this invoice and its case.
    const rows = (await stack.hub.ctx.db.query<{ id: number; entity: string; entity_id: string; status: string; reason: string | null; detail: Record<string, unknown> | null }>(
      `SELECT id, entity, entity_id, status, reason, detail FROM status_history WHERE merchant_id = 'acme' AND entity_id = ANY($1::text[]) ORDER BY txid, id`,
      [[inv.id, inv.case.id]],
    )).rows.filter((h) => eventTypeOf(h));
    // …except a row that only repeats the entity's previous status (the agency confirming the
    // hub's `submitted`): it stays on the timeline and owes no event (issue 12, hole 9).
    const changes = rows.filter((h, i) => !repeatsPrevious(rows.slice(0, i).reverse().find((p) => p.entity === h.entity), h));
    expect(changes.map((h) => `${h.entity}:${h.status}`)).toEqual(expect.arrayContaining(['invoice:pending_handover', 'invoice:submitted', 'invoice:in_collection', 'invoice:paid', 'case:submitted', 'case:in_collection', 'case:paid']));
    const expected = new Set(changes.map((h) => `msg_h${h.id}`));

    const got = await waitFor(async () => {
      const ok = receiver.deliveries.filter((d) => d.status === 200 && expected.has(String(d.headers['webhook-id'])));
      return new Set(ok.map((d) => d.headers['webhook-id'])).size === expected.size ? ok : null;
    }, 30_000, 100, 'every event at the merchant');
    // The repeats were scanned (later rows were delivered) and owed nothing.
    const repeats = rows.filter((h) => !expected.has(`msg_h${h.id}`)).map((h) => `webhook-${h.id}`);
    const owed = (await stack.hub.ctx.db.query(`SELECT id FROM outbox WHERE kind = 'merchant.webhook' AND idempotency_key = ANY($1::text[])`, [repeats])).rows;
    expect(owed).toEqual([]);
    for (const d of got) {
      const event = verify(WEBHOOK_SECRET, d.headers, d.body) as { id: string; type: string; data: { id: string; change: { status: string } } };
      expect(event.id).toBe(d.headers['webhook-id']);
      expect(event.data.id).toBe(event.type === 'invoice.status_changed' ? inv.id : inv.case.id);
    }
    const paid = got.map((d) => JSON.parse(d.body)).find((e) => e.type === 'invoice.status_changed' && e.data.change.status === 'paid');
    expect(paid.data).toMatchObject({ ref: f.invoice, change: { reason: 'paid_in_full', source: 'refagency' } });

    // The first delivery got the 500; the same message came again and landed.
    const refused = receiver.deliveries.find((d) => d.status === 500)!;
    expect(refused).toBeDefined();
    const again = receiver.deliveries.filter((d) => d.headers['webhook-id'] === refused.headers['webhook-id']);
    expect(again.map((d) => d.status)).toEqual([500, 200]);
    expect(again[1].body).toBe(again[0].body);
    const log = (await stack.get(`/v1/sync-log?direction=out&limit=200`)).body.data as { party: string; outcome: string; httpStatus: number; deliveryId: number }[];
    const attempts = log.filter((x) => x.party === 'merchant' && x.httpStatus === 500);
    expect(attempts).toHaveLength(1);
    expect(attempts[0].outcome).toBe('retrying');
  }, 90_000);
});

// The scanner is woken by the work it scans (src/notify/wake.ts, issue 14): with the reconciler
// an hour apart, a status change still reaches the merchant — only the wake-up after the commit
// can have scanned it.
describe('merchant webhooks without the reconciler (embedded mode)', () => {
  let stack: Stack;
  let receiver: Receiver;

  beforeAll(async () => {
    receiver = await startReceiver();
    stack = await startStack({ mode: 'embedded', delivery: { reconcileEverySeconds: 3600 }, acmeExtra: `    webhooks: { url: "${receiver.url}", secret: "${WEBHOOK_SECRET}" }` });
  }, 60_000);
  afterAll(async () => {
    await stack?.stop();
    await receiver?.stop();
  });

  it('a failure reaches the merchant as an event soon after its commit: the scanner is woken, not polled', async () => {
    const t = `wk${Date.now().toString(36)}`;
    const f = { invoice: `in_${t}`, customer: `cus_${t}`, amount: 4900, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
    expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
    const inv = await waitFor(async () => (await stack.get(`/v1/invoices/${f.invoice}`)).body?.id as string | undefined, 15_000, 100, 'the invoice stored');
    const event = await waitFor(
      async () => receiver.deliveries.map((d) => JSON.parse(d.body)).find((e) => e.data?.id === inv),
      15_000, 100, 'the merchant to hear of the failure',
    );
    expect(event.type).toBe('invoice.status_changed');
  });
});
