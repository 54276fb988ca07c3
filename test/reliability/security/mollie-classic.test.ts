/**
 * Issue 13 item 3 — Mollie classic webhooks are unsigned by design (`id=tr_…`; the hub fetches the
 * payment with the merchant's API key). Anyone can post one, and Mollie posts the same id once per
 * status change, so: deliveries for one id within the coalescing window are ONE stored event and
 * ONE fetch from Mollie (processed at the window's end, so the fetch sees every change announced
 * in it); a delivery after the window is fetched again; and unsigned deliveries spend their own,
 * lower budget, never the merchant's signed one.
 */
import Stripe from 'stripe';
import { UnsignedCoalescer } from '../../../src/ingest/unsigned-coalescer';
import { createFakeMollie, type FakeMollie } from '../../../sim/psp/fake-mollie';
import { classicBody, molliePayments } from '../../../sim/psp/mollie-events';
import { SECRETS } from '../../support/stack';
import { waitFor } from '../../support/services';
import { modeAvailable, MODES, PSP_ROWS, send, startSecureStack, type Mode, type SecureStack } from './support';

const N = 12;
const figures: string[] = [];
afterAll(() => figures.forEach((f) => console.log(`[security] mollie classic: ${f}`)));

describe('unsigned coalescer (pure, clock passed in)', () => {
  it('gives every delivery in the window the same event id, due at the window end; the next window a new one', () => {
    const c = new UnsignedCoalescer(2000);
    const ws = [0, 10, 1999].map((t) => c.window('acme', 'mollie', 'tr_1', 5_000 + t));
    expect(new Set(ws.map((w) => w.providerEventId))).toEqual(new Set(['tr_1:5000']));
    expect(ws.every((w) => w.dueAt.getTime() === 7000)).toBe(true);
    expect(c.window('acme', 'mollie', 'tr_1', 7000)).toEqual({ providerEventId: 'tr_1:7000', dueAt: new Date(9000) });
    // Another merchant or payment has its own window.
    expect(c.window('globex', 'mollie', 'tr_1', 5_100).providerEventId).toBe('tr_1:5100');
    expect(c.window('acme', 'mollie', 'tr_2', 5_100).providerEventId).toBe('tr_2:5100');
  });
});

describe.each<Mode>(MODES)('Mollie classic webhooks (%s mode)', (mode) => {
  let stack: SecureStack;
  let fake: FakeMollie;
  let available = true;
  const stripe = PSP_ROWS.find((x) => x.id === 'stripe')!;
  const stripeSdk = new Stripe('sk_test_signing_only');

  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    fake = createFakeMollie();
    const { apiBase } = await fake.start();
    stack = await startSecureStack({
      mode,
      acmeProviders: `      mollie:\n        apiKey: test_acmeMollie0123456789abcdefghij\n        apiBase: ${apiBase}\n`,
      rateLimits: { unsignedWebhooksPerSecondPerMerchant: 0.01, unsignedWebhooksBurst: N + 3, webhooksPerSecondPerMerchant: 0.01, webhooksBurst: 5 },
    });
  }, 60_000);
  afterAll(async () => {
    if (stack) await stack.stop();
    if (fake) await fake.stop();
  });
  const maybe = (name: string, fn: () => Promise<void>, timeout = 60_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  const post = (id: string, localAddress = '127.0.0.51') =>
    send(`${stack.hubUrl}/v1/webhooks/mollie/acme`, { localAddress, body: classicBody(id), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  const fetches = (id: string) => fake.requests.filter((r) => r.method === 'GET' && r.path === `/v2/payments/${id}`).length;
  const storedEvents = async (id: string) =>
    Number((await stack.hub.ctx.db.query<{ n: string }>(`SELECT count(*)::text AS n FROM inbound_events WHERE provider = 'mollie' AND payload->>'id' = $1`, [id])).rows[0].n);
  /** Every stored event of this payment processed (its outbox row done): nothing more will fetch it. */
  const processed = (id: string) =>
    waitFor(async () => {
      const r = await stack.hub.ctx.db.query<{ open: string; total: string }>(
        `SELECT count(*) FILTER (WHERE o.status <> 'done')::text AS open, count(*)::text AS total FROM outbox o JOIN inbound_events e ON e.id = (o.payload->>'inboundEventId')::bigint
         WHERE o.kind = 'process_event' AND e.provider = 'mollie' AND e.payload->>'id' = $1`,
        [id],
      );
      return Number(r.rows[0].total) > 0 && r.rows[0].open === '0';
    }, 20_000, 50, `the events of ${id} processed`);

  maybe(`${N} deliveries of one payment id in the window → one fetch from Mollie and one stored event; a delivery after the window is fetched again`, async () => {
    const payment = molliePayments.card({ status: 'paid', value: '25.00' });
    fake.setPayment(payment);
    const answers = await Promise.all(Array.from({ length: N }, () => post(payment.id)));
    expect(answers.map((a) => a.status)).toEqual(Array(N).fill(200));
    await processed(payment.id);
    expect({ stored: await storedEvents(payment.id), fetches: fetches(payment.id) }).toEqual({ stored: 1, fetches: 1 });
    figures.push(`${mode}: ${N} deliveries of ${payment.id} → ${await storedEvents(payment.id)} stored event, ${fetches(payment.id)} fetch`);

    // After the window (the first event's processing is due at its end, so that has passed): a new fetch.
    expect((await post(payment.id)).status).toBe(200);
    await waitFor(async () => (await storedEvents(payment.id)) === 2, 10_000, 50, 'the second event');
    await processed(payment.id);
    expect(fetches(payment.id)).toBe(2);
  });

  maybe('unsigned deliveries spend their own budget: past it 429, while the merchant’s signed webhooks still pass', async () => {
    // N + 1 tokens of N + 3 are spent by the test above; two more ids pass, the next is refused.
    const ids = [1, 2, 3].map(() => molliePayments.card({ status: 'paid', value: '5.00' }).id);
    const statuses = [];
    for (const id of ids) statuses.push((await post(id, '127.0.0.52')).status);
    expect(statuses).toEqual([200, 200, 429]);
    const body = stripe.validBody(`unsigned-budget${mode}`);
    const header = stripeSdk.webhooks.generateTestHeaderString({ payload: body, secret: SECRETS.stripe.acme });
    expect((await send(`${stack.hubUrl}/v1/webhooks/stripe/acme`, { localAddress: '127.0.0.53', body, headers: { 'content-type': 'application/json', 'stripe-signature': header } })).status).toBe(200);
  });
});
