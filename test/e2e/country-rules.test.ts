/**
 * Country rules end to end: an NL consumer is not handed over before the 14-day letter's term
 * has run (HR 2016:2704), and the case then carries the statutory WIK costs with their basis.
 */
import { startStack, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { ManualClock, DAY_MS } from '../../src/domain/clock';

describe('NL consumer: 14-day letter gate and WIK costs (embedded mode)', () => {
  let stack: Stack;
  // Friday 2 January 2026, 15:00 UTC: the failure, and the letter sent the same day (noticeAfterDays 0).
  const clock = new ManualClock(Date.parse('2026-01-02T15:00:00Z'));
  beforeAll(async () => {
    stack = await startStack({ mode: 'embedded', countryRules: true, clock, sim: { stepMs: 60_000 } });
  }, 30_000);
  afterAll(() => stack?.stop());

  it('waits for the debtor’s term, then hands over with the WIK costs', async () => {
    const created = Math.floor(clock.now().getTime() / 1000);
    const f = { invoice: 'in_nlgate1', customer: 'cus_nlgate1', amount: 50000, created, nextPaymentAttempt: null, failureCode: 'insufficient_funds', country: 'NL' };
    // Signed at the hub's (manual) time, as the signature's age is checked against it.
    expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f), { timestamp: created })).status).toBe(200);
    const pending = await waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.body?.status === 'pending_handover' ? r.body : null;
    }, 15_000, 100, 'pending hand-over');
    expect(pending.case).toBeNull();

    // Letter delivered Tue 6 Jan; the term runs 7–20 Jan; hand-over from Wed 21 Jan 00:00 UTC.
    clock.set('2026-01-20T23:00:00Z');
    await stack.hub.reconcileNow();
    await new Promise((r) => setTimeout(r, 500));
    expect((await stack.get(`/v1/invoices/${f.invoice}`)).body.case).toBeNull();

    clock.set('2026-01-21T00:00:01Z');
    await stack.hub.reconcileNow();
    const inv = await waitFor(async () => {
      await stack.hub.reconcileNow();
      const r = await stack.get(`/v1/invoices/${f.invoice}`);
      return r.body?.case?.partnerRef ? r.body : null;
    }, 15_000, 200, 'the case after the term');
    const atAgency = stack.sim.case(inv.case.partnerRef);
    // EUR 500 principal → WIK 15 % = EUR 75.
    expect(atAgency.collectionCosts).toEqual({ value: 7500, currency: 'EUR', basis: expect.stringContaining('WIK') });
    expect(clock.now().getTime() - Date.parse('2026-01-02T15:00:00Z')).toBeGreaterThan(18 * DAY_MS);
  });
});
