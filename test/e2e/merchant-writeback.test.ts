/**
 * PSP write-back end to end (embedded mode): the agency simulator reports a Stripe invoice paid →
 * the hub marks it paid out of band at the local fake of Stripe's API, through the official SDK,
 * exactly once however often the reconciler passes; written off → nothing is sent while the
 * merchant's `markUncollectible` is off, and `mark_uncollectible` once it is on.
 *
 * Echoes: Stripe then reports our own write-back as `invoice.paid` (`paid_out_of_band: true`) and
 * `invoice.marked_uncollectible`, naming our call's idempotency key in `request`. Signed like any
 * Stripe delivery, they are kept on the timeline as echoes: no payment report to the agency, no
 * second count of the collected amount, no status change. A customer's own payment after hand-over
 * is still reported.
 */
import { startStack, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { stripeEchoes, stripeEvents, type InvoiceFacts } from '../../sim/psp/stripe-events';
import { createFakeStripe, type FakeStripe } from '../../sim/psp/fake-stripe';

const now = () => Math.floor(Date.now() / 1000);
let n = 0;

function facts(): InvoiceFacts {
  const t = `${Date.now().toString(36)}${++n}`;
  return { invoice: `in_wbe${t}`, customer: `cus_wbe${t}`, amount: 3900, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
}

async function handedOver(stack: Stack, fake: FakeStripe, f: InvoiceFacts) {
  fake.invoices.set(f.invoice, { id: f.invoice, object: 'invoice', status: 'open', amount_due: f.amount, amount_paid: 0, currency: 'eur', customer: f.customer });
  expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
  return waitFor(async () => {
    const r = await stack.get(`/v1/invoices/${f.invoice}`);
    return r.body?.case?.partnerRef ? r.body : null;
  }, 20_000, 50, 'the case at the agency');
}

/** The Stripe idempotency key the hub sent with its write-back of this invoice (what Stripe echoes in `event.request`). */
async function writeBackKey(stack: Stack, ref: string, action: 'pay' | 'mark_uncollectible'): Promise<string> {
  const r = await stack.hub.ctx.db.query<{ idempotency_key: string }>(
    `SELECT o.idempotency_key FROM outbox o JOIN invoices i ON i.id = o.invoice_id
      WHERE o.kind = 'psp.writeback' AND i.provider_ref = $1 AND o.payload->>'action' = $2 AND o.status = 'done'`,
    [ref, action],
  );
  expect(r.rows).toHaveLength(1);
  return `collection-hub-${r.rows[0].idempotency_key}`;
}

const paymentReports = async (stack: Stack, ref: string) =>
  (await stack.hub.ctx.db.query(`SELECT o.id FROM outbox o JOIN invoices i ON i.id = o.invoice_id WHERE o.kind = 'agency.report_payment' AND i.provider_ref = $1`, [ref])).rows.length;

/** Deliver a Stripe event and wait until the hub has processed it; its sync-log line. */
async function deliver(stack: Stack, event: { id: string }, ref: string) {
  expect((await stack.sendStripe('acme', event)).status).toBe(200);
  return waitFor(async () => {
    const log = (await stack.get(`/v1/sync-log?invoice=${ref}&direction=in`)).body.data as { operation: string; summary: string | null }[];
    const stored = await stack.hub.ctx.db.query<{ status: string }>(`SELECT status FROM inbound_events WHERE provider_event_id = $1`, [event.id]);
    return stored.rows[0]?.status === 'processed' ? log.find((x) => x.summary && x.operation.startsWith('invoice.')) && log : null;
  }, 20_000, 50, `event ${event.id} processed`);
}

async function collectedOrWrittenOff(stack: Stack, fake: FakeStripe, outcome: 'paid' | 'uncollectible', f: InvoiceFacts = facts()) {
  const inv = await handedOver(stack, fake, f);
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

    it("Stripe's invoice.paid echo of our paid_out_of_band is not a new payment: nothing reported, counted once, status kept", async () => {
      const f = facts();
      const ref = await collectedOrWrittenOff(stack, fake, 'paid', f);
      await waitFor(async () => stripeCalls(fake, ref).length > 0 && (await stack.get(`/v1/invoices/${ref}`)).body.timeline.some((x: { status: string }) => x.status === 'psp_marked_paid'), 20_000, 50, 'the write-back done');
      const before = (await stack.get(`/v1/invoices/${ref}`)).body;
      expect(before).toMatchObject({ status: 'paid', amountCollected: { value: 3900 }, amountPaid: { value: 0 } });
      const simRequests = stack.sim.requests().length;

      // What Stripe sends after the pay call: the invoice paid out of band, request = our call.
      const echo = stripeEchoes.paidOutOfBand({ ...f, created: now() }, { idempotencyKey: await writeBackKey(stack, ref, 'pay') });
      const log = await deliver(stack, echo, ref);
      expect(log).toContainEqual(expect.objectContaining({ party: 'stripe', operation: 'invoice.paid', summary: expect.stringContaining('echo of our write-back') }));
      await reconcileAFewTimes(stack);

      const after = (await stack.get(`/v1/invoices/${ref}`)).body;
      expect(after).toMatchObject({ status: 'paid', resolution: before.resolution, amountCollected: { value: 3900 }, amountPaid: { value: 0 }, amountOpen: { value: 0 } });
      expect(after.timeline).toContainEqual(expect.objectContaining({ status: 'psp_writeback_echo', source: 'stripe' }));
      expect(await paymentReports(stack, ref)).toBe(0);
      expect(stack.sim.requests().slice(simRequests).filter((r) => /payments/.test(r.path))).toEqual([]);
      // Still one write-back call: the echo does not start another round.
      expect(stripeCalls(fake, ref)).toHaveLength(1);
    });

    it("a customer's own payment after hand-over (not out of band) is still reported to the agency", async () => {
      const f = facts();
      const inv = await handedOver(stack, fake, f);
      await deliver(stack, stripeEvents.paid({ ...f, created: now() }), f.invoice);
      await waitFor(async () => (await stack.get(`/v1/invoices/${f.invoice}`)).body.status === 'paid', 20_000, 50, 'paid to the merchant');
      expect(await paymentReports(stack, f.invoice)).toBe(1);
      await waitFor(async () => stack.sim.requests().some((r) => r.path.includes(`/claims/${inv.claim.id}/payments`)), 20_000, 50, 'the payment reported at the agency');
      expect((await stack.get(`/v1/invoices/${f.invoice}`)).body).toMatchObject({ resolution: 'paid_to_merchant', amountPaid: { value: 3900 } });
      expect(stripeCalls(fake, f.invoice)).toEqual([]);
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

    it("Stripe's invoice.marked_uncollectible echo changes nothing and is kept on the timeline as an echo", async () => {
      const f = facts();
      const ref = await collectedOrWrittenOff(stack, fake, 'uncollectible', f);
      await waitFor(async () => (await stack.get(`/v1/invoices/${ref}`)).body.timeline.some((x: { status: string }) => x.status === 'psp_marked_uncollectible'), 20_000, 50, 'the write-back done');
      const before = (await stack.get(`/v1/invoices/${ref}`)).body;
      const echo = stripeEchoes.markedUncollectible({ ...f, created: now() }, { idempotencyKey: await writeBackKey(stack, ref, 'mark_uncollectible') });
      const log = await deliver(stack, echo, ref);
      expect(log).toContainEqual(expect.objectContaining({ operation: 'invoice.marked_uncollectible', summary: expect.stringContaining('echo of our write-back') }));
      await reconcileAFewTimes(stack);
      const after = (await stack.get(`/v1/invoices/${ref}`)).body;
      expect(after).toMatchObject({ status: 'uncollectible', resolution: before.resolution, failure: before.failure, amountDue: before.amountDue });
      expect(after.timeline.filter((x: { status: string }) => x.status === 'payment_failed')).toHaveLength(before.timeline.filter((x: { status: string }) => x.status === 'payment_failed').length);
      expect(after.timeline).toContainEqual(expect.objectContaining({ status: 'psp_writeback_echo' }));
      expect(stripeCalls(fake, ref)).toHaveLength(1);
    });
  });
});
