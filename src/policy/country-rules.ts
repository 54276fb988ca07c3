/**
 * Debtor-process rules by merchant country and debtor type (issues 4 and 12): the notice a
 * debtor must have had before hand-over (counted with the country's public holidays, from the
 * `date-holidays` library), and the statutory collection costs the agency may charge, computed
 * from mappings/policy/country-rules.yaml (data with sources). Pure functions: dates and rules
 * in, dates and amounts out. Whether a letter was sent at all is src/policy/letter-evidence.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import Holidays from 'date-holidays';
import { DEBTOR_TYPES, type DebtorType } from '../domain/types';
import { DAY_MS } from '../domain/clock';

const sources = z.array(z.string()).min(1, 'every rule needs a source');

const noticeSchema = z.object({
  /** What the letter is called where the law names it (shown in a case's cost basis). */
  letter: z.string().min(1),
  days: z.number().int().positive(),
  deliveryDays: z.number().int().min(0),
  skipWeekdays: z.array(z.number().int().min(0).max(6)).default([]),
  /** Public holidays (the rule's `holidays` calendar) are not counted for delivery either. */
  skipHolidays: z.boolean().default(false),
  startsNextDay: z.boolean(),
  /** A term whose last day is a Saturday, Sunday or public holiday runs on to the next day that is none (NL: Algemene termijnenwet art. 1). */
  termEndsOnWorkingDay: z.boolean().default(false),
  sources,
});

/** The public holidays that count for a rule: a date-holidays calendar, the types it takes, and days the law adds. */
const holidaysSchema = z.object({
  calendar: z.string().regex(/^[A-Z]{2}$/),
  types: z.array(z.enum(['public', 'bank', 'school', 'optional', 'observance'])).min(1),
  /** date-holidays rules (e.g. `05-05`) added as holidays, with their name. */
  extra: z.array(z.object({ rule: z.string().min(1), name: z.string().min(1) })).default([]),
  sources,
});

const band = z.object({ upTo: z.number().int().positive().nullable(), rate: z.number().positive().max(1) });

/** VAT on the costs for a creditor that cannot deduct it (a merchant setting, `policy.costsIncludeVat`). */
const vatSchema = z.object({ rate: z.number().positive().max(1), verified: z.boolean().default(true), unverifiedBecause: z.string().optional(), sources });

/**
 * The RVG value-fee table (§ 13 Abs. 1 RVG) as its own formula: a first step, then a fee added
 * per started `every` of value up to each `upTo`. Amounts in cents; dated by `inForceSince`.
 */
const rvgTableSchema = z.object({
  inForceSince: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  first: z.object({ upTo: z.number().int().positive(), fee: z.number().int().positive() }),
  steps: z.array(z.object({ upTo: z.number().int().positive().nullable(), every: z.number().int().positive(), add: z.number().int().positive() })).min(1),
  /** § 13 Abs. 2 RVG: the fee for an uncontested collection of a small value. */
  smallUncontested: z.object({ upTo: z.number().int().positive(), fee: z.number().int().positive() }).optional(),
  minimumFee: z.number().int().positive(),
  sources,
});

const costsSchema = z.discriminatedUnion('scale', [
  z.object({ scale: z.literal('wik'), minimum: z.number().int(), maximum: z.number().int(), bands: z.array(band).min(1), vat: vatSchema.optional(), verified: z.boolean().default(true), unverifiedBecause: z.string().optional(), sources }),
  z.object({ scale: z.literal('be_xix'), maximum: z.number().int(), verified: z.boolean().default(true), unverifiedBecause: z.string().optional(), sources }),
  z.object({ scale: z.literal('de_rvg'), feeRate: z.number().positive(), uncontested: z.boolean().default(false), table: rvgTableSchema, verified: z.boolean().default(true), unverifiedBecause: z.string().optional(), sources }),
]);

const ruleSchema = z.object({
  country: z.string().regex(/^[A-Z]{2}$/),
  debtorType: z.enum(DEBTOR_TYPES),
  notice: noticeSchema.optional(),
  holidays: holidaysSchema.optional(),
  costs: costsSchema.optional(),
  recurringCap: z
    .object({ claimBelow: z.number().int().positive(), maxPerWindow: z.number().int().positive(), windowDays: z.number().int().positive(), verified: z.boolean().default(true), sources })
    .optional(),
});

export type CountryRule = z.infer<typeof ruleSchema>;
export type CostRule = NonNullable<CountryRule['costs']>;

export const COUNTRY_RULES_FILE = path.resolve(__dirname, '../../mappings/policy/country-rules.yaml');

export function loadCountryRules(file = COUNTRY_RULES_FILE): CountryRule[] {
  const doc = YAML.parse(fs.readFileSync(file, 'utf8'));
  const r = z.object({ rules: z.array(ruleSchema) }).safeParse(doc);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new Error(`${file}: ${i.path.join('.')}: ${i.message}`);
  }
  const seen = new Set<string>();
  for (const rule of r.data.rules) {
    const key = `${rule.country}/${rule.debtorType}`;
    if (seen.has(key)) throw new Error(`${file}: two rules for ${key}`);
    seen.add(key);
    const n = rule.notice;
    if (n && (n.skipHolidays || n.termEndsOnWorkingDay) && !rule.holidays) throw new Error(`${file}: ${key}: the notice skips holidays but the rule names no holidays calendar`);
    // An unknown calendar would count no holidays at all: refuse it at start-up instead.
    if (rule.holidays) holidayCheck(rule.holidays, file, key);
  }
  return r.data.rules;
}

type HolidaysRule = NonNullable<CountryRule['holidays']>;

function holidayCheck(h: HolidaysRule, file: string, key: string): void {
  const hd = new Holidays();
  if (!(h.calendar in hd.getCountries())) throw new Error(`${file}: ${key}: date-holidays has no calendar "${h.calendar}"`);
  // setHoliday answers false for a rule it cannot parse (its typings say void).
  hd.init(h.calendar);
  for (const x of h.extra) if ((hd.setHoliday(x.rule, { name: x.name, type: 'public' }) as unknown) === false) throw new Error(`${file}: ${key}: holiday rule "${x.rule}" is not a date-holidays rule`);
}

/** Per rule, per year: the holidays as YYYY-MM-DD (the calendar's local dates; the hub counts days in UTC). */
const holidayYears = new WeakMap<HolidaysRule, Map<number, Set<string>>>();

/** Whether the UTC day of `day` is a holiday under the rule's calendar. Deterministic (memoised per year). */
export function isHoliday(h: HolidaysRule, day: Date): boolean {
  let years = holidayYears.get(h);
  if (!years) holidayYears.set(h, (years = new Map()));
  const year = day.getUTCFullYear();
  let set = years.get(year);
  if (!set) {
    const hd = new Holidays(h.calendar);
    for (const x of h.extra) hd.setHoliday(x.rule, { name: x.name, type: 'public' });
    set = new Set(hd.getHolidays(year).filter((d) => (h.types as string[]).includes(d.type)).map((d) => d.date.slice(0, 10)));
    years.set(year, set);
  }
  return set.has(day.toISOString().slice(0, 10));
}

export function ruleFor(rules: CountryRule[], country: string | null | undefined, debtorType: DebtorType): CountryRule | null {
  if (!country) return null;
  return rules.find((r) => r.country === country.toUpperCase() && r.debtorType === debtorType) ?? null;
}

/** Round half up to whole cents. */
const cents = (x: number) => Math.floor(x + 0.5 + 1e-9);

/** WIK scale (Stb. 2012/141 art. 2): banded percentages of the principal, with a minimum and a maximum. */
export function wikCosts(principal: number, rule: Extract<CostRule, { scale: 'wik' }>): number {
  let rest = principal;
  let lower = 0;
  let total = 0;
  for (const b of rule.bands) {
    const width = b.upTo === null ? rest : Math.min(rest, b.upTo - lower);
    if (width <= 0) break;
    total += width * b.rate;
    rest -= width;
    if (b.upTo !== null) lower = b.upTo;
    if (rest <= 0) break;
  }
  return Math.min(rule.maximum, Math.max(rule.minimum, cents(total)));
}

/** Book XIX WER damages caps as commonly cited (unverified): ≤ €150 → €20; ≤ €500 → €30 + 10 % above €150; else €65 + 5 % above €500, max €2,000. */
export function beXixCosts(principal: number, rule: Extract<CostRule, { scale: 'be_xix' }>): number {
  if (principal <= 15000) return 2000;
  if (principal <= 50000) return cents(3000 + (principal - 15000) * 0.1);
  return Math.min(rule.maximum, cents(6500 + (principal - 50000) * 0.05));
}

type RvgTable = Extract<CostRule, { scale: 'de_rvg' }>['table'];

/**
 * The 1.0 value fee of § 13 Abs. 1 RVG for `value` (cents), in cents, from the dated table in
 * the rules file (the one in force since 1 June 2025, KostBRÄG 2025); `uncontested` applies
 * § 13 Abs. 2 (a smaller fee for a small uncontested collection).
 */
export function rvgBaseFee(value: number, table: RvgTable, uncontested = false): number {
  if (uncontested && table.smallUncontested && value <= table.smallUncontested.upTo) return table.smallUncontested.fee;
  let fee = table.first.fee;
  let lower = table.first.upTo;
  for (const step of table.steps) {
    if (value <= lower) break;
    const top = step.upTo === null ? value : Math.min(value, step.upTo);
    fee += Math.ceil((top - lower) / step.every) * step.add;
    if (step.upTo === null) break;
    lower = step.upTo;
  }
  return fee;
}

/** The business fee Nr. 2300 VV RVG at the rule's rate, at least the minimum fee (§ 13 Abs. 3 RVG). */
export function deRvgCosts(principal: number, rule: Extract<CostRule, { scale: 'de_rvg' }>): number {
  return Math.max(rule.table.minimumFee, cents(rvgBaseFee(principal, rule.table, rule.uncontested) * rule.feeRate));
}

export interface CollectionCosts {
  /** What the debtor is charged, VAT included when it is added. */
  value: number;
  /** The VAT part of `value` (0 when none is added). */
  vat: number;
  currency: 'EUR';
  basis: string;
}

/**
 * Statutory costs for one claim of `principal` (EUR cents). For the Wki cap, `smallestClaim` is
 * the claim's own principal and `earlierCostsInWindow` what the debtor's earlier small claims were
 * charged (before VAT) in the cap's window. `includeVat`: the creditor cannot deduct VAT, so the
 * rule's VAT is added on top of the capped amount (WIK: Stb. 2012/141 art. 2 lid 3).
 */
export function collectionCosts(
  rule: CountryRule | null,
  principal: number,
  opts: { currency: string; smallestClaim?: number; earlierCostsInWindow?: number; includeVat?: boolean } = { currency: 'EUR' },
): CollectionCosts | null {
  if (!rule?.costs || opts.currency !== 'EUR' || principal <= 0) return null;
  const c = rule.costs;
  let value: number;
  let basis: string;
  const why: string[] = [];
  if (c.scale === 'wik') {
    value = wikCosts(principal, c);
    basis = `WIK scale (Stb. 2012/141) on principal ${principal}`;
  } else if (c.scale === 'be_xix') {
    value = beXixCosts(principal, c);
    basis = `Book XIX WER damages cap on balance ${principal}`;
  } else {
    value = deRvgCosts(principal, c);
    basis = `RVG Nr. 2300 VV × ${c.feeRate} on value ${principal} (§ 13 RVG table in force since ${c.table.inForceSince})`;
  }
  if (c.verified === false) why.push(c.unverifiedBecause ?? 'the scale');
  const cap = rule.recurringCap;
  if (cap && opts.smallestClaim !== undefined && opts.smallestClaim < cap.claimBelow) {
    const room = Math.max(0, cap.maxPerWindow - (opts.earlierCostsInWindow ?? 0));
    if (value > room) {
      value = room;
      basis += `; capped at ${cap.maxPerWindow} per ${cap.windowDays} days for recurring claims under ${cap.claimBelow} (Wki)`;
      if (cap.verified === false) why.push('the Wki cap');
    }
  }
  let vat = 0;
  if (opts.includeVat) {
    if (c.scale === 'wik' && c.vat) {
      vat = cents(value * c.vat.rate);
      value += vat;
      basis += `; plus ${Math.round(c.vat.rate * 1000) / 10} % VAT ${vat} (the creditor cannot deduct VAT, Stb. 2012/141 art. 2 lid 3)`;
      if (c.vat.verified === false) why.push(c.vat.unverifiedBecause ?? 'the VAT rule');
    } else {
      basis += '; no VAT added (no VAT rule for this scale)';
    }
  }
  return { value, vat, currency: 'EUR', basis: why.length ? `${basis} [rule marked unverified: ${why.join('; ')}]` : basis };
}

const startOfDay = (d: Date) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));

/**
 * The earliest moment a debtor may be handed over under the notice rule: the letter is
 * delivered `deliveryDays` counted days after dispatch (skipping the listed weekdays and, with
 * `skipHolidays`, public holidays), then the term of `days` runs (from the next day if
 * `startsNextDay`); with `termEndsOnWorkingDay` a last day on a Saturday, Sunday or holiday
 * runs on to the next day that is none. Hand-over from the day after the last day. UTC days.
 */
export function noticeEndsAt(rule: CountryRule | null, reminderSentAt: Date): Date | null {
  const n = rule?.notice;
  if (!n) return null;
  const holiday = (d: Date) => (rule.holidays ? isHoliday(rule.holidays, d) : false);
  let day = startOfDay(reminderSentAt);
  let counted = 0;
  while (counted < n.deliveryDays) {
    day = new Date(day.getTime() + DAY_MS);
    if (!n.skipWeekdays.includes(day.getUTCDay()) && !(n.skipHolidays && holiday(day))) counted++;
  }
  const termStart = n.startsNextDay ? new Date(day.getTime() + DAY_MS) : day;
  let last = new Date(termStart.getTime() + (n.days - 1) * DAY_MS);
  if (n.termEndsOnWorkingDay) {
    while (last.getUTCDay() === 0 || last.getUTCDay() === 6 || holiday(last)) last = new Date(last.getTime() + DAY_MS);
  }
  // The debtor may pay all of the last day: hand over the day after.
  return new Date(last.getTime() + DAY_MS);
}
