/**
 * One debtor across PSPs (issue 12, hole 3), end to end over real HTTP in both run modes: the same
 * person fails at Stripe and at Mollie, both carrying the merchant's own customer id in metadata
 * (Stripe: the subscription's metadata on the invoice; Mollie: the customer's metadata). Each
 * invoice alone is below the merchant's minAmount; together they reach it, so the agency gets ONE
 * case with both claims. A later invoice of the same person at either PSP stacks onto that case.
 * Before debtors, each PSP customer was judged alone: no case at all, or two.
 */
import { startStack, type Mode, type Stack } from '../support/stack';
import { postgresAvailable, redisAvailable, waitFor } from '../support/services';
import { createFakeMollie, type FakeMollie } from '../../sim/psp/fake-mollie';
import { classicBody, mollieCustomer, mollieId, molliePayments } from '../../sim/psp/mollie-events';
import { stripeEvents } from '../../sim/psp/stripe-events';

const API_KEY = 'test_acmeMollie0123456789abcdefghij';
/** The merchant's minimum open amount for a hand-over, in cents: more than either invoice alone. */
const MIN_AMOUNT = 5000;

async function modeAvailable(mode: Mode): Promise<boolean> {
  if (mode === 'embedded') return true;
  return (await postgresAvailable()) && (await redisAvailable());
}

let seq = 0;
const tag = () => `${Date.now().toString(36)}${(++seq).toString(36)}`;
const now = () => Math.floor(Date.now() / 1000);

describe.each<Mode>(['embedded', 'services'])('one debtor at Stripe and Mollie (%s mode)', (mode) => {
  let fake: FakeMollie;
  let stack: Stack;
  let available = true;

  beforeAll(async () => {
    available = await modeAvailable(mode);
    if (!available) return;
    fake = createFakeMollie();
    const { apiBase } = await fake.start();
    stack = await startStack({ mode, minAmount: MIN_AMOUNT, sim: { stepMs: 60_000 }, acmeProviders: `      mollie:\n        apiKey: ${API_KEY}\n        apiBase: ${apiBase}` });
    // The agency keeps its cases where they are: a case it closed could not take a stacked claim.
    stack.sim.pause();
  }, 60_000);

  afterAll(async () => {
    if (stack) await stack.stop();
    if (fake) await fake.stop();
  });

  const maybe = (name: string, fn: () => Promise<void>, timeout = 45_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  const sendMollie = (id: string) =>
    fetch(`${stack.hubUrl}/v1/webhooks/mollie/acme`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: classicBody(id) });

  const casesPosted = () => stack.sim.requests().filter((r) => r.method === 'POST' && r.path === '/v1/cases' && r.status === 201);

  /** The invoice once `ok` holds for it. */
  const invoiceWhen = (ref: string, ok: (body: any) => boolean, what: string) =>
    waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${ref}`);
      return r.status === 200 && ok(r.body) ? r.body : null;
    }, 30_000, 100, what);

  /** A final Stripe failure of `amount` cents for Stripe customer `customer`, naming the merchant's id in the subscription's metadata. */
  async function failAtStripe(customer: string, merchantRef: string | null, amount: number): Promise<string> {
    const invoice = `in_dbt${tag()}`;
    const event = stripeEvents.paymentFailed({
      invoice, customer, amount, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds',
      customerName: 'Jan Jansen', customerEmail: 'jan@example.nl', subscription: `sub_dbt${tag()}`,
      ...(merchantRef ? { subscriptionMetadata: { customer_id: merchantRef } } : {}),
    });
    expect((await stack.sendStripe('acme', event)).status).toBe(200);
    return invoice;
  }

  /** A failed (final) Mollie SEPA payment of `value` for Mollie customer `customerId`, whose metadata names the merchant's id. */
  async function failAtMollie(customerId: string, merchantRef: string | null, value: string): Promise<string> {
    const payment = molliePayments.sepaRecurring({ status: 'failed', customerId, value, bankReasonCode: 'AM04' });
    fake.setPayment(payment);
    fake.setCustomer(mollieCustomer({ id: customerId, name: 'Jan Jansen', email: 'jan@example.nl', metadata: merchantRef ? { customer_id: merchantRef } : null }));
    expect((await sendMollie(payment.id as string)).status).toBe(200);
    return payment.id as string;
  }

  maybe('the same person failing at Stripe and at Mollie becomes ONE case with both claims, minAmount judged on the sum', async () => {
    const merchantRef = `CRM-${tag()}`;
    const stripeCustomer = `cus_dbt${tag()}`;
    const mollieCustomerId = mollieId('cst');
    const before = casesPosted().length;

    // €30 at Stripe alone is below the €50 minimum: the invoice waits.
    const stripeInvoice = await failAtStripe(stripeCustomer, merchantRef, 3000);
    await invoiceWhen(stripeInvoice, (b) => b.status === 'pending_handover', 'the Stripe invoice waiting below minAmount');

    // €25 more at Mollie: €55 for the debtor, over the minimum: one case with both invoices.
    const molliePayment = await failAtMollie(mollieCustomerId, merchantRef, '25.00');
    const mollieInv = await invoiceWhen(molliePayment, (b) => !!b.case?.partnerRef, 'the case to reach the agency');
    const stripeInv = await invoiceWhen(stripeInvoice, (b) => !!b.case, 'the Stripe invoice in the case');
    expect(stripeInv.case.id).toBe(mollieInv.case.id);
    expect(casesPosted().length).toBe(before + 1);

    const simCase = stack.sim.case(mollieInv.case.partnerRef);
    expect(simCase.claims.map((c: { principal: { value: number } }) => c.principal.value).sort()).toEqual([2500, 3000]);

    // The customer view, from either PSP's customer id, is the debtor's: both PSP identities, one case.
    for (const ref of [stripeCustomer, mollieCustomerId]) {
      const view = await stack.get(`/v1/customers/${ref}`);
      expect(view.status).toBe(200);
      expect(view.body.debtor).toMatchObject({ merchantRef });
      expect(view.body.debtor.identities.map((i: { provider: string; ref: string }) => `${i.provider}:${i.ref}`).sort()).toEqual([`mollie:${mollieCustomerId}`, `stripe:${stripeCustomer}`]);
      expect(view.body.cases.map((c: { id: string }) => c.id)).toEqual([mollieInv.case.id]);
      expect(view.body.invoices.map((i: { ref: string }) => i.ref).sort()).toEqual([molliePayment, stripeInvoice].sort());
      // The case list filtered by either PSP customer is the debtor's.
      const cases = await stack.get(`/v1/cases?customer=${ref}`);
      expect(cases.body.data.map((k: { id: string; debtorId: string }) => [k.id, k.debtorId])).toEqual([[mollieInv.case.id, view.body.debtor.id]]);
    }
    // The merchant's own customer id finds the debtor too.
    expect((await stack.get(`/v1/customers/${merchantRef}`)).body.debtor.identities).toHaveLength(2);

    // A later unpaid invoice of the same person at Stripe stacks onto the open case as a claim.
    const later = await failAtStripe(stripeCustomer, merchantRef, 1000);
    const stacked = await invoiceWhen(later, (b) => !!b.case, 'the later invoice stacked');
    expect(stacked.case.id).toBe(mollieInv.case.id);
    await waitFor(async () => stack.sim.case(mollieInv.case.partnerRef).claims.length === 3, 20_000, 100, 'the stacked claim at the agency');
    expect(casesPosted().length).toBe(before + 1);
  });

  maybe('different merchant ids stay different debtors: each is judged alone against minAmount', async () => {
    const stripeCustomer = `cus_dbt${tag()}`;
    const mollieCustomerId = mollieId('cst');
    const stripeInvoice = await failAtStripe(stripeCustomer, `CRM-${tag()}`, 3000);
    const molliePayment = await failAtMollie(mollieCustomerId, `CRM-${tag()}`, '25.00');
    // The hand-over check runs with the event: once both invoices are pending, both checks have decided.
    const a = await invoiceWhen(stripeInvoice, (b) => b.status === 'pending_handover', 'the Stripe invoice waiting');
    const b = await invoiceWhen(molliePayment, (x) => x.status === 'pending_handover', 'the Mollie invoice waiting');
    expect(a.case).toBeNull();
    expect(b.case).toBeNull();
    const view = await stack.get(`/v1/customers/${stripeCustomer}`);
    expect(view.body.debtor.identities).toHaveLength(1);
  });
});
