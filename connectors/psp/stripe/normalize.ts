/**
 * Stripe event → canonical PaymentEvent (contract §3). Pure: reads only the event, the merchant's
 * context and mappings/psp/stripe.yaml — no API calls.
 *
 * The kind comes from the mapping's `events` table (a type not listed is `ignored`); the facts are
 * read by the *object* the event carries (invoice, dispute, charge, …), so an event type added to
 * the YAML with a known object needs no code. Both Invoice shapes are read: before and after
 * API version 2025-03-31.basil, which moved `subscription` under `parent.subscription_details`
 * and replaced `charge`/`payment_intent` with `payments` (psp-webhooks.md §1.1).
 *
 * What each object becomes (the kind comes from the mapping; the facts may turn it into `ignored`):
 *  - invoice → the invoice's failure / payment / uncollectible / void;
 *  - payment_intent / charge failing (`payment_intent.payment_failed`, `charge.failed`):
 *     · invoice-backed (the object names its invoice) → `payment_failed` on that invoice with NO
 *       `failure`: the ledger keeps it on the timeline only, `invoice.payment_failed` decides
 *       finality; the codes go to `detail.failureCodes`;
 *     · one-off (no invoice) → a collectible item of its own: `invoice.ref` = the PaymentIntent id
 *       (the charge id without one), failure final (see paymentFailureEvent);
 *     · basil objects carry no `invoice` field at all: index.ts asks Stripe (invoice payments of the
 *       PaymentIntent) when it can, else the heuristic in invoiceLinkOf decides;
 *  - dispute (`charge.dispute.*`) → `chargeback` with `detail.disputeStatus`;
 *  - charge refunded → `refund` with the amount refunded so far in `payment.amount`;
 *  - mandate inactive → `mandate_revoked` on the payment method's customer (else `ignored`);
 *  - subscription turned past_due / unpaid → `subscription_status` (else `ignored`).
 */
import type {
  Address,
  CustomerInfo,
  FailureInfo,
  InvoiceInfo,
  PaymentEvent,
  PaymentEventKind,
  PaymentInfo,
  PaymentMethod,
} from '../../../src/domain/types';
import { money } from '../../../src/domain/money';
import { mapFailureCode } from '../../../src/mappings/load';
import { Permanent } from '../../../src/pipeline/errors';
import type { PspMapping } from '../../../src/mappings/types';
import type { NormalizeContext, RawInboundEvent } from '../types';
import { merchantRefOf } from '../merchant-ref';
import {
  stripeDisputeSchema,
  stripeEventSchema,
  stripeInvoiceSchema,
  stripeChargeSchema,
  stripeCustomerSchema,
  stripeMandateSchema,
  stripePaymentIntentSchema,
  stripeSubscriptionSchema,
  type StripeAddressPayload,
  type StripeBillingDetailsPayload,
  type StripeChargePayload,
  type StripeDisputePayload,
  type StripeInvoicePayload,
  type StripePaymentIntentPayload,
  type StripeProviderConfig,
} from './schema';

export const STRIPE_PROVIDER = 'stripe';

/**
 * A payload of a type we act on that lacks what the canonical event needs. Retrying cannot fix the
 * bytes, so it is Permanent (dead-lettered at once, src/pipeline/errors.ts); the raw event stays stored.
 */
export class StripePayloadError extends Permanent {
  constructor(message: string) {
    super(message);
    this.name = 'StripePayloadError';
  }
}

/** Stripe payment method types → canonical methods (contract §3); anything else is `other`. */
const METHODS: Record<string, PaymentMethod> = {
  card: 'card',
  sepa_debit: 'sepa_debit',
  ideal: 'ideal',
  bancontact: 'bancontact',
  paypal: 'paypal',
  // Both are push transfers into a Stripe-held account (https://docs.stripe.com/payments/bank-transfers).
  customer_balance: 'bank_transfer',
  bank_transfer: 'bank_transfer',
};

export function normalizeStripeEvent(raw: RawInboundEvent, ctx: NormalizeContext<StripeProviderConfig>): PaymentEvent {
  const envelope = stripeEventSchema.safeParse(raw.payload);
  if (!envelope.success) throw payloadError(raw.providerEventId, 'event', envelope.error);
  const event = envelope.data;
  const kind: PaymentEventKind = ctx.mapping.events[event.type] ?? 'ignored';
  const base: PaymentEvent = {
    merchantId: ctx.merchantId,
    provider: STRIPE_PROVIDER,
    providerEventId: event.id,
    providerEventType: event.type,
    kind,
    occurredAt: iso(event.created),
  };
  const object = event.data.object;
  const previous = event.data.previous_attributes ?? undefined;
  const facts: Facts = (() => {
    switch (object.object) {
      case 'invoice':
        return invoiceEvent(event.id, kind, object, ctx.mapping);
      case 'dispute':
        return disputeEvent(event.id, kind, object);
      case 'payment_intent':
      case 'charge':
        if (kind === 'payment_failed') return paymentFailureEvent(event.id, object, ctx.mapping);
        if (kind === 'refund' && object.object === 'charge') return refundEvent(event.id, object);
        return otherObjectEvent(object, previous);
      case 'mandate':
        return kind === 'mandate_revoked' ? mandateEvent(event.id, object) : otherObjectEvent(object, previous);
      case 'subscription':
        return kind === 'subscription_status' ? subscriptionEvent(event.id, object, previous) : otherObjectEvent(object, previous);
      default:
        return otherObjectEvent(object, previous);
    }
  })();
  const { kind: factKind, ...rest } = facts;
  // The API call that caused the event, when there was one: the ledger tells the hub's own
  // write-back (its Stripe idempotency key) from a fact Stripe or the merchant produced.
  const request = typeof event.request === 'string' ? { id: event.request } : event.request ?? undefined;
  const detail = compact({
    apiVersion: event.api_version ?? undefined,
    ...rest.detail,
    requestIdempotencyKey: request && 'idempotency_key' in request ? (request.idempotency_key ?? undefined) : undefined,
  });
  const customer = rest.customer && compact({ ...rest.customer, merchantRef: merchantRefOf(metadataSources(raw.payload), ctx.merchantRefKeys) });
  return compact({ ...base, kind: factKind ?? kind, ...rest, customer, detail: Object.keys(detail).length > 0 ? detail : undefined });
}

/**
 * Where a Stripe object carries the merchant's own customer id (src/ledger/debtor-key.ts), read
 * from the raw payload: the customer's `metadata` (when expanded), the subscription's metadata that
 * Stripe copies onto its invoices (`parent.subscription_details.metadata`, before Basil
 * `subscription_details.metadata`), then the invoice's or payment's own `metadata`.
 */
function metadataSources(payload: unknown): unknown[] {
  const o = (payload as { data?: { object?: Record<string, any> } } | null)?.data?.object;
  if (!o) return [];
  return [o.customer?.metadata, o.parent?.subscription_details?.metadata, o.subscription_details?.metadata, o.metadata];
}

/** What an object tells; `kind` only when the facts overrule the mapping (e.g. an active mandate → ignored). */
type Facts = Pick<PaymentEvent, 'customer' | 'invoice' | 'payment' | 'failure' | 'detail'> & { kind?: PaymentEventKind };

// ---------------------------------------------------------------------------------------------
// Invoice events: invoice.payment_failed / paid / payment_succeeded / marked_uncollectible / voided.

function invoiceEvent(eventId: string, kind: PaymentEventKind, object: unknown, mapping: PspMapping): Facts {
  const parsed = stripeInvoiceSchema.safeParse(object);
  if (!parsed.success) {
    // An event we only keep for the timeline must never fail on a shape we do not need.
    if (kind === 'ignored') return otherObjectEvent(object);
    throw payloadError(eventId, 'data.object (invoice)', parsed.error);
  }
  const inv = parsed.data;
  const read = readInvoice(inv);
  const facts: Facts = { customer: read.customer, invoice: read.invoice, payment: read.payment, detail: read.detail };

  if (kind === 'payment_failed' || kind === 'invoice_uncollectible') {
    const { code, candidates } = chooseFailureCode(mapping, read.failureCodes);
    const rule = mapFailureCode(mapping, code);
    // Contract §7: the failure is final when Stripe will not retry by itself — no next attempt
    // scheduled, or the invoice was marked uncollectible.
    const final = kind === 'invoice_uncollectible' || inv.next_payment_attempt == null;
    facts.failure = compact<FailureInfo>({
      code: rule.code,
      reason: rule.reason,
      message: read.failureMessage,
      retryable: rule.retryable,
      final,
      nextAttemptAt: !final && inv.next_payment_attempt != null ? iso(inv.next_payment_attempt) : undefined,
    });
    if (candidates.length > 1) facts.detail = { ...facts.detail, failureCodes: candidates };
  }
  if (kind === 'payment_succeeded') {
    const paid = money(inv.amount_paid ?? 0, inv.currency);
    if (facts.payment) facts.payment = { ...facts.payment, amount: paid };
    facts.detail = { ...facts.detail, amountPaid: paid, ...(inv.paid_out_of_band ? { paidOutOfBand: true } : {}) };
  }
  return facts;
}

interface InvoiceReading {
  customer?: CustomerInfo;
  invoice: InvoiceInfo;
  payment?: PaymentInfo;
  /** Raw failure codes, most specific first. */
  failureCodes: string[];
  failureMessage?: string;
  detail: Record<string, unknown>;
}

function readInvoice(inv: StripeInvoicePayload): InvoiceReading {
  const expandedCustomer = typeof inv.customer === 'object' && inv.customer ? inv.customer : undefined;
  const customerRef = refOf(inv.customer);
  const address = toAddress(inv.customer_address ?? expandedCustomer?.address);
  const customer: CustomerInfo | undefined = customerRef
    ? compact<CustomerInfo>({
        ref: customerRef,
        name: inv.customer_name ?? expandedCustomer?.name ?? undefined,
        email: inv.customer_email ?? expandedCustomer?.email ?? undefined,
        phone: inv.customer_phone ?? expandedCustomer?.phone ?? undefined,
        address,
        // The debtor's country, never `account_country` (that is the merchant's Stripe account).
        country: address?.country,
        locale: expandedCustomer?.preferred_locales?.[0] ?? undefined,
        // A tax id on the invoice means the customer invoices as a business (VAT/EIN…).
        type: inv.customer_tax_ids && inv.customer_tax_ids.length > 0 ? 'business' : 'consumer',
      })
    : undefined;

  const invoice = compact<InvoiceInfo>({
    ref: inv.id,
    number: inv.number ?? undefined,
    amountDue: money(inv.amount_remaining ?? inv.amount_due, inv.currency),
    dueAt: isoOrUndefined(inv.due_date),
    // Finalization is when the invoice is issued to the customer; `created` is the draft (often an
    // hour earlier for subscription renewals), used only when the invoice was never finalized.
    issuedAt: isoOrUndefined(inv.status_transitions?.finalized_at ?? inv.created),
    subscriptionRef: refOf(inv.subscription) ?? refOf(inv.parent?.subscription_details?.subscription),
    description: inv.description ?? undefined,
  });

  // Payment attempt: pre-basil `charge`/`payment_intent`; basil `payments.data[].payment`.
  const entries = inv.payments?.data ?? [];
  // The default payment is the one the invoice is collected with (InvoicePayment.is_default);
  // without that flag, the first listed.
  const chosen = entries.find((p) => p.is_default) ?? entries[0];
  const piValue = inv.payment_intent ?? chosen?.payment?.payment_intent;
  const chargeValue = inv.charge ?? chosen?.payment?.charge;
  const pi = typeof piValue === 'object' && piValue ? piValue : undefined;
  const charge: StripeChargePayload | undefined =
    typeof chargeValue === 'object' && chargeValue
      ? chargeValue
      : typeof pi?.latest_charge === 'object' && pi.latest_charge
        ? pi.latest_charge
        : undefined;
  const piRef = refOf(piValue);
  const chargeRef = refOf(chargeValue) ?? refOf(pi?.latest_charge);
  const related = unique([
    piRef,
    chargeRef,
    refOf(charge?.payment_intent),
    ...entries.flatMap((p) => [refOf(p.payment?.payment_intent), refOf(p.payment?.charge)]),
  ]);
  const ref = piRef ?? chargeRef;
  const lpe = pi?.last_payment_error;
  const payment: PaymentInfo | undefined = ref
    ? compact<PaymentInfo>({
        ref,
        method: paymentMethod(inv, pi, charge),
        attempt: inv.attempt_count ?? undefined,
        relatedRefs: related.length > 0 ? related : undefined,
        cardFingerprint: cardFingerprintOf(charge, lpe),
      })
    : undefined;

  const lfe = inv.last_finalization_error;
  return {
    customer,
    invoice,
    payment,
    // Most specific first: the issuer's decline code, then the generic code (psp-webhooks.md §1.4).
    // A charge's `outcome.reason` holds the decline code or a Radar verdict such as `highest_risk_level`.
    failureCodes: unique([
      lpe?.decline_code,
      lpe?.code,
      charge?.outcome?.reason,
      charge?.failure_code,
      lfe?.decline_code,
      lfe?.code,
    ]),
    failureMessage: lpe?.message ?? charge?.failure_message ?? lfe?.message ?? undefined,
    detail: compact({
      invoiceStatus: inv.status ?? undefined,
      billingReason: inv.billing_reason ?? undefined,
      attemptCount: payment ? undefined : (inv.attempt_count ?? undefined),
    }),
  };
}

/**
 * The card's fingerprint (the same card number, the same value in the merchant's account): the
 * charge's `payment_method_details.card`, else the PaymentMethod of the failed attempt, which
 * webhooks carry expanded. Hashed for screening only (src/screening/identifiers.ts).
 */
function cardFingerprintOf(
  charge: Pick<StripeChargePayload, 'payment_method_details'> | undefined,
  lpe: { payment_method?: { card?: { fingerprint?: string | null } | null } | null } | null | undefined,
): string | undefined {
  const v = charge?.payment_method_details?.card?.fingerprint ?? lpe?.payment_method?.card?.fingerprint;
  return typeof v === 'string' && v.trim() ? v.trim() : undefined;
}

/**
 * The method actually used when an expanded object says so, else the one the invoice allows
 * (when it allows exactly one canonical method), else `other`.
 */
function paymentMethod(
  inv: StripeInvoicePayload,
  pi: StripePaymentIntentPayload | undefined,
  charge: StripeChargePayload | undefined,
): PaymentMethod {
  const used =
    charge?.payment_method_details?.type ??
    pi?.last_payment_error?.payment_method?.type ??
    pi?.last_payment_error?.payment_method_type;
  if (used) return METHODS[used] ?? 'other';
  return singleMethod(pi?.payment_method_types) ?? singleMethod(inv.payment_settings?.payment_method_types) ?? 'other';
}

function singleMethod(types: string[] | null | undefined): PaymentMethod | undefined {
  if (!types || types.length === 0) return undefined;
  const methods = new Set(types.map((t) => METHODS[t] ?? 'other'));
  return methods.size === 1 ? [...methods][0] : undefined;
}

/**
 * The first candidate the mapping knows (a known generic `card_declined` beats an unknown new
 * decline code), else the most specific one, kept raw with reason `unknown`.
 */
function chooseFailureCode(mapping: PspMapping, candidates: string[]): { code: string | undefined; candidates: string[] } {
  const known = candidates.find((c) => c in mapping.failureCodes);
  return { code: known ?? candidates[0], candidates };
}

// ---------------------------------------------------------------------------------------------
// Disputes: charge.dispute.created / updated / closed / funds_withdrawn / funds_reinstated → chargeback.

function disputeEvent(eventId: string, kind: PaymentEventKind, object: unknown): Facts {
  const parsed = stripeDisputeSchema.safeParse(object);
  if (!parsed.success) {
    if (kind === 'ignored') return otherObjectEvent(object);
    throw payloadError(eventId, 'data.object (dispute)', parsed.error);
  }
  const dispute: StripeDisputePayload = parsed.data;
  const disputed = money(dispute.amount, dispute.currency);
  const charge = typeof dispute.charge === 'object' ? dispute.charge : undefined;
  const chargeRef = refOf(dispute.charge) as string;
  const piRef = refOf(dispute.payment_intent) ?? refOf(charge?.payment_intent);

  // Pre-basil charges name their invoice; basil removed Charge.invoice (psp-webhooks.md §1.1), so
  // then the ledger finds the invoice through the payment refs.
  let invoice: InvoiceInfo | undefined;
  let customer: CustomerInfo | undefined = charge ? customerFromCharge(charge) : undefined;
  const invoiceValue = charge?.invoice;
  const expandedInvoice = typeof invoiceValue === 'object' && invoiceValue ? stripeInvoiceSchema.safeParse(invoiceValue) : undefined;
  if (expandedInvoice?.success) {
    const read = readInvoice(expandedInvoice.data);
    invoice = read.invoice;
    customer = read.customer ?? customer;
  } else if (invoiceValue) {
    // Only the id is known: what the dispute takes back is what is owed again.
    invoice = { ref: refOf(invoiceValue) as string, amountDue: disputed };
  }

  const facts: Facts = {
    customer,
    invoice,
    payment: compact<PaymentInfo>({
      ref: chargeRef,
      method: methodOf(dispute.payment_method_details?.type ?? charge?.payment_method_details?.type),
      relatedRefs: piRef ? [piRef] : undefined,
    }),
    detail: compact({
      disputeRef: dispute.id,
      disputeReason: dispute.reason ?? undefined,
      disputeStatus: dispute.status ?? undefined,
      amount: disputed,
    }),
  };
  // Every dispute event is a chargeback on the invoice's timeline (the ledger applies the first and
  // keeps the later ones as timeline entries). A dispute the merchant won, or an inquiry closed
  // without a chargeback, took nothing from the merchant: no failure to note on the customer.
  if (kind === 'chargeback' && !MERCHANT_KEPT_FUNDS.includes(dispute.status ?? '')) {
    facts.failure = { code: dispute.reason ?? 'unknown', reason: 'disputed', retryable: false, final: true };
  }
  return facts;
}

/**
 * Dispute statuses after which the merchant has the money (Disputes.d.ts Dispute.Status): `won`;
 * `warning_closed` is an inquiry closed without becoming a chargeback.
 */
const MERCHANT_KEPT_FUNDS = ['won', 'warning_closed'];

function customerFromCharge(charge: StripeChargePayload): CustomerInfo | undefined {
  const ref = refOf(charge.customer);
  if (!ref) return undefined;
  const billing = charge.billing_details;
  const address = toAddress(billing?.address);
  return compact<CustomerInfo>({
    ref,
    name: billing?.name ?? undefined,
    email: billing?.email ?? undefined,
    phone: billing?.phone ?? undefined,
    address,
    country: address?.country,
    // A charge does not tell whether the payer is a business.
    type: 'consumer',
  });
}

// ---------------------------------------------------------------------------------------------
// PaymentIntent / Charge failures: payment_intent.payment_failed, charge.failed.

/**
 * Whether a PaymentIntent or Charge belongs to an invoice:
 *  - `invoice`: it names the invoice (pre-basil `invoice` field, on the object or its expanded
 *    PaymentIntent; or put there by the lookup in index.ts);
 *  - `none`: it says it has none (`invoice: null`), or it is a charge without a PaymentIntent
 *    (Stripe Billing collects invoices through PaymentIntents: `Invoice.payment_intent` before
 *    basil, `InvoicePayment.payment.payment_intent` after — InvoicePayments.d.ts);
 *  - `unknown`: a basil object (2025-03-31.basil removed `invoice` from Charge and PaymentIntent,
 *    psp-webhooks.md §1.1). `suspect` says why it looks invoice-backed, if it does.
 */
export type InvoiceLink =
  | { state: 'invoice'; ref: string }
  | { state: 'none'; why: string }
  | { state: 'unknown'; paymentIntent: string; suspect?: string };

export function invoiceLinkOf(object: unknown): InvoiceLink {
  const o = asRecord(object);
  const named = (holder: Record<string, unknown>): InvoiceLink | undefined => {
    if (!Object.prototype.hasOwnProperty.call(holder, 'invoice')) return undefined;
    const ref = refOf(holder.invoice);
    return ref ? { state: 'invoice', ref } : { state: 'none', why: 'invoice: null' };
  };
  const own = named(o);
  if (own) return own;
  if (o.object === 'payment_intent') {
    return { state: 'unknown', paymentIntent: str(o.id) ?? '', suspect: invoiceSuspicion([o]) };
  }
  // A charge: its expanded PaymentIntent may name the invoice.
  const pi = isRecord(o.payment_intent) ? o.payment_intent : undefined;
  const viaPi = pi ? named(pi) : undefined;
  if (viaPi) return viaPi;
  const piRef = refOf(o.payment_intent);
  if (!piRef) return { state: 'none', why: 'a charge without a PaymentIntent' };
  return { state: 'unknown', paymentIntent: piRef, suspect: invoiceSuspicion(pi ? [o, pi] : [o]) };
}

/**
 * The heuristic for a basil PaymentIntent/Charge when Stripe cannot be asked (no apiKey, or the
 * lookup was refused): it is taken as invoice-backed — kept on the timeline only, never a
 * collectible item of its own — when
 *  - `setup_future_usage` is set: the payment method is saved for later, as Billing does for
 *    subscription payments (real subscription PaymentIntents carry `off_session`);
 *  - its `description` mentions an invoice or subscription: Stripe Billing describes the payments
 *    it creates "Subscription creation", "Subscription update", "Payment for Invoice" (seen in
 *    public PaymentIntent/Charge payloads; not a documented contract);
 *  - a `metadata` key or value mentions an invoice or subscription (the merchant's own link).
 * Otherwise — description and metadata say nothing, no `setup_future_usage`, no `invoice` — it
 * is a one-off payment. Erring towards "invoice-backed" can only miss a one-off item; erring the
 * other way would hand one debt over twice (once as the invoice, once as its payment).
 */
function invoiceSuspicion(objects: Record<string, unknown>[]): string | undefined {
  const mentions = (v: unknown) => typeof v === 'string' && /invoice|subscription/i.test(v);
  for (const o of objects) {
    const sfu = str(o.setup_future_usage);
    if (sfu) return `setup_future_usage is ${sfu}`;
    if (mentions(o.description)) return `description "${o.description as string}"`;
    if (isRecord(o.metadata)) {
      const hit = Object.entries(o.metadata).find(([k, v]) => mentions(k) || mentions(v));
      if (hit) return `metadata ${hit[0]}`;
    }
  }
  return undefined;
}

/** The PaymentIntent id to ask Stripe about when the object does not say whether it has an invoice. */
export function paymentInvoiceToLookUp(object: unknown): string | undefined {
  const link = invoiceLinkOf(object);
  return link.state === 'unknown' && link.paymentIntent ? link.paymentIntent : undefined;
}

interface PaymentReading {
  objectType: 'payment_intent' | 'charge';
  objectRef: string;
  status?: string;
  /** The payment's id for the ledger: the PaymentIntent, else the charge. */
  ref: string;
  relatedRefs: string[];
  amount?: number;
  currency?: string;
  created?: number;
  description?: string;
  customer?: CustomerInfo;
  method: PaymentMethod;
  cardFingerprint?: string;
  /** Raw failure codes, most specific first. */
  failureCodes: string[];
  failureMessage?: string;
}

function readPayment(eventId: string, object: unknown): PaymentReading {
  const o = asRecord(object);
  if (o.object === 'payment_intent') {
    const parsed = stripePaymentIntentSchema.safeParse(object);
    if (!parsed.success) throw payloadError(eventId, 'data.object (payment_intent)', parsed.error);
    const pi = parsed.data;
    const charge = typeof pi.latest_charge === 'object' && pi.latest_charge ? pi.latest_charge : undefined;
    const lpe = pi.last_payment_error;
    const used = lpe?.payment_method?.type ?? lpe?.payment_method_type ?? charge?.payment_method_details?.type;
    return {
      objectType: 'payment_intent',
      objectRef: pi.id,
      status: pi.status ?? undefined,
      ref: pi.id,
      relatedRefs: unique([pi.id, refOf(pi.latest_charge)]),
      amount: pi.amount ?? undefined,
      currency: pi.currency ?? undefined,
      created: pi.created ?? undefined,
      description: pi.description ?? undefined,
      customer: paymentCustomer(pi.customer, charge?.billing_details ?? lpe?.payment_method?.billing_details, pi.receipt_email ?? charge?.receipt_email),
      method: used ? methodOf(used) : (singleMethod(pi.payment_method_types) ?? 'other'),
      cardFingerprint: cardFingerprintOf(charge, lpe),
      // psp-webhooks.md §1.4: the issuer's decline_code, then the generic code; the charge's
      // outcome.reason / failure_code when the PaymentIntent's error says nothing.
      failureCodes: unique([lpe?.decline_code, lpe?.code, charge?.outcome?.reason, charge?.failure_code]),
      failureMessage: lpe?.message ?? charge?.failure_message ?? undefined,
    };
  }
  const parsed = stripeChargeSchema.safeParse(object);
  if (!parsed.success) throw payloadError(eventId, 'data.object (charge)', parsed.error);
  const charge = parsed.data;
  const piRef = refOf(charge.payment_intent);
  const piParsed = isRecord(charge.payment_intent) ? stripePaymentIntentSchema.safeParse(charge.payment_intent) : undefined;
  const lpe = piParsed?.success ? piParsed.data.last_payment_error : undefined;
  return {
    objectType: 'charge',
    objectRef: charge.id,
    status: charge.status ?? undefined,
    ref: piRef ?? charge.id,
    relatedRefs: unique([charge.id, piRef]),
    amount: charge.amount ?? undefined,
    currency: charge.currency ?? undefined,
    created: charge.created ?? undefined,
    description: charge.description ?? undefined,
    customer: paymentCustomer(charge.customer, charge.billing_details, charge.receipt_email),
    method: methodOf(charge.payment_method_details?.type ?? lpe?.payment_method?.type),
    cardFingerprint: cardFingerprintOf(charge, lpe),
    // A charge's outcome.reason holds the decline code (or a Radar verdict), failure_code the generic code.
    failureCodes: unique([charge.outcome?.reason, charge.failure_code, lpe?.decline_code, lpe?.code]),
    failureMessage: charge.failure_message ?? lpe?.message ?? undefined,
  };
}

/**
 * A failed PaymentIntent or Charge.
 *
 * One-off (no invoice): a collectible item of its own, with `failure.final = true`. Stripe retries
 * automatically only invoices — Smart Retries and `next_payment_attempt` belong to Billing's
 * invoices (psp-webhooks.md §1.1 notes: "On each failed retry of a subscription invoice Stripe
 * emits another invoice.payment_failed … next_payment_attempt is the next retry time"); a
 * PaymentIntent has no retry schedule (no such field, §1.4) and after a failed attempt "transitions
 * to the requires_payment_method status" (stripe-node PaymentIntents.d.ts, confirm) to wait for
 * the merchant or customer to try again. Nothing will collect it by itself.
 *
 * Invoice-backed: `payment_failed` on the invoice with no `failure`, so the ledger only adds a
 * timeline entry (the invoice's own `invoice.payment_failed` says whether Stripe retries); the
 * codes are kept in `detail.failureCodes`.
 */
function paymentFailureEvent(eventId: string, object: unknown, mapping: PspMapping): Facts {
  const read = readPayment(eventId, object);
  const link = invoiceLinkOf(object);
  const { code, candidates } = chooseFailureCode(mapping, read.failureCodes);
  if (read.amount == null || !read.currency) {
    throw new StripePayloadError(`stripe event ${eventId}: data.object (${read.objectType}): amount and currency are required`);
  }
  const amount = money(read.amount, read.currency);
  const payment = compact<PaymentInfo>({ ref: read.ref, method: read.method, relatedRefs: read.relatedRefs.length > 0 ? read.relatedRefs : undefined, cardFingerprint: read.cardFingerprint });
  const detail = compact<Record<string, unknown>>({
    objectType: read.objectType,
    objectRef: read.objectRef,
    [read.objectType === 'payment_intent' ? 'paymentIntentStatus' : 'chargeStatus']: read.status,
    failureMessage: read.failureMessage,
  });

  if (link.state === 'invoice' || (link.state === 'unknown' && link.suspect)) {
    return {
      customer: read.customer,
      // Only the id is known; the amount is what this attempt tried to collect.
      invoice: link.state === 'invoice' ? { ref: link.ref, amountDue: amount } : undefined,
      payment,
      detail: compact({
        ...detail,
        invoiceBacked: link.state === 'invoice' ? true : 'suspected',
        invoiceLink: link.state === 'invoice' ? 'payload' : 'heuristic',
        heuristic: link.state === 'unknown' ? link.suspect : undefined,
        failureCodes: candidates.length > 0 ? candidates : undefined,
      }),
    };
  }

  const rule = mapFailureCode(mapping, code);
  return {
    customer: read.customer,
    invoice: compact<InvoiceInfo>({
      ref: read.ref,
      amountDue: amount,
      issuedAt: isoOrUndefined(read.created),
      description: read.description,
    }),
    payment,
    failure: compact<FailureInfo>({ code: rule.code, reason: rule.reason, message: read.failureMessage, retryable: rule.retryable, final: true }),
    detail: compact({
      ...detail,
      failureMessage: undefined,
      oneOff: true,
      invoiceLink: link.state === 'none' ? 'payload' : 'heuristic',
      failureCodes: candidates.length > 1 ? candidates : undefined,
    }),
  };
}

/**
 * The customer of a PaymentIntent/Charge: the `customer` (id or expanded), with name, email and
 * address from the expanded customer, else the payer's `billing_details`, else `receipt_email`.
 * A payment without a customer has none (a guest payment): the ledger then has no one to collect from.
 */
function paymentCustomer(
  value: unknown,
  billing: StripeBillingDetailsPayload | null | undefined,
  receiptEmail: string | null | undefined,
): CustomerInfo | undefined {
  const ref = refOf(value);
  if (!ref) return undefined;
  const parsed = isRecord(value) ? stripeCustomerSchema.safeParse(value) : undefined;
  const expanded = parsed?.success ? parsed.data : undefined;
  const address = toAddress(expanded?.address ?? billing?.address);
  return compact<CustomerInfo>({
    ref,
    name: expanded?.name ?? billing?.name ?? undefined,
    email: expanded?.email ?? billing?.email ?? receiptEmail ?? undefined,
    phone: expanded?.phone ?? billing?.phone ?? undefined,
    address,
    country: address?.country,
    locale: expanded?.preferred_locales?.[0] ?? undefined,
    // A payment does not tell whether the payer is a business.
    type: 'consumer',
  });
}

// ---------------------------------------------------------------------------------------------
// Refunds: charge.refunded → refund.

/**
 * `payment.amount` is what has been refunded on the charge so far (`amount_refunded` is cumulative,
 * Charges.d.ts), so the ledger can tell a full refund from a partial one against the invoice.
 * The invoice: the one the charge names; for a one-off payment (`invoice: null`, or no
 * PaymentIntent) the item the failure created (ref = PaymentIntent id, else charge id); a basil
 * charge names none and the ledger finds the invoice through the payment ids it has seen
 * (index.ts asks Stripe first when it can).
 */
function refundEvent(eventId: string, object: unknown): Facts {
  const read = readPayment(eventId, object);
  const charge = stripeChargeSchema.parse(object); // readPayment parsed it already
  if (!read.currency || charge.amount_refunded == null) {
    throw new StripePayloadError(`stripe event ${eventId}: data.object (charge): amount_refunded and currency are required`);
  }
  const link = invoiceLinkOf(object);
  const refunded = money(charge.amount_refunded, read.currency);
  const charged = read.amount != null ? money(read.amount, read.currency) : undefined;
  const invoiceRef = link.state === 'invoice' ? link.ref : link.state === 'none' ? read.ref : undefined;
  return {
    customer: read.customer,
    // The ledger never creates an invoice from a refund; amountDue is what the charge covered.
    invoice: invoiceRef ? { ref: invoiceRef, amountDue: charged ?? refunded } : undefined,
    payment: compact<PaymentInfo>({ ref: read.ref, method: read.method, relatedRefs: read.relatedRefs, amount: refunded, cardFingerprint: read.cardFingerprint }),
    detail: compact({
      objectType: 'charge',
      objectRef: charge.id,
      amountRefunded: refunded,
      chargeAmount: charged,
      fullyRefunded: charge.refunded ?? (charged ? refunded.value >= charged.value : undefined),
      invoiceLink: link.state === 'unknown' ? undefined : 'payload',
      oneOff: link.state === 'none' ? true : undefined,
    }),
  };
}

// ---------------------------------------------------------------------------------------------
// Mandates: mandate.updated with status inactive → mandate_revoked.

/**
 * A Mandate names its `payment_method` only (Mandates.d.ts); the customer is the payment
 * method's. Expanded (or put there by the lookup in index.ts) the customer is known and the
 * event is `mandate_revoked`; otherwise it is `ignored` with a note saying why. Any status other
 * than `inactive` (active, pending) is `ignored`.
 */
function mandateEvent(eventId: string, object: unknown): Facts {
  const parsed = stripeMandateSchema.safeParse(object);
  if (!parsed.success) {
    if (asRecord(object).status !== 'inactive') return { ...otherObjectEvent(object), kind: 'ignored' };
    throw payloadError(eventId, 'data.object (mandate)', parsed.error);
  }
  const m = parsed.data;
  const pm = typeof m.payment_method === 'object' && m.payment_method ? m.payment_method : undefined;
  const pmRef = refOf(m.payment_method);
  const detail = compact<Record<string, unknown>>({
    objectType: 'mandate',
    mandateRef: m.id,
    status: m.status ?? undefined,
    mandateType: m.type ?? undefined,
    paymentMethodRef: pmRef,
    method: methodOf(m.payment_method_details?.type ?? pm?.type),
  });
  if (m.status !== 'inactive') return { kind: 'ignored', detail };
  const customer = pm ? paymentCustomer(pm.customer, pm.billing_details, undefined) : undefined;
  if (!customer) {
    const note = pm
      ? `mandate ${m.id} is inactive, but its payment method ${pmRef ?? '(none)'} belongs to no customer`
      : `mandate ${m.id} is inactive, but the event names only payment method ${pmRef ?? '(none)'}, not its customer (looked up through the Stripe API when the merchant's stripe block has an apiKey)`;
    return { kind: 'ignored', detail: { ...detail, note } };
  }
  return { customer, detail };
}

// ---------------------------------------------------------------------------------------------
// Subscriptions: customer.subscription.updated to past_due / unpaid → subscription_status.

/** psp-webhooks.md §1.1: "Subscription went delinquent": status past_due / unpaid, the old one in previous_attributes.status. */
const DELINQUENT = ['past_due', 'unpaid'];

function subscriptionEvent(eventId: string, object: unknown, previous: Record<string, unknown> | undefined): Facts {
  const parsed = stripeSubscriptionSchema.safeParse(object);
  const statusChanged = !!previous && Object.prototype.hasOwnProperty.call(previous, 'status');
  const rawStatus = asRecord(object).status;
  if (!parsed.success) {
    if (!(statusChanged && typeof rawStatus === 'string' && DELINQUENT.includes(rawStatus))) return { ...otherObjectEvent(object, previous), kind: 'ignored' };
    throw payloadError(eventId, 'data.object (subscription)', parsed.error);
  }
  const sub = parsed.data;
  const detail = compact<Record<string, unknown>>({
    objectType: 'subscription',
    subscriptionRef: sub.id,
    status: sub.status ?? undefined,
    previousStatus: str(previous?.status),
    latestInvoiceRef: refOf(sub.latest_invoice),
  });
  const customer = paymentCustomer(sub.customer, undefined, undefined);
  const delinquent = statusChanged && !!sub.status && DELINQUENT.includes(sub.status);
  return delinquent ? { customer, detail } : { kind: 'ignored', customer, detail };
}

// ---------------------------------------------------------------------------------------------
// Everything else (listed in the mapping for later issues, or ignored): the refs that are readable.

function otherObjectEvent(object: unknown, previous?: Record<string, unknown>): Facts {
  const o = (typeof object === 'object' && object !== null ? object : {}) as Record<string, unknown>;
  const objectType = str(o.object);
  const id = str(o.id);
  const customerRef = refOf(o.customer);
  const customer: CustomerInfo | undefined = customerRef ? { ref: customerRef, type: 'consumer' } : undefined;
  const detail: Record<string, unknown> = { objectType, objectRef: id, invoiceRef: refOf(o.invoice) };
  let payment: PaymentInfo | undefined;

  switch (objectType) {
    case 'charge': {
      const piRef = refOf(o.payment_intent);
      const details = o.payment_method_details as { type?: unknown; card?: { fingerprint?: unknown } | null } | null | undefined;
      if (id) payment = compact<PaymentInfo>({ ref: piRef ?? id, method: methodOf(str(details?.type)), relatedRefs: unique([id, piRef]), cardFingerprint: str(details?.card?.fingerprint) });
      break;
    }
    case 'payment_intent': {
      const chargeRef = refOf(o.latest_charge);
      const types = Array.isArray(o.payment_method_types) ? (o.payment_method_types as unknown[]).filter(isString) : undefined;
      if (id) payment = compact<PaymentInfo>({ ref: id, method: singleMethod(types) ?? 'other', relatedRefs: unique([id, chargeRef]) });
      break;
    }
    case 'refund': {
      const ref = refOf(o.payment_intent) ?? refOf(o.charge);
      if (ref) payment = { ref, method: 'other', relatedRefs: unique([refOf(o.payment_intent), refOf(o.charge)]) };
      break;
    }
    case 'subscription':
      Object.assign(detail, { subscriptionRef: id, status: str(o.status), previousStatus: str(previous?.status) });
      break;
    case 'mandate':
      Object.assign(detail, { mandateRef: id, status: str(o.status), paymentMethodRef: refOf(o.payment_method) });
      break;
    default:
      break;
  }
  return { customer, payment, detail: compact(detail) };
}

// ---------------------------------------------------------------------------------------------
// Small readers.

function methodOf(type: string | null | undefined): PaymentMethod {
  return (type && METHODS[type]) || 'other';
}

/** An expandable field's id: the string itself or the expanded object's `id`. */
function refOf(value: unknown): string | undefined {
  if (typeof value === 'string' && value.length > 0) return value;
  if (typeof value === 'object' && value !== null) return str((value as { id?: unknown }).id);
  return undefined;
}

function toAddress(a: StripeAddressPayload | null | undefined): Address | undefined {
  if (!a) return undefined;
  const address = compact<Address>({
    line1: a.line1 ?? undefined,
    line2: a.line2 ?? undefined,
    postalCode: a.postal_code ?? undefined,
    city: a.city ?? undefined,
    state: a.state ?? undefined,
    country: a.country ? a.country.toUpperCase() : undefined,
  });
  return Object.keys(address).length > 0 ? address : undefined;
}

function iso(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString();
}

function isoOrUndefined(unixSeconds: number | null | undefined): string | undefined {
  return unixSeconds == null ? undefined : iso(unixSeconds);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function asRecord(v: unknown): Record<string, unknown> {
  return isRecord(v) ? v : {};
}

function isString(v: unknown): v is string {
  return typeof v === 'string';
}

function unique(values: (string | null | undefined)[]): string[] {
  return [...new Set(values.filter((v): v is string => typeof v === 'string' && v.length > 0))];
}

/** Drops keys whose value is undefined, so stored events carry no empty keys. */
function compact<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}

function payloadError(eventId: string, where: string, error: { issues: { path: PropertyKey[]; message: string }[] }): StripePayloadError {
  const issue = error.issues[0];
  const path = issue.path.map(String).join('.') || '(root)';
  return new StripePayloadError(`stripe event ${eventId}: ${where}: ${path}: ${issue.message}`);
}
