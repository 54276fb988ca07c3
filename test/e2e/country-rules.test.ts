/**
 * Country rules end to end (issue 12, holes 4 and 6). An NL consumer is not handed over before
 * the 14-day letter's term has run (HR 2016:2704), and only with evidence of the letter — here
 * acme states that its dunning sends it on the day of the first failure
 * (`policy.dunningLetterAfterDays: 0`); globex states nothing, so its NL consumer waits for
 * evidence and carries no statutory costs (art. 6:96 lid 6 BW). Each claim carries its own costs,
 * a stacked one too, sent with the agency's add-claim call.
 */
import { startStack, type Stack } from '../support/stack';
import { postgresAvailable, redisAvailable, waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { ManualClock, DAY_MS } from '../../src/domain/clock';

// Both backends: the claims' costs columns (migration 010) and the Wki window query run on PGlite and PostgreSQL.
describe.each(['embedded', 'services'] as const)('NL consumer: letter evidence, 14-day letter gate and WIK costs per claim (%s mode)', (mode) => {
  let stack: Stack;
  let available = true;
  // Friday 2 January 2026, 15:00 UTC: the first failure; acme's letter goes the same day.
  const T0 = Date.parse('2026-01-02T15:00:00Z');
  const clock = new ManualClock(T0);
  beforeAll(async () => {
    available = mode === 'embedded' || ((await postgresAvailable()) && (await redisAvailable()));
    if (!available) return;
    stack = await startStack({ mode, countryRules: true, clock, sim: { stepMs: 60_000 }, policy: { acme: { dunningLetterAfterDays: 0 } } });
  }, 60_000);
  afterAll(() => stack?.stop());

  const fail = async (merchant: 'acme' | 'globex', invoice: string, customer: string, amount: number, at: number) => {
    const created = Math.floor(at / 1000);
    const f = { invoice, customer, amount, created, nextPaymentAttempt: null, failureCode: 'insufficient_funds', country: 'NL' };
    // Signed at the hub's (manual) time, as the signature's age is checked against it.
    expect((await stack.sendStripe(merchant, stripeEvents.paymentFailed(f), { timestamp: Math.floor(clock.now().getTime() / 1000) })).status).toBe(200);
    return waitFor(async () => {
      const r = await stack.get(`/v1/invoices/${invoice}`, merchant);
      return r.body?.status === 'pending_handover' ? r.body : null;
    }, 15_000, 100, `${invoice} pending hand-over`);
  };
  const tick = async (iso: string) => {
    clock.set(iso);
    await stack.hub.reconcileNow();
    await new Promise((r) => setTimeout(r, 400));
    await stack.hub.reconcileNow();
  };
  const atAgency = (ref: string, merchant = 'acme') =>
    waitFor(async () => {
      await stack.hub.reconcileNow();
      const r = await stack.get(`/v1/invoices/${ref}`, merchant);
      return r.body?.case?.partnerRef ? r.body : null;
    }, 15_000, 200, `${ref} at the agency`);

  it('waits for the debtor’s term, hands over with WIK costs on each claim, and a stacked claim carries its own', async () => {
    if (!available) return;
    const first = await fail('acme', 'in_nlgate1', 'cus_nlgate1', 50000, T0);
    expect(first.case).toBeNull();
    // A second invoice of the same debtor fails a day later: its own letter, its own term.
    clock.set(new Date(T0 + DAY_MS));
    await fail('acme', 'in_nlgate2', 'cus_nlgate1', 4900, T0 + DAY_MS);

    // Letter Fri 2 Jan, delivered Tue 6 Jan (Sunday and Monday not counted); the term runs 7–20 Jan; hand-over from Wed 21 Jan.
    await tick('2026-01-20T23:00:00Z');
    expect((await stack.get('/v1/invoices/in_nlgate1')).body.case).toBeNull();

    await tick('2026-01-21T00:00:01Z');
    const inv = await atAgency('in_nlgate1');
    expect((await stack.get('/v1/invoices/in_nlgate2')).body.case).toBeNull();
    const kase = stack.sim.case(inv.case.partnerRef);
    // EUR 500 principal → WIK 15 % = EUR 75, on the case and on its claim.
    expect(kase.collectionCosts).toEqual({ value: 7500, currency: 'EUR', basis: expect.stringContaining('WIK') });
    expect(kase.claims[0].collectionCosts).toEqual({ value: 7500, currency: 'EUR', basis: expect.stringContaining('WIK') });
    expect(clock.now().getTime() - T0).toBeGreaterThan(18 * DAY_MS);

    // Letter Sat 3 Jan, delivered Wed 7 Jan; term 8–21 Jan; hand-over from Thu 22 Jan, stacked onto the open case.
    await tick('2026-01-22T00:00:01Z');
    const stacked = await waitFor(async () => {
      await stack.hub.reconcileNow();
      const c = stack.sim.case(inv.case.partnerRef);
      return c.claims.length === 2 ? c.claims[1] : null;
    }, 15_000, 200, 'the stacked claim at the agency');
    // EUR 49 (a small recurring claim): the WIK minimum EUR 40, within the Wki's EUR 140 per six months.
    expect(stacked.collectionCosts).toEqual({ value: 4000, currency: 'EUR', basis: expect.stringContaining('WIK') });
    // The merchant sees the case total and each claim's costs with their basis.
    const view = (await stack.get(`/v1/cases/${inv.case.id}`)).body;
    expect(view.collectionCosts).toMatchObject({ value: 11500, currency: 'EUR', basis: expect.stringContaining('sum of 2 claims') });
    expect(view.claims.map((c: any) => c.collectionCosts?.value)).toEqual([7500, 4000]);
  }, 90_000);

  it('without letter evidence an NL consumer waits (no term the hub can see), and no statutory costs are charged', async () => {
    if (!available) return;
    const t = Date.parse('2026-02-02T15:00:00Z');
    clock.set(new Date(t));
    await fail('globex', 'in_noletter1', 'cus_noletter1', 50000, t);
    // Forty days on, far past any term a letter on the day of the failure would have given: still waiting.
    await tick(new Date(t + 40 * DAY_MS).toISOString());
    const inv = (await stack.get('/v1/invoices/in_noletter1', 'globex')).body;
    expect(inv.status).toBe('pending_handover');
    expect(inv.case).toBeNull();
    // The merchant reports its letter: from then on the term runs (Mon 2 Mar → delivered Wed 4 Mar, hand-over from Thu 19 Mar).
    const r = await fetch(`${stack.hubUrl}/v1/invoices/in_noletter1/reminder`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.token('globex')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ sentAt: '2026-03-02' }),
    });
    expect(r.status).toBe(200);
    expect(await r.json()).toMatchObject({ noticeEndsAt: '2026-03-19T00:00:00.000Z' });
    await tick('2026-03-18T23:00:00Z');
    expect((await stack.get('/v1/invoices/in_noletter1', 'globex')).body.case).toBeNull();
    await tick('2026-03-19T00:00:01Z');
    const sent = await atAgency('in_noletter1', 'globex');
    expect(stack.sim.case(sent.case.partnerRef).collectionCosts).toMatchObject({ value: 7500, basis: expect.stringContaining('WIK') });
  }, 90_000);
});

describe('NL consumer without letter evidence, merchant hands over without costs (embedded mode)', () => {
  let stack: Stack;
  const T0 = Date.parse('2026-01-02T15:00:00Z');
  const clock = new ManualClock(T0);
  beforeAll(async () => {
    stack = await startStack({ mode: 'embedded', countryRules: true, clock, sim: { stepMs: 60_000 }, policy: { globex: { withoutLetterEvidence: 'hand_over_without_costs' } } });
  }, 30_000);
  afterAll(() => stack?.stop());

  it('goes at once, with no statutory costs and the reason, told to the agency and shown to the merchant', async () => {
    const created = Math.floor(T0 / 1000);
    const f = { invoice: 'in_nocost1', customer: 'cus_nocost1', amount: 50000, created, nextPaymentAttempt: null, failureCode: 'insufficient_funds', country: 'NL' };
    expect((await stack.sendStripe('globex', stripeEvents.paymentFailed(f), { timestamp: created })).status).toBe(200);
    const inv = await waitFor(async () => {
      await stack.hub.reconcileNow();
      const r = await stack.get('/v1/invoices/in_nocost1', 'globex');
      return r.body?.case?.partnerRef ? r.body : null;
    }, 15_000, 200, 'the case at the agency');
    const why = { value: 0, currency: 'EUR', basis: 'no costs: no evidence of a compliant 14-day letter (veertiendagenbrief, art. 6:96 lid 6 BW)' };
    const atAgency = stack.sim.case(inv.case.partnerRef);
    expect(atAgency.collectionCosts).toEqual(why);
    expect(atAgency.claims[0].collectionCosts).toEqual(why);
    const view = (await stack.get(`/v1/cases/${inv.case.id}`, 'globex')).body;
    expect(view.collectionCosts).toEqual(why);
    expect(view.claims[0].collectionCosts).toEqual(why);
  }, 60_000);
});
