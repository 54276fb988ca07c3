/**
 * The merchant-reported reminder date (POST /v1/invoices/:ref/reminder) end to end, with the NL
 * consumer notice gate (embedded mode, manual clock). Without a reported date (and no declared
 * dunning day) the hub has no evidence of a letter, so the invoice waits for one (issue 12, hole 4).
 * A reported date sets the gate: the letter counts as delivered on the second day after dispatch
 * (Sundays, Mondays and public holidays not counted), the 14-day term starts the next day, runs on
 * past a weekend or holiday at its end (Algemene termijnenwet), and the invoice goes the day after
 * (HR 2016:2704; mappings/policy/country-rules.yaml) — so a reminder 15 days back still waits a
 * few days, 20 days back goes at once. A date before the invoice fell due is refused (422).
 */
import { startStack, type Stack } from '../support/stack';
import { waitFor } from '../support/services';
import { stripeEvents } from '../../sim/psp/stripe-events';
import { ManualClock, DAY_MS } from '../../src/domain/clock';

// Friday 2 January 2026, 15:00 UTC: now. The invoices failed on Monday 8 December 2025; no letter is known.
const T0 = Date.parse('2026-01-02T15:00:00Z');
const FAILED = Date.parse('2025-12-08T15:00:00Z');
const daysAgo = (d: number) => new Date(T0 - d * DAY_MS).toISOString();

describe('merchant-reported reminder date and the NL notice gate (embedded mode)', () => {
  let stack: Stack;
  const clock = new ManualClock(T0);
  beforeAll(async () => {
    stack = await startStack({ mode: 'embedded', countryRules: true, clock, sim: { stepMs: 60_000 } });
  }, 30_000);
  afterAll(() => stack?.stop());

  const post = async (ref: string, body: unknown, merchantId = 'acme') => {
    const r = await fetch(`${stack.hubUrl}/v1/invoices/${ref}/reminder`, {
      method: 'POST',
      headers: { authorization: `Bearer ${stack.token(merchantId)}`, 'content-type': 'application/json' },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: r.status, body: (await r.json().catch(() => null)) as any };
  };
  const caseOf = async (ref: string) => (await stack.get(`/v1/invoices/${ref}`)).body?.case ?? null;
  /** Move the hub's clock and let the reconciler run what is due. */
  const at = async (iso: string) => {
    clock.set(iso);
    await stack.hub.reconcileNow();
    await new Promise((r) => setTimeout(r, 400));
    await stack.hub.reconcileNow();
    await new Promise((r) => setTimeout(r, 400));
  };
  const handedOver = (ref: string) =>
    waitFor(async () => {
      await stack.hub.reconcileNow();
      const c = await caseOf(ref);
      return c?.partnerRef ? c : null;
    }, 15_000, 100, `${ref} handed over`);

  const refs = { twenty: 'in_rem20', fifteen: 'in_rem15', three: 'in_rem03' };

  it('holds NL consumer invoices without a reminder; a reported date moves the gate; checks, errors and the sync log', async () => {
    const created = Math.floor(FAILED / 1000);
    for (const [k, invoice] of Object.entries(refs)) {
      const f = { invoice, customer: `cus_rem_${k}`, amount: 20000, created, nextPaymentAttempt: null, failureCode: 'insufficient_funds', country: 'NL' };
      // Delivered now (the signature's age is checked against the hub's clock), about a failure 25 days ago.
      expect((await stack.sendStripe('acme', stripeEvents.paymentFailed(f), { timestamp: Math.floor(T0 / 1000) })).status).toBe(200);
    }
    for (const ref of Object.values(refs)) {
      await waitFor(async () => (await stack.get(`/v1/invoices/${ref}`)).body?.status === 'pending_handover', 15_000, 100, `${ref} pending`);
    }
    // No reminder reported and no dunning day declared: no evidence of a letter, so they wait
    // (25 days after the failure, long past the merchant's hand-over date).
    await at('2026-01-02T15:00:01Z');
    for (const ref of Object.values(refs)) expect(await caseOf(ref)).toBeNull();
    // A letter before the invoice fell due (here: its failed charge on 8 December) starts no term.
    expect(await post(refs.three, { sentAt: '2025-12-07' })).toMatchObject({ status: 422, body: { error: { code: 'letter_before_due_date', message: expect.stringContaining("before the invoice's due date 2025-12-08") } } });

    // Bad requests first: nothing changes.
    expect(await post(refs.three, {})).toMatchObject({ status: 400, body: { error: { code: 'bad_request', message: expect.stringContaining('sentAt is required') } } });
    expect(await post(refs.three, { sentAt: 'last tuesday' })).toMatchObject({ status: 400, body: { error: { message: expect.stringContaining('not an ISO 8601') } } });
    expect(await post(refs.three, { sentAt: '2025-02-30' })).toMatchObject({ status: 400, body: { error: { message: expect.stringContaining('not a valid date') } } });
    expect(await post(refs.three, { sentAt: '2026-01-03T09:00:00Z' })).toMatchObject({ status: 400, body: { error: { message: expect.stringContaining('in the future') } } });
    expect(await post(refs.three, { sentAt: daysAgo(3), extra: 1 })).toMatchObject({ status: 400 });
    expect(await post(refs.three, 'not json')).toMatchObject({ status: 400 });
    expect(await post('in_nosuchinvoice', { sentAt: daysAgo(3) })).toMatchObject({ status: 404 });
    expect(await post(refs.three, { sentAt: daysAgo(3) }, 'globex')).toMatchObject({ status: 404, body: { error: { code: 'not_found' } } });

    // 20 days back (Sat 13 Dec): delivered Wed 17 Dec, term 18–31 Dec: handed over now.
    const twenty = await post(refs.twenty, { sentAt: daysAgo(20) });
    expect(twenty).toMatchObject({ status: 200, body: { sentAt: '2025-12-13T15:00:00.000Z', noticeEndsAt: '2026-01-01T00:00:00.000Z', handoverCheckAt: '2026-01-02T15:00:01.000Z' } });
    const c20 = await handedOver(refs.twenty);
    expect(stack.sim.case(c20.partnerRef).collectionCosts).toMatchObject({ value: 4000, currency: 'EUR', basis: expect.stringContaining('WIK') });

    // 15 days back (Thu 18 Dec): delivered Sat 20 Dec, term 21 Dec–3 Jan; the 3rd is a Saturday, so
    // the term runs on to Monday 5 Jan (Algemene termijnenwet art. 1): goes on 6 January.
    const fifteen = await post(refs.fifteen, { sentAt: daysAgo(15) });
    expect(fifteen).toMatchObject({ status: 200, body: { noticeEndsAt: '2026-01-06T00:00:00.000Z', handoverCheckAt: '2026-01-06T00:00:00.000Z', invoice: { status: 'pending_handover' } } });
    // 3 days back (Tue 30 Dec), as a plain date: New Year's Day is not counted, so delivered Fri 2 Jan,
    // term 3–16 Jan: goes on 17 January (without the holiday it would have gone on the 16th).
    const three = await post(refs.three, { sentAt: '2025-12-30' });
    expect(three).toMatchObject({ status: 200, body: { sentAt: '2025-12-30T00:00:00.000Z', noticeEndsAt: '2026-01-17T00:00:00.000Z' } });

    await at('2026-01-05T23:59:00Z');
    expect(await caseOf(refs.fifteen)).toBeNull();
    expect(await caseOf(refs.three)).toBeNull();

    await at('2026-01-06T00:00:01Z');
    await handedOver(refs.fifteen);
    expect(await caseOf(refs.three)).toBeNull();

    await at('2026-01-16T23:00:00Z');
    expect(await caseOf(refs.three)).toBeNull();
    await at('2026-01-17T00:00:01Z');
    await handedOver(refs.three);

    // Handed over: the reminder date no longer matters.
    expect(await post(refs.twenty, { sentAt: daysAgo(25) })).toMatchObject({ status: 409, body: { error: { code: 'already_handed_over' } } });

    // On the timeline and in the sync log, like the other merchant actions.
    const inv = (await stack.get(`/v1/invoices/${refs.three}`)).body;
    expect(inv.timeline).toContainEqual(expect.objectContaining({ status: 'reminder_sent', source: 'merchant' }));
    const log = (await stack.get(`/v1/sync-log?invoice=${refs.three}&direction=in`)).body.data as { party: string; operation: string; outcome: string; summary: string }[];
    expect(log).toContainEqual(expect.objectContaining({ party: 'merchant', operation: 'POST /v1/invoices/:ref/reminder', outcome: 'ok', summary: expect.stringContaining('2026-01-17T00:00:00.000Z') }));
  }, 90_000);
});
