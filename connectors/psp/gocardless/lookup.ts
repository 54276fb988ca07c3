/**
 * GoCardless API lookups for what a webhook names only by link (psp-webhooks.md §7.6: "events carry
 * only links: fetch `GET /payments/PM…`"): a payment event → the payment → its mandate → the
 * mandate's customer; a mandate event → the mandate → its customer.
 *
 * This module only fetches; the pure normalizer (normalize.ts) turns what was found into the
 * canonical event, and index.ts composes the two.
 *
 * Errors (never fatal for the event forever), as in the Stripe connector:
 *  - retryable (GoCardlessRetryable from client.ts) → rethrown: the outbox retries the row;
 *  - any other answer (404, 401, 403, 400, not the resource) → recorded in `errors` and the event
 *    is kept with what could be found, the note in its `detail.lookupErrors`.
 */
import { GoCardlessApiError, type GoCardlessApi } from './client';
import type { GoCardlessCustomer, GoCardlessEventPayload, GoCardlessMandate, GoCardlessPayment } from './schema';

export interface EventLookup {
  payment?: GoCardlessPayment;
  mandate?: GoCardlessMandate;
  customer?: GoCardlessCustomer;
  /** Non-retryable GoCardless errors of the steps tried, token-free. */
  errors: string[];
}

export async function lookupEventResources(api: GoCardlessApi, event: GoCardlessEventPayload): Promise<EventLookup> {
  const found: EventLookup = { errors: [] };
  const links = event.links ?? {};
  let mandateId: string | undefined;

  if (event.resource_type === 'payments') {
    const paymentId = linkOf(links, 'payment');
    if (paymentId) found.payment = await step(found.errors, () => api.getPayment(paymentId));
    mandateId = found.payment?.links?.mandate ?? linkOf(links, 'mandate');
  } else if (event.resource_type === 'mandates') {
    mandateId = linkOf(links, 'mandate');
  }

  if (mandateId) {
    const id = mandateId;
    found.mandate = await step(found.errors, () => api.getMandate(id));
  }
  const customerId = found.mandate?.links?.customer ?? linkOf(links, 'customer');
  if (customerId) found.customer = await step(found.errors, () => api.getCustomer(customerId));
  return found;
}

/** One API call: the resource, undefined after a non-retryable GoCardless answer (recorded), or a throw. */
async function step<T>(errors: string[], call: () => Promise<T>): Promise<T | undefined> {
  try {
    return await call();
  } catch (err) {
    if (err instanceof GoCardlessApiError) {
      errors.push(err.message);
      return undefined;
    }
    // GoCardlessRetryable (the outbox retries), or a bug on our side (retried, then dead-lettered).
    throw err;
  }
}

export function linkOf(links: Record<string, unknown>, name: string): string | undefined {
  const v = links[name];
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}
