/**
 * GoCardless event (+ the resources fetched for it) → canonical PaymentEvent (contract §3). Pure:
 * reads only the event, what lookup.ts found, the merchant's context and
 * mappings/psp/gocardless.yaml — no API calls.
 *
 * - Kind: the mapping's `events` table keyed by `<resource_type>.<action>` (`payments.failed`);
 *   a type not listed is `ignored`.
 * - Failure code: GoCardless says to switch on `details.cause`, `details.reason_code` being
 *   "scheme-specific and can be inconsistent between banks" (psp-webhooks.md §4.1). So the cause
 *   is the code, unless the mapping can say nothing about it (unlisted, `other`, or a cause mapped
 *   to `unknown`) and the scheme's reason code (SEPA `AM04`…, through `include: [sepa]`) can. Both
 *   raw values are always kept in `detail`.
 * - Final (contract §7 (a)): "GoCardless will automatically retry the payment if event's
 *   `will_attempt_retry` field is true" (psp-webhooks.md §4.1, `payments.failed`) — so a failure is
 *   final unless that field is true.
 * - Invoice: GoCardless has no invoices; the payment is what is owed. Its ref is the payment id
 *   (`PM…`) unless the payment's metadata carries the merchant's own invoice reference
 *   (INVOICE_REF_METADATA_KEYS), so that a new payment the merchant creates for the same invoice
 *   lands on the same invoice. The payment id is always the payment ref (found again for a later
 *   chargeback or pay-out).
 * - Customer: payment → mandate → customer (`given_name`/`family_name`, or `company_name` for a
 *   business), fetched by lookup.ts.
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
import type { PspMapping } from '../../../src/mappings/types';
import { Permanent } from '../../../src/pipeline/errors';
import type { NormalizeContext, RawInboundEvent } from '../types';
import { merchantRefOf, withMerchantRef } from '../merchant-ref';
import { linkOf, type EventLookup } from './lookup';
import {
  gocardlessEventSchema,
  type GoCardlessCustomer,
  type GoCardlessEventPayload,
  type GoCardlessPayment,
  type GoCardlessProviderConfig,
} from './schema';
import { eventTypeOf } from './verify';

export const GOCARDLESS_PROVIDER = 'gocardless';

/**
 * Payment metadata keys that carry the merchant's invoice reference, first found wins. GoCardless
 * metadata is free-form (up to 3 keys chosen by the merchant); these are the names to use.
 */
export const INVOICE_REF_METADATA_KEYS = ['invoice_ref', 'invoice_id', 'invoice'] as const;
/** Payment metadata key for the invoice number the customer sees. */
export const INVOICE_NUMBER_METADATA_KEY = 'invoice_number';

/**
 * Schemes → canonical methods (contract §3). SEPA Core (and the retired COR1) is SEPA Direct
 * Debit; Faster Payments is GoCardless's push payment (Instant Bank Pay); every other scheme (Bacs,
 * ACH, BECS, Autogiro, Betalingsservice, PAD, PayTo…) is a direct debit with no canonical name.
 */
const METHODS: Record<string, PaymentMethod> = {
  sepa_core: 'sepa_debit',
  sepa_cor1: 'sepa_debit',
  faster_payments: 'bank_transfer',
};

/**
 * A payload of a type we act on that lacks what the canonical event needs. Retrying cannot fix the
 * bytes, so it is Permanent (dead-lettered at once, src/pipeline/errors.ts); the raw event stays stored.
 */
export class GoCardlessPayloadError extends Permanent {
  constructor(message: string) {
    super(message);
    this.name = 'GoCardlessPayloadError';
  }
}

export function parseGoCardlessEvent(raw: RawInboundEvent): GoCardlessEventPayload {
  const parsed = gocardlessEventSchema.safeParse(raw.payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue.path.map(String).join('.') || '(root)';
    throw new GoCardlessPayloadError(`gocardless event ${raw.providerEventId}: ${path}: ${issue.message}`);
  }
  return parsed.data;
}

export function kindOf(event: GoCardlessEventPayload, mapping: PspMapping): PaymentEventKind {
  return mapping.events[eventTypeOf(event)] ?? 'ignored';
}

type Facts = Pick<PaymentEvent, 'customer' | 'invoice' | 'payment' | 'failure' | 'detail'>;

export function normalizeGoCardlessEvent(
  raw: RawInboundEvent,
  ctx: NormalizeContext<GoCardlessProviderConfig>,
  found: EventLookup = { errors: [] },
): PaymentEvent {
  const event = parseGoCardlessEvent(raw);
  const type = eventTypeOf(event);
  const kind = kindOf(event, ctx.mapping);
  const details = event.details ?? {};
  const base: PaymentEvent = {
    merchantId: ctx.merchantId,
    provider: GOCARDLESS_PROVIDER,
    providerEventId: event.id,
    providerEventType: type,
    kind,
    occurredAt: new Date(event.created_at).toISOString(),
  };

  const facts: Facts =
    event.resource_type === 'payments'
      ? paymentEvent(event, kind, found, ctx.mapping)
      : event.resource_type === 'mandates'
        ? mandateEvent(event, kind, found, ctx.mapping)
        : { customer: customerOf(found, event.links ?? {}) };

  const detail = compact({
    origin: str(details.origin),
    cause: str(details.cause),
    reasonCode: str(details.reason_code),
    scheme: str(details.scheme),
    description: str(details.description),
    willAttemptRetry: details.will_attempt_retry ?? undefined,
    notRetriedReason: str(details.not_retried_reason),
    ...facts.detail,
    lookupErrors: found.errors.length > 0 ? [...found.errors] : undefined,
  });
  // The merchant's own customer id (src/ledger/debtor-key.ts): the customer's metadata, then the resource's (in the event).
  const customer = withMerchantRef(facts.customer, merchantRefOf([found.customer?.id === facts.customer?.ref ? found.customer?.metadata : undefined, event.resource_metadata], ctx.merchantRefKeys));
  return compact({ ...base, ...facts, customer, detail: Object.keys(detail).length > 0 ? detail : undefined });
}

// ---------------------------------------------------------------------------------------------
// payments.failed / charged_back / confirmed / paid_out (and any other payment action, kept as read).

function paymentEvent(event: GoCardlessEventPayload, kind: PaymentEventKind, found: EventLookup, mapping: PspMapping): Facts {
  const links = event.links ?? {};
  const details = event.details ?? {};
  const paymentRef = linkOf(links, 'payment');
  if (!paymentRef) {
    if (kind === 'ignored') return { detail: { links } };
    throw new GoCardlessPayloadError(`gocardless event ${event.id}: links.payment: missing`);
  }
  // The answer for another payment than the event names is never used (a misrouted fake, a proxy).
  const p = found.payment?.id === paymentRef ? found.payment : undefined;
  const scheme = str(details.scheme) ?? str(found.mandate?.scheme) ?? str(p?.scheme);
  const amount = p ? money(p.amount, p.currency) : undefined;

  const facts: Facts = {
    customer: customerOf(found, links),
    invoice: p ? invoiceOf(p) : undefined,
    payment: compact<PaymentInfo>({
      ref: paymentRef,
      method: (scheme && METHODS[scheme]) || 'other',
      amount: kind === 'payment_succeeded' ? amount : undefined,
    }),
    detail: compact({
      paymentStatus: str(p?.status),
      paymentReference: str(p?.reference),
      mandateRef: str(p?.links?.mandate) ?? linkOf(links, 'mandate'),
      payoutRef: linkOf(links, 'payout') ?? str(p?.links?.payout),
      amountPaid: kind === 'payment_succeeded' ? amount : undefined,
    }),
  };

  if (kind === 'payment_failed') {
    const code = chooseFailureCode(mapping, [details.cause, details.reason_code]);
    const rule = mapFailureCode(mapping, code);
    facts.failure = compact<FailureInfo>({
      code: rule.code,
      reason: rule.reason,
      message: str(details.description),
      retryable: rule.retryable,
      // psp-webhooks.md §4.1: GoCardless retries by itself only when `will_attempt_retry` is true.
      final: details.will_attempt_retry !== true,
    });
  }
  if (kind === 'chargeback') {
    // Whatever the cause (refund_requested, authorisation_disputed, …), the customer's bank took the
    // money back at the customer's request: the debt is disputed (as Stripe disputes, normalize.ts there).
    facts.failure = compact<FailureInfo>({
      code: str(details.cause) ?? str(details.reason_code) ?? 'unknown',
      reason: 'disputed',
      message: str(details.description),
      retryable: false,
      final: true,
    });
  }
  return facts;
}

// ---------------------------------------------------------------------------------------------
// mandates.cancelled / failed / expired → mandate_revoked on the customer.

function mandateEvent(event: GoCardlessEventPayload, kind: PaymentEventKind, found: EventLookup, mapping: PspMapping): Facts {
  const links = event.links ?? {};
  const details = event.details ?? {};
  const mandateRef = linkOf(links, 'mandate');
  if (!mandateRef && kind !== 'ignored') throw new GoCardlessPayloadError(`gocardless event ${event.id}: links.mandate: missing`);
  const mandate = found.mandate?.id === mandateRef ? found.mandate : undefined;
  const facts: Facts = {
    customer: customerOf({ ...found, mandate }, links),
    detail: compact({ mandateRef, mandateStatus: str(mandate?.status), mandateScheme: str(mandate?.scheme) }),
  };
  if (kind === 'mandate_revoked') {
    const code = chooseFailureCode(mapping, [details.cause, details.reason_code]);
    const rule = mapFailureCode(mapping, code);
    facts.failure = compact<FailureInfo>({
      code: rule.code,
      reason: rule.reason,
      message: str(details.description),
      // Nothing can be collected on a cancelled, failed or expired mandate again.
      retryable: false,
      final: true,
    });
  }
  return facts;
}

// ---------------------------------------------------------------------------------------------

/**
 * The most informative raw code: the first candidate (cause before reason code) the mapping gives a
 * reason other than `unknown`, else the first the mapping lists, else the first present.
 */
export function chooseFailureCode(mapping: PspMapping, candidates: (string | null | undefined)[]): string | undefined {
  const present = candidates.filter((c): c is string => typeof c === 'string' && c.length > 0);
  const listed = present.filter((c) => Object.prototype.hasOwnProperty.call(mapping.failureCodes, c));
  return listed.find((c) => mapping.failureCodes[c].reason !== 'unknown') ?? listed[0] ?? present[0];
}

function invoiceOf(p: GoCardlessPayment): InvoiceInfo {
  const metadata = p.metadata ?? {};
  const merchantRef = INVOICE_REF_METADATA_KEYS.map((k) => str(metadata[k])).find((v) => v !== undefined);
  return compact<InvoiceInfo>({
    ref: merchantRef ?? p.id,
    number: str(metadata[INVOICE_NUMBER_METADATA_KEY]),
    amountDue: money(p.amount, p.currency),
    dueAt: dayToIso(p.charge_date),
    issuedAt: timestampToIso(p.created_at),
    subscriptionRef: str(p.links?.subscription) ?? str(p.links?.instalment_schedule),
    description: str(p.description),
  });
}

function customerOf(found: Pick<EventLookup, 'mandate' | 'customer'>, links: Record<string, unknown>): CustomerInfo | undefined {
  const expectedRef = str(found.mandate?.links?.customer) ?? linkOf(links, 'customer');
  const c = found.customer && (!expectedRef || found.customer.id === expectedRef) ? found.customer : undefined;
  if (c) return toCustomer(c);
  // The mandate named its customer but the customer could not be read: the ref alone still ties
  // the event to the right debtor.
  return expectedRef ? { ref: expectedRef, type: 'consumer' } : undefined;
}

function toCustomer(c: GoCardlessCustomer): CustomerInfo {
  const company = str(c.company_name?.trim());
  const person = [c.given_name, c.family_name].map((s) => s?.trim()).filter(Boolean).join(' ') || undefined;
  const country = str(c.country_code?.trim())?.toUpperCase();
  const line2 = [c.address_line2, c.address_line3].map((s) => s?.trim()).filter(Boolean).join(', ') || undefined;
  const address = compact<Address>({
    line1: str(c.address_line1?.trim()),
    line2,
    postalCode: str(c.postal_code?.trim()),
    city: str(c.city?.trim()),
    state: str(c.region?.trim()),
    country,
  });
  return compact<CustomerInfo>({
    ref: c.id,
    // GoCardless takes either a person's given/family name or a company name; a company name
    // means the debtor is the company.
    name: company ?? person,
    email: str(c.email?.trim()),
    phone: str(c.phone_number?.trim()),
    address: Object.keys(address).length > 0 ? address : undefined,
    country,
    locale: str(c.language?.trim())?.toLowerCase(),
    type: company ? 'business' : 'consumer',
  });
}

/** `2014-04-08` → `2014-04-08T00:00:00.000Z`; anything else → undefined. */
function dayToIso(day: string | null | undefined): string | undefined {
  if (!day || !/^\d{4}-\d{2}-\d{2}$/.test(day)) return undefined;
  const t = Date.parse(`${day}T00:00:00.000Z`);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

function timestampToIso(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/** Drops keys whose value is undefined, so stored events carry no empty keys. */
function compact<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}
