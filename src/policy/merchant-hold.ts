/**
 * The merchant's hold on an invoice still waiting for hand-over (issue 12, hole 9): "the customer
 * called and promised to pay by the 30th". `POST /v1/invoices/:ref/hold` with `holdUntil` sets
 * `invoices.hold_until`; until then the hand-over check leaves the invoice out (not handed over,
 * not stacked, not counted toward `minAmount`), and a check is due at that moment so it goes then
 * if nothing else holds it. `POST /v1/invoices/:ref/resume` releases it early. Pure functions.
 */

/** A promise to pay further out than this is not a hold but a payment plan: the agency's work. */
export const MAX_HOLD_DAYS = 90;

/** Whether the merchant's hold keeps this invoice out of the hand-over at `now`. */
export function heldByMerchant(inv: { hold_until?: Date | string | null }, now: Date): boolean {
  return !!inv.hold_until && new Date(inv.hold_until).getTime() > now.getTime();
}

/**
 * A `holdUntil` as the merchant sent it: an ISO 8601 date (`2026-01-30`, held through that day, so
 * until 00:00 UTC the day after) or a date-time with its offset; in the future, at most
 * MAX_HOLD_DAYS ahead. Returns the moment, or the problem to answer with 400.
 */
export function parseHoldUntil(raw: unknown, now: Date): { at: Date } | { problem: string } {
  if (typeof raw !== 'string' || !raw.trim()) return { problem: 'holdUntil must be an ISO 8601 date (2026-01-30) or date-time with an offset (2026-01-30T17:00:00Z)' };
  const text = raw.trim();
  const dateOnly = /^\d{4}-\d{2}-\d{2}$/.test(text);
  if (!dateOnly && !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})$/i.test(text)) {
    return { problem: `holdUntil "${text.slice(0, 64)}" is not an ISO 8601 date (2026-01-30) or date-time with an offset (2026-01-30T17:00:00Z)` };
  }
  const parsed = new Date(dateOnly ? `${text}T00:00:00Z` : text);
  // Date rolls 2026-02-30 over to March: compare the date part back.
  if (Number.isNaN(parsed.getTime()) || (dateOnly && parsed.toISOString().slice(0, 10) !== text)) return { problem: `holdUntil "${text.slice(0, 64)}" is not a valid date` };
  // "Pay by the 30th": the debtor has all of that day.
  const at = dateOnly ? new Date(parsed.getTime() + 86_400_000) : parsed;
  if (at.getTime() <= now.getTime()) return { problem: `holdUntil ${at.toISOString()} is not in the future` };
  if (at.getTime() - now.getTime() > MAX_HOLD_DAYS * 86_400_000) {
    return { problem: `holdUntil ${at.toISOString()} is more than ${MAX_HOLD_DAYS} days ahead: hand it over and let the agency agree a payment plan, or hold it again later` };
  }
  return { at };
}
