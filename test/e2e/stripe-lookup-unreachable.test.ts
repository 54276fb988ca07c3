/**
 * An enrichment lookup that cannot be made does not hold a final failure back (issue 12, hole 9),
 * end to end (embedded mode): Stripe's API is unreachable (nothing listens on its port) when an
 * `invoice.payment_failed` names its PaymentIntent only by id. After `lookupAttempts` tries the
 * event goes on with the reason it has — the invoice fails, is handed over, and the agency gets
 * its case — and a re-lookup (outbox kind `enrich_event`) fills the decline code in once Stripe
 * answers again: the invoice's failure and the customer's last failure, with a timeline entry.
 */
import { startStack, freePort, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { createFakeStripe, type FakeStripe } from '../../sim/psp/fake-stripe';

const now = () => Math.floor(Date.now() / 1000);

describe('Stripe unreachable for the decline-code lookup (embedded mode)', () => {
  let fake: FakeStripe;
  let stack: Stack;
  let port: number;

  beforeAll(async () => {
    fake = createFakeStripe();
    port = await freePort();
    // Not started: connections to Stripe are refused until the test starts the fake on this port.
    stack = await startStack({ mode: 'embedded', sim: { stepMs: 100 }, stripeExtra: `\n        apiBase: http://127.0.0.1:${port}\n        lookupAttempts: 2` });
  }, 30_000);

  afterAll(async () => {
    await stack?.stop();
    await fake?.stop().catch(() => undefined);
  });

  it('goes on without the lookup after its budget, reaches the agency, and gets its reason once Stripe answers', async () => {
    const t = Date.now().toString(36);
    const f = { invoice: `in_unr${t}`, customer: `cus_unr${t}`, amount: 6100, created: now() - 60, nextPaymentAttempt: null };
    const event = stripeEvents.paymentFailed(f); // payment_intent: "pi_…", no failure code on the invoice
    const pi = (event.data.object as { payment_intent: unknown }).payment_intent as string;
    expect((await stack.sendStripe('acme', event)).status).toBe(200);

    // Handed over with the reason the event had, after the budget (2 tries) was spent.
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.body?.case?.partnerRef ? r.body : null;
    }, 30_000, 100, 'the case at the agency although Stripe cannot be reached');
    expect(inv.failure).toMatchObject({ reason: 'unknown', final: true });
    const processed = (await stack.hub.ctx.db.query<{ attempts: number; status: string }>(
      `SELECT o.attempts, o.status FROM outbox o JOIN inbound_events e ON e.id = (o.payload->>'inboundEventId')::bigint
       WHERE o.kind = 'process_event' AND e.provider_event_id = $1`,
      [event.id],
    )).rows;
    // Two tries on record (a batch's claim counts each, as for every leased row): the first failed
    // and was retried by the outbox; the second, the budget's last, went on.
    expect(processed).toEqual([{ attempts: 2, status: 'done' }]);
    expect(stack.sim.case(inv.case.partnerRef)).toBeDefined();

    // Stripe answers again: the re-lookup fills the decline code in.
    fake.paymentIntents.set(pi, {
      id: pi, object: 'payment_intent', status: 'requires_payment_method', payment_method_types: ['card'], latest_charge: null,
      last_payment_error: { type: 'card_error', code: 'card_declined', decline_code: 'expired_card', message: 'Your card has expired.', payment_method: { id: 'pm_unr', object: 'payment_method', type: 'card' } },
    });
    await fake.start(port);
    const after = await waitFor(async () => {
      await stack.hub.reconcileNow();
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.body?.failure?.code === 'expired_card' ? r.body : null;
    }, 30_000, 200, 'the reason filled in');
    expect(after.failure).toMatchObject({ code: 'expired_card', reason: 'card_expired', final: true });
    // Only the reason changed: still with the agency, same case.
    expect(after.case.id).toBe(inv.case.id);
    expect(after.timeline).toContainEqual(expect.objectContaining({ status: 'failure_reason_updated', reason: 'card_expired', source: 'stripe' }));
    const customer = (await stack.get(`/v1/customers/${f.customer}`)).body;
    expect(JSON.stringify(customer)).toContain('card_expired');
    expect(fake.requests.filter((r) => r.path === `/v1/payment_intents/${pi}`).length).toBeGreaterThanOrEqual(1);
  }, 90_000);
});
