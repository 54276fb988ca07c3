/**
 * End to end (embedded mode): a real-shaped Stripe webhook that names its payment only by id
 * (`payment_intent: "pi_…"`, no decline code) → the hub looks the PaymentIntent up through the
 * official SDK at the local Stripe fake (`apiBase` in acme's stripe block) → the invoice shows the
 * decline code. A Stripe outage on the first try is retried by the outbox.
 */
import { startStack, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { createFakeStripe, type FakeStripe } from '../../sim/psp/fake-stripe';

const now = () => Math.floor(Date.now() / 1000);
let n = 0;
const ids = () => {
  n++;
  const tag = `${Date.now().toString(36)}${n}`;
  return { invoice: `in_lkp${tag}`, customer: `cus_lkp${tag}` };
};

/** What GET /v1/payment_intents/:id answers after a card decline (psp-webhooks.md §1.4). */
function declined(id: string, declineCode: string) {
  return {
    id,
    object: 'payment_intent',
    status: 'requires_payment_method',
    payment_method_types: ['card'],
    latest_charge: null,
    last_payment_error: {
      type: 'card_error',
      code: 'card_declined',
      decline_code: declineCode,
      message: `Your card was declined (${declineCode}).`,
      payment_method: { id: 'pm_lkp', object: 'payment_method', type: 'card' },
    },
  };
}

describe('Stripe lookup of the decline code (embedded mode)', () => {
  let fake: FakeStripe;
  let stack: Stack;

  beforeAll(async () => {
    fake = createFakeStripe();
    const { url } = await fake.start();
    // Appended right after `apiKey: sk_test_acme` in testConfigYaml: same 8-space indentation.
    stack = await startStack({ mode: 'embedded', sim: { stepMs: 60_000 }, stripeExtra: `\n        apiBase: ${url}` });
    stack.sim.pause();
  }, 30_000);

  afterAll(async () => {
    await stack?.stop();
    await fake?.stop();
  });

  it('a webhook with only a PaymentIntent id ends with the PaymentIntent’s decline code', async () => {
    const f = { ...ids(), amount: 4900, created: now() - 60, nextPaymentAttempt: null };
    const event = stripeEvents.paymentFailed(f); // legacy shape, payment_intent: "pi_…" (no failureCode)
    const pi = (event.data.object as { payment_intent: unknown }).payment_intent as string;
    expect(typeof pi).toBe('string');
    fake.paymentIntents.set(pi, declined(pi, 'expired_card'));

    expect((await stack.sendStripe('acme', event)).status).toBe(200);
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.status === 200 && r.body.failure ? r.body : null;
    }, 20_000, 100, 'the invoice with its failure');
    expect(inv.failure).toMatchObject({ code: 'expired_card', reason: 'card_expired', retryable: false, final: true });
    const calls = fake.requests.filter((r) => r.path === `/v1/payment_intents/${pi}`);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ method: 'GET', query: { expand: ['latest_charge'] } });
  });

  it('a Stripe 500 on the first try is retried by the outbox and then succeeds', async () => {
    const f = { ...ids(), amount: 2500, created: now() - 60, nextPaymentAttempt: null };
    const event = stripeEvents.paymentFailed(f);
    const pi = (event.data.object as { payment_intent: unknown }).payment_intent as string;
    fake.paymentIntents.set(pi, declined(pi, 'insufficient_funds'));
    fake.fail({ path: `/v1/payment_intents/${pi}`, status: 500, error: { message: 'fake outage' }, times: 1 });

    expect((await stack.sendStripe('acme', event)).status).toBe(200);
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.status === 200 && r.body.failure ? r.body : null;
    }, 20_000, 100, 'the invoice after the retry');
    expect(inv.failure).toMatchObject({ code: 'insufficient_funds', reason: 'insufficient_funds' });
    expect(fake.requests.filter((r) => r.path === `/v1/payment_intents/${pi}`)).toHaveLength(2);
  });
});
