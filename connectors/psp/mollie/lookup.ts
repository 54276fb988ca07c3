/**
 * Fetches what a Mollie webhook is about. A classic webhook carries only an id, and Mollie says
 * the fetched resource is the truth ("you should use that ID to fetch the payment status",
 * psp-webhooks.md §2.1–2.2); a next-gen event is handled the same way, so the state both systems
 * report is read in one place.
 *
 * One lookup is: the payment with its refunds and chargebacks embedded; the chargebacks list when
 * the payment says it has chargebacks but the answer did not embed them; the customer when the
 * payment names one (name, email, locale for the debtor).
 *
 * Outcomes:
 *  - `found`: the objects, plus notes on what could not be fetched and why (a deleted customer);
 *  - `notFound`: Mollie answered 404 for the payment — a stray or foreign id. Not an error: the
 *    event becomes `ignored` with the note (Mollie recommends answering such webhooks 200, §2.2).
 * MollieRetryable (network, timeout, 429, 5xx) and MollieRejected (other 4xx) propagate: the
 * outbox retries the first and dead-letters the second.
 */
import { MollieNotFound, type MollieApi } from './client';

export type PaymentLookup =
  | {
      found: true;
      payment: unknown;
      /** Present when fetched separately (the payment's own `_embedded.chargebacks` otherwise). */
      chargebacks?: unknown[];
      customer?: unknown;
      notes: string[];
    }
  | { found: false; note: string };

export async function lookupPayment(api: MollieApi, paymentId: string): Promise<PaymentLookup> {
  let payment: Record<string, unknown>;
  try {
    payment = asObject(await api.getPayment(paymentId));
  } catch (err) {
    if (err instanceof MollieNotFound) return { found: false, note: err.message };
    throw err;
  }
  const notes: string[] = [];

  let chargebacks: unknown[] | undefined;
  const embedded = asObject(payment._embedded);
  if (hasChargebacks(payment) && !Array.isArray(embedded.chargebacks)) {
    try {
      chargebacks = await api.listChargebacks(paymentId);
    } catch (err) {
      // The payment exists, so a 404 here is Mollie's list being empty or not yet there.
      if (!(err instanceof MollieNotFound)) throw err;
      notes.push(err.message);
      chargebacks = [];
    }
  }

  let customer: unknown;
  const customerId = typeof payment.customerId === 'string' && payment.customerId ? payment.customerId : undefined;
  if (customerId) {
    try {
      customer = await api.getCustomer(customerId);
    } catch (err) {
      // A deleted customer: the payment still names it, we keep what the payment itself says.
      if (!(err instanceof MollieNotFound)) throw err;
      notes.push(err.message);
    }
  }
  return { found: true, payment, chargebacks, customer, notes };
}

/** `amountChargedBack` is present only when non-zero; `_links.chargebacks` only when there are any (§2.5). */
function hasChargebacks(payment: Record<string, unknown>): boolean {
  const amount = asObject(payment.amountChargedBack).value;
  if (typeof amount === 'string' && /[1-9]/.test(amount)) return true;
  return !!asObject(asObject(payment._links).chargebacks).href;
}

function asObject(v: unknown): Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}
