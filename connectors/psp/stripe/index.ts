/**
 * The Stripe PSP connector (design.md habit 4): verifies `Stripe-Signature` with the official SDK
 * and normalizes snapshot events into canonical PaymentEvents. Registered once in the explicit
 * connector list under id `stripe`.
 *
 * Normalization is the pure normalizer (normalize.ts), then — only when the merchant's config has
 * an `apiKey` and the event lacks a fact that Stripe's API has — a lookup (lookup.ts):
 *  - an invoice failure with no failure code the mapping knows: fetch the payment intent / charge /
 *    invoice payments, put them where an expanded payload carries them and normalize again, so the
 *    code → mapping path is the normalizer's own; `detail.failureLookup` names the source;
 *  - a chargeback whose dispute names no invoice: find the invoice through the charge or the
 *    invoice payments and set `invoice.ref`; `detail.invoiceLookup` names the source;
 *  - a failed or refunded PaymentIntent/Charge in the basil shape (no `invoice` field): ask the
 *    invoice payments of its PaymentIntent whether it pays an invoice, and put the answer
 *    (`invoice: "in_…"` or `invoice: null`) where a pre-basil payload has it, so the normalizer's
 *    invoice-backed / one-off split is its own; `detail.invoiceLookup` = `invoice_payments`.
 *    Without an apiKey (or when Stripe refuses) the normalizer's heuristic decides (invoiceLinkOf);
 *  - an inactive mandate whose payment method is only an id: fetch the payment method to learn
 *    the customer; `detail.customerLookup` = `payment_method`.
 * Without a lookup the result is returned synchronously.
 */
import type { PaymentEvent } from '../../../src/domain/types';
import type { NormalizeContext, PspConnector, RawInboundEvent } from '../types';
import {
  lookupDisputeInvoice,
  lookupInvoiceFailure,
  lookupPaymentInvoice,
  lookupPaymentMethod,
  redact,
  stripeClientFor,
  StripeLookupRetryable,
  type StripeLookupApi,
} from './lookup';
import { normalizeStripeEvent, paymentInvoiceToLookUp, STRIPE_PROVIDER } from './normalize';
import { stripeDisputeSchema, stripeProviderConfigSchema, type StripeProviderConfig } from './schema';
import { verifyStripeWebhook } from './verify';

export type { StripeProviderConfig } from './schema';
export { createStripeClient } from './client';

type Ctx = NormalizeContext<StripeProviderConfig>;

export const stripeConnector: PspConnector<StripeProviderConfig> = {
  id: STRIPE_PROVIDER,
  // The debtor's flags in the customer's metadata (src/notify/stripe-writeback-stage.ts writeFlagsToStripe).
  capabilities: { customerMetadata: true },
  configSchema: stripeProviderConfigSchema,
  verify: (req, config, now) => verifyStripeWebhook(req, config, now),
  normalize: (raw, ctx) => normalizeWithLookups(raw, ctx),
};

/**
 * normalize → (apiKey and a fact missing) → lookup → normalize again with the fetched objects.
 * `api` is injectable; by default the SDK client of the merchant's config (client.ts).
 */
export function normalizeWithLookups(raw: RawInboundEvent, ctx: Ctx, api?: StripeLookupApi): PaymentEvent | Promise<PaymentEvent> {
  const event = normalizeStripeEvent(raw, ctx);
  if (!ctx.config.apiKey) return event;
  if (needsFailureLookup(raw, event, ctx)) return withinBudget(ctx, event, 'failureLookup', () => withFailureLookup(raw, ctx, event, api ?? stripeClientFor(ctx.config)));
  if (needsInvoiceLookup(raw, event)) return withinBudget(ctx, event, 'invoiceLookup', () => withDisputeInvoiceLookup(raw, ctx, event, api ?? stripeClientFor(ctx.config)));
  const paymentIntent = paymentInvoiceToAsk(raw, event);
  if (paymentIntent) return withinBudget(ctx, event, 'invoiceLookup', () => withPaymentInvoiceLookup(raw, ctx, event, paymentIntent, api ?? stripeClientFor(ctx.config)));
  const paymentMethod = mandatePaymentMethodToFetch(raw);
  if (paymentMethod) return withinBudget(ctx, event, 'customerLookup', () => withMandateCustomerLookup(raw, ctx, event, paymentMethod, api ?? stripeClientFor(ctx.config)));
  return event;
}

/**
 * The lookup's retry budget (`lookupAttempts`, issue 12 hole 9): a retryable failure (Stripe
 * unreachable, 5xx, 429) throws so the outbox tries the event again — until the last budgeted try,
 * which goes on with the event as the webhook carried it (the normalizer's own reason, `unknown`
 * when it had no code) and says so in `detail.<what>Pending`. The pipeline then owes a re-lookup
 * that fills the reason in once Stripe answers (src/pipeline/re-enrich.ts). A final failure is
 * never held back from its case by an API we cannot reach.
 */
async function withinBudget(ctx: Ctx, event: PaymentEvent, what: 'failureLookup' | 'invoiceLookup' | 'customerLookup', lookup: () => Promise<PaymentEvent>): Promise<PaymentEvent> {
  try {
    return await lookup();
  } catch (err) {
    // Never more tries than the outbox gives the event, or it dies in the dead letter before it goes on without the lookup.
    const budget = Math.max(1, Math.min(ctx.config.lookupAttempts ?? 3, (ctx.maxAttempts ?? Infinity) - 1));
    if (!(err instanceof StripeLookupRetryable) || (ctx.attempt ?? 1) < budget) throw err;
    return withDetail(event, { [`${what}Error`]: `${err.message} (gave up after ${budget} tries; the event went on without it)`, [`${what}Pending`]: true });
  }
}

/** A failed or refunded basil PaymentIntent/Charge: the PaymentIntent whose invoice payments tell. */
function paymentInvoiceToAsk(raw: RawInboundEvent, event: PaymentEvent): string | undefined {
  if (event.kind !== 'payment_failed' && event.kind !== 'refund') return undefined;
  const object = objectOf(raw);
  if (object?.object !== 'payment_intent' && object?.object !== 'charge') return undefined;
  return paymentInvoiceToLookUp(object);
}

/** An inactive mandate whose payment method (and so its customer) is only an id. */
function mandatePaymentMethodToFetch(raw: RawInboundEvent): string | undefined {
  const object = objectOf(raw);
  if (object?.object !== 'mandate' || object.status !== 'inactive') return undefined;
  return typeof object.payment_method === 'string' && object.payment_method ? object.payment_method : undefined;
}

function needsFailureLookup(raw: RawInboundEvent, event: PaymentEvent, ctx: Ctx): boolean {
  if (event.kind !== 'payment_failed' && event.kind !== 'invoice_uncollectible') return false;
  if (objectOf(raw)?.object !== 'invoice' || !event.failure) return false;
  // The normalizer picks a known candidate when there is one; a code outside the mapping means none was.
  return !Object.prototype.hasOwnProperty.call(ctx.mapping.failureCodes, event.failure.code);
}

function needsInvoiceLookup(raw: RawInboundEvent, event: PaymentEvent): boolean {
  return event.kind === 'chargeback' && objectOf(raw)?.object === 'dispute' && !event.invoice;
}

async function withFailureLookup(raw: RawInboundEvent, ctx: Ctx, event: PaymentEvent, api: StripeLookupApi): Promise<PaymentEvent> {
  const found = await lookupInvoiceFailure(api, objectOf(raw), ctx.config.apiKey);
  let result = event;
  let source = found.source;
  if (found.invoice) {
    try {
      result = normalizeStripeEvent(withObject(raw, found.invoice), ctx);
    } catch (err) {
      // What Stripe answered does not fit our schema: keep the event as it came.
      found.errors.push(`${source}: the fetched object could not be read: ${redact((err as Error).message, ctx.config.apiKey)}`);
      source = undefined;
    }
  }
  return withDetail(result, {
    failureLookup: source,
    failureLookupError: found.errors.length > 0 ? found.errors.join('; ') : undefined,
  });
}

async function withDisputeInvoiceLookup(raw: RawInboundEvent, ctx: Ctx, event: PaymentEvent, api: StripeLookupApi): Promise<PaymentEvent> {
  const object = objectOf(raw) as Record<string, unknown>;
  const dispute = stripeDisputeSchema.parse(object); // normalizeStripeEvent parsed it already
  const found = await lookupDisputeInvoice(api, dispute, ctx.config.apiKey);
  let result = event;
  let source = found.source;
  if (found.invoiceRef) {
    // Where a pre-basil payload names it: the dispute's (expanded) charge's `invoice`.
    const base = found.charge ?? (typeof object.charge === 'object' && object.charge ? (object.charge as Record<string, unknown>) : { id: dispute.charge });
    const charge = { ...base, invoice: found.invoiceRef };
    try {
      result = normalizeStripeEvent(withObject(raw, { ...object, charge }), ctx);
    } catch (err) {
      found.errors.push(`${source}: the fetched object could not be read: ${redact((err as Error).message, ctx.config.apiKey)}`);
      source = undefined;
    }
  }
  return withDetail(result, {
    invoiceLookup: source,
    invoiceLookupError: found.errors.length > 0 ? found.errors.join('; ') : undefined,
  });
}

async function withPaymentInvoiceLookup(raw: RawInboundEvent, ctx: Ctx, event: PaymentEvent, paymentIntent: string, api: StripeLookupApi): Promise<PaymentEvent> {
  const object = objectOf(raw) as Record<string, unknown>;
  const found = await lookupPaymentInvoice(api, paymentIntent, ctx.config.apiKey);
  let result = event;
  let source: string | undefined;
  if (found.invoiceRef !== undefined) {
    // Where a pre-basil PaymentIntent/Charge carries it; null says "no invoice".
    result = normalizeStripeEvent(withObject(raw, { ...object, invoice: found.invoiceRef }), ctx);
    source = 'invoice_payments';
  }
  return withDetail(result, {
    invoiceLookup: source,
    invoiceLookupError: found.errors.length > 0 ? found.errors.join('; ') : undefined,
  });
}

async function withMandateCustomerLookup(raw: RawInboundEvent, ctx: Ctx, event: PaymentEvent, paymentMethod: string, api: StripeLookupApi): Promise<PaymentEvent> {
  const object = objectOf(raw) as Record<string, unknown>;
  const found = await lookupPaymentMethod(api, paymentMethod, ctx.config.apiKey);
  let result = event;
  let source: string | undefined;
  if (found.paymentMethod) {
    try {
      result = normalizeStripeEvent(withObject(raw, { ...object, payment_method: found.paymentMethod }), ctx);
      source = 'payment_method';
    } catch (err) {
      found.errors.push(`payment_method: the fetched object could not be read: ${redact((err as Error).message, ctx.config.apiKey)}`);
    }
  }
  return withDetail(result, {
    customerLookup: source,
    customerLookupError: found.errors.length > 0 ? found.errors.join('; ') : undefined,
  });
}

// ---------------------------------------------------------------------------------------------

function objectOf(raw: RawInboundEvent): Record<string, unknown> | undefined {
  const data = (raw.payload as { data?: { object?: unknown } } | null)?.data;
  const object = data?.object;
  return typeof object === 'object' && object !== null ? (object as Record<string, unknown>) : undefined;
}

/** A copy of the raw event with another `data.object`; the stored raw event is never changed. */
function withObject(raw: RawInboundEvent, object: Record<string, unknown>): RawInboundEvent {
  const payload = raw.payload as Record<string, unknown> & { data: Record<string, unknown> };
  return { ...raw, payload: { ...payload, data: { ...payload.data, object } } };
}

function withDetail(event: PaymentEvent, extra: Record<string, unknown>): PaymentEvent {
  const add = Object.fromEntries(Object.entries(extra).filter(([, v]) => v !== undefined));
  if (Object.keys(add).length === 0) return event;
  return { ...event, detail: { ...(event.detail ?? {}), ...add } };
}
