/**
 * Which key makes one debtor of a merchant's customers (issue 12, hole 3). A customer row is one
 * PSP customer; the same person at Stripe and at Mollie is one debtor when the key says so, and
 * cases, stacking and `minAmount` are judged per debtor (src/pipeline/handover-check.ts).
 *
 * Key order, strongest first:
 *  1. the merchant's own customer id from the PSP's metadata (`merchantRef`, read by each
 *     connector under `policy.debtorIdentity.metadataKeys`; Adyen's `shopperReference`);
 *  2. only when the merchant opts in (`policy.debtorIdentity.matchEmail`), the normalised
 *     e-mail: a shared family address or a recycled one would put two people in one case, so
 *     it is never the default (GDPR art. 5(1)(d), accuracy);
 *  3. otherwise the PSP customer alone is the debtor (as before debtors existed).
 * Pure: no database, no clock.
 */
import type { Policy } from '../config/schema';

export type DebtorKey =
  | { kind: 'merchant_ref'; value: string }
  | { kind: 'email'; value: string }
  | { kind: 'psp_customer' };

/** What is known about the customer: its event's facts, or its stored row. */
export interface DebtorFacts {
  merchantRef?: string | null;
  email?: string | null;
}

/**
 * Lower-case and trimmed, nothing more: a provider's `+tag` or dots in a Gmail address may be
 * another person's mailbox at another provider, so they are kept.
 */
export function normaliseEmail(email: string | null | undefined): string | null {
  const e = (email ?? '').trim().toLowerCase();
  // One @ with something either side: anything else names no mailbox to match on.
  return /^[^@\s]+@[^@\s]+$/.test(e) ? e : null;
}

export function resolveDebtorKey(customer: DebtorFacts, settings: Pick<Policy, 'debtorIdentity'>): DebtorKey {
  const ref = customer.merchantRef?.trim();
  if (ref) return { kind: 'merchant_ref', value: ref };
  if (settings.debtorIdentity?.matchEmail) {
    const email = normaliseEmail(customer.email);
    if (email) return { kind: 'email', value: email };
  }
  return { kind: 'psp_customer' };
}

/** The debtor a customer is linked to, as far as the decision needs it. */
export interface CurrentDebtor {
  id: string;
  externalRef: string | null;
  emailNorm: string | null;
}

export type DebtorLink =
  /** Stay with the current debtor. */
  | { action: 'keep' }
  /** Give the current debtor this key (it had none of that kind, and nobody else has it). */
  | { action: 'adopt' }
  /** Find (or create) the debtor with this key and move the customer there. */
  | { action: 'find_or_create' }
  /** A customer seen for the first time with no key: a debtor of its own. */
  | { action: 'new_own' };

/**
 * What to do with a customer's debtor link given the key its newest event resolves to. A customer
 * never moves away from a debtor known by the merchant's id (a later event without metadata, or
 * with only an e-mail, does not undo it), nor from an e-mail debtor to another e-mail debtor.
 * `keyTaken`: another debtor already has this key.
 */
export function decideDebtorLink(key: DebtorKey, current: CurrentDebtor | null, keyTaken: boolean): DebtorLink {
  if (!current) return key.kind === 'psp_customer' ? { action: 'new_own' } : { action: 'find_or_create' };
  if (key.kind === 'psp_customer' || current.externalRef !== null) return { action: 'keep' };
  if (key.kind === 'email' && current.emailNorm !== null) return { action: 'keep' };
  return keyTaken ? { action: 'find_or_create' } : { action: 'adopt' };
}
