/**
 * Letter evidence (issue 12, hole 4): whether the hub can show that the debtor got the country
 * rule's pre-hand-over letter (the NL 14-day letter, art. 6:96 lid 6 BW; the BE free first
 * reminder, Book XIX WER), what that means for the notice gate, and the statutory costs each
 * claim carries. Pure functions: plain data in, dates and amounts out; SQL stays in
 * src/pipeline/handover-check.ts.
 *
 * Evidence is only ever what the merchant told us: a date reported per invoice
 * (`POST /v1/invoices/:ref/reminder`) or a merchant setting that states its dunning sends the
 * letter on day N after the first failure (`policy.dunningLetterAfterDays`, no default). The hub
 * never assumes a letter: costs are due only after a compliant one, so without evidence a claim
 * carries no costs and says why.
 */
import type { Policy } from '../config/schema';
import { DAY_MS } from '../domain/clock';
import { collectionCosts, noticeEndsAt, type CollectionCosts, type CountryRule } from './country-rules';

export interface LetterEvidence {
  sentAt: Date;
  /** `reported`: the merchant reported this invoice's letter; `merchant_policy`: its declared dunning day. */
  source: 'reported' | 'merchant_policy';
}

export function letterEvidence(
  inv: { reminderSentAt: Date | null; firstFailedAt: Date },
  policy: Pick<Policy, 'dunningLetterAfterDays'>,
): LetterEvidence | null {
  if (inv.reminderSentAt) return { sentAt: inv.reminderSentAt, source: 'reported' };
  if (policy.dunningLetterAfterDays !== undefined) {
    return { sentAt: new Date(inv.firstFailedAt.getTime() + policy.dunningLetterAfterDays * DAY_MS), source: 'merchant_policy' };
  }
  return null;
}

/** What the hub tells a merchant about an invoice that waits because no letter is known. */
export const AWAITING_LETTER_WHY =
  'waiting for letter evidence: report the letter (POST /v1/invoices/:ref/reminder) or state your dunning day (policy.dunningLetterAfterDays)';

/**
 * The notice gate for one invoice:
 *  - `none`: the rule asks for no letter (or there is no rule) — nothing to wait for;
 *  - `ends`: the letter is evidenced; hand-over from `at` (the day after the term);
 *  - `awaiting_letter`: the rule asks for a letter and none is evidenced. The hub cannot know
 *    when a term ends that it cannot see start, so the invoice waits (policy
 *    `withoutLetterEvidence: wait`, the default) — unless the merchant chose
 *    `hand_over_without_costs` (its agency sends the letter itself), then `none`.
 */
export type NoticeGate = { kind: 'none' } | { kind: 'ends'; at: Date } | { kind: 'awaiting_letter' };

export function noticeGate(rule: CountryRule | null, evidence: LetterEvidence | null, policy: Pick<Policy, 'withoutLetterEvidence'>): NoticeGate {
  if (!rule?.notice) return { kind: 'none' };
  if (evidence) return { kind: 'ends', at: noticeEndsAt(rule, evidence.sentAt)! };
  return policy.withoutLetterEvidence === 'hand_over_without_costs' ? { kind: 'none' } : { kind: 'awaiting_letter' };
}

/** The gate for one invoice row (the hand-over check and the leakage report read it the same way). */
export function invoiceNoticeGate(
  rule: CountryRule | null,
  inv: { reminder_sent_at?: Date | string | null; first_failed_at?: Date | string | null; created_at: Date | string },
  policy: Pick<Policy, 'dunningLetterAfterDays' | 'withoutLetterEvidence'>,
): NoticeGate {
  return noticeGate(rule, invoiceLetterEvidence(inv, policy), policy);
}

export function invoiceLetterEvidence(
  inv: { reminder_sent_at?: Date | string | null; first_failed_at?: Date | string | null; created_at: Date | string },
  policy: Pick<Policy, 'dunningLetterAfterDays'>,
): LetterEvidence | null {
  return letterEvidence({ reminderSentAt: inv.reminder_sent_at ? new Date(inv.reminder_sent_at) : null, firstFailedAt: new Date(inv.first_failed_at ?? inv.created_at) }, policy);
}

/**
 * A reported letter date must not be before the invoice fell due: a letter sent before default
 * does not start the term (art. 6:96 lid 6 BW: the debtor is summoned "once in default").
 * Compared by UTC day. Returns the problem, or null when the date can stand.
 */
export function letterDateProblem(sentAt: Date, dueAt: Date | null): string | null {
  if (!dueAt) return null;
  const day = (d: Date) => d.toISOString().slice(0, 10);
  if (day(sentAt) < day(dueAt)) {
    return `sentAt ${sentAt.toISOString()} is before the invoice's due date ${day(dueAt)}: a letter sent before the debt fell due does not start the notice term; send a new letter and report its date`;
  }
  return null;
}

export interface ClaimForCosts {
  /** Anything that names the claim to the caller (the invoice id). */
  key: string;
  principal: number;
  evidence: LetterEvidence | null;
}

export interface ClaimCosts extends CollectionCosts {
  /** The claim counts towards the recurring-claims cap (its principal is under the cap's bound). */
  small: boolean;
}

/**
 * Statutory costs per claim, in the order given. A claim under a rule with a letter requirement
 * carries costs only with letter evidence; without it, 0 with the reason as its basis. The Wki
 * cap for small recurring claims is applied across the debtor's claims in the window: `earlierSmall`
 * is what the debtor's earlier small claims in the window were charged before VAT, and each small
 * claim here adds to it for the next. No rule, no cost scale or another currency: null (no
 * statutory costs apply at all).
 */
export function costsForClaims(
  rule: CountryRule | null,
  claims: ClaimForCosts[],
  opts: { currency: string; includeVat: boolean; earlierSmall: number },
): Map<string, ClaimCosts | null> {
  const out = new Map<string, ClaimCosts | null>();
  let charged = opts.earlierSmall;
  const cap = rule?.recurringCap;
  for (const c of claims) {
    const small = !!cap && c.principal < cap.claimBelow;
    if (rule?.notice && rule.costs && opts.currency === 'EUR' && c.principal > 0 && !c.evidence) {
      out.set(c.key, { value: 0, vat: 0, currency: 'EUR', small, basis: `no costs: no evidence of a compliant ${rule.notice.letter}` });
      continue;
    }
    const costs = collectionCosts(rule, c.principal, { currency: opts.currency, smallestClaim: c.principal, earlierCostsInWindow: charged, includeVat: opts.includeVat });
    if (!costs) {
      out.set(c.key, null);
      continue;
    }
    if (small) charged += costs.value - costs.vat;
    out.set(c.key, { ...costs, small });
  }
  return out;
}

/** A case's costs line: the sum of its claims' costs, with one basis (sent with the case, shown to the merchant). */
export function caseCostsSummary(costs: (ClaimCosts | null)[]): { value: number; basis: string } | null {
  const known = costs.filter((c): c is ClaimCosts => c !== null);
  if (!known.length) return null;
  const value = known.reduce((n, c) => n + c.value, 0);
  if (known.length === 1) return { value, basis: known[0].basis };
  return { value, basis: `sum of ${known.length} claims' costs: ${known.map((c) => `${c.value} (${c.basis})`).join(' | ')}` };
}
