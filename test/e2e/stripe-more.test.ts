/**
 * End to end (embedded mode) for the rest of Stripe (issue 3, items 4 and 6): signed webhooks →
 * the hub (lookups through the official SDK at the local fake Stripe, `apiBase`) → the agency
 * simulator and the merchant API.
 *  - a failed one-off PaymentIntent becomes a case;
 *  - a refunded invoice in a case is withdrawn from it and never handed over again;
 *  - a disputed invoice in a case is withdrawn once; a dispute on a pending invoice means it is
 *    never handed over;
 *  - an inactive SEPA mandate shows on the customer (revoked); without an apiKey it is ignored
 *    with a note in the sync log;
 *  - a past_due subscription shows on the customer's timeline.
 *
 * handoverAfterDays is 1: events dated two days back are due at once, events dated now wait.
 */
import { startStack, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { stripeEvents, stripeObjects, type InvoiceFacts, type PaymentFacts } from '../../sim/psp/stripe-events';
import { createFakeStripe, type FakeStripe } from '../../sim/psp/fake-stripe';

const nowS = () => Math.floor(Date.now() / 1000);
const DAY = 86400;
let n = 0;
const tag = () => `${Date.now().toString(36)}${++n}`;

interface TimelineEntry {
  entity: string;
  id: string;
  status: string;
  reason?: string;
  detail?: Record<string, unknown>;
}

describe('Stripe: one-off payments, refunds, disputes, mandates, subscriptions (embedded mode)', () => {
  let fake: FakeStripe;
  let stack: Stack;

  beforeAll(async () => {
    fake = createFakeStripe();
    const { url } = await fake.start();
    stack = await startStack({ mode: 'embedded', handoverAfterDays: 1, sim: { stepMs: 60_000 }, stripeExtra: `\n        apiBase: ${url}` });
    stack.sim.pause();
  }, 30_000);

  afterAll(async () => {
    await stack?.stop();
    await fake?.stop();
  });

  const invoice = async (ref: string) => (await stack.get(`/v1/invoices/${ref}`)).body;
  const inCase = (ref: string, what: string) =>
    waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${ref}`);
      return r.status === 200 && r.body.case?.partnerRef ? r.body : null;
    }, 20_000, 100, what);
  const withdrawCalls = (partnerRef: string) => stack.sim.requests().filter((r) => r.method === 'POST' && r.path === `/v1/cases/${partnerRef}/withdraw`);

  /** A final renewal failure dated two days back (due at once), invoice `in_…`, its charge `ch_…`. */
  function renewal(prefix: string, extra: Partial<InvoiceFacts> = {}): InvoiceFacts {
    const t = tag();
    return { invoice: `in_${prefix}${t}`, customer: `cus_${prefix}${t}`, amount: 4900, created: nowS() - 2 * DAY, nextPaymentAttempt: null, failureCode: 'insufficient_funds', customerName: 'Jan Jansen', country: 'NL', ...extra };
  }

  it('a failed one-off PaymentIntent (basil; Stripe lists no invoice payment for it) becomes one case at the agency; its charge.failed adds no second claim', async () => {
    const t = tag();
    const f: PaymentFacts = {
      paymentIntent: `pi_one${t}`,
      customer: `cus_one${t}`,
      amount: 12500,
      created: nowS() - 2 * DAY,
      description: 'Order 1042 — garden furniture',
      failureCode: 'insufficient_funds',
      customerName: 'Jan Jansen',
      customerEmail: 'jan@example.nl',
      country: 'NL',
      shape: 'basil',
    };
    expect((await stack.sendStripe('acme', stripeEvents.paymentIntentFailed(f))).status).toBe(200);
    expect((await stack.sendStripe('acme', stripeEvents.chargeFailed(f))).status).toBe(200);

    const inv = await inCase(f.paymentIntent, 'the one-off payment in a case');
    expect(inv).toMatchObject({
      ref: f.paymentIntent,
      status: 'submitted',
      amountDue: { value: 12500, currency: 'EUR' },
      paymentMethod: 'card',
      failure: { code: 'insufficient_funds', reason: 'insufficient_funds', final: true },
    });
    const simCase = stack.sim.case(inv.case.partnerRef);
    expect(simCase.claims).toEqual([expect.objectContaining({ reference: inv.claim.id, principal: { value: 12500, currency: 'EUR' } })]);
    expect(simCase.debtor).toMatchObject({ name: 'Jan Jansen' });
    // Stripe was asked whether the PaymentIntent pays an invoice (basil has no `invoice` field).
    expect(fake.requests.filter((r) => r.path === '/v1/invoice_payments' && r.query.payment?.payment_intent === f.paymentIntent).length).toBeGreaterThanOrEqual(1);

    // The charge.failed echo lands on the same item: still one claim in one case.
    await waitFor(async () => (await invoice(f.paymentIntent)).failure?.count === 2, 20_000, 100, 'the charge.failed applied');
    expect(stack.sim.cases().filter((c) => c.reference === inv.case.id)).toHaveLength(1);
    expect(stack.sim.case(inv.case.partnerRef).claims).toHaveLength(1);
  });

  it('an invoice-backed PaymentIntent failure adds no item of its own: only a timeline entry on its invoice', async () => {
    const f = renewal('bk', { nextPaymentAttempt: nowS() + 3 * DAY, created: nowS() - 60 });
    await stack.sendStripe('acme', stripeEvents.paymentFailed(f));
    await waitFor(async () => (await stack.get(`/v1/invoices/${f.invoice}`)).status === 200, 20_000, 100, 'the invoice');
    const pi = `pi_${f.invoice.slice(3)}`;
    fake.invoicePayments.set(`inpay_${pi}`, stripeObjects.invoicePayment(f.invoice, pi, 4900));
    const e = stripeEvents.paymentIntentFailed({ paymentIntent: pi, customer: f.customer, amount: 4900, created: nowS() - 30, failureCode: 'insufficient_funds', shape: 'basil' });
    await stack.sendStripe('acme', e);
    const inv = await waitFor(async () => {
      const b = await invoice(f.invoice);
      return b.timeline.some((x: TimelineEntry) => x.status === 'payment_attempt_failed') ? b : null;
    }, 20_000, 100, 'the attempt on the invoice timeline');
    expect(inv).toMatchObject({ status: 'open', case: null, failure: { final: false, count: 1 } });
    expect(inv.timeline.find((x: TimelineEntry) => x.status === 'payment_attempt_failed').detail).toMatchObject({ eventId: e.id, failureCodes: ['insufficient_funds', 'card_declined'] });
    // No item of its own: the PaymentIntent's id names the same invoice (GET /v1/invoices/:ref reads payment refs too).
    const byPi = await stack.get(`/v1/invoices/${pi}`);
    expect(byPi.status).toBe(200);
    expect(byPi.body.id).toBe(inv.id);
    expect((await stack.hub.ctx.db.query(`SELECT count(*)::int AS n FROM invoices WHERE provider_ref = $1`, [pi])).rows[0].n).toBe(0);
  });

  it('a refunded invoice in a case is withdrawn from it (the agency shows the claim withdrawn) and never handed over again', async () => {
    const f = renewal('rf');
    await stack.sendStripe('acme', stripeEvents.paymentFailed(f));
    const inv = await inCase(f.invoice, 'the case');

    await stack.sendStripe('acme', stripeEvents.chargeRefunded({ ...f, created: nowS() - 10 }));
    await waitFor(async () => stack.sim.case(inv.case.partnerRef).claims[0].status === 'withdrawn', 20_000, 100, 'the claim withdrawn at the agency');
    expect(withdrawCalls(inv.case.partnerRef)).toHaveLength(1);
    // The hub's reason reached the agency (not a canonical resolution, so the simulator keeps it as the note).
    expect(stack.sim.updates().find((u) => u.claimReference === inv.claim.id && u.status === 'withdrawn')?.note).toBe("merchant's reason: refund");
    const closed = await invoice(f.invoice);
    expect(closed.timeline).toEqual(expect.arrayContaining([expect.objectContaining({ entity: 'invoice', status: 'closed', reason: 'credit_note', source: 'stripe' })]));
    // The hub closes it (credit note); the agency's confirmation of the withdrawal, once applied by
    // src/sync/partner-updates.ts, makes the invoice mirror its claim (withdrawn).
    expect(['closed', 'withdrawn']).toContain(closed.status);

    // Another final failure for it, and a new failed invoice of the same customer that is handed over:
    // the refunded one is in no new claim.
    const again = stripeEvents.paymentFailed({ ...f, created: nowS() - 5 });
    await stack.sendStripe('acme', again);
    const second = renewal('rf', { customer: f.customer, amount: 2100 });
    await stack.sendStripe('acme', stripeEvents.paymentFailed(second));
    const next = await inCase(second.invoice, 'the second invoice in a case');
    await waitFor(async () => (await invoice(f.invoice)).timeline.some((x: TimelineEntry) => x.detail?.eventId === again.id), 20_000, 100, 'the late failure applied');
    expect(next.case.id).not.toBe(inv.case.id);
    expect(stack.sim.case(next.case.partnerRef).claims.map((c) => c.principal.value)).toEqual([2100]);
    const last = await invoice(f.invoice);
    expect(['closed', 'withdrawn']).toContain(last.status);
    expect(last.case).toMatchObject({ id: inv.case.id });
    const claimsOfRefunded = stack.sim.cases().flatMap((c) => c.claims).filter((c) => c.reference === inv.claim.id);
    expect(claimsOfRefunded).toEqual([expect.objectContaining({ status: 'withdrawn' })]);
  });

  it('a partial refund of an invoice in a case only shows on its timeline', async () => {
    const f = renewal('pr');
    await stack.sendStripe('acme', stripeEvents.paymentFailed(f));
    const inv = await inCase(f.invoice, 'the case');
    await stack.sendStripe('acme', stripeEvents.chargeRefunded({ ...f, amountRefunded: 1000, created: nowS() - 10 }));
    const after = await waitFor(async () => {
      const b = await invoice(f.invoice);
      return b.timeline.some((x: TimelineEntry) => x.status === 'refund_partial') ? b : null;
    }, 20_000, 100, 'the partial refund on the timeline');
    expect(after.status).toBe('submitted');
    expect(after.timeline.find((x: TimelineEntry) => x.status === 'refund_partial').detail).toMatchObject({ amountRefunded: { value: 1000, currency: 'EUR' } });
    expect(stack.sim.case(inv.case.partnerRef).claims[0].status).not.toBe('withdrawn');
    expect(withdrawCalls(inv.case.partnerRef)).toHaveLength(0);
  });

  it('a disputed invoice in a case is withdrawn once; the dispute closing (lost) only adds to the timeline', async () => {
    const f = renewal('dp', { reason: undefined } as Partial<InvoiceFacts>);
    await stack.sendStripe('acme', stripeEvents.paymentFailed(f));
    const inv = await inCase(f.invoice, 'the case');
    const tail = f.invoice.slice(3);
    // What Stripe's API answers for the dispute's charge (basil: no `invoice`) and its invoice payment.
    fake.charges.set(`ch_${tail}`, stripeObjects.charge({ paymentIntent: `pi_${tail}`, customer: f.customer, amount: f.amount, created: f.created }, 'succeeded'));
    fake.invoicePayments.set(`inpay_${tail}`, stripeObjects.invoicePayment(f.invoice, `pi_${tail}`, f.amount));

    await stack.sendStripe('acme', stripeEvents.disputeCreated({ ...f, created: nowS() - 20, reason: 'fraudulent' }));
    await waitFor(async () => stack.sim.case(inv.case.partnerRef).claims[0].status === 'withdrawn', 20_000, 100, 'the claim withdrawn at the agency');
    expect(stack.sim.updates().find((u) => u.claimReference === inv.claim.id && u.status === 'withdrawn')?.note).toBe("merchant's reason: chargeback");
    // Found through Stripe: the charge (no invoice on it in basil), then the invoice payments of its PaymentIntent.
    expect(fake.requests.map((r) => r.path)).toEqual(expect.arrayContaining([`/v1/charges/ch_${tail}`, '/v1/invoice_payments']));
    const disputed = await invoice(f.invoice);
    expect(disputed.timeline).toEqual(expect.arrayContaining([expect.objectContaining({ entity: 'invoice', status: 'disputed', reason: 'withdrawn_by_merchant', source: 'stripe' })]));
    expect(disputed.resolution).toBe('withdrawn_by_merchant');

    await stack.sendStripe('acme', stripeEvents.disputeClosed({ ...f, created: nowS() - 10, status: 'lost' }));
    const closed = await waitFor(async () => {
      const b = await invoice(f.invoice);
      return b.timeline.some((x: TimelineEntry) => x.status === 'dispute_lost') ? b : null;
    }, 20_000, 100, 'the closed dispute on the timeline');
    // disputed, or withdrawn once the agency's confirmation is applied — never back in collection.
    expect(['disputed', 'withdrawn']).toContain(closed.status);
    expect(closed.resolution).toBe('withdrawn_by_merchant');
    expect(withdrawCalls(inv.case.partnerRef)).toHaveLength(1);
  });

  it('a dispute on a pending invoice means it is never handed over, though the customer’s next invoice is', async () => {
    // Dated now: due in one day, so it is pending when the dispute comes.
    const f = renewal('dq', { created: nowS() - 30 });
    await stack.sendStripe('acme', stripeEvents.paymentFailed(f));
    await waitFor(async () => (await invoice(f.invoice))?.status === 'pending_handover', 20_000, 100, 'the pending invoice');
    await stack.sendStripe('acme', stripeEvents.disputeCreated({ ...f, created: nowS() - 10 }));
    await waitFor(async () => (await invoice(f.invoice)).status === 'disputed', 20_000, 100, 'the disputed invoice');

    // The customer's next failed invoice is due at once: the check runs for this customer.
    const next = renewal('dq', { customer: f.customer, amount: 3300 });
    await stack.sendStripe('acme', stripeEvents.paymentFailed(next));
    const handed = await inCase(next.invoice, 'the next invoice in a case');
    expect(stack.sim.case(handed.case.partnerRef).claims.map((c) => c.principal.value)).toEqual([3300]);
    expect(await invoice(f.invoice)).toMatchObject({ status: 'disputed', case: null });
  });

  it('an inactive SEPA mandate shows mandateStatus revoked on the customer (customer found through the payment method)', async () => {
    const t = tag();
    const pm = `pm_sepa${t}`;
    const customer = `cus_sepa${t}`;
    fake.paymentMethods.set(pm, stripeObjects.paymentMethod(pm, customer, { name: 'Hans Müller', email: 'hans@example.de', country: 'DE' }));
    await stack.sendStripe('acme', stripeEvents.mandateUpdated({ paymentMethod: pm, status: 'inactive', created: nowS() - 10 }));
    const c = await waitFor(async () => {
      const r = await stack.get(`/v1/customers/${customer}`);
      return r.status === 200 && r.body.mandateStatus ? r.body : null;
    }, 20_000, 100, 'the customer with its mandate status');
    expect(c).toMatchObject({ ref: customer, name: 'Hans Müller', email: 'hans@example.de', country: 'DE', mandateStatus: 'revoked' });
    expect(c.timeline).toEqual([expect.objectContaining({ entity: 'customer', status: 'mandate_revoked', detail: expect.objectContaining({ mandateRef: `mandate_${pm.slice(3)}`, paymentMethodRef: pm }) })]);
    expect(fake.requests.filter((r) => r.path === `/v1/payment_methods/${pm}`)).toHaveLength(1);
  });

  it('without an apiKey (globex) an inactive mandate is ignored, with the reason in the sync log', async () => {
    const pm = `pm_glob${tag()}`;
    await stack.sendStripe('globex', stripeEvents.mandateUpdated({ paymentMethod: pm, status: 'inactive', created: nowS() - 10 }));
    const line = await waitFor(async () => {
      const l = await stack.get('/v1/sync-log?direction=in&limit=50', 'globex');
      return l.body.data.find((x: { operation: string; outcome: string; summary: string }) => x.operation === 'mandate.updated' && x.outcome === 'ignored' && x.summary?.includes(pm));
    }, 20_000, 100, 'the ignored mandate in the sync log');
    expect(line.summary).toMatch(/^ignored: .*mandate mandate_\S+ is inactive, but the event names only payment method pm_glob\S+, not its customer/);
  });

  it('a subscription turning past_due shows on the customer’s timeline and status', async () => {
    const f = renewal('sb', { nextPaymentAttempt: nowS() + 3 * DAY, created: nowS() - 60, subscription: `sub_sb${tag()}` });
    await stack.sendStripe('acme', stripeEvents.paymentFailed(f));
    await stack.sendStripe('acme', stripeEvents.subscriptionUpdated({ subscription: f.subscription!, customer: f.customer, status: 'past_due', previousStatus: 'active', latestInvoice: f.invoice, created: nowS() - 30 }));
    const c = await waitFor(async () => {
      const r = await stack.get(`/v1/customers/${f.customer}`);
      return r.body?.subscriptionStatus ? r.body : null;
    }, 20_000, 100, 'the subscription status on the customer');
    expect(c.subscriptionStatus).toBe('past_due');
    expect(c.timeline).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ entity: 'customer', status: 'subscription_past_due', detail: expect.objectContaining({ subscriptionRef: f.subscription, previousStatus: 'active', latestInvoiceRef: f.invoice }) }),
      ]),
    );
    // The invoice is left to Stripe's retries: not handed over.
    expect(await invoice(f.invoice)).toMatchObject({ status: 'open', case: null });
  });
});
