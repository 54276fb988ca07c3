/**
 * The payment-behaviour profile (src/profile/compute.ts) from scripted histories: one history per
 * flag (it turns on, with its why and facts, and stays off just below its threshold), the counts of
 * each window, and the edges of every window — an event exactly 3, 6 or 12 months old is outside
 * the window, one a day younger is inside.
 */
import {
  BEHAVIOUR_DEFAULTS,
  addMonths,
  computeProfile,
  flagSet,
  monthsBefore,
  type BehaviourThresholds,
  type ProfileFacts,
  type ProfileHistoryFact,
  type ProfileInvoiceFact,
} from '../../src/profile/compute';
import { thresholdsOf } from '../../src/profile/profile';
import { policySchema } from '../../src/config/schema';

const NOW = new Date('2026-12-07T12:00:00.000Z');
const DAY = 86_400_000;
const ago = (days: number) => new Date(NOW.getTime() - days * DAY).toISOString();
const monthsAgo = (m: number, plusDays = 0) => new Date(monthsBefore(NOW, m).getTime() + plusDays * DAY).toISOString();

class Script {
  facts: ProfileFacts = { debtorId: 'dbt_1', invoices: [], cases: [], claims: [], history: [] };
  private id = 0;

  invoice(id: string, o: Partial<ProfileInvoiceFact> = {}): this {
    this.facts.invoices.push({
      id, ref: `in_${id}`, provider: 'stripe', currency: 'EUR', amountDue: 3000, amountPaid: 0, amountCollected: 0, status: 'open',
      failureCount: 0, failureReason: null, firstFailedAt: null, caseId: null, ...o,
    });
    return this;
  }

  kase(id: string, status = 'in_collection', partnerId = 'refagency'): this {
    this.facts.cases.push({ id, partnerId, partnerRef: `ref_${id}`, status, currency: 'EUR' });
    return this;
  }

  claim(id: string, caseId: string, invoiceId: string, status = 'in_collection'): this {
    this.facts.claims.push({ id, caseId, invoiceId, status });
    return this;
  }

  row(entity: string, entityId: string, status: string, at: string, o: Partial<ProfileHistoryFact> = {}): this {
    this.facts.history.push({ id: ++this.id, entity, entityId, status, reason: null, source: 'stripe', detail: null, occurredAt: at, ...o });
    return this;
  }

  failure(invoiceId: string, at: string, reason = 'insufficient_funds', final = false): this {
    return this.row('invoice', invoiceId, 'payment_failed', at, { reason, detail: { code: reason, final } });
  }

  profile(t: BehaviourThresholds = BEHAVIOUR_DEFAULTS) {
    return computeProfile(this.facts, t, NOW);
  }
}

const flag = (p: ReturnType<Script['profile']>, name: string) => p.flags.find((f) => f.name === name);

describe('window arithmetic', () => {
  it('goes back calendar months, the day clamped to the month', () => {
    expect(monthsBefore(new Date('2026-05-31T10:00:00Z'), 3).toISOString()).toBe('2026-02-28T10:00:00.000Z');
    expect(monthsBefore(new Date('2026-12-07T12:00:00Z'), 12).toISOString()).toBe('2025-12-07T12:00:00.000Z');
    expect(addMonths(new Date('2026-01-31T00:00:00Z'), 1).toISOString()).toBe('2026-02-28T00:00:00.000Z');
  });
});

describe('an empty history', () => {
  it('has zero counts, no current collection and no flags', () => {
    const p = new Script().invoice('a', { status: 'settled', amountPaid: 3000 }).profile();
    expect(p.flags).toEqual([]);
    expect(p.current).toEqual({ inCollection: false, partnerIds: [], openAmount: null, openAmounts: [], cases: [] });
    expect(p.windows['12m']).toMatchObject({ failures: { count: 0 }, recovered: { count: 0 }, handedOver: { count: 0 }, disputes: { count: 0 } });
    expect(p.recheckAt).toBeNull();
    expect(p.asOf).toBe(NOW.toISOString());
  });
});

describe('in_collection_now', () => {
  it('is on while a case is live, with the partner, the case and the open amount', () => {
    const s = new Script()
      .invoice('a', { status: 'in_collection', failureCount: 1, caseId: 'case_1', amountCollected: 1000 })
      .kase('case_1', 'in_collection')
      .claim('cl_1', 'case_1', 'a')
      .failure('a', ago(20), 'card_declined', true)
      .row('invoice', 'a', 'submitted', ago(10), { source: 'hub', detail: { partner: 'refagency', claimId: 'cl_1' } });
    const p = s.profile();
    expect(p.current).toMatchObject({ inCollection: true, partnerIds: ['refagency'], openAmount: { value: 2000, currency: 'EUR' } });
    const f = flag(p, 'in_collection_now')!;
    expect(f.on).toBe(true);
    expect(f.why).toBe('In collection now with refagency: 1 live case (case_1 in collection), EUR 20.00 open.');
    expect(f.facts).toMatchObject({ partnerIds: ['refagency'], cases: [{ id: 'case_1', partnerId: 'refagency', status: 'in_collection' }] });
    expect(p.windows['3m'].handedOver).toEqual({ count: 1, amounts: [{ value: 3000, currency: 'EUR' }] });
    // A state, not a window: nothing for time alone to turn off.
    expect(p.recheckAt).toBeNull();
  });

  it('is off once the case has ended', () => {
    const p = new Script().invoice('a', { status: 'paid', failureCount: 1, caseId: 'case_1', amountCollected: 3000 }).kase('case_1', 'paid').profile();
    expect(flag(p, 'in_collection_now')).toBeUndefined();
    expect(p.current.inCollection).toBe(false);
  });
});

describe('repeated_insufficient_funds', () => {
  const three = () =>
    new Script()
      .invoice('a', { failureCount: 2, status: 'open' })
      .invoice('b', { failureCount: 1, status: 'open', amountDue: 5000 })
      .failure('a', ago(100))
      .failure('a', ago(95))
      .failure('b', ago(30));

  it('is on at 3 insufficient-funds failures within 6 months, naming them', () => {
    const p = three().profile();
    const f = flag(p, 'repeated_insufficient_funds')!;
    expect(f.why).toBe(`3 payments failed for insufficient funds in the last 6 months (threshold 3), on 2 invoices; the last on ${ago(30).slice(0, 10)}.`);
    expect(f.facts).toMatchObject({ count: 3, threshold: 3, months: 6 });
    expect((f.facts.failures as unknown[]).length).toBe(3);
    expect(p.windows['6m'].failures).toEqual({ count: 3, amounts: [{ value: 8000, currency: 'EUR' }], byReason: { insufficient_funds: 3 } });
    expect(p.windows['3m'].failures).toMatchObject({ count: 1, byReason: { insufficient_funds: 1 } });
    // It turns off when the oldest of the three needed leaves the 6-month window.
    expect(p.recheckAt).toBe(addMonths(new Date(ago(100)), 6).toISOString());
  });

  it('is off at 2, and other reasons do not count', () => {
    const p = new Script().invoice('a', { failureCount: 3 }).failure('a', ago(100)).failure('a', ago(95)).failure('a', ago(30), 'card_declined').profile();
    expect(flag(p, 'repeated_insufficient_funds')).toBeUndefined();
    expect(p.windows['6m'].failures.byReason).toEqual({ insufficient_funds: 2, card_declined: 1 });
  });

  it('follows the merchant threshold (count and window)', () => {
    const t = thresholdsOf(policySchema.parse({ behaviour: { repeatedInsufficientFunds: { count: 2, months: 3 } } }));
    expect(t.repeatedInsufficientFunds).toEqual({ count: 2, months: 3 });
    expect(t.disputes).toEqual(BEHAVIOUR_DEFAULTS.disputes);
    const s = three();
    expect(flag(s.profile(t), 'repeated_insufficient_funds')).toBeUndefined(); // only one within 3 months
    s.failure('b', ago(10));
    expect(flag(s.profile(t), 'repeated_insufficient_funds')!.why).toMatch(/^2 payments failed for insufficient funds in the last 3 months \(threshold 2\)/);
  });

  it('does not count the PSP marking an invoice uncollectible as a payment attempt', () => {
    const s = three().row('invoice', 'b', 'payment_failed', ago(29), { reason: 'insufficient_funds', detail: { code: 'marked_uncollectible', final: true } });
    expect(s.profile().windows['6m'].failures.count).toBe(3);
  });
});

describe('broken_arrangement_12m', () => {
  /** A case of two claims: the agency agrees a plan for both, then reports the case back in collection. */
  const broken = (at: string) =>
    new Script()
      .invoice('a', { status: 'in_collection', failureCount: 1, caseId: 'case_1' })
      .invoice('b', { status: 'in_collection', failureCount: 1, caseId: 'case_1' })
      .kase('case_1', 'in_collection')
      .claim('cl_a', 'case_1', 'a')
      .claim('cl_b', 'case_1', 'b')
      .row('claim', 'cl_a', 'arrangement', new Date(new Date(at).getTime() - 20 * DAY).toISOString(), { source: 'refagency', detail: { arrangement: { installments: 3 } } })
      .row('claim', 'cl_b', 'arrangement', new Date(new Date(at).getTime() - 20 * DAY).toISOString(), { source: 'refagency', detail: { arrangement: { installments: 3 } } })
      .row('claim', 'cl_a', 'in_collection', at, { source: 'refagency' })
      .row('claim', 'cl_b', 'in_collection', at, { source: 'refagency' });

  it('is on when a plan goes back to collection, counted once per case', () => {
    const p = broken(ago(40)).profile();
    const f = flag(p, 'broken_arrangement_12m')!;
    expect(f.why).toBe(`Broke 1 payment arrangement in the last 12 months (threshold 1): case case_1 with refagency, agreed ${ago(60).slice(0, 10)}, back to in collection on ${ago(40).slice(0, 10)}.`);
    expect(f.facts).toMatchObject({ count: 1, threshold: 1, months: 12, arrangements: [{ caseId: 'case_1', partnerId: 'refagency', status: 'in_collection' }] });
    expect(p.windows['3m'].arrangements).toEqual({ agreed: 1, kept: 0, broken: 1 });
  });

  it('a plan paid off is kept, not broken', () => {
    const s = new Script()
      .invoice('a', { status: 'paid', failureCount: 1, caseId: 'case_1', amountCollected: 3000 })
      .kase('case_1', 'paid')
      .claim('cl_a', 'case_1', 'a', 'paid')
      .row('claim', 'cl_a', 'arrangement', ago(90), { source: 'refagency' })
      .row('claim', 'cl_a', 'partially_paid', ago(60), { source: 'refagency' })
      .row('claim', 'cl_a', 'paid', ago(30), { source: 'refagency', reason: 'paid_via_arrangement' })
      .row('invoice', 'a', 'partially_paid', ago(60), { source: 'refagency', detail: { amountCollected: { value: 1000, currency: 'EUR' } } })
      .row('invoice', 'a', 'paid', ago(30), { source: 'refagency', reason: 'paid_via_arrangement', detail: { amountCollected: { value: 3000, currency: 'EUR' } } });
    const p = s.profile();
    expect(flag(p, 'broken_arrangement_12m')).toBeUndefined();
    expect(p.windows['12m'].arrangements).toEqual({ agreed: 1, kept: 1, broken: 0 });
    expect(p.windows['12m'].collected).toEqual({ count: 1, amounts: [{ value: 3000, currency: 'EUR' }], byPartner: { refagency: 1 } });
    // Only the last instalment fell within one month.
    expect(p.windows['3m'].collected.amounts).toEqual([{ value: 3000, currency: 'EUR' }]);
  });

  it('a plan written off is broken; a claim resumed after a hold is not', () => {
    const off = new Script()
      .invoice('a', { status: 'uncollectible', failureCount: 1, caseId: 'case_1' })
      .kase('case_1', 'uncollectible')
      .claim('cl_a', 'case_1', 'a', 'uncollectible')
      .row('claim', 'cl_a', 'arrangement', ago(90), { source: 'refagency' })
      .row('claim', 'cl_a', 'uncollectible', ago(30), { source: 'refagency', reason: 'debtor_insolvent' })
      .row('invoice', 'a', 'uncollectible', ago(30), { source: 'refagency', reason: 'debtor_insolvent' })
      .profile();
    expect(off.windows['12m'].arrangements.broken).toBe(1);
    expect(off.windows['12m'].writtenOff).toEqual({ count: 1, amounts: [{ value: 3000, currency: 'EUR' }] });

    const resumed = new Script()
      .invoice('a', { status: 'in_collection', failureCount: 1, caseId: 'case_1' })
      .kase('case_1')
      .claim('cl_a', 'case_1', 'a')
      .row('claim', 'cl_a', 'arrangement', ago(90), { source: 'refagency' })
      .row('claim', 'cl_a', 'on_hold', ago(60), { source: 'refagency' })
      .row('claim', 'cl_a', 'in_collection', ago(30), { source: 'refagency' })
      .profile();
    expect(resumed.windows['12m'].arrangements).toEqual({ agreed: 1, kept: 0, broken: 0 });
    expect(flag(resumed, 'broken_arrangement_12m')).toBeUndefined();
  });

  it('follows the merchant threshold', () => {
    const t = thresholdsOf({ behaviour: { brokenArrangements: { count: 2 } } });
    expect(flag(broken(ago(40)).profile(t), 'broken_arrangement_12m')).toBeUndefined();
  });
});

describe('disputed_12m', () => {
  it('is on for a chargeback, and for a claim disputed with the partner; each invoice once', () => {
    const s = new Script()
      .invoice('a', { status: 'disputed', amountPaid: 3000 })
      .row('invoice', 'a', 'disputed', ago(50), { source: 'stripe' })
      .row('invoice', 'a', 'dispute_needs_response', ago(49), { source: 'stripe' })
      .row('invoice', 'a', 'disputed', ago(48), { source: 'stripe' });
    let p = s.profile();
    let f = flag(p, 'disputed_12m')!;
    expect(f.why).toBe(`Disputed 1 payment in the last 12 months (threshold 1): a chargeback at stripe on invoice in_a (${ago(50).slice(0, 10)}).`);
    expect(p.windows['12m'].disputes).toEqual({ count: 1, amounts: [{ value: 3000, currency: 'EUR' }], chargebacks: 1, withPartner: 0 });

    s.invoice('b', { status: 'disputed', failureCount: 1, caseId: 'case_1' })
      .kase('case_1', 'disputed')
      .claim('cl_b', 'case_1', 'b', 'disputed')
      .row('invoice', 'b', 'disputed', ago(10), { source: 'refagency' })
      .row('customer', 'cust_1', 'chargeback', ago(5), { source: 'stripe', reason: 'fraud_suspected' });
    p = s.profile();
    f = flag(p, 'disputed_12m')!;
    expect(f.facts).toMatchObject({ count: 3, threshold: 1, months: 12 });
    expect(f.why).toContain('disputed with refagency on invoice in_b');
    expect(p.windows['12m'].disputes).toMatchObject({ count: 3, chargebacks: 2, withPartner: 1 });
  });

  it('is off with none, and at a higher threshold', () => {
    const s = new Script().invoice('a', { status: 'disputed' }).row('invoice', 'a', 'disputed', ago(50));
    expect(flag(s.profile(thresholdsOf({ behaviour: { disputes: { count: 2 } } })), 'disputed_12m')).toBeUndefined();
    expect(flag(new Script().profile(), 'disputed_12m')).toBeUndefined();
  });
});

describe('recovered and handed over', () => {
  it('tells a PSP retry from a payment after the last attempt and one after the hand-over', () => {
    const p = new Script()
      .invoice('a', { status: 'recovered', amountPaid: 3000, failureCount: 1 })
      .invoice('b', { status: 'recovered', amountPaid: 2000, amountDue: 2000, failureCount: 1, provider: 'mollie' })
      .invoice('c', { status: 'paid', amountPaid: 1000, amountDue: 1000, failureCount: 1, caseId: 'case_1' })
      .kase('case_1', 'paid')
      .failure('a', ago(40), 'card_declined', false)
      .row('invoice', 'a', 'recovered', ago(39), { reason: 'paid_in_full' })
      .failure('b', ago(40), 'insufficient_funds', true)
      .row('invoice', 'b', 'pending_handover', ago(40), { source: 'mollie' })
      .row('invoice', 'b', 'recovered', ago(35), { source: 'mollie', reason: 'paid_in_full' })
      .failure('c', ago(40), 'insufficient_funds', true)
      .row('invoice', 'c', 'submitted', ago(30), { source: 'hub', detail: { partner: 'refagency' } })
      .row('invoice', 'c', 'submitted', ago(29), { source: 'refagency' })
      .row('invoice', 'c', 'paid', ago(20), { reason: 'paid_to_merchant' })
      .profile();
    expect(p.windows['3m'].recovered).toEqual({
      count: 3, amounts: [{ value: 6000, currency: 'EUR' }], byPsp: { stripe: 2, mollie: 1 }, byRetry: 1, afterFinalFailure: 1, afterHandover: 1,
    });
    expect(p.windows['3m'].handedOver).toEqual({ count: 1, amounts: [{ value: 1000, currency: 'EUR' }] });
    expect(p.windows['3m'].failures.byReason).toEqual({ card_declined: 1, insufficient_funds: 2 });
  });

  it('counts an imported invoice whose failures predate the history once, at its first failure', () => {
    const p = new Script().invoice('a', { failureCount: 4, failureReason: 'insufficient_funds', firstFailedAt: ago(10), status: 'pending_handover' }).profile();
    expect(p.windows['3m'].failures).toMatchObject({ count: 1, byReason: { insufficient_funds: 1 } });
    expect(p.current.openAmount).toEqual({ value: 3000, currency: 'EUR' });
  });
});

describe('the edges of each window', () => {
  it.each([3, 6, 12] as const)('an event exactly %i months old is outside that window; one a day younger is inside', (m) => {
    const kinds = (at: string) =>
      new Script()
        .invoice('a', { status: 'disputed', failureCount: 1 })
        .kase('case_1', 'paid')
        .invoice('b', { status: 'recovered', failureCount: 1, amountPaid: 3000 })
        .failure('a', at)
        .row('invoice', 'a', 'disputed', at, { source: 'stripe' })
        .row('invoice', 'b', 'recovered', at, { reason: 'paid_in_full' })
        .profile();
    const name = `${m}m` as const;
    const exactly = kinds(monthsAgo(m));
    expect(exactly.windows[name]).toMatchObject({ failures: { count: 0 }, disputes: { count: 0 }, recovered: { count: 0 } });
    expect(exactly.windows[name].since).toBe(monthsAgo(m));
    const inside = kinds(monthsAgo(m, 1));
    expect(inside.windows[name]).toMatchObject({ failures: { count: 1 }, disputes: { count: 1 }, recovered: { count: 1 } });
    // A shorter window never holds what a longer one does not.
    for (const shorter of [3, 6, 12].filter((x) => x < m)) expect(inside.windows[`${shorter}m` as '3m'].failures.count).toBe(0);
  });

  it('the 12-month flags: a broken plan or a dispute exactly 12 months old no longer counts; a day younger does', () => {
    const dispute = (at: string) => new Script().invoice('a', { status: 'disputed' }).row('invoice', 'a', 'disputed', at).profile();
    expect(flagSet(dispute(monthsAgo(12)))).toEqual([]);
    expect(flagSet(dispute(monthsAgo(12, 1)))).toEqual(['disputed_12m']);
    const plan = (at: string) =>
      new Script()
        .invoice('a', { status: 'in_collection', caseId: 'case_1' })
        .kase('case_1', 'paid')
        .claim('cl_a', 'case_1', 'a')
        .row('claim', 'cl_a', 'arrangement', new Date(new Date(at).getTime() - DAY).toISOString(), { source: 'refagency' })
        .row('claim', 'cl_a', 'in_collection', at, { source: 'refagency' })
        .profile();
    expect(flagSet(plan(monthsAgo(12)))).toEqual([]);
    expect(flagSet(plan(monthsAgo(12, 1)))).toEqual(['broken_arrangement_12m']);
  });

  it('repeated_insufficient_funds: the third failure exactly 6 months old drops the flag', () => {
    const s = (oldest: string) => new Script().invoice('a', { failureCount: 3 }).failure('a', oldest).failure('a', ago(20)).failure('a', ago(10)).profile();
    expect(flagSet(s(monthsAgo(6)))).toEqual([]);
    const on = s(monthsAgo(6, 1));
    expect(flagSet(on)).toEqual(['repeated_insufficient_funds']);
    // And it says when time alone turns it off: when that failure is exactly 6 months old.
    expect(on.recheckAt).toBe(addMonths(new Date(monthsAgo(6, 1)), 6).toISOString());
  });
});

describe('flags together', () => {
  it('lists only the flags that hold, in a fixed order, each with a why', () => {
    const p = new Script()
      .invoice('a', { status: 'in_collection', failureCount: 3, caseId: 'case_1' })
      .kase('case_1')
      .claim('cl_a', 'case_1', 'a')
      .failure('a', ago(50))
      .failure('a', ago(40))
      .failure('a', ago(30), 'insufficient_funds', true)
      .row('claim', 'cl_a', 'arrangement', ago(20), { source: 'refagency' })
      .row('claim', 'cl_a', 'in_collection', ago(5), { source: 'refagency' })
      .profile();
    expect(p.flags.map((f) => f.name)).toEqual(['in_collection_now', 'broken_arrangement_12m', 'repeated_insufficient_funds']);
    for (const f of p.flags) {
      expect(f.on).toBe(true);
      expect(f.why.length).toBeGreaterThan(20);
    }
    expect(flagSet(p)).toEqual(['broken_arrangement_12m', 'in_collection_now', 'repeated_insufficient_funds']);
  });
});

describe('policy.behaviour', () => {
  it('is optional, fills defaults per key, and refuses unknown keys and other windows', () => {
    expect(policySchema.parse({}).behaviour).toBeUndefined();
    expect(thresholdsOf(policySchema.parse({}))).toEqual(BEHAVIOUR_DEFAULTS);
    expect(policySchema.parse({ behaviour: { repeatedInsufficientFunds: { count: 5 } } }).behaviour).toEqual({ repeatedInsufficientFunds: { count: 5, months: 6 } });
    expect(() => policySchema.parse({ behaviour: { repeatedInsufficientFunds: { months: 4 } } })).toThrow();
    expect(() => policySchema.parse({ behaviour: { score: 3 } })).toThrow();
    expect(() => policySchema.parse({ behaviour: { disputes: { count: 0 } } })).toThrow();
  });
});
