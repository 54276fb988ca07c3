/**
 * Debtor-process rules by merchant country and debtor type (issue 4): the notice a debtor
 * must have had before hand-over, and the statutory collection costs the agency may charge,
 * computed from mappings/policy/country-rules.yaml (data with sources). Pure functions.
 */
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';
import { z } from 'zod';
import { DEBTOR_TYPES, type DebtorType } from '../domain/types';
import { DAY_MS } from '../domain/clock';

const sources = z.array(z.string()).min(1, 'every rule needs a source');

const noticeSchema = z.object({
  days: z.number().int().positive(),
  deliveryDays: z.number().int().min(0),
  skipWeekdays: z.array(z.number().int().min(0).max(6)).default([]),
  startsNextDay: z.boolean(),
  sources,
});

const band = z.object({ upTo: z.number().int().positive().nullable(), rate: z.number().positive().max(1) });

const costsSchema = z.discriminatedUnion('scale', [
  z.object({ scale: z.literal('wik'), minimum: z.number().int(), maximum: z.number().int(), bands: z.array(band).min(1), verified: z.boolean().default(true), sources }),
  z.object({ scale: z.literal('be_xix'), maximum: z.number().int(), verified: z.boolean().default(true), sources }),
  z.object({ scale: z.literal('de_rvg'), feeRate: z.number().positive(), verified: z.boolean().default(true), sources }),
]);

const ruleSchema = z.object({
  country: z.string().regex(/^[A-Z]{2}$/),
  debtorType: z.enum(DEBTOR_TYPES),
  notice: noticeSchema.optional(),
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
  }
  return r.data.rules;
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

/**
 * RVG base fee (§ 13 RVG, Anlage 2, the table in force from 1 Jan 2021), in cents, by value in
 * cents; § 13 Abs. 2: €30 for values up to €50 (uncontested collection). Beyond €25,000 the
 * table is not encoded here: the cost is not computed (the agency's own figure stands).
 */
const RVG_STEPS: [upTo: number, fee: number][] = [
  [5000, 3000],
  [50000, 4900],
  [100000, 8800], [150000, 12700], [200000, 16600],
  [300000, 22200], [400000, 27800], [500000, 33400], [600000, 39000], [700000, 44600], [800000, 50200], [900000, 55800], [1000000, 61400],
  [1300000, 66600], [1600000, 71800], [1900000, 77000], [2200000, 82200], [2500000, 87400],
];

export function rvgBaseFee(value: number): number | null {
  for (const [upTo, fee] of RVG_STEPS) if (value <= upTo) return fee;
  return null;
}

export function deRvgCosts(principal: number, rule: Extract<CostRule, { scale: 'de_rvg' }>): number | null {
  const fee = rvgBaseFee(principal);
  return fee === null ? null : cents(fee * rule.feeRate);
}

export interface CollectionCosts {
  value: number;
  currency: 'EUR';
  basis: string;
}

/**
 * Statutory costs for one hand-over of `principal` (EUR cents). `earlierCostsInWindow` is what
 * the same customer's claims were charged in the recurring-cap window (for the Wki cap).
 */
export function collectionCosts(rule: CountryRule | null, principal: number, opts: { currency: string; smallestClaim?: number; earlierCostsInWindow?: number } = { currency: 'EUR' }): CollectionCosts | null {
  if (!rule?.costs || opts.currency !== 'EUR' || principal <= 0) return null;
  const c = rule.costs;
  let value: number | null;
  let basis: string;
  if (c.scale === 'wik') {
    value = wikCosts(principal, c);
    basis = `WIK scale (Stb. 2012/141) on principal ${principal}`;
  } else if (c.scale === 'be_xix') {
    value = beXixCosts(principal, c);
    basis = `Book XIX WER damages cap on balance ${principal}`;
  } else {
    value = deRvgCosts(principal, c);
    basis = `RVG Nr. 2300 VV × ${c.feeRate} on value ${principal}`;
  }
  if (value === null) return null;
  const cap = rule.recurringCap;
  if (cap && opts.smallestClaim !== undefined && opts.smallestClaim < cap.claimBelow) {
    const room = Math.max(0, cap.maxPerWindow - (opts.earlierCostsInWindow ?? 0));
    if (value > room) {
      value = room;
      basis += `; capped at ${cap.maxPerWindow} per ${cap.windowDays} days for recurring claims under ${cap.claimBelow} (Wki)`;
    }
  }
  const unverified = c.verified === false || (cap && cap.verified === false && basis.includes('Wki'));
  return { value, currency: 'EUR', basis: unverified ? `${basis} [rule marked unverified]` : basis };
}

/**
 * The earliest moment a debtor may be handed over under the notice rule: the letter is
 * delivered `deliveryDays` counted days after dispatch (skipping the listed weekdays), then
 * the term of `days` runs (from the next day if `startsNextDay`). Dates in UTC.
 */
export function noticeEndsAt(rule: CountryRule | null, reminderSentAt: Date): Date | null {
  const n = rule?.notice;
  if (!n) return null;
  const startOfDay = (d: Date) => new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  let day = startOfDay(reminderSentAt);
  let counted = 0;
  while (counted < n.deliveryDays) {
    day = new Date(day.getTime() + DAY_MS);
    if (!n.skipWeekdays.includes(day.getUTCDay())) counted++;
  }
  const termStart = n.startsNextDay ? new Date(day.getTime() + DAY_MS) : day;
  // The term's last day is termStart + days - 1; the debtor may pay all of it: hand over the day after.
  return new Date(termStart.getTime() + n.days * DAY_MS);
}
