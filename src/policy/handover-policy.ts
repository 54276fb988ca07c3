/**
 * The hand-over rule (contract §7), as a pure function of plain data:
 *  (a) the failure is final — the PSP will not retry by itself;
 *  (b) `handoverAfterDays` have passed since the first failure;
 *  (c) the debtor's open amount is at least `minAmount`.
 * A debtor's later unpaid invoice is stacked onto the open case as a claim, however long ago that
 * case took its last claim: at most one live case per debtor and partner (issue 12's invariant; a
 * second case for the same person would mean a second dossier, second costs and letters from two
 * files). `stackWindowDays` therefore no longer splits cases (README, "Deviations"). The minimum (c) does not apply to stacking,
 * since the debtor is already in collection. The debtor is the same person at every PSP of the
 * merchant (issue 12, hole 3): the caller passes the invoices of all its PSP customers. Each stacked invoice still waits its own (a)+(b),
 * so the merchant's notice period holds for every claim (README, "Hand-over rule").
 */
import type { Policy } from '../config/schema';
import { DAY_MS } from '../domain/clock';
import { AWAITING_LETTER_WHY } from './letter-evidence';

export interface HandoverCandidate {
  invoiceId: string;
  /** Still owed, in minor units. */
  amountOpen: number;
  currency: string;
  failureFinal: boolean;
  firstFailedAt: Date;
  /** A country rule's notice gate: not before this moment (the debtor's term after the letter). */
  notBefore?: Date | null;
  /** The rule asks for a letter and none is evidenced (src/policy/letter-evidence.ts): not before one is. */
  awaitingLetter?: boolean;
}

export interface OpenCase {
  id: string;
  currency: string;
  lastClaimAt: Date;
}

export type HandoverDecision =
  | { action: 'wait'; until: Date | null; why: string }
  | { action: 'open_case'; invoiceIds: string[]; amount: number }
  | { action: 'stack'; caseId: string; invoiceIds: string[] };

export function handoverDueAt(firstFailedAt: Date, policy: Pick<Policy, 'handoverAfterDays'>): Date {
  return new Date(firstFailedAt.getTime() + policy.handoverAfterDays * DAY_MS);
}

/**
 * Decide for one debtor and one currency. `candidates` are the debtor's unpaid failed
 * invoices (at every PSP) that are not in any case yet; `openCase` is the debtor's live case at
 * the merchant's partner, if any, in that currency.
 */
export function decideHandover(input: {
  now: Date;
  policy: Pick<Policy, 'handoverAfterDays' | 'minAmount' | 'stackWindowDays'>;
  candidates: HandoverCandidate[];
  openCase?: OpenCase | null;
}): HandoverDecision {
  const { now, policy, candidates, openCase } = input;
  const finalAll = candidates.filter((c) => c.failureFinal && c.amountOpen > 0);
  if (!finalAll.length) return { action: 'wait', until: null, why: 'no final failure yet (the PSP is still retrying)' };
  // No letter evidenced, no known end of the notice term: such an invoice waits for evidence (no date to wake up at).
  const final = finalAll.filter((c) => !c.awaitingLetter);
  if (!final.length) return { action: 'wait', until: null, why: AWAITING_LETTER_WHY };
  const dueAt = (c: HandoverCandidate) => Math.max(handoverDueAt(c.firstFailedAt, policy).getTime(), c.notBefore?.getTime() ?? 0);
  const due = final.filter((c) => dueAt(c) <= now.getTime());
  if (!due.length) {
    const next = Math.min(...final.map(dueAt));
    const gated = final.some((c) => c.notBefore && c.notBefore.getTime() > handoverDueAt(c.firstFailedAt, policy).getTime() && c.notBefore.getTime() > now.getTime());
    return { action: 'wait', until: new Date(next), why: gated ? "inside the debtor's notice term (country rule)" : `inside the ${policy.handoverAfterDays}-day hand-over period` };
  }
  const ids = due.map((c) => c.invoiceId);
  if (openCase) return { action: 'stack', caseId: openCase.id, invoiceIds: ids };
  const currency = due[0].currency;
  const open = candidates.filter((c) => c.currency === currency).reduce((n, c) => n + c.amountOpen, 0);
  if (policy.minAmount.currency === currency && open < policy.minAmount.value) {
    return { action: 'wait', until: null, why: `open amount ${open} is below the minimum ${policy.minAmount.value} ${currency}` };
  }
  return { action: 'open_case', invoiceIds: ids, amount: due.reduce((n, c) => n + c.amountOpen, 0) };
}

/**
 * After a case is opened or stacked, the invoices that were not due yet (each waits for its own
 * notice term or hand-over date) need a check of their own: the earliest moment one of them
 * comes due, or null when none waits for a date (an invoice waiting for letter evidence is woken
 * by the reminder API instead).
 */
export function nextCheckAt(
  now: Date,
  policy: Pick<Policy, 'handoverAfterDays'>,
  candidates: HandoverCandidate[],
  handedOver: string[],
): Date | null {
  const taken = new Set(handedOver);
  const later = candidates
    .filter((c) => c.failureFinal && c.amountOpen > 0 && !c.awaitingLetter && !taken.has(c.invoiceId))
    .map((c) => Math.max(handoverDueAt(c.firstFailedAt, policy).getTime(), c.notBefore?.getTime() ?? 0))
    .filter((t) => t > now.getTime());
  return later.length ? new Date(Math.min(...later)) : null;
}
