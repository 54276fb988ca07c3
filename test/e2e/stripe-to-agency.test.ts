/**
 * End to end over real HTTP, in both run modes: a Stripe webhook signed with the SDK's own
 * helper → a case at the agency simulator → the agency's status back at invoice and customer
 * level; and tenant isolation on the merchant API.
 */
import { startStack, type Mode, type Stack } from '../support/stack';
import { postgresAvailable, redisAvailable, waitFor } from '../support/services';
import { stripeEvents, eventId } from '../../sim/psp/stripe-events';

const now = () => Math.floor(Date.now() / 1000);
let n = 0;
const ids = () => {
  n++;
  const tag = `${Date.now().toString(36)}${n}`;
  return { invoice: `in_e2e${tag}`, customer: `cus_e2e${tag}`, subscription: `sub_e2e${tag}` };
};

async function modeAvailable(mode: Mode): Promise<boolean> {
  if (mode === 'embedded') return true;
  return (await postgresAvailable()) && (await redisAvailable());
}

describe.each<Mode>(['embedded', 'services'])('Stripe → agency → back (%s mode)', (mode) => {
  let stack: Stack;
  let available = true;

  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    stack = await startStack({ mode, sim: { stepMs: 60_000 } });
    stack.sim.pause();
  }, 60_000);

  afterAll(async () => {
    if (stack) await stack.stop();
  });

  const maybe = (name: string, fn: () => Promise<void>, timeout = 30_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  maybe('a final failure delivered three times becomes one case; the agency paid update shows at invoice and customer level', async () => {
    const f = { ...ids(), amount: 4900, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds', customerName: 'Jan Jansen', customerEmail: 'jan@example.nl', country: 'NL', number: 'ACME-0042' };
    const event = stripeEvents.paymentFailed(f);
    const answers = await Promise.all([stack.sendStripe('acme', event), stack.sendStripe('acme', event), stack.sendStripe('acme', event)]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);

    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.status === 200 && r.body.case?.partnerRef ? r.body : null;
    }, 20_000, 100, 'the case to reach the agency');
    expect(inv.status).toBe('submitted');
    expect(inv.failure).toMatchObject({ code: 'insufficient_funds', reason: 'insufficient_funds', final: true });
    const simCases = stack.sim.cases().filter((c) => c.reference === inv.case.id);
    expect(simCases).toHaveLength(1);
    expect(simCases[0].claims).toHaveLength(1);
    expect(simCases[0].claims[0].principal).toEqual({ value: 4900, currency: 'EUR' });
    expect(stack.sim.requests().filter((r) => r.method === 'POST' && r.path === '/v1/cases' && r.status === 201)).toHaveLength(1);

    stack.sim.emit(inv.case.partnerRef, { status: 'paid', reason: 'paid_in_full', claimReference: inv.claim.id, amountCollected: { value: 4900, currency: 'EUR' } });
    const paid = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.body?.status === 'paid' ? r.body : null;
    }, 20_000, 100, 'the paid update to apply');
    expect(paid).toMatchObject({ status: 'paid', resolution: 'paid_in_full', resolvedBy: 'refagency', amountCollected: { value: 4900, currency: 'EUR' } });
    expect(paid.timeline.map((t: { status: string }) => t.status)).toEqual(expect.arrayContaining(['payment_failed', 'pending_handover', 'submitted', 'paid']));

    const cust = await stack.get(`/v1/customers/${f.customer}`);
    expect(cust.status).toBe(200);
    expect(cust.body.amounts).toEqual([expect.objectContaining({ currency: 'EUR', collected: { value: 4900, currency: 'EUR' }, open: { value: 0, currency: 'EUR' } })]);
    expect(cust.body.lastFailure).toMatchObject({ code: 'insufficient_funds', reason: 'insufficient_funds' });
    expect(cust.body.lastOutcome).toMatchObject({ status: 'paid', resolution: 'paid_in_full', by: 'refagency' });
    expect(cust.body.byStatus.paid.count).toBe(1);
  });

  maybe("another merchant's token gets 404 for acme's customer and invoice", async () => {
    const f = { ...ids(), amount: 1200, created: now() - 30, nextPaymentAttempt: null, failureCode: 'expired_card' };
    expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
    await waitFor(async () => (await stack.get(`/v1/invoices/${f.invoice}`)).status === 200, 15_000, 100, 'the invoice');
    expect((await stack.get(`/v1/invoices/${f.invoice}`, 'globex')).status).toBe(404);
    expect((await stack.get(`/v1/customers/${f.customer}`, 'globex')).status).toBe(404);
    const log = await stack.get(`/v1/sync-log?invoice=${f.invoice}`, 'globex');
    expect(log.body.data).toEqual([]);
  });

  maybe('a second unpaid invoice of the customer is stacked onto the open case', async () => {
    const base = ids();
    const first = { ...base, amount: 2500, created: now() - 100, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
    const second = { ...base, invoice: `${base.invoice}b`, amount: 2600, created: now() - 50, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
    await stack.sendStripe('acme', stripeEvents.paymentFailed(first));
    const a = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${first.invoice}`);
      return r.body?.case?.partnerRef ? r.body : null;
    }, 20_000, 100, 'first case');
    await stack.sendStripe('acme', stripeEvents.paymentFailed(second));
    const b = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${second.invoice}`);
      return r.body?.case ? r.body : null;
    }, 20_000, 100, 'second invoice in a case');
    expect(b.case.id).toBe(a.case.id);
    await waitFor(async () => stack.sim.case(a.case.partnerRef).claims.length === 2, 20_000, 100, 'the claim at the agency');
    const cases = (await stack.get(`/v1/cases?customer=${base.customer}`)).body.data;
    expect(cases).toHaveLength(1);
    expect(cases[0].principal).toEqual({ value: 5100, currency: 'EUR' });
  });

  maybe('a payment through Stripe after hand-over is reported to the agency at once', async () => {
    const f = { ...ids(), amount: 3100, created: now() - 100, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
    await stack.sendStripe('acme', stripeEvents.paymentFailed(f));
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.body?.case?.partnerRef ? r.body : null;
    }, 20_000, 100, 'the case');
    await stack.sendStripe('acme', stripeEvents.paid({ ...f, created: now() }));
    await waitFor(async () => {
      const c = stack.sim.case(inv.case.partnerRef);
      return c.claims[0].amountPaidToMerchant.value === 3100;
    }, 20_000, 100, 'the payment report at the agency');
    const after = await stack.get(`/v1/invoices/${f.invoice}`);
    expect(after.body).toMatchObject({ status: 'paid', resolution: 'paid_to_merchant' });
  });

  maybe('a failure Stripe will still retry is not handed over; other event types are stored and ignored', async () => {
    const f = { ...ids(), amount: 4000, created: now() - 10, nextPaymentAttempt: now() + 3 * 86400, failureCode: 'insufficient_funds' };
    await stack.sendStripe('acme', stripeEvents.paymentFailed(f));
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.status === 200 ? r.body : null;
    }, 15_000, 100, 'the invoice');
    expect(inv).toMatchObject({ status: 'open', case: null, failure: { final: false } });
    const other = stripeEvents.other('customer.created', now());
    const r = await stack.sendStripe('acme', other);
    expect(r.status).toBe(200);
    const log = await waitFor(async () => {
      const l = await stack.get('/v1/sync-log?direction=in&limit=20');
      return l.body.data.find((x: { operation: string; outcome: string }) => x.operation === 'customer.created' && x.outcome === 'ignored');
    }, 15_000, 100, 'the ignored event in the log');
    expect(log.party).toBe('stripe');
  });

  maybe('a webhook with a bad signature is refused with 400 and not stored', async () => {
    const f = { ...ids(), amount: 4000, created: now(), nextPaymentAttempt: null };
    const r = await stack.sendStripe('acme', stripeEvents.paymentFailed(f), { secret: 'whsec_wrong' });
    expect(r.status).toBe(400);
    expect(((await r.json()) as { error: { message: string } }).error.message).toMatch(/signature/i);
    await new Promise((res) => setTimeout(res, 300));
    expect((await stack.get(`/v1/invoices/${f.invoice}`)).status).toBe(404);
    expect(eventId()).toMatch(/^evt_/);
  });
});
