/**
 * "Owed back to the debtor" (issue 12, hole 1): when what the debtor paid through the PSP plus what
 * the agency collected is more than the invoice was due, the excess is the debtor's money. Pure:
 * both sides of the ledger (a PSP payment, src/ledger/payment-decision.ts; an agency collection,
 * src/sync/partner-updates.ts) ask this module, so the rule is the same in whichever order the two
 * payments arrive, and the record is written once per growth of the excess (never twice for the
 * same money).
 */
import type { HistoryEntry } from './history';

export interface InvoiceMoney {
  id: string;
  merchantId: string;
  currency: string;
  amountDue: number;
  /** Paid through the PSP (the highest total the PSP reported). */
  amountPaid: number;
  /** Collected by the agency (the claim's running total). */
  amountCollected: number;
  /** Already recorded as owed back. */
  amountOwedBack: number;
}

/** PSP-paid + agency-collected beyond what was due (never negative). Only money paid twice counts. */
export function owedBackOf(m: Pick<InvoiceMoney, 'amountDue' | 'amountPaid' | 'amountCollected'>): number {
  // An invoice nobody collected (or nobody paid through the PSP) is not paid twice: an overpayment
  // at the PSP alone is the PSP's business (it refunds), not a double collection.
  if (m.amountPaid <= 0 || m.amountCollected <= 0) return 0;
  return Math.max(0, m.amountPaid + m.amountCollected - m.amountDue);
}

export interface OwedBack {
  /** The new total owed back (invoices.amount_owed_back). */
  amount: number;
  /** What this change added to it. */
  added: number;
  /** The status_history row (entity invoice, status owed_back): timeline, merchant webhook `invoice.owed_back`. */
  history: HistoryEntry;
  /** One line for the sync log and the event's note. */
  summary: string;
}

/**
 * The owed-back record that the invoice's money (after the change) calls for, or null when nothing
 * more is owed back than is already recorded.
 */
export function owedBackChange(m: InvoiceMoney, by: { source: string; occurredAt: string | Date; detail?: Record<string, unknown> }): OwedBack | null {
  const amount = owedBackOf(m);
  if (amount <= m.amountOwedBack) return null;
  const summary = `${amount} ${m.currency} owed back to the debtor: paid ${m.amountPaid} through the PSP and ${m.amountCollected} collected by the agency, ${m.amountDue} was due`;
  return {
    amount,
    added: amount - m.amountOwedBack,
    summary,
    history: {
      merchantId: m.merchantId, entity: 'invoice', entityId: m.id, status: 'owed_back', reason: null, source: by.source, occurredAt: by.occurredAt,
      detail: { ...by.detail, amount, added: amount - m.amountOwedBack, currency: m.currency, paidToMerchant: m.amountPaid, collectedByAgency: m.amountCollected, amountDue: m.amountDue },
    },
  };
}

/**
 * The agency side: the claim's collected total `collected` reaches its invoice. What the agency
 * collected is kept on the invoice whatever the invoice's status (also when the debtor paid the
 * merchant meanwhile: the money came in all the same), and the overlap with the PSP payment, if
 * any, is owed back. Returns the invoice's new collected amount (null: unchanged) and the owed-back
 * record (null: nothing more owed back).
 */
export function decideCollection(
  m: InvoiceMoney,
  collected: number,
  by: { source: string; occurredAt: string | Date; detail?: Record<string, unknown> },
): { amountCollected: number | null; owed: OwedBack | null } {
  const amountCollected = collected !== m.amountCollected ? collected : null;
  return { amountCollected, owed: owedBackChange({ ...m, amountCollected: collected }, by) };
}
