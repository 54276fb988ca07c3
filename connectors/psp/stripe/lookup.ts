/**
 * Stripe API lookups for facts a webhook names only by id (contract §3: "may call the PSP's API").
 *
 * Real `invoice.payment_failed` events carry ids, not expanded objects: `payment_intent: "pi_…"`
 * before 2025-03-31.basil, and in basil no payment_intent/charge at all (only `payments` when the
 * event included it) — psp-webhooks.md §1.1. The decline code lives on the PaymentIntent
 * (`last_payment_error`) or the Charge (`failure_code`, `outcome.reason`) — §1.4. A
 * `charge.dispute.created` names its charge; which invoice it belongs to must be looked up.
 *
 * This module only fetches: it returns the fetched objects put back where the pure normalizer
 * (normalize.ts) reads expanded objects, so the code → mapping path stays one path. index.ts
 * composes the two.
 *
 * Calls go through the official SDK (client.ts). stripe-node 23 pins API version
 * `2026-10-28.endive` (node_modules/stripe/cjs/apiVersion.js), so what it retrieves is in the
 * post-basil shape: Charge and PaymentIntent have no `invoice` (Charges.d.ts, PaymentIntents.d.ts)
 * and the link from a payment to its invoice is `GET /v1/invoice_payments`
 * (`invoicePayments.list({ invoice })` or `{ payment: { type: 'payment_intent', payment_intent } }`,
 * InvoicePayments.d.ts). A Charge that does carry `invoice` (an older pinned version, a fake) is
 * read too.
 *
 * Errors (never fatal for the event forever):
 *  - retryable (no answer, invalid JSON, 409, 429, 5xx, `Stripe-Should-Retry: true`) → throws
 *    StripeLookupRetryable, a plain Error: the outbox runner retries the row with backoff;
 *  - anything else Stripe answers (400/401/403/404) → the step is recorded as an error message and
 *    the event is kept with what it had (code `unknown`).
 * Messages never carry the API key (redacted even if Stripe echoed part of it).
 */
import Stripe from 'stripe';
import { createStripeClient } from './client';
import {
  stripeChargeSchema,
  stripeInvoicePaymentSchema,
  stripeInvoiceSchema,
  stripePaymentIntentSchema,
  type StripeChargePayload,
  type StripeDisputePayload,
  type StripePaymentIntentPayload,
  type StripeProviderConfig,
} from './schema';

export type LookupSource = 'payment_intent' | 'charge' | 'invoice_payments' | 'payment_method';

/** Per request: a lookup runs inside an outbox lease (120 s by default), the SDK's default is 80 s. */
export const LOOKUP_TIMEOUT_MS = 15_000;

/** The parts of the SDK the lookups use; a Stripe instance satisfies it. */
export type StripeLookupApi = Pick<Stripe, 'paymentIntents' | 'charges' | 'invoicePayments' | 'paymentMethods'>;

/** A Stripe API failure that another attempt may fix. A plain Error on purpose: the outbox retries it. */
export class StripeLookupRetryable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'StripeLookupRetryable';
  }
}

export interface InvoiceFailureLookup {
  /** Which fetched object the facts came from; absent when nothing could be fetched. */
  source?: LookupSource;
  /**
   * The event's invoice object with what was fetched put where an expanded payload carries it
   * (`payment_intent`, `charge`, `payments.data[].payment.*`); absent when nothing was fetched.
   */
  invoice?: Record<string, unknown>;
  /** Non-retryable Stripe errors of the steps tried, secret-free. */
  errors: string[];
}

export interface DisputeInvoiceLookup {
  source?: LookupSource;
  /** The invoice the disputed payment belongs to. */
  invoiceRef?: string;
  /** The dispute's charge as fetched (for the customer's billing details), when it was. */
  charge?: Record<string, unknown>;
  errors: string[];
}

// Clients are cached per merchant config object (parsed once at boot).
const clients = new WeakMap<object, Stripe>();

export function stripeClientFor(config: StripeProviderConfig): Stripe {
  let client = clients.get(config);
  if (!client) {
    client = createStripeClient(config);
    clients.set(config, client);
  }
  return client;
}

// ---------------------------------------------------------------------------------------------
// Invoice failure: payment intent, else charge, else the invoice's payments.

export async function lookupInvoiceFailure(
  api: StripeLookupApi,
  invoiceObject: unknown,
  apiKey?: string,
): Promise<InvoiceFailureLookup> {
  const parsed = stripeInvoiceSchema.safeParse(invoiceObject);
  if (!parsed.success) return { errors: [] };
  const inv = parsed.data;
  const raw = invoiceObject as Record<string, unknown>;
  const errors: string[] = [];

  // The refs the event names, in the slots the normalizer reads (readInvoice in normalize.ts).
  const entries = inv.payments?.data ?? [];
  const chosenIndex = Math.max(0, entries.findIndex((p) => p.is_default));
  const chosen = entries[chosenIndex];
  const piRef = refOf(inv.payment_intent) ?? refOf(chosen?.payment?.payment_intent);
  const chargeRef = refOf(inv.charge) ?? refOf(chosen?.payment?.charge);
  const topLevelPi = refOf(inv.payment_intent) !== undefined;
  const topLevelCharge = refOf(inv.charge) !== undefined;

  if (piRef) {
    const pi = await step(errors, apiKey, 'payment_intent', piRef, () =>
      // latest_charge expanded: the charge's outcome and method come with the same call.
      api.paymentIntents.retrieve(piRef, { expand: ['latest_charge'] }, { timeout: LOOKUP_TIMEOUT_MS }),
    );
    if (pi && stripePaymentIntentSchema.safeParse(pi).success) {
      const invoice = topLevelPi
        ? { ...raw, payment_intent: pi }
        : replaceChosenPayment(raw, chosenIndex, { payment_intent: pi });
      return { source: 'payment_intent', invoice, errors };
    }
  }
  if (chargeRef) {
    const charge = await step(errors, apiKey, 'charge', chargeRef, () =>
      api.charges.retrieve(chargeRef, {}, { timeout: LOOKUP_TIMEOUT_MS }),
    );
    if (charge && stripeChargeSchema.safeParse(charge).success) {
      const invoice = topLevelCharge || !chosen ? { ...raw, charge } : replaceChosenPayment(raw, chosenIndex, { charge });
      return { source: 'charge', invoice, errors };
    }
  }
  if (!piRef && !chargeRef) {
    // Basil without `payments` (or an invoice whose attempt named nothing): ask for its payments.
    const list = await step(errors, apiKey, 'invoice_payments', `invoice=${inv.id}`, () =>
      api.invoicePayments.list(
        { invoice: inv.id, expand: ['data.payment.payment_intent', 'data.payment.charge'] },
        { timeout: LOOKUP_TIMEOUT_MS },
      ),
    );
    const data = (list?.data ?? []).map(plain).filter((p) => stripeInvoicePaymentSchema.safeParse(p).success);
    const found = data.some((p) => isObject(p.payment) && (isObject(p.payment.payment_intent) || isObject(p.payment.charge)));
    if (found) {
      const payments = { ...(isObject(raw.payments) ? raw.payments : { object: 'list' }), data };
      return { source: 'invoice_payments', invoice: { ...raw, payments }, errors };
    }
  }
  return { errors };
}

/** The invoice with its chosen `payments.data[i].payment` fields replaced by fetched objects. */
function replaceChosenPayment(raw: Record<string, unknown>, index: number, patch: Record<string, unknown>): Record<string, unknown> {
  const payments = raw.payments as { data: Record<string, unknown>[] } & Record<string, unknown>;
  const data = payments.data.map((entry, i) =>
    i === index ? { ...entry, payment: { ...(isObject(entry.payment) ? entry.payment : {}), ...patch } } : entry,
  );
  return { ...raw, payments: { ...payments, data } };
}

// ---------------------------------------------------------------------------------------------
// Dispute → invoice: the charge (pre-basil charges name their invoice), else the invoice payments
// of its payment intent; the payment intent itself only when the charge could not be fetched.

export async function lookupDisputeInvoice(
  api: StripeLookupApi,
  dispute: StripeDisputePayload,
  apiKey?: string,
): Promise<DisputeInvoiceLookup> {
  const errors: string[] = [];
  const chargeRef = refOf(dispute.charge);
  let piRef = refOf(dispute.payment_intent);
  let charge: StripeChargePayload | undefined;
  let chargeRaw: Record<string, unknown> | undefined;

  if (chargeRef) {
    const fetched = await step(errors, apiKey, 'charge', chargeRef, () =>
      api.charges.retrieve(chargeRef, {}, { timeout: LOOKUP_TIMEOUT_MS }),
    );
    const parsed = fetched ? stripeChargeSchema.safeParse(fetched) : undefined;
    if (parsed?.success) {
      charge = parsed.data;
      chargeRaw = plain(fetched);
      const invoiceRef = refOf(charge.invoice);
      if (invoiceRef) return { source: 'charge', invoiceRef, charge: chargeRaw, errors };
      // `invoice: null` on a pre-basil charge: a payment outside invoicing; nothing to find.
      if ('invoice' in chargeRaw) return { charge: chargeRaw, errors };
      piRef = piRef ?? refOf(charge.payment_intent);
    }
  }

  if (!charge && piRef) {
    const pi = await step(errors, apiKey, 'payment_intent', piRef, () =>
      api.paymentIntents.retrieve(piRef as string, {}, { timeout: LOOKUP_TIMEOUT_MS }),
    );
    const parsed: { success: boolean; data?: StripePaymentIntentPayload } | undefined = pi ? stripePaymentIntentSchema.safeParse(pi) : undefined;
    const invoiceRef = parsed?.success ? refOf(parsed.data?.invoice) : undefined;
    if (invoiceRef) return { source: 'payment_intent', invoiceRef, errors };
    if (pi && 'invoice' in pi) return { errors };
  }

  if (piRef) {
    const pi = piRef;
    const list = await step(errors, apiKey, 'invoice_payments', `payment_intent=${pi}`, () =>
      api.invoicePayments.list({ payment: { type: 'payment_intent', payment_intent: pi } }, { timeout: LOOKUP_TIMEOUT_MS }),
    );
    const entry = (list?.data ?? []).map(plain).find((p) => refOf(p.invoice));
    const invoiceRef = entry ? refOf(entry.invoice) : undefined;
    if (invoiceRef) return { source: 'invoice_payments', invoiceRef, charge: chargeRaw, errors };
  }
  return { charge: chargeRaw, errors };
}

// ---------------------------------------------------------------------------------------------
// Payment → invoice: the invoice payments of a PaymentIntent (basil has no `invoice` on it).

export interface PaymentInvoiceLookup {
  /** Stripe answered: the invoice's id, or null when the PaymentIntent pays no invoice (one-off). */
  invoiceRef?: string | null;
  errors: string[];
}

export async function lookupPaymentInvoice(api: StripeLookupApi, paymentIntent: string, apiKey?: string): Promise<PaymentInvoiceLookup> {
  const errors: string[] = [];
  const list = await step(errors, apiKey, 'invoice_payments', `payment_intent=${paymentIntent}`, () =>
    api.invoicePayments.list({ payment: { type: 'payment_intent', payment_intent: paymentIntent } }, { timeout: LOOKUP_TIMEOUT_MS }),
  );
  if (!list) return { errors };
  const entry = (list.data ?? []).map(plain).find((p) => refOf(p.invoice));
  return { invoiceRef: entry ? (refOf(entry.invoice) as string) : null, errors };
}

// ---------------------------------------------------------------------------------------------
// Mandate → customer: the mandate's payment method, fetched.

export interface PaymentMethodLookup {
  /** The payment method as fetched (plain JSON), when Stripe answered. */
  paymentMethod?: Record<string, unknown>;
  errors: string[];
}

export async function lookupPaymentMethod(api: StripeLookupApi, paymentMethod: string, apiKey?: string): Promise<PaymentMethodLookup> {
  const errors: string[] = [];
  const pm = await step(errors, apiKey, 'payment_method', paymentMethod, () =>
    api.paymentMethods.retrieve(paymentMethod, {}, { timeout: LOOKUP_TIMEOUT_MS }),
  );
  return pm ? { paymentMethod: plain(pm), errors } : { errors };
}

// ---------------------------------------------------------------------------------------------
// One API call: a result, undefined after a non-retryable Stripe error (recorded), or a throw.

async function step<T>(
  errors: string[],
  apiKey: string | undefined,
  what: LookupSource,
  ref: string,
  call: () => Promise<T>,
): Promise<T | undefined> {
  try {
    return await call();
  } catch (err) {
    const message = describe(err, apiKey);
    if (isRetryable(err)) throw new StripeLookupRetryable(`stripe lookup of ${what} ${ref} failed, will retry: ${message}`);
    if (err instanceof Stripe.errors.StripeError) {
      errors.push(`${what} ${ref}: ${message}`);
      return undefined;
    }
    // Not an answer from Stripe (a bug on our side): surface it; the outbox retries and dead-letters.
    throw err;
  }
}

/** Network trouble, an unparseable answer, a conflict, rate limiting, Stripe's own failures. */
export function isRetryable(err: unknown): boolean {
  if (err instanceof Stripe.errors.StripeConnectionError) return true;
  if (!(err instanceof Stripe.errors.StripeError)) return false;
  const headers = (err.headers ?? {}) as Record<string, string | undefined>;
  if (headers['stripe-should-retry'] === 'true') return true;
  if (headers['stripe-should-retry'] === 'false') return false;
  const status = err.statusCode;
  // No status: the SDK could not read the answer (e.g. "Invalid JSON received from the Stripe API").
  if (status === undefined) return true;
  return status === 409 || status === 429 || status >= 500;
}

function describe(err: unknown, apiKey: string | undefined): string {
  const e = err as { message?: unknown; statusCode?: unknown; type?: unknown; code?: unknown };
  const parts = [
    typeof e.statusCode === 'number' ? String(e.statusCode) : undefined,
    typeof e.type === 'string' ? e.type : undefined,
    typeof e.code === 'string' ? e.code : undefined,
  ].filter(Boolean);
  const text = typeof e.message === 'string' && e.message ? e.message.split('\n')[0] : String(err);
  return redact(`${parts.length > 0 ? `${parts.join(' ')}: ` : ''}${text}`, apiKey);
}

/** Removes the configured key and anything shaped like a Stripe secret or restricted key. */
export function redact(text: string, apiKey?: string): string {
  let out = apiKey ? text.split(apiKey).join('[redacted]') : text;
  out = out.replace(/\b(sk|rk)_(test|live)_[A-Za-z0-9*_]+/g, '[redacted]');
  return out;
}

// ---------------------------------------------------------------------------------------------

function refOf(value: unknown): string | undefined {
  if (typeof value === 'string' && value.length > 0) return value;
  if (isObject(value) && typeof value.id === 'string' && value.id.length > 0) return value.id;
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An SDK answer as plain JSON (drops the non-enumerable `lastResponse`). */
function plain(v: unknown): Record<string, unknown> {
  return (isObject(v) ? { ...v } : {}) as Record<string, unknown>;
}
