/**
 * Country rules at their boundaries: the WIK scale at each band edge and at its minimum and
 * maximum (test vectors from the collections reference, §C.1), the Wki cap for small recurring
 * claims, the VAT setting, the DE fee table in force since 1 June 2025 (§ 13 RVG, KostBRÄG
 * 2025), and the notice terms with public holidays: NL (HR 2016:2704: delivery on the second
 * day after dispatch, Sunday, Monday and holidays not counted, the term starting the day after;
 * Algemene termijnenwet art. 1 and 3) and BE (Book XIX WER: the third working day after posting).
 */
import fc from 'fast-check';
import { collectionCosts, isHoliday, loadCountryRules, noticeEndsAt, ruleFor, wikCosts, rvgBaseFee, deRvgCosts, beXixCosts, type CountryRule } from '../../src/policy/country-rules';
import { DAY_MS } from '../../src/domain/clock';

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
    expect(collectionCosts(nl, eur(500), { currency: 'EUR' })).toEqual({ value: 7500, vat: 0, currency: 'EUR', basis: expect.stringContaining('WIK') });
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

  it('DE: 0.9 of the RVG fee for consumers, EUR 30.50 up to EUR 50 (uncontested), from the table in force since 1 June 2025', () => {
    const de = ruleFor(rules, 'DE', 'consumer')!;
    const c = de.costs as Extract<NonNullable<CountryRule['costs']>, { scale: 'de_rvg' }>;
    expect(c.table.inForceSince).toBe('2025-06-01');
    expect(rvgBaseFee(eur(50), c.table, true)).toBe(eur(30.5));
    expect(rvgBaseFee(eur(50), c.table, false)).toBe(eur(51.5));
    expect(rvgBaseFee(eur(50.01), c.table, true)).toBe(eur(51.5));
    expect(collectionCosts(de, eur(50), { currency: 'EUR' })!.value).toBe(eur(27.45));
    expect(collectionCosts(de, eur(400), { currency: 'EUR' })!.value).toBe(eur(46.35));
    // Past the old encoded table (EUR 25,000) the § 13 formula goes on: EUR 30,000 → 1,013.
    expect(collectionCosts(de, eur(30000), { currency: 'EUR' })!.value).toBe(eur(911.7));
    expect(collectionCosts(de, eur(400), { currency: 'EUR' })!.basis).toMatch(/in force since 2025-06-01.*unverified: the 0\.9 rate/);
  });

  // Anlage 2 RVG as amended by KostBRÄG 2025 (in force 1 June 2025), value → 1.0 fee in EUR.
  it.each([
    [500, 51.5], [1000, 93], [1500, 134.5], [2000, 176], [3000, 235.5], [4000, 295], [5000, 354.5], [6000, 414], [7000, 473.5],
    [8000, 533], [9000, 592.5], [10000, 652], [13000, 707], [16000, 762], [19000, 817], [22000, 872], [25000, 927], [30000, 1013],
    [50000, 1357], [65000, 1456.5], [80000, 1556], [200000, 2352], [230000, 2492],
  ])('the RVG table (1 June 2025): value EUR %p → fee EUR %p', (value, fee) => {
    const c = ruleFor(rules, 'DE', 'consumer')!.costs as Extract<NonNullable<CountryRule['costs']>, { scale: 'de_rvg' }>;
    expect(rvgBaseFee(eur(value), c.table)).toBe(eur(fee));
    // One cent more starts the next step.
    if (value >= 500) expect(rvgBaseFee(eur(value) + 1, c.table)).toBeGreaterThan(eur(fee));
  });

  it('the VAT setting (creditor cannot deduct VAT): WIK costs plus 21 % on top of the capped amount, with the VAT part kept apart', () => {
    expect(collectionCosts(nl, eur(500), { currency: 'EUR', includeVat: true })).toEqual({ value: eur(90.75), vat: eur(15.75), currency: 'EUR', basis: expect.stringMatching(/plus 21 % VAT.*unverified/) });
    expect(collectionCosts(nl, eur(100), { currency: 'EUR', includeVat: true })!.value).toBe(eur(48.4));
    // The Wki cap applies before VAT.
    expect(collectionCosts(nl, eur(100), { currency: 'EUR', smallestClaim: eur(100), earlierCostsInWindow: eur(120), includeVat: true })).toMatchObject({ value: eur(24.2), vat: eur(4.2) });
    expect(collectionCosts(nl, eur(500), { currency: 'EUR', includeVat: false })).toMatchObject({ value: eur(75), vat: 0 });
    // No VAT rule for a scale: nothing added, and the basis says so.
    const de = collectionCosts(ruleFor(rules, 'DE', 'consumer'), eur(400), { currency: 'EUR', includeVat: true })!;
    expect(de).toMatchObject({ value: eur(46.35), vat: 0, basis: expect.stringContaining('no VAT added') });
  });

  it('property: costs never exceed the scale maximum, and under the Wki cap never exceed what is left of EUR 140', () => {
    fc.assert(fc.property(fc.integer({ min: 1, max: 300_000_000 }), fc.integer({ min: 0, max: 20000 }), fc.boolean(), (principal, earlier, vat) => {
      const c = collectionCosts(nl, principal, { currency: 'EUR', smallestClaim: principal, earlierCostsInWindow: earlier, includeVat: vat })!;
      const before = c.value - c.vat;
      expect(before).toBeGreaterThanOrEqual(0);
      expect(before).toBeLessThanOrEqual(wik.maximum);
      if (principal < 26667) expect(before).toBeLessThanOrEqual(Math.max(0, 14000 - earlier));
      expect(c.vat).toBe(vat ? Math.floor(before * 0.21 + 0.5 + 1e-9) : 0);
    }));
  });

  it('business debtors follow their own rule; no rule or another currency means no statutory costs', () => {
    expect(ruleFor(rules, 'NL', 'business')!.notice).toBeUndefined();
    expect(collectionCosts(ruleFor(rules, 'DE', 'business'), eur(400), { currency: 'EUR' })!.value).toBe(eur(66.95));
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

/** The NL rule without its holidays: what the hub did before (to show each holiday moves the date). */
const nlNoHolidays: CountryRule = { ...nl, notice: { ...nl.notice!, skipHolidays: false, termEndsOnWorkingDay: false } };
const be = ruleFor(rules, 'BE', 'consumer')!;
const handover = (rule: CountryRule, sent: string) => noticeEndsAt(rule, new Date(`${sent}T12:00:00Z`))!.toISOString().slice(0, 10);

describe('public holidays in the notice terms (date-holidays; Algemene termijnenwet; BE law of 4 Jan 1974)', () => {
  it('the NL calendar: the Algemene termijnenwet holidays, King’s Day on 26 April when the 27th is a Sunday, and 5 May', () => {
    const h = nl.holidays!;
    const is = (d: string) => isHoliday(h, new Date(`${d}T00:00:00Z`));
    for (const d of ['2025-12-25', '2025-12-26', '2026-01-01', '2026-04-06', '2026-05-14', '2026-05-25', '2026-04-27', '2025-04-26', '2027-04-27', '2026-05-05', '2025-05-05']) expect([d, is(d)]).toEqual([d, true]);
    // 27 April 2025 is a Sunday: King's Day moved to the 26th. Good Friday is not an Atw holiday.
    for (const d of ['2025-04-27', '2026-04-03', '2026-04-26', '2025-12-24', '2025-12-31']) expect([d, is(d)]).toEqual([d, false]);
  });

  it('a letter posted on 24 Dec 2025 is delivered on 30 Dec (Christmas, Sunday and Monday not counted): hand-over from 14 Jan 2026, not 10 Jan', () => {
    expect(handover(nlNoHolidays, '2025-12-24')).toBe('2026-01-10');
    expect(handover(nl, '2025-12-24')).toBe('2026-01-14');
  });

  it('New Year: posted Tue 30 Dec 2025, 1 January not counted: delivered Fri 2 Jan, hand-over from Sat 17 Jan', () => {
    expect(handover(nlNoHolidays, '2025-12-30')).toBe('2026-01-16');
    expect(handover(nl, '2025-12-30')).toBe('2026-01-17');
  });

  it('Christmas at the end of the term: a last day on 25 Dec 2026 runs on past Boxing Day and the Sunday (Atw art. 1) to Mon 28 Dec', () => {
    expect(handover(nlNoHolidays, '2026-12-09')).toBe('2026-12-26');
    expect(handover(nl, '2026-12-09')).toBe('2026-12-29');
  });

  it('Easter Monday at the end of the term: a last day on Sat 4 Apr 2026 runs past Sunday and Easter Monday to Tue 7 Apr', () => {
    expect(handover(nl, '2026-03-19')).toBe('2026-04-08');
    expect(handover({ ...nl, holidays: { ...nl.holidays!, types: ['observance'], extra: [] } }, '2026-03-19')).toBe('2026-04-07');
  });

  it('Ascension Day (Thu 14 May 2026) is not a delivery day', () => {
    expect(handover(nlNoHolidays, '2026-05-12')).toBe('2026-05-29');
    expect(handover(nl, '2026-05-12')).toBe('2026-05-30');
  });

  it("King's Day: 26 April 2025 (the 27th a Sunday) and 27 April 2027 are not delivery days", () => {
    expect(handover(nlNoHolidays, '2025-04-24')).toBe('2025-05-11');
    expect(handover(nl, '2025-04-24')).toBe('2025-05-14');
    expect(handover(nlNoHolidays, '2027-04-23')).toBe('2027-05-12');
    expect(handover(nl, '2027-04-23')).toBe('2027-05-13');
  });

  it('BE: Christmas is not a working day (26 December is); New Year neither', () => {
    // Posted Tue 23 Dec 2025: Wed 24 (1), Fri 26 (2), Mon 29 (3): 14 days from 29 Dec, hand-over from 12 Jan.
    expect(handover(be, '2025-12-23')).toBe('2026-01-12');
    expect(handover({ ...be, notice: { ...be.notice!, skipHolidays: false } }, '2025-12-23')).toBe('2026-01-09');
    // Posted Wed 31 Dec 2025: Fri 2 (1), Mon 5 (2), Tue 6 (3): hand-over from Tue 20 Jan.
    expect(handover(be, '2025-12-31')).toBe('2026-01-20');
  });

  it('property (NL): the term never ends on a Saturday, Sunday or holiday, lasts at least the letter days, and a later letter never ends earlier', () => {
    const day = fc.integer({ min: Date.UTC(2024, 0, 1) / DAY_MS, max: Date.UTC(2031, 0, 1) / DAY_MS }).map((d) => new Date(d * DAY_MS + 9 * 3600_000));
    fc.assert(fc.property(day, fc.integer({ min: 0, max: 30 }), (sent, later) => {
      const end = noticeEndsAt(nl, sent)!;
      const last = new Date(end.getTime() - DAY_MS);
      expect([last.toISOString(), last.getUTCDay() === 0 || last.getUTCDay() === 6 || isHoliday(nl.holidays!, last)]).toEqual([last.toISOString(), false]);
      // Dispatch day, at least 2 delivery days, 14 term days: the hand-over is at least 17 days after the dispatch day.
      expect(end.getTime() - Date.UTC(sent.getUTCFullYear(), sent.getUTCMonth(), sent.getUTCDate())).toBeGreaterThanOrEqual(17 * DAY_MS);
      expect(noticeEndsAt(nl, new Date(sent.getTime() + later * DAY_MS))!.getTime()).toBeGreaterThanOrEqual(end.getTime());
    }), { numRuns: 500 });
  });

  it('property (BE): the term starts on a working day (not Saturday, Sunday or a public holiday)', () => {
    const day = fc.integer({ min: Date.UTC(2024, 0, 1) / DAY_MS, max: Date.UTC(2031, 0, 1) / DAY_MS }).map((d) => new Date(d * DAY_MS));
    fc.assert(fc.property(day, (sent) => {
      const start = new Date(noticeEndsAt(be, sent)!.getTime() - 14 * DAY_MS);
      expect([start.toISOString(), start.getUTCDay() === 0 || start.getUTCDay() === 6 || isHoliday(be.holidays!, start)]).toEqual([start.toISOString(), false]);
    }), { numRuns: 300 });
  });
});

describe('the rules file', () => {
  it('every rule names its sources', () => {
    for (const r of rules) {
      for (const part of [r.notice, r.costs, r.recurringCap, r.holidays]) if (part) expect(part.sources.length).toBeGreaterThan(0);
    }
  });

  it('an unknown holiday calendar or rule stops loading (it would count no holidays at all)', () => {
    const fs = require('node:fs') as typeof import('node:fs');
    const os = require('node:os') as typeof import('node:os');
    const path = require('node:path') as typeof import('node:path');
    const write = (text: string) => {
      const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'cr-')), 'rules.yaml');
      fs.writeFileSync(f, text);
      return f;
    };
    const rule = (holidays: string) => `rules:\n  - country: NL\n    debtorType: consumer\n    notice: { letter: x, days: 14, deliveryDays: 2, skipHolidays: true, startsNextDay: true, sources: [s] }\n${holidays}`;
    expect(() => loadCountryRules(write(rule('    holidays: { calendar: XX, types: [public], sources: [s] }\n')))).toThrow(/no calendar "XX"/);
    expect(() => loadCountryRules(write(rule('    holidays: { calendar: NL, types: [public], extra: [{ rule: "not a rule", name: x }], sources: [s] }\n')))).toThrow(/not a date-holidays rule/);
    expect(() => loadCountryRules(write(rule('')))).toThrow(/names no holidays calendar/);
  });
});
