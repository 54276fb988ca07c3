/**
 * Country rules at their boundaries: the WIK scale at each band edge and at its minimum and
 * maximum (test vectors from shared/reference/collections.md §C.1), the Wki cap for small
 * recurring claims, and the NL 14-day letter gate (HR 2016:2704: delivery on the second day
 * after dispatch, Sunday and Monday not counted, the term starting the day after).
 */
import { collectionCosts, loadCountryRules, noticeEndsAt, ruleFor, wikCosts, rvgBaseFee, beXixCosts, type CountryRule } from '../../src/policy/country-rules';

const rules = loadCountryRules();
const nl = ruleFor(rules, 'NL', 'consumer')!;
const wik = nl.costs as Extract<NonNullable<CountryRule['costs']>, { scale: 'wik' }>;
const eur = (x: number) => Math.round(x * 100);

describe('the WIK scale (Stb. 2012/141 art. 2)', () => {
  it.each([
    [10, 40], [100, 40], [266.67, 40], [266.66, 40], [300, 45], [500, 75],
    [2500, 375], [2500.01, 375], [3000, 425], [5000, 625], [5000.01, 625], [10000, 875],
    [10100, 876], [200000, 2775], [200100, 2775.5], [1000000, 6775], [2000000, 6775],
  ])('principal EUR %p costs EUR %p', (principal, costs) => {
    expect(wikCosts(eur(principal), wik)).toBe(eur(costs));
  });

  it('never goes below EUR 40 nor above EUR 6,775', () => {
    expect(wikCosts(1, wik)).toBe(4000);
    expect(wikCosts(eur(5_000_000), wik)).toBe(677500);
  });
});

describe('collection costs per country', () => {
  it('NL consumer: WIK on the principal, with its basis', () => {
    expect(collectionCosts(nl, eur(500), { currency: 'EUR' })).toEqual({ value: 7500, currency: 'EUR', basis: expect.stringContaining('WIK') });
  });

  it('NL Wki: a recurring claim under EUR 266.67 is capped at EUR 140 per window, counting what was charged already', () => {
    expect(collectionCosts(nl, eur(2000), { currency: 'EUR', smallestClaim: eur(49), earlierCostsInWindow: 0 })!.value).toBe(eur(140));
    expect(collectionCosts(nl, eur(2000), { currency: 'EUR', smallestClaim: eur(49), earlierCostsInWindow: eur(120) })!.value).toBe(eur(20));
    expect(collectionCosts(nl, eur(100), { currency: 'EUR', smallestClaim: eur(49), earlierCostsInWindow: eur(140) })!.value).toBe(0);
    // At EUR 266.67 the cap no longer applies.
    expect(collectionCosts(nl, eur(2000), { currency: 'EUR', smallestClaim: eur(266.67), earlierCostsInWindow: eur(140) })!.value).toBe(eur(300));
  });

  it('BE consumer: the Book XIX damages caps at their edges, marked unverified', () => {
    const be = ruleFor(rules, 'BE', 'consumer')!;
    const c = be.costs as Extract<NonNullable<CountryRule['costs']>, { scale: 'be_xix' }>;
    expect(beXixCosts(eur(150), c)).toBe(eur(20));
    expect(beXixCosts(eur(150.01), c)).toBe(eur(30));
    expect(beXixCosts(eur(500), c)).toBe(eur(65));
    expect(beXixCosts(eur(1000), c)).toBe(eur(90));
    expect(beXixCosts(eur(100000), c)).toBe(eur(2000));
    expect(collectionCosts(be, eur(500), { currency: 'EUR' })!.basis).toMatch(/unverified/);
  });

  it('DE: 0.9 of the RVG fee for consumers, EUR 30 base up to EUR 50; nothing computed past the encoded table', () => {
    const de = ruleFor(rules, 'DE', 'consumer')!;
    expect(rvgBaseFee(eur(50))).toBe(eur(30));
    expect(rvgBaseFee(eur(50.01))).toBe(eur(49));
    expect(collectionCosts(de, eur(50), { currency: 'EUR' })!.value).toBe(eur(27));
    expect(collectionCosts(de, eur(400), { currency: 'EUR' })!.value).toBe(eur(44.1));
    expect(collectionCosts(de, eur(30000), { currency: 'EUR' })).toBeNull();
  });

  it('business debtors follow their own rule; no rule or another currency means no statutory costs', () => {
    expect(ruleFor(rules, 'NL', 'business')!.notice).toBeUndefined();
    expect(collectionCosts(ruleFor(rules, 'DE', 'business'), eur(400), { currency: 'EUR' })!.value).toBe(eur(63.7));
    expect(collectionCosts(ruleFor(rules, 'FR', 'consumer'), eur(400), { currency: 'EUR' })).toBeNull();
    expect(collectionCosts(nl, eur(400), { currency: 'GBP' })).toBeNull();
  });
});

describe('the NL 14-day letter gate', () => {
  it('a letter sent on Friday is delivered on Tuesday (Sunday and Monday not counted); the term runs Wednesday to Tuesday two weeks on', () => {
    // Friday 2 January 2026.
    expect(noticeEndsAt(nl, new Date('2026-01-02T15:00:00Z'))!.toISOString()).toBe('2026-01-21T00:00:00.000Z');
  });

  it('a letter sent on Tuesday is delivered Thursday; hand-over from the 15th day after delivery', () => {
    expect(noticeEndsAt(nl, new Date('2026-01-06T09:00:00Z'))!.toISOString()).toBe('2026-01-23T00:00:00.000Z');
  });

  it('BE: 14 calendar days from the third working day after posting', () => {
    const be = ruleFor(rules, 'BE', 'consumer')!;
    // Thursday 1 Jan 2026 → Fri 2 (1), Mon 5 (2), Tue 6 (3): term Tue 6 .. Mon 19, hand over from Tue 20.
    expect(noticeEndsAt(be, new Date('2026-01-01T10:00:00Z'))!.toISOString()).toBe('2026-01-20T00:00:00.000Z');
  });

  it('no notice rule: no gate', () => {
    expect(noticeEndsAt(ruleFor(rules, 'DE', 'consumer'), new Date())).toBeNull();
  });
});

describe('the rules file', () => {
  it('every rule names its sources', () => {
    for (const r of rules) {
      for (const part of [r.notice, r.costs, r.recurringCap]) if (part) expect(part.sources.length).toBeGreaterThan(0);
    }
  });
});
