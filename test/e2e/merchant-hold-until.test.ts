/**
 * The merchant holds an invoice still waiting for hand-over until a date (issue 12, hole 9: "the
 * customer called and promised to pay by the 20th"), end to end (embedded mode, manual clock):
 * POST /v1/invoices/:ref/hold with holdUntil; the hand-over check that falls due meanwhile leaves
 * it out; at the date the check runs again and hands it over. A hold can be released early with
 * resume. The leakage report shows it as held_by_merchant until that date.
 */
import { startStack, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { ManualClock, DAY_MS } from '../../src/domain/clock';

// Monday 2 March 2026, 10:00 UTC. Hand-over 3 days after the first failure.
const T0 = Date.parse('2026-03-02T10:00:00Z');

describe('hold until a date before the hand-over (embedded mode)', () => {
  let stack: Stack;
  const clock = new ManualClock(T0);
  beforeAll(async () => {
    stack = await startStack({ mode: 'embedded', handoverAfterDays: 3, clock, sim: { stepMs: 60_000 } });
  }, 30_000);
  afterAll(() => stack?.stop());

  const post = async (ref: string, action: string, body: unknown, merchantId = 'acme') => {
    const r = await fetch(`${stack.hubUrl}/v1/invoices/${ref}/${action}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.token(merchantId)}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: r.status, body: (await r.json().catch(() => null)) as any };
  };
  const caseOf = async (ref: string) => (await stack.get(`/v1/invoices/${ref}`)).body?.case ?? null;
  const handedOver = (ref: string) =>
    waitFor(async () => {
      await stack.hub.reconcileNow();
      const c = await caseOf(ref);
      return c?.partnerRef ? c : null;
    }, 15_000, 100, `${ref} handed over`);
  /** The hand-over check rows of an invoice's customer due at `at`, once every one of them has run. */
  const checksRanAt = (customerRef: string, at: number) =>
    waitFor(async () => {
      await stack.hub.reconcileNow();
      const rows = (await stack.hub.ctx.db.query<{ status: string }>(
        `SELECT o.status FROM outbox o JOIN customers c ON c.id = o.customer_id
         WHERE c.provider_ref = $1 AND o.kind = 'handover_check' AND o.next_attempt_at <= $2`,
        [customerRef, new Date(at)],
      )).rows;
      return rows.length > 0 && rows.every((r) => r.status === 'done') ? rows : null;
    }, 15_000, 100, `the hand-over checks of ${customerRef} due by ${new Date(at).toISOString()}`);

  const fail = async (invoice: string, customer: string) => {
    const f = { invoice, customer, amount: 12_000, created: Math.floor(T0 / 1000) - 60, nextPaymentAttempt: null, failureCode: 'insufficient_funds' };
    expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f), { timestamp: Math.floor(clock.now().getTime() / 1000) })).status).toBe(200);
    await waitFor(async () => (await stack.get(`/v1/invoices/${invoice}`)).body?.status === 'pending_handover', 15_000, 100, `${invoice} pending`);
  };

  it('is not handed over before the date, is at the date, and a release hands it over at once', async () => {
    await fail('in_hold_a', 'cus_hold_a');
    await fail('in_hold_b', 'cus_hold_b');

    // Refused: bad dates, holdUntil on another action, a release of what is not held.
    expect(await post('in_hold_a', 'hold', { reason: 'x', holdUntil: 'the 20th' })).toMatchObject({ status: 400, body: { error: { message: expect.stringContaining('not an ISO 8601') } } });
    expect(await post('in_hold_a', 'hold', { reason: 'x', holdUntil: '2026-03-01' })).toMatchObject({ status: 400, body: { error: { message: expect.stringContaining('not in the future') } } });
    expect(await post('in_hold_a', 'hold', { reason: 'x', holdUntil: '2026-09-01' })).toMatchObject({ status: 400, body: { error: { message: expect.stringContaining('more than 90 days') } } });
    expect(await post('in_hold_a', 'withdraw', { reason: 'x', holdUntil: '2026-03-20' })).toMatchObject({ status: 400 });
    expect(await post('in_hold_a', 'hold', { reason: 'x' })).toMatchObject({ status: 409, body: { error: { message: expect.stringContaining('send holdUntil') } } });
    expect(await post('in_hold_a', 'resume', { reason: 'x' })).toMatchObject({ status: 409 });
    expect(await post('in_hold_a', 'hold', { reason: 'x', holdUntil: '2026-03-20' }, 'globex')).toMatchObject({ status: 404 });

    // "Promised to pay by the 20th": held through that day.
    const held = await post('in_hold_a', 'hold', { reason: 'customer promised to pay by the 20th', holdUntil: '2026-03-20' });
    expect(held).toMatchObject({ status: 202, body: { action: 'hold', holdUntil: '2026-03-21T00:00:00.000Z', invoice: { status: 'pending_handover', holdUntil: '2026-03-21T00:00:00.000Z' } } });
    expect((await post('in_hold_b', 'hold', { reason: 'pays on the 10th of April', holdUntil: '2026-04-10T12:00:00+02:00' })).status).toBe(202);

    // Day 3: the merchant's hand-over date. The checks due then run, and leave both out.
    clock.set(new Date(T0 + 3 * DAY_MS + 1000));
    await checksRanAt('cus_hold_a', T0 + 3 * DAY_MS);
    await checksRanAt('cus_hold_b', T0 + 3 * DAY_MS);
    expect(await caseOf('in_hold_a')).toBeNull();
    expect(await caseOf('in_hold_b')).toBeNull();
    const report = (await stack.get('/v1/reports/leakage')).body;
    expect(report.items.find((i: { ref: string }) => i.ref === 'in_hold_a')).toMatchObject({ bucket: 'held_by_merchant', until: '2026-03-21T00:00:00.000Z' });
    expect(report.unexplained).toEqual([]);

    // Day 4: B is released early and goes at once.
    clock.set(new Date(T0 + 4 * DAY_MS));
    expect(await post('in_hold_b', 'resume', { reason: 'the customer will not pay after all' })).toMatchObject({ status: 202, body: { holdUntil: null, invoice: { holdUntil: null } } });
    await handedOver('in_hold_b');
    expect(await caseOf('in_hold_a')).toBeNull();

    // Just before the end of the 20th: the check due then has not come yet; at 00:00 on the 21st it runs and A goes.
    clock.set(new Date(Date.parse('2026-03-20T23:59:00Z')));
    await stack.hub.reconcileNow();
    expect(await caseOf('in_hold_a')).toBeNull();
    clock.set(new Date(Date.parse('2026-03-21T00:00:01Z')));
    await handedOver('in_hold_a');

    // On the timeline and in the sync log.
    const inv = (await stack.get('/v1/invoices/in_hold_a')).body;
    expect(inv.timeline).toContainEqual(expect.objectContaining({ status: 'handover_held', source: 'merchant', reason: 'customer promised to pay by the 20th' }));
    const log = (await stack.get('/v1/sync-log?invoice=in_hold_a&direction=in')).body.data as { party: string; operation: string; summary: string }[];
    expect(log).toContainEqual(expect.objectContaining({ party: 'merchant', operation: 'POST /v1/invoices/:ref/hold', summary: expect.stringContaining('2026-03-21T00:00:00.000Z') }));
    // Handed over: holdUntil no longer applies.
    expect(await post('in_hold_a', 'hold', { reason: 'x', holdUntil: '2026-04-01' })).toMatchObject({ status: 409, body: { error: { code: 'in_collection' } } });
  }, 90_000);
});
