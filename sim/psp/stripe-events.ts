/**
 * Realistic Stripe webhook events for tests and the demo, shaped like Stripe's own
 * (shared/reference/psp-webhooks.md §1.5, from dj-stripe's invoice fixture), in the pre-2025
 * shape or the 2025-03-31.basil shape, and signed with the SDK's own test helper.
 *
 * Besides the invoice events: failed PaymentIntents and Charges (one-off or invoice-backed), the
 * dispute lifecycle, refunds, mandate updates and subscription status changes (§1.1), with the
 * objects a local fake Stripe (fake-stripe.ts) answers for lookups (`stripeObjects`).
 */
import Stripe from 'stripe';

export type InvoiceShape = 'legacy' | 'basil';

export interface InvoiceFacts {
  invoice: string;
  customer: string;
  amount: number;
  currency?: string;
  number?: string;
  subscription?: string;
  customerName?: string;
  customerEmail?: string;
  country?: string;
  /** Unix seconds of the event. */
  created: number;
  attempt?: number;
  /** Unix seconds of Stripe's next retry; null when it will not retry (final). */
  nextPaymentAttempt?: number | null;
  /** Decline or failure code, put where the shape keeps it (an expanded payment intent). */
  failureCode?: string;
  method?: 'card' | 'sepa_debit';
  shape?: InvoiceShape;
  business?: boolean;
  /**
   * The subscription's metadata, which Stripe copies onto its invoices (`subscription_details`,
   * Basil: `parent.subscription_details`): where a merchant keeps its own customer id.
   */
  subscriptionMetadata?: Record<string, string>;
  /**
   * The card's fingerprint on the failed attempt's PaymentMethod (`last_payment_error.payment_method
   * .card.fingerprint`, expanded in webhooks), when the facts have a failure code and the method is a card.
   */
  cardFingerprint?: string;
}

let seq = 0;
export function eventId(prefix = 'evt'): string {
  seq++;
  return `${prefix}_${Date.now().toString(36)}${seq.toString(36).padStart(6, '0')}${Math.random().toString(36).slice(2, 8)}`;
}

function invoiceObject(f: InvoiceFacts, status: 'open' | 'paid' | 'uncollectible' | 'void') {
  const shape = f.shape ?? 'legacy';
  const currency = (f.currency ?? 'eur').toLowerCase();
  const pi = `pi_${f.invoice.slice(3)}`;
  const ch = `ch_${f.invoice.slice(3)}`;
  const paid = status === 'paid';
  const base: Record<string, unknown> = {
    id: f.invoice,
    object: 'invoice',
    account_country: 'NL',
    amount_due: f.amount,
    amount_paid: paid ? f.amount : 0,
    amount_remaining: paid ? 0 : f.amount,
    attempt_count: f.attempt ?? 1,
    attempted: true,
    auto_advance: status === 'open',
    billing_reason: 'subscription_cycle',
    collection_method: 'charge_automatically',
    created: f.created - 3600,
    currency,
    customer: f.customer,
    customer_email: f.customerEmail ?? null,
    customer_name: f.customerName ?? null,
    customer_address: f.country ? { city: null, country: f.country, line1: null, line2: null, postal_code: null, state: null } : null,
    customer_tax_ids: f.business ? [{ type: 'eu_vat', value: 'NL123456789B01' }] : [],
    due_date: null,
    livemode: false,
    metadata: {},
    next_payment_attempt: status === 'open' ? (f.nextPaymentAttempt === undefined ? null : f.nextPaymentAttempt) : null,
    number: f.number ?? null,
    paid,
    payment_settings: { payment_method_types: [f.method ?? 'card'] },
    period_end: f.created - 3600,
    period_start: f.created - 3600 - 30 * 86400,
    status,
    status_transitions: { finalized_at: f.created - 3600, marked_uncollectible_at: status === 'uncollectible' ? f.created : null, paid_at: paid ? f.created : null, voided_at: status === 'void' ? f.created : null },
    subtotal: f.amount,
    total: f.amount,
    lines: { object: 'list', data: [], has_more: false, total_count: 1, url: `/v1/invoices/${f.invoice}/lines` },
  };
  const failure = f.failureCode
    ? {
        id: pi,
        object: 'payment_intent',
        status: 'requires_payment_method',
        last_payment_error: {
          type: f.method === 'sepa_debit' ? 'invalid_request_error' : 'card_error',
          code: f.method === 'sepa_debit' ? f.failureCode : 'card_declined',
          decline_code: f.method === 'sepa_debit' ? undefined : f.failureCode,
          message: `Payment failed: ${f.failureCode}`,
          payment_method: {
            id: `pm_${f.invoice.slice(3)}`,
            type: f.method ?? 'card',
            ...(f.cardFingerprint && (f.method ?? 'card') === 'card' ? { card: { brand: 'visa', last4: '4242', fingerprint: f.cardFingerprint } } : {}),
          },
        },
      }
    : pi;
  if (shape === 'legacy') {
    return { ...base, charge: ch, payment_intent: failure, subscription: f.subscription ?? null, ...(f.subscriptionMetadata ? { subscription_details: { metadata: f.subscriptionMetadata } } : {}) };
  }
  return {
    ...base,
    parent: f.subscription ? { type: 'subscription_details', quote_details: null, subscription_details: { metadata: f.subscriptionMetadata ?? {}, subscription: f.subscription } } : null,
    payments: { object: 'list', data: [{ id: `inpay_${f.invoice.slice(3)}`, object: 'invoice_payment', payment: { type: 'payment_intent', payment_intent: failure } }] },
  };
}

function envelope(type: string, object: unknown, created: number, shape: InvoiceShape = 'legacy') {
  return {
    id: eventId(),
    object: 'event',
    api_version: shape === 'basil' ? '2025-03-31.basil' : '2024-06-20',
    created,
    data: { object },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
  };
}

export const stripeEvents = {
  paymentFailed: (f: InvoiceFacts) => envelope('invoice.payment_failed', invoiceObject(f, 'open'), f.created, f.shape),
  paid: (f: InvoiceFacts) => envelope('invoice.paid', invoiceObject(f, 'paid'), f.created, f.shape),
  markedUncollectible: (f: InvoiceFacts) => envelope('invoice.marked_uncollectible', invoiceObject(f, 'uncollectible'), f.created, f.shape),
  voided: (f: InvoiceFacts) => envelope('invoice.voided', invoiceObject(f, 'void'), f.created, f.shape),
  disputeCreated: (f: InvoiceFacts & { reason?: string }) =>
    envelope(
      'charge.dispute.created',
      {
        id: `dp_${f.invoice.slice(3)}`,
        object: 'dispute',
        amount: f.amount,
        currency: (f.currency ?? 'eur').toLowerCase(),
        charge: `ch_${f.invoice.slice(3)}`,
        payment_intent: `pi_${f.invoice.slice(3)}`,
        reason: f.reason ?? 'fraudulent',
        status: 'needs_response',
        created: f.created,
        livemode: false,
      },
      f.created,
    ),
  other: (type: string, created: number) => envelope(type, { id: `obj_${eventId('x')}`, object: 'unknown' }, created),

  // --- PaymentIntent / Charge failures (psp-webhooks.md §1.1, §1.4) ------------------------------
  /** `payment_intent.payment_failed`; one-off unless `invoice` names one (see PaymentFacts). */
  paymentIntentFailed: (f: PaymentFacts) => envelope('payment_intent.payment_failed', paymentIntentObject(f), f.created, f.shape),
  /** `charge.failed` for the same payment (Stripe sends both for one failed attempt). */
  chargeFailed: (f: PaymentFacts) => envelope('charge.failed', chargeObject(f, 'failed'), f.created, f.shape),

  // --- The rest of a dispute's life, on the invoice's charge (ids as disputeCreated) --------------
  disputeUpdated: (f: InvoiceFacts & DisputeFacts) => envelope('charge.dispute.updated', disputeObject(f, f.status ?? 'under_review'), f.created),
  /** `status` won: the merchant kept the money; lost: the chargeback stands. */
  disputeClosed: (f: InvoiceFacts & DisputeFacts & { status: 'won' | 'lost' | 'warning_closed' }) =>
    envelope('charge.dispute.closed', disputeObject(f, f.status), f.created),
  disputeFundsWithdrawn: (f: InvoiceFacts & DisputeFacts) => envelope('charge.dispute.funds_withdrawn', disputeObject(f, f.status ?? 'needs_response'), f.created),
  disputeFundsReinstated: (f: InvoiceFacts & DisputeFacts) => envelope('charge.dispute.funds_reinstated', disputeObject(f, f.status ?? 'won'), f.created),

  /**
   * `charge.refunded` on the invoice's charge (`ch_<invoice id without in_>`); `amountRefunded`
   * (cumulative, default the whole amount). Legacy shape names the invoice; basil does not.
   */
  chargeRefunded: (f: InvoiceFacts & { amountRefunded?: number }) => {
    const tail = f.invoice.slice(3);
    const refunded = f.amountRefunded ?? f.amount;
    const charge = chargeObject(
      {
        paymentIntent: `pi_${tail}`,
        charge: `ch_${tail}`,
        customer: f.customer,
        amount: f.amount,
        currency: f.currency,
        created: f.created,
        description: 'Subscription update',
        method: f.method,
        invoice: f.invoice,
        shape: f.shape,
        customerName: f.customerName,
        customerEmail: f.customerEmail,
        country: f.country,
      },
      'succeeded',
    );
    return envelope('charge.refunded', { ...charge, amount_refunded: refunded, refunded: refunded >= f.amount }, f.created, f.shape);
  },

  // --- Customer-level facts -------------------------------------------------------------------
  /** `mandate.updated`; the mandate names only its payment method (Mandates.d.ts). */
  mandateUpdated: (f: MandateFacts) =>
    envelope(
      'mandate.updated',
      {
        id: f.mandate ?? `mandate_${f.paymentMethod.slice(3)}`,
        object: 'mandate',
        customer_acceptance: { accepted_at: f.created - 90 * 86400, online: { ip_address: '192.0.2.10', user_agent: 'Mozilla/5.0' }, type: 'online' },
        livemode: false,
        multi_use: {},
        payment_method: f.paymentMethod,
        payment_method_details: { sepa_debit: { reference: `MNDT-${f.paymentMethod.slice(3, 11).toUpperCase()}`, url: 'https://stripe.com/mandate' }, type: 'sepa_debit' },
        status: f.status,
        type: 'multi_use',
      },
      f.created,
    ),
  /** `customer.subscription.updated` with `previous_attributes.status` when `previousStatus` is given. */
  subscriptionUpdated: (f: SubscriptionFacts) => {
    const e = envelope(
      'customer.subscription.updated',
      {
        id: f.subscription,
        object: 'subscription',
        customer: f.customer,
        status: f.status,
        collection_method: 'charge_automatically',
        created: f.created - 60 * 86400,
        current_period_start: f.created - 86400,
        latest_invoice: f.latestInvoice ?? null,
        livemode: false,
        metadata: {},
      },
      f.created,
    );
    const previous = f.previousStatus !== undefined ? { status: f.previousStatus } : { metadata: {} };
    return { ...e, data: { ...e.data, previous_attributes: previous } };
  },
};

/**
 * A one-off (or invoice-backed) payment attempt. `invoice`: the invoice it pays, `null` for a
 * one-off; in the legacy shape the field is there (`invoice: "in_…"` / `null`), in the basil shape
 * it is absent (2025-03-31.basil removed it, psp-webhooks.md §1.1).
 */
export interface PaymentFacts {
  paymentIntent: string;
  /** Default `ch_<paymentIntent without pi_>`. */
  charge?: string;
  /** null: a guest payment. */
  customer: string | null;
  amount: number;
  currency?: string;
  /** Unix seconds of the event (and of the attempt). */
  created: number;
  description?: string | null;
  /** Card decline code, or a bank-debit failure code for sepa_debit. */
  failureCode?: string;
  method?: 'card' | 'sepa_debit';
  invoice?: string | null;
  shape?: InvoiceShape;
  customerName?: string;
  customerEmail?: string;
  country?: string;
  receiptEmail?: string | null;
  setupFutureUsage?: 'off_session' | 'on_session' | null;
  metadata?: Record<string, string>;
}

export interface DisputeFacts {
  reason?: string;
  status?: string;
}

export interface MandateFacts {
  paymentMethod: string;
  mandate?: string;
  status: 'active' | 'inactive' | 'pending';
  created: number;
}

export interface SubscriptionFacts {
  subscription: string;
  customer: string;
  status: 'active' | 'past_due' | 'unpaid' | 'canceled' | 'incomplete' | 'trialing' | 'paused';
  /** The status before (previous_attributes.status); leave out for a change that is not a status change. */
  previousStatus?: string;
  latestInvoice?: string;
  created: number;
}

function billingDetails(f: PaymentFacts) {
  return {
    address: { city: null, country: f.country ?? null, line1: null, line2: null, postal_code: null, state: null },
    email: f.customerEmail ?? null,
    name: f.customerName ?? null,
    phone: null,
  };
}

function chargeIdOf(f: PaymentFacts): string {
  return f.charge ?? `ch_${f.paymentIntent.slice(3)}`;
}

function paymentMethodId(f: PaymentFacts): string {
  return `pm_${f.paymentIntent.slice(3)}`;
}

/** The error a failed attempt leaves on the PaymentIntent (§1.4: decline_code for cards, code for bank debits). */
function lastPaymentError(f: PaymentFacts) {
  const method = f.method ?? 'card';
  const code = f.failureCode ?? 'generic_decline';
  return {
    type: method === 'card' ? 'card_error' : 'invalid_request_error',
    code: method === 'card' ? 'card_declined' : code,
    ...(method === 'card' ? { decline_code: code } : {}),
    message: method === 'card' ? `Your card was declined (${code}).` : `The payment failed: ${code}.`,
    charge: chargeIdOf(f),
    payment_method: {
      id: paymentMethodId(f),
      object: 'payment_method',
      type: method,
      customer: f.customer,
      billing_details: billingDetails(f),
    },
  };
}

function withInvoiceField<T extends Record<string, unknown>>(obj: T, f: PaymentFacts): T {
  return (f.shape ?? 'legacy') === 'legacy' ? { ...obj, invoice: f.invoice ?? null } : obj;
}

function paymentIntentObject(f: PaymentFacts) {
  const method = f.method ?? 'card';
  return withInvoiceField(
    {
      id: f.paymentIntent,
      object: 'payment_intent',
      amount: f.amount,
      amount_received: 0,
      capture_method: 'automatic',
      confirmation_method: 'automatic',
      created: f.created - 5,
      currency: (f.currency ?? 'eur').toLowerCase(),
      customer: f.customer,
      description: f.description === undefined ? null : f.description,
      last_payment_error: lastPaymentError(f),
      latest_charge: chargeIdOf(f),
      livemode: false,
      metadata: f.metadata ?? {},
      payment_method: null,
      payment_method_types: [method],
      receipt_email: f.receiptEmail ?? null,
      setup_future_usage: f.setupFutureUsage ?? null,
      status: 'requires_payment_method',
    },
    f,
  );
}

function chargeObject(f: PaymentFacts, status: 'failed' | 'succeeded') {
  const method = f.method ?? 'card';
  const code = f.failureCode ?? 'generic_decline';
  const failed = status === 'failed';
  return withInvoiceField(
    {
      id: chargeIdOf(f),
      object: 'charge',
      amount: f.amount,
      amount_captured: failed ? 0 : f.amount,
      amount_refunded: 0,
      billing_details: billingDetails(f),
      captured: !failed,
      created: f.created - 5,
      currency: (f.currency ?? 'eur').toLowerCase(),
      customer: f.customer,
      description: f.description === undefined ? null : f.description,
      disputed: false,
      failure_code: failed ? (method === 'card' ? 'card_declined' : code) : null,
      failure_message: failed ? (method === 'card' ? 'Your card was declined.' : `The payment failed: ${code}.`) : null,
      livemode: false,
      metadata: f.metadata ?? {},
      outcome: failed
        ? { network_status: 'declined_by_network', reason: method === 'card' ? code : null, risk_level: 'normal', seller_message: 'The bank did not return any further details with this decline.', type: 'issuer_declined' }
        : { network_status: 'approved_by_network', reason: null, risk_level: 'normal', seller_message: 'Payment complete.', type: 'authorized' },
      paid: !failed,
      payment_intent: f.paymentIntent,
      payment_method: paymentMethodId(f),
      payment_method_details: { type: method },
      receipt_email: f.receiptEmail ?? null,
      refunded: false,
      status,
    },
    f,
  );
}

function disputeObject(f: InvoiceFacts & DisputeFacts, status: string) {
  const tail = f.invoice.slice(3);
  return {
    id: `dp_${tail}`,
    object: 'dispute',
    amount: f.amount,
    currency: (f.currency ?? 'eur').toLowerCase(),
    charge: `ch_${tail}`,
    payment_intent: `pi_${tail}`,
    reason: f.reason ?? 'fraudulent',
    status,
    created: f.created,
    livemode: false,
  };
}

/**
 * Objects as Stripe's API answers them, for the fake (fake-stripe.ts maps): what a lookup fetches.
 */
export const stripeObjects = {
  /** GET /v1/payment_methods/:id — a SEPA Direct Debit payment method of a customer. */
  paymentMethod: (id: string, customer: string | null, extra: { name?: string; email?: string; country?: string } = {}) => ({
    id,
    object: 'payment_method',
    type: 'sepa_debit',
    customer,
    billing_details: {
      address: { city: null, country: extra.country ?? null, line1: null, line2: null, postal_code: null, state: null },
      email: extra.email ?? null,
      name: extra.name ?? null,
      phone: null,
    },
    sepa_debit: { bank_code: '37040044', country: 'DE', last4: '3000' },
    created: 1700000000,
    livemode: false,
    metadata: {},
  }),
  /** An InvoicePayment linking a PaymentIntent to its invoice (GET /v1/invoice_payments). */
  invoicePayment: (invoice: string, paymentIntent: string, amount: number, status: 'open' | 'paid' | 'canceled' = 'open') => ({
    id: `inpay_${paymentIntent.slice(3)}`,
    object: 'invoice_payment',
    amount_paid: status === 'paid' ? amount : null,
    amount_requested: amount,
    created: 1700000000,
    currency: 'eur',
    invoice,
    is_default: true,
    livemode: false,
    payment: { type: 'payment_intent', payment_intent: paymentIntent },
    status,
  }),
  /** A failed PaymentIntent as GET /v1/payment_intents/:id answers it (basil: no `invoice`). */
  paymentIntent: (f: PaymentFacts) => paymentIntentObject({ ...f, shape: 'basil' }),
  /** A charge as GET /v1/charges/:id answers it (basil: no `invoice`). */
  charge: (f: PaymentFacts, status: 'failed' | 'succeeded' = 'succeeded') => chargeObject({ ...f, shape: 'basil' }, status),
};

/** The API call that caused an event (`event.request`): its request id and the idempotency key the caller sent. */
export interface CausingRequest {
  id?: string;
  idempotencyKey?: string | null;
}

/**
 * The events Stripe sends after the hub's own write-back calls (src/notify/stripe-writeback-stage.ts),
 * each naming the call in `request` (`idempotency_key` = the key the SDK sent; omit it for an echo
 * whose key is unknown, e.g. an event from before API version 2017-05-25):
 *  - `invoices.pay(id, { paid_out_of_band: true })` → `invoice.paid`, the invoice `paid_out_of_band: true`;
 *  - `invoices.markUncollectible(id)` → `invoice.marked_uncollectible`.
 */
export const stripeEchoes = {
  paidOutOfBand: (f: InvoiceFacts, request: CausingRequest = {}) => {
    const e = stripeEvents.paid(f);
    return { ...e, data: { object: { ...(e.data.object as Record<string, unknown>), paid_out_of_band: true } }, request: causing(request) };
  },
  markedUncollectible: (f: InvoiceFacts, request: CausingRequest = {}) => ({ ...stripeEvents.markedUncollectible(f), request: causing(request) }),
};

function causing(r: CausingRequest) {
  return { id: r.id ?? `req_${eventId('r').slice(2, 18)}`, idempotency_key: r.idempotencyKey ?? null };
}

/** Body and Stripe-Signature header for an event, made with stripe-node's own helper. */
export function signStripe(event: unknown, secret: string, timestamp?: number): { body: string; header: string } {
  const body = JSON.stringify(event);
  const stripe = new Stripe('sk_test_signing_only');
  const header = stripe.webhooks.generateTestHeaderString({ payload: body, secret, timestamp });
  return { body, header };
}
