/**
 * The merchant webhook stage (src/notify/merchant-webhook-stage.ts) against a real endpoint on
 * loopback, called directly with a hub context built by createHub: what it sends (the event,
 * signed per Standard Webhooks, verifiable with our verify()), and what each answer means —
 * 2xx delivered, 500/429 retried (same webhook-id, signed afresh), 410 stops the endpoint, other
 * 4xx dead at once, no answer retried — each attempt in the sync log with its outcome.
 */
import { deliverMerchantWebhook } from '../../src/notify/merchant-webhook-stage';
import { scanStatusHistory } from '../../src/notify/scanner';
import { verify } from '../../src/notify/standard-webhooks';
import { DeliveryError } from '../../connectors/agency/types';
import { Permanent } from '../../src/pipeline/errors';
import { deadRow, retryDeadRow } from '../../src/outbox/outbox';
import { backToPending, claim, history, notifyHub, outboxRows, seedInvoice, WEBHOOK_SECRET, type NotifyHub } from './support';
import { startReceiver, type Receiver } from './receiver';

describe('merchant webhook stage', () => {
  let receiver: Receiver;
  let h: NotifyHub;

  beforeAll(async () => {
    receiver = await startReceiver();
    h = await notifyHub({ acmeExtra: `    webhooks: { url: "${receiver.url}?token=abc", secret: "${WEBHOOK_SECRET}" }` });
  });
  afterAll(async () => {
    await h?.stop();
    await receiver?.stop();
  });

  /** A fresh invoice status change and its outbox row. */
  async function change(status = 'paid', ref = `in_wh${Math.random().toString(36).slice(2, 9)}`) {
    const s = await seedInvoice(h.ctx, { ref, inCase: true, partnerRef: `case_${ref}` });
    const historyId = await history(h.ctx, { entity: 'invoice', entityId: s.invoiceId, status, reason: status === 'paid' ? 'paid_in_full' : null, source: 'refagency' });
    await scanStatusHistory(h.ctx);
    const row = (await outboxRows(h.ctx, 'merchant.webhook')).find((r) => r.idempotency_key === `webhook-${historyId}`)!;
    return { ...s, historyId, row };
  }

  const log = async (outboxId: number) =>
    (await h.ctx.db.query(`SELECT party, operation, outcome, http_status, summary, direction FROM exchanges WHERE outbox_id = $1 ORDER BY id`, [outboxId])).rows;

  it('POSTs the event with the three Standard Webhooks headers; our verify() accepts it; 2xx completes the row', async () => {
    const c = await change();
    const before = receiver.deliveries.length;
    await deliverMerchantWebhook(h.ctx, await claim(h.ctx, c.row.id));
    const d = receiver.deliveries[before];
    expect(d.headers['content-type']).toBe('application/json');
    expect(d.headers['webhook-id']).toBe(`msg_h${c.historyId}`);
    expect(Number(d.headers['webhook-timestamp'])).toBeCloseTo(Date.now() / 1000, -1);
    expect(String(d.headers['webhook-signature'])).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    const event = verify(WEBHOOK_SECRET, d.headers, d.body) as any;
    expect(event).toMatchObject({
      id: `msg_h${c.historyId}`,
      type: 'invoice.status_changed',
      data: { id: c.invoiceId, ref: c.row.payload.event.data.ref, change: { status: 'paid', reason: 'paid_in_full', source: 'refagency' } },
    });
    // A tampered body or another secret does not verify.
    expect(() => verify(WEBHOOK_SECRET, d.headers, d.body.replace('paid', 'void'))).toThrow();
    expect(() => verify(`whsec_${Buffer.alloc(32, 1).toString('base64')}`, d.headers, d.body)).toThrow();

    const row = (await h.ctx.db.query(`SELECT status, last_status FROM outbox WHERE id = $1`, [c.row.id])).rows[0];
    expect(row).toEqual({ status: 'done', last_status: 200 });
    const entries = await log(c.row.id);
    expect(entries).toEqual([expect.objectContaining({ direction: 'out', party: 'merchant', operation: 'webhook invoice.status_changed', outcome: 'ok', http_status: 200 })]);
    // The URL's query (a token) stays out of the sync log.
    expect(entries[0].summary).not.toMatch(/token/);
  });

  it('a 500 is retryable; the retry carries the same webhook-id and body, signed afresh, and lands', async () => {
    const c = await change();
    receiver.answer(500);
    const before = receiver.deliveries.length;
    const first = deliverMerchantWebhook(h.ctx, await claim(h.ctx, c.row.id));
    await expect(first).rejects.toBeInstanceOf(DeliveryError);
    await expect(first).rejects.toMatchObject({ retryable: true, status: 500 });
    await backToPending(h.ctx, c.row.id, 500);
    await new Promise((r) => setTimeout(r, 1100)); // a new second: a new timestamp, so a new signature
    await deliverMerchantWebhook(h.ctx, await claim(h.ctx, c.row.id));
    const [a, b] = receiver.deliveries.slice(before);
    expect([a.status, b.status]).toEqual([500, 200]);
    expect(b.headers['webhook-id']).toBe(a.headers['webhook-id']);
    expect(b.body).toBe(a.body);
    expect(b.headers['webhook-signature']).not.toBe(a.headers['webhook-signature']);
    expect(verify(WEBHOOK_SECRET, b.headers, b.body)).toEqual(JSON.parse(a.body));
    expect((await log(c.row.id)).map((e) => [e.outcome, e.http_status])).toEqual([['retrying', 500], ['ok', 200]]);
  });

  it('a 429 is retryable and passes on Retry-After', async () => {
    const c = await change();
    receiver.answer(429);
    receiver.headers['retry-after'] = '7';
    const err = await deliverMerchantWebhook(h.ctx, await claim(h.ctx, c.row.id)).catch((e) => e);
    delete receiver.headers['retry-after'];
    expect(err).toMatchObject({ retryable: true, status: 429, retryAfterMs: 7000 });
  });

  it('another 4xx is dead at once, with the answer kept in the log', async () => {
    const c = await change();
    receiver.answer(400);
    const err = await deliverMerchantWebhook(h.ctx, await claim(h.ctx, c.row.id)).catch((e) => e);
    expect(err).toMatchObject({ retryable: false, status: 400 });
    expect(await log(c.row.id)).toEqual([expect.objectContaining({ outcome: 'dead', http_status: 400 })]);
  });

  it('no answer at all (nothing listening) is retryable', async () => {
    const c = await change();
    const saved = h.ctx.merchants.get('acme')!.webhooks!;
    h.ctx.merchants.get('acme')!.webhooks = { ...saved, url: 'http://127.0.0.1:9/nothing-here' };
    try {
      const err = await deliverMerchantWebhook(h.ctx, await claim(h.ctx, c.row.id)).catch((e) => e);
      expect(err).toMatchObject({ retryable: true, status: undefined });
      expect(err.message).toMatch(/unreachable/);
    } finally {
      h.ctx.merchants.get('acme')!.webhooks = saved;
    }
  });

  it('410 Gone stops the endpoint: later deliveries are not sent until the refused one is retried', async () => {
    const gone = await change();
    receiver.answer(410);
    const err = await deliverMerchantWebhook(h.ctx, await claim(h.ctx, gone.row.id)).catch((e) => e);
    expect(err).toMatchObject({ retryable: false, status: 410 });
    // What the runner does with a non-retryable failure.
    await h.ctx.db.tx((sql) => deadRow(sql, gone.row.id, new Date(), err.message, 410));

    const next = await change();
    const before = receiver.deliveries.length;
    const held = await deliverMerchantWebhook(h.ctx, await claim(h.ctx, next.row.id)).catch((e) => e);
    expect(held).toBeInstanceOf(Permanent);
    expect(held.message).toMatch(/410 Gone/);
    expect(receiver.deliveries.length).toBe(before);

    // The merchant retries the refused delivery: the endpoint is back, and that one is sent.
    await h.ctx.db.tx((sql) => retryDeadRow(sql, gone.row.id, 'acme', new Date()));
    await deliverMerchantWebhook(h.ctx, await claim(h.ctx, gone.row.id));
    expect(receiver.deliveries.length).toBe(before + 1);
    expect(receiver.deliveries[before].headers['webhook-id']).toBe(`msg_h${gone.historyId}`);
    const endpoints = await h.ctx.db.query(`SELECT 1 FROM merchant_webhook_endpoints WHERE merchant_id = 'acme'`);
    expect(endpoints.rows).toHaveLength(0);
  });

  it('a merchant who turned webhooks off gets nothing: the row is cancelled', async () => {
    const c = await change();
    const saved = h.ctx.merchants.get('acme')!.webhooks;
    h.ctx.merchants.get('acme')!.webhooks = undefined;
    const before = receiver.deliveries.length;
    try {
      await deliverMerchantWebhook(h.ctx, await claim(h.ctx, c.row.id));
    } finally {
      h.ctx.merchants.get('acme')!.webhooks = saved;
    }
    expect(receiver.deliveries.length).toBe(before);
    expect((await h.ctx.db.query(`SELECT status FROM outbox WHERE id = $1`, [c.row.id])).rows[0].status).toBe('cancelled');
  });
});
