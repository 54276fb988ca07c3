/**
 * Realistic GoCardless webhook events and API resources for tests and the demo, shaped like the
 * documented ones (shared/reference/psp-webhooks.md §4.1 event shape, §4.4 failed SEPA payment and
 * its mandate-cancelled variant; resource fields per the official SDK's Types.ts), and a signer
 * that computes `Webhook-Signature` as GoCardless does (hex HMAC-SHA256 of the raw body, §4.2).
 */
import crypto from 'node:crypto';

type Json = Record<string, any>;

let seq = 0;
/** A fresh GoCardless-style id (`EV…`, `PM…`, `MD…`, `CU…`): prefix + 12 upper-case alphanumerics. */
export function gocardlessId(prefix: 'EV' | 'PM' | 'MD' | 'CU' | 'SB' | 'PO' | 'WB' | 'CR' | 'BA' = 'EV'): string {
  seq++;
  const tail = `${Date.now().toString(36)}${seq.toString(36).padStart(3, '0')}${crypto.randomBytes(3).toString('hex')}`.toUpperCase();
  return `${prefix}${tail.slice(-12).padStart(12, '0')}`;
}

export interface EventFacts {
  id?: string;
  /** ISO timestamp; default now. */
  createdAt?: string;
  origin?: 'bank' | 'gocardless' | 'api' | 'customer';
  cause?: string;
  description?: string;
  scheme?: string;
  reasonCode?: string;
  willAttemptRetry?: boolean;
  notRetriedReason?: string;
}

export interface PaymentEventFacts extends EventFacts {
  payment: string;
}

export interface MandateEventFacts extends EventFacts {
  mandate: string;
}

/** The description GoCardless gives with the documented example (§4.4); a plain one otherwise. */
const DESCRIPTIONS: Record<string, string> = {
  insufficient_funds: "The customer's account had insufficient funds to make this payment.",
};

function event(resourceType: string, action: string, links: Json, f: EventFacts, details: Json): Json {
  return {
    id: f.id ?? gocardlessId('EV'),
    created_at: f.createdAt ?? new Date().toISOString(),
    resource_type: resourceType,
    action,
    details: dropUndefined(details),
    metadata: {},
    links,
  };
}

/** A key given as `undefined` drops the default (an event without `reason_code`, say). */
function given<K extends keyof EventFacts>(f: EventFacts, key: K, fallback: EventFacts[K]): EventFacts[K] {
  return key in f ? f[key] : fallback;
}

function failureDetails(f: EventFacts, defaults: { cause: string; origin: string; scheme?: string; reasonCode?: string; what?: string }): Json {
  const cause = f.cause ?? defaults.cause;
  return {
    origin: f.origin ?? defaults.origin,
    cause,
    description: f.description ?? DESCRIPTIONS[cause] ?? `${defaults.what ?? 'The payment failed'}: ${cause.replace(/_/g, ' ')}.`,
    scheme: given(f, 'scheme', defaults.scheme),
    reason_code: given(f, 'reasonCode', defaults.reasonCode),
    will_attempt_retry: f.willAttemptRetry,
    not_retried_reason: f.notRetriedReason,
  };
}

export const gocardlessEvents = {
  /** `payments.failed`, by default the documented §4.4 example (insufficient_funds / AM04, final). */
  paymentFailed: (f: PaymentEventFacts) =>
    event('payments', 'failed', { payment: f.payment }, f, {
      ...failureDetails(f, { cause: 'insufficient_funds', origin: 'bank', scheme: 'sepa_core', reasonCode: 'AM04' }),
      will_attempt_retry: f.willAttemptRetry ?? false,
    }),
  /** `payments.charged_back`: the customer's bank refunded the debit at the customer's request. */
  paymentChargedBack: (f: PaymentEventFacts) =>
    event('payments', 'charged_back', { payment: f.payment }, f, {
      origin: f.origin ?? 'bank',
      cause: f.cause ?? 'refund_requested',
      description: f.description ?? 'The customer has requested a refund of this payment from their bank.',
      scheme: given(f, 'scheme', 'sepa_core'),
      reason_code: given(f, 'reasonCode', 'MD06'),
    }),
  paymentConfirmed: (f: PaymentEventFacts) =>
    event('payments', 'confirmed', { payment: f.payment }, f, {
      origin: f.origin ?? 'gocardless',
      cause: f.cause ?? 'payment_confirmed',
      description: f.description ?? 'Enough time has passed since the payment was submitted for the banks to return an error, so this payment is now confirmed.',
    }),
  paymentPaidOut: (f: PaymentEventFacts & { payout?: string }) =>
    event('payments', 'paid_out', { payment: f.payment, payout: f.payout ?? gocardlessId('PO') }, f, {
      origin: f.origin ?? 'gocardless',
      cause: f.cause ?? 'payment_paid_out',
      description: f.description ?? 'The payment has been paid out by GoCardless.',
    }),
  /** `mandates.cancelled`, by default the §4.4 variant (bank_account_closed / AC04). */
  mandateCancelled: (f: MandateEventFacts) =>
    event('mandates', 'cancelled', { mandate: f.mandate }, f, failureDetails(f, { cause: 'bank_account_closed', origin: 'bank', scheme: 'sepa_core', reasonCode: 'AC04', what: 'The mandate was cancelled' })),
  mandateFailed: (f: MandateEventFacts) =>
    event('mandates', 'failed', { mandate: f.mandate }, f, failureDetails(f, { cause: 'invalid_bank_details', origin: 'bank', scheme: 'sepa_core', reasonCode: 'AC01', what: 'The mandate failed' })),
  mandateExpired: (f: MandateEventFacts) =>
    event('mandates', 'expired', { mandate: f.mandate }, f, {
      origin: f.origin ?? 'gocardless',
      cause: f.cause ?? 'mandate_expired',
      description: f.description ?? 'The mandate expired because no payments were collected against it for over 13 months.',
    }),
  /** Any other event (kept, normalized as `ignored`), e.g. the SDK fixture's `subscriptions.created`. */
  other: (resourceType: string, action: string, links: Json, f: EventFacts = {}) =>
    event(resourceType, action, links, f, { origin: f.origin ?? 'api', cause: f.cause ?? `${resourceType.replace(/s$/, '')}_${action}`, description: f.description ?? `${resourceType} ${action}.` }),
};

/** The webhook body: `{"events":[…], "meta":{"webhook_id":"WB…"}}` (§0). */
export function webhookBody(events: Json[], webhookId = gocardlessId('WB')): Json {
  return { events, meta: { webhook_id: webhookId } };
}

/** Body bytes and `Webhook-Signature` for a delivery (a body object is JSON-stringified compactly, as GoCardless sends it). */
export function signGoCardless(body: unknown, secret: string): { body: string; signature: string } {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return { body: text, signature: crypto.createHmac('sha256', secret).update(text).digest('hex') };
}

// ---------------------------------------------------------------------------------------------
// API resources, as the fake (sim/psp/fake-gocardless.ts) serves them.

export const gocardlessResources = {
  payment: (f: { id: string; mandate: string; amount: number; currency?: string; chargeDate?: string; description?: string; status?: string; metadata?: Record<string, string>; subscription?: string; reference?: string; createdAt?: string }) => ({
    id: f.id,
    created_at: f.createdAt ?? '2014-04-02T10:00:00.000Z',
    charge_date: f.chargeDate ?? '2014-04-08',
    amount: f.amount,
    description: f.description ?? null,
    currency: f.currency ?? 'EUR',
    status: f.status ?? 'failed',
    reference: f.reference ?? null,
    metadata: f.metadata ?? {},
    amount_refunded: 0,
    fx: { fx_currency: null, fx_amount: null, exchange_rate: null, estimated_exchange_rate: null },
    retry_if_possible: true,
    links: dropUndefined({ mandate: f.mandate, creditor: 'CR000TESTCRED', subscription: f.subscription }),
  }),
  mandate: (f: { id: string; customer: string; scheme?: string; status?: string; reference?: string }) => ({
    id: f.id,
    created_at: '2014-03-01T09:00:00.000Z',
    reference: f.reference ?? `REF-${f.id.slice(2, 8)}`,
    status: f.status ?? 'active',
    scheme: f.scheme ?? 'sepa_core',
    next_possible_charge_date: '2014-05-02',
    payments_require_approval: false,
    metadata: {},
    links: { customer_bank_account: `BA${f.id.slice(2)}`, creditor: 'CR000TESTCRED', customer: f.customer },
  }),
  customer: (f: { id: string; givenName?: string; familyName?: string; companyName?: string; email?: string; countryCode?: string; language?: string; city?: string; postalCode?: string; addressLine1?: string; phoneNumber?: string }) => ({
    id: f.id,
    created_at: '2014-03-01T08:59:00.000Z',
    email: f.email ?? null,
    given_name: f.givenName ?? null,
    family_name: f.familyName ?? null,
    company_name: f.companyName ?? null,
    address_line1: f.addressLine1 ?? null,
    address_line2: null,
    address_line3: null,
    city: f.city ?? null,
    region: null,
    postal_code: f.postalCode ?? null,
    country_code: f.countryCode ?? null,
    language: f.language ?? 'en',
    phone_number: f.phoneNumber ?? null,
    swedish_identity_number: null,
    danish_identity_number: null,
    metadata: {},
  }),
};

function dropUndefined<T extends Json>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
