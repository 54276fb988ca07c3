/**
 * "Paid in full while the agency still collects" (issue 12, hole 1) end to end, embedded mode:
 * a Stripe invoice goes to the agency simulator, which agrees an arrangement and collects the
 * first instalment; then the debtor pays the whole invoice through Stripe. The agency must hear of
 * the payment at once (its claim ends paid to the merchant, its collecting stops), and the
 * instalment it collected is owed back to the debtor: on the invoice, its timeline, the customer
 * view and the sync log.
 */
import { startStack, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';

const now = () => Math.floor(Date.now() / 1000);

describe('paid through the PSP while the agency collects (embedded mode)', () => {
  let stack: Stack;
  beforeAll(async () => {
    // stepMs 0: the simulator moves only when the test steps it.
    stack = await startStack({ mode: 'embedded', sim: { stepMs: 0 } });
    stack.sim.setScenario(null, 'arrangement');
  }, 30_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it('reports the payment to the agency at once, ends its claim, and records the instalment it collected as owed back to the debtor', async () => {
    const tag = Date.now().toString(36);
    const f = { invoice: `in_owed${tag}`, customer: `cus_owed${tag}`, amount: 3000, created: now() - 120, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
    expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f))).status).toBe(200);
    const inv = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.body?.case?.partnerRef ? r.body : null;
    }, 20_000, 50, 'the case at the agency');
    const partnerRef = inv.case.partnerRef as string;
    await waitFor(async () => stack.sim.case(partnerRef).claims.length === 1, 10_000, 50, 'the claim at the agency');
    const invoice = async () => (await stack.get(`/v1/invoices/${f.invoice}`)).body;
    const step = async (until: () => Promise<boolean>, what: string) => {
      expect(stack.sim.step(partnerRef)).toBeGreaterThan(0);
      await waitFor(until, 15_000, 50, what);
    };
    await step(async () => (await invoice()).status === 'in_collection', 'in collection');
    await step(async () => (await invoice()).status === 'arrangement', 'the arrangement');
    // The first instalment: a third of 30.00.
    await step(async () => (await invoice()).amountCollected.value === 1000, 'instalment 1');
    expect((await invoice()).status).toBe('partially_paid');

    // The debtor pays the whole invoice through Stripe.
    expect((await stack.sendStripe('acme', stripeEvents.paid({ ...f, created: now() }))).status).toBe(200);
    const atAgency = await waitFor(async () => {
      const c = stack.sim.case(partnerRef);
      return c.claims[0].amountPaidToMerchant.value === 3000 ? c.claims[0] : null;
    }, 20_000, 50, 'the payment report at the agency');
    // The agency stops collecting: its claim is paid (to the merchant), nothing is open.
    expect(atAgency).toMatchObject({ status: 'paid', reason: 'paid_to_merchant' });

    const after = await waitFor(async () => {
      const b = await invoice();
      return b.amountOwedBack?.value === 1000 ? b : null;
    }, 15_000, 50, 'the owed-back record');
    expect(after).toMatchObject({
      status: 'paid', resolution: 'paid_to_merchant', amountPaid: { value: 3000 }, amountCollected: { value: 1000 }, amountOwedBack: { value: 1000, currency: 'EUR' }, amountOpen: { value: 0 },
    });
    const owed = after.timeline.filter((t: { status: string }) => t.status === 'owed_back');
    expect(owed).toEqual([expect.objectContaining({ entity: 'invoice', detail: expect.objectContaining({ amount: 1000, currency: 'EUR', paidToMerchant: 3000, collectedByAgency: 1000 }) })]);

    // The agency's own confirmation of the end (paid_to_merchant) comes back and owes nothing more.
    await waitFor(async () => (await invoice()).claim?.status === 'paid', 15_000, 50, 'the claim ended');
    expect((await invoice()).amountOwedBack.value).toBe(1000);

    const customer = (await stack.get(`/v1/customers/${f.customer}`)).body;
    expect(customer.amounts).toEqual([expect.objectContaining({ currency: 'EUR', owedBackToDebtor: { value: 1000, currency: 'EUR' } })]);
    expect(customer.invoices).toEqual([expect.objectContaining({ ref: f.invoice, amountOwedBack: { value: 1000, currency: 'EUR' } })]);

    const log = await waitFor(async () => {
      const l = await stack.get(`/v1/sync-log?invoice=${f.invoice}&limit=50`);
      return l.body.data?.find((x: { summary: string | null }) => /owed back to the debtor/.test(x.summary ?? ''));
    }, 15_000, 50, 'the owed-back line in the sync log');
    expect(log.summary).toMatch(/reported to the partner; 1000 EUR is owed back to the debtor/);
  }, 90_000);
});
