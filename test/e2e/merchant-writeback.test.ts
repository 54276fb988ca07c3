/**
 * PSP write-back end to end (embedded mode): the agency simulator reports a Stripe invoice paid →
 * the hub marks it paid out of band at the local fake of Stripe's API, through the official SDK,
 * exactly once however often the reconciler passes; written off → nothing is sent while the
 * merchant's `markUncollectible` is off, and `mark_uncollectible` once it is on.
 */
import { startStack, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { createFakeStripe, type FakeStripe } from '../../sim/psp/fake-stripe';

const now = () => Math.floor(Date.now() / 1000);
let n = 0;

async function collectedOrWrittenOff(stack: Stack, fake: FakeStripe, outcome: 'paid' | 'uncollectible') {
  const t = `${Date.now().toString(36)}${++n}`;
  const f = { invoice: `in_wbe${t}`, customer: `cus_wbe${t}`, amount: 3900, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
  fake.invoices.set(f.invoice, { id: f.invoice, object: 'invoice', status: 'open', amount_due: f.amount, amount_paid: 0, currency: 'eur', customer: f.customer });
  expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
  const inv = await waitFor(async () => {
    const r = await stack.get(`/v1/invoices/${f.invoice}`);
    return r.body?.case?.partnerRef ? r.body : null;
  }, 20_000, 50, 'the case at the agency');
  stack.sim.emit(inv.case.partnerRef, outcome === 'paid'
    ? { status: 'paid', reason: 'paid_in_full', claimReference: inv.claim.id }
    : { status: 'uncollectible', reason: 'debtor_insolvent', claimReference: inv.claim.id });
  await waitFor(async () => (await stack.get(`/v1/invoices/${f.invoice}`)).body.status === outcome, 20_000, 50, `the invoice ${outcome}`);
  return f.invoice;
}

const stripeCalls = (fake: FakeStripe, ref: string) => fake.requests.filter((r) => r.method === 'POST' && r.path.startsWith(`/v1/invoices/${ref}/`));

/** Let the reconciler pass a few more times: nothing more may be sent. */
async function reconcileAFewTimes(stack: Stack) {
  for (let i = 0; i < 3; i++) {
    await stack.hub.reconcileNow();
    await new Promise((r) => setTimeout(r, 300));
  }
}

describe('Stripe write-back (embedded mode)', () => {
  let fake: FakeStripe;
  let apiBase: string;
  beforeAll(async () => {
    fake = createFakeStripe();
    apiBase = (await fake.start()).url;
  });
  afterAll(async () => {
    await fake?.stop();
  });

  describe('markUncollectible off (the default)', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({ mode: 'embedded', sim: { stepMs: 60_000 }, stripeExtra: `\n        apiBase: ${apiBase}`, acmeExtra: '    writeBack: { stripe: {} }' });
      stack.sim.pause();
    }, 30_000);
    afterAll(async () => {
      await stack?.stop();
    });

    it("the agency's paid → one pay with paid_out_of_band at Stripe, however often the write-back comes round", async () => {
      const ref = await collectedOrWrittenOff(stack, fake, 'paid');
      await waitFor(async () => stripeCalls(fake, ref).length > 0, 20_000, 50, 'the write-back at Stripe');
      await reconcileAFewTimes(stack);
      expect(stripeCalls(fake, ref)).toEqual([expect.objectContaining({ path: `/v1/invoices/${ref}/pay`, body: { paid_out_of_band: 'true' } })]);
      expect(fake.invoices.get(ref)).toMatchObject({ status: 'paid', paid_out_of_band: true });
      const log = (await stack.get(`/v1/sync-log?invoice=${ref}&direction=out`)).body.data as { party: string; operation: string; outcome: string }[];
      expect(log).toContainEqual(expect.objectContaining({ party: 'stripe', operation: `POST /v1/invoices/${ref}/pay`, outcome: 'ok' }));
      const timeline = (await stack.get(`/v1/invoices/${ref}`)).body.timeline as { status: string }[];
      expect(timeline.map((x) => x.status)).toContain('psp_marked_paid');
    });

    it("the agency's write-off sends nothing to Stripe", async () => {
      const ref = await collectedOrWrittenOff(stack, fake, 'uncollectible');
      await reconcileAFewTimes(stack);
      expect(stripeCalls(fake, ref)).toEqual([]);
      expect(fake.invoices.get(ref)).toMatchObject({ status: 'open' });
    });
  });

  describe('markUncollectible on', () => {
    let stack: Stack;
    beforeAll(async () => {
      stack = await startStack({ mode: 'embedded', sim: { stepMs: 60_000 }, stripeExtra: `\n        apiBase: ${apiBase}`, acmeExtra: '    writeBack: { stripe: { markUncollectible: true } }' });
      stack.sim.pause();
    }, 30_000);
    afterAll(async () => {
      await stack?.stop();
    });

    it("the agency's write-off → mark_uncollectible at Stripe, once", async () => {
      const ref = await collectedOrWrittenOff(stack, fake, 'uncollectible');
      await waitFor(async () => stripeCalls(fake, ref).length > 0, 20_000, 50, 'the write-back at Stripe');
      await reconcileAFewTimes(stack);
      expect(stripeCalls(fake, ref)).toEqual([expect.objectContaining({ path: `/v1/invoices/${ref}/mark_uncollectible` })]);
      expect(fake.invoices.get(ref)).toMatchObject({ status: 'uncollectible' });
    });
  });
});
