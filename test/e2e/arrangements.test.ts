/**
 * Arrangements and partial payments end to end (embedded mode): two unpaid invoices of one
 * customer go to the agency simulator as one case, the simulator's `arrangement` scenario agrees a
 * plan of three instalments and collects them one step at a time (oldest claim first). The hub
 * keeps the arrangement and every instalment per invoice (invoice view and timeline), rolls them
 * up per customer (open, collected, under arrangement), and closes the case only when every claim
 * has — not when the first invoice is paid off.
 */
import { startStack, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { loadCustomerPicture } from '../../src/reports/customer-picture';

const now = () => Math.floor(Date.now() / 1000);
const TERMINAL = ['paid', 'withdrawn', 'uncollectible', 'closed'];

async function twoInvoicesInOneCase(stack: Stack, tag: string) {
  const customer = `cus_arr${tag}`;
  const first = { invoice: `in_arr${tag}a`, customer, amount: 3000, created: now() - 120, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
  const second = { invoice: `in_arr${tag}b`, customer, amount: 3000, created: now() - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
  // minAmount 50.00: the first alone waits; with the second the customer owes enough for one case with both.
  expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(first))).status).toBe(200);
  await waitFor(async () => (await stack.get(`/v1/invoices/${first.invoice}`)).body?.status === 'pending_handover', 15_000, 50, 'the first invoice to wait');
  expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(second))).status).toBe(200);
  const inv = await waitFor(async () => {
    const r = await stack.get(`/v1/invoices/${second.invoice}`);
    return r.body?.case?.partnerRef ? r.body : null;
  }, 20_000, 50, 'the case at the agency');
  const simCase = await waitFor(async () => {
    const c = stack.sim.case(inv.case.partnerRef);
    return c.claims.length === 2 ? c : null;
  }, 10_000, 50, 'both claims at the agency');
  return { customer, refs: [first.invoice, second.invoice], caseId: inv.case.id as string, partnerRef: inv.case.partnerRef as string, customerId: inv.customerId as string, simCase };
}

describe('arrangements and partial payments (embedded mode)', () => {
  let stack: Stack;
  beforeAll(async () => {
    // stepMs 0: the simulator moves only when the test steps it.
    stack = await startStack({ mode: 'embedded', minAmount: 5000, sim: { stepMs: 0 } });
    stack.sim.setScenario(null, 'arrangement');
  }, 30_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it('keeps the arrangement and each instalment per invoice, rolls them up per customer, and closes the case only when every claim has', async () => {
    const c = await twoInvoicesInOneCase(stack, Date.now().toString(36));
    expect(c.simCase.scenario).toBe('arrangement');
    // The agency allocates to its oldest claim first: learn which of ours that is.
    const claimRef = (i: number) => stack.sim.case(c.partnerRef).claims[i].reference;
    const invoiceOfClaim = async (claimId: string) => {
      for (const ref of c.refs) {
        const r = await stack.get(`/v1/invoices/${ref}`);
        if (r.body.claim?.id === claimId) return r.body;
      }
      throw new Error(`no invoice for claim ${claimId}`);
    };
    const step = async (until: () => Promise<boolean>, what: string) => {
      expect(stack.sim.step(c.partnerRef)).toBeGreaterThan(0);
      await waitFor(until, 15_000, 50, what);
    };
    const status = async (ref: string) => (await stack.get(`/v1/invoices/${ref}`)).body.status as string;
    const caseStatus = async () => (await stack.get(`/v1/cases/${c.caseId}`)).body.status as string;
    const picture = () => loadCustomerPicture(stack.hub.ctx.db, 'acme', c.customerId);

    await step(async () => (await status(c.refs[0])) === 'in_collection' && (await status(c.refs[1])) === 'in_collection', 'in collection');
    await step(async () => (await status(c.refs[0])) === 'arrangement' && (await status(c.refs[1])) === 'arrangement', 'the arrangement');

    // The plan, on each invoice: 3 instalments of 20.00 (the case's 60.00), the first in 14 days.
    const plan = (await stack.get(`/v1/invoices/${c.refs[0]}`)).body.arrangement;
    expect(plan).toMatchObject({ installments: 3, amount: { value: 2000, currency: 'EUR' } });
    expect(new Date(plan.firstDueAt).getTime()).toBeGreaterThan(Date.now() + 13 * 86_400_000);
    let p = await picture();
    expect(p.rollup).toEqual([{ currency: 'EUR', open: { value: 6000, currency: 'EUR' }, collected: { value: 0, currency: 'EUR' }, underArrangement: { value: 6000, currency: 'EUR' }, invoicesUnderArrangement: 2 }]);
    expect(p.arrangements.map((a) => a.state)).toEqual(['running', 'running']);

    const [oldest, next] = [await invoiceOfClaim(claimRef(0)), await invoiceOfClaim(claimRef(1))];

    // Instalment 1 (20.00): all of it on the oldest claim.
    await step(async () => (await stack.get(`/v1/invoices/${oldest.ref}`)).body.amountCollected.value === 2000, 'instalment 1');
    expect(await status(oldest.ref)).toBe('partially_paid');

    // Instalment 2: 10.00 finishes the oldest claim, 10.00 goes to the next one.
    await step(async () => (await status(oldest.ref)) === 'paid' && (await stack.get(`/v1/invoices/${next.ref}`)).body.amountCollected.value === 1000, 'instalment 2');
    const paidOne = (await stack.get(`/v1/invoices/${oldest.ref}`)).body;
    expect(paidOne).toMatchObject({ status: 'paid', resolution: 'paid_via_arrangement', resolvedBy: 'refagency', amountCollected: { value: 3000 }, amountOpen: { value: 0 } });
    // Each instalment is on the invoice's timeline with what had been collected by then.
    const collectedSteps = paidOne.timeline
      .filter((t: { entity: string; detail?: { amountCollected?: { value: number } } }) => t.entity === 'invoice' && t.detail?.amountCollected)
      .map((t: { status: string; detail: { amountCollected: { value: number } } }) => [t.status, t.detail.amountCollected.value]);
    expect(collectedSteps).toEqual(expect.arrayContaining([['partially_paid', 2000], ['paid', 3000]]));
    // One claim has ended, the other has not: the case stays open.
    await new Promise((r) => setTimeout(r, 300));
    expect(TERMINAL).not.toContain(await caseStatus());
    expect(await status(next.ref)).toBe('partially_paid');
    p = await picture();
    expect(p.rollup[0]).toMatchObject({ open: { value: 2000 }, collected: { value: 4000 }, underArrangement: { value: 2000 }, invoicesUnderArrangement: 1 });
    const running = p.arrangements.find((a) => a.state === 'running')!;
    expect(running).toMatchObject({ ref: next.ref, paid: [{ amount: { value: 1000, currency: 'EUR' } }], open: { value: 2000 } });
    expect(p.arrangements.find((a) => a.state === 'completed')!.paid.map((x) => x.amount.value)).toEqual([2000, 1000]);

    // Instalment 3: the last claim is paid, and only now the case closes.
    await step(async () => TERMINAL.includes(await caseStatus()), 'the case to close');
    const kase = (await stack.get(`/v1/cases/${c.caseId}`)).body;
    expect(kase).toMatchObject({ status: 'paid', collected: { value: 6000, currency: 'EUR' } });
    expect(kase.claims.map((x: { status: string }) => x.status)).toEqual(['paid', 'paid']);
    p = await picture();
    expect(p.rollup[0]).toMatchObject({ open: { value: 0 }, collected: { value: 6000 }, underArrangement: { value: 0 }, invoicesUnderArrangement: 0 });
    expect(p.collected).toEqual([{ by: 'refagency', how: 'arrangement', amount: { value: 6000, currency: 'EUR' }, invoices: 2 }]);
    expect(p.behaviour).toMatchObject({ paidViaCollection: 2, riskBand: 'high' });
  }, 90_000);
});

describe('arrangements in the customer view over HTTP (embedded mode)', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ mode: 'embedded', minAmount: 5000, sim: { stepMs: 0 } });
    stack.sim.setScenario(null, 'arrangement');
  }, 30_000);
  afterAll(async () => {
    await stack?.stop();
  });

  it('GET /v1/customers/:ref shows what is under arrangement, the arrangement that runs and the behaviour summary', async () => {
    const c = await twoInvoicesInOneCase(stack, `h${Date.now().toString(36)}`);
    stack.sim.step(c.partnerRef);
    stack.sim.step(c.partnerRef);
    const view = await waitFor(async () => {
      const r = await stack.get(`/v1/customers/${c.customer}`);
      return r.body?.rollup?.[0]?.underArrangement?.value === 6000 ? r.body : null;
    }, 15_000, 50, 'the customer under arrangement');
    expect(view.rollup).toEqual([{ currency: 'EUR', open: { value: 6000, currency: 'EUR' }, collected: { value: 0, currency: 'EUR' }, underArrangement: { value: 6000, currency: 'EUR' }, invoicesUnderArrangement: 2 }]);
    expect(view.arrangements).toHaveLength(2);
    expect(view.arrangements[0]).toMatchObject({ state: 'running', partner: 'refagency', installments: 3, installmentAmount: { value: 2000, currency: 'EUR' } });
    expect(view.failureReasonsOverTime[0].reasons).toEqual([{ reason: 'insufficient_funds', count: 2 }]);
    expect(view.behaviour).toMatchObject({ invoices: 2, unpaid: 2, riskBand: 'high' });
  }, 60_000);
});
