/**
 * One Adyen NotificationRequestItem → canonical PaymentEvent (contract §3). Pure: reads only the
 * stored item, the merchant's context and mappings/psp/adyen.yaml — no API calls.
 *
 * Which kind an item is comes from the mapping's `events` table, keyed `EVENTCODE:success` then
 * `EVENTCODE` (anything unlisted is `ignored`). The facts:
 *  - invoice: `merchantReference` — the merchant's own order/invoice reference, the one id that
 *    stays the same across a refused payment, its retries (new pspReference each time, §3.1) and
 *    a dispute on it; `amountDue` is the item's amount;
 *  - customer: `additionalData.shopperReference` when Adyen sends it (recurring payments carry it,
 *    §3.5; dispute notifications too, §3.1). Without it, for an authorisation only, a stable
 *    stand-in derived from the merchantReference, `order:<merchantReference>` — the hub needs a
 *    customer to hold a failed invoice, and the same order always gets the same stand-in. Disputes
 *    and refunds never invent one: they attach to the invoice the authorisation created;
 *  - payment: `pspReference` of the authorisation; for a dispute or refund the disputed/refunded
 *    payment (`originalReference`), with the item's own pspReference beside it (relatedRefs);
 *  - money: `amount.value` is in Adyen's minor units, which follow ISO 4217 except for four
 *    currencies — converted exactly to the hub's (contract §2);
 *  - occurredAt: `eventDate` (ISO 8601 with offset) in UTC, as verify.ts bounded it by the
 *    delivery's arrival (the stored occurredAt; eventDate is not covered by the HMAC).
 */
import type { CustomerInfo, FailureInfo, InvoiceInfo, Money, PaymentEvent, PaymentEventKind, PaymentInfo, PaymentMethod } from '../../../src/domain/types';
import { currencyExponent, money } from '../../../src/domain/money';
import { mapFailureCode } from '../../../src/mappings/load';
import type { PspMapping } from '../../../src/mappings/types';
import { Permanent } from '../../../src/pipeline/errors';
import type { NormalizeContext, RawInboundEvent } from '../types';
import { adyenMetadata, merchantRefOf } from '../merchant-ref';
import { sepaReturnOf } from '../sepa-return';
import { adyenStoredItemSchema, type AdyenNotificationItem, type AdyenProviderConfig } from './schema';

export const ADYEN_PROVIDER = 'adyen';

/** The stand-in customer ref for an authorisation without `shopperReference`. */
export const ORDER_CUSTOMER_PREFIX = 'order:';

/**
 * A stored item that lacks what the canonical event needs. The bytes will not change on a retry,
 * so it is Permanent (dead-lettered at once, src/pipeline/errors.ts); the raw event stays stored.
 */
export class AdyenPayloadError extends Permanent {
  constructor(message: string) {
    super(message);
    this.name = 'AdyenPayloadError';
  }
}

/**
 * Adyen `paymentMethod` values → canonical methods; anything else is `other`. Card brands are
 * reported by brand (`visa`, `mc`, `amex`, `cartebancaire`, …) or as `scheme`.
 */
const METHODS: Record<string, PaymentMethod> = {
  sepadirectdebit: 'sepa_debit',
  visa: 'card',
  mc: 'card',
  amex: 'card',
  scheme: 'card',
  cartebancaire: 'card',
  maestro: 'card',
  diners: 'card',
  discover: 'card',
  jcb: 'card',
  cup: 'card',
  ideal: 'ideal',
  bcmc: 'bancontact',
  bcmc_mobile: 'bancontact',
  paypal: 'paypal',
};

/**
 * Where Adyen's minor units differ from ISO 4217 (https://docs.adyen.com/development-resources/currency-codes/:
 * "For CLP, CVE, IDR, and ISK the standard has a different number of decimals than shown in our
 * currency codes table … the decimals in the table on this page are leading"). Every other
 * currency uses its ISO exponent, as src/domain/money.ts does.
 */
const ADYEN_EXPONENTS: Record<string, number> = { CLP: 2, CVE: 0, IDR: 0, ISK: 2 };

/** Adyen minor units → the hub's Money (ISO minor units), exactly; refuses to round. */
export function adyenAmountToMoney(value: number, currency: string): Money {
  const code = currency.toUpperCase();
  const iso = currencyExponent(code);
  const adyen = ADYEN_EXPONENTS[code] ?? iso;
  if (adyen === iso) return money(value, code);
  if (iso > adyen) {
    const scaled = value * 10 ** (iso - adyen);
    if (!Number.isSafeInteger(scaled)) throw new AdyenPayloadError(`amount out of range: ${value} ${code}`);
    return money(scaled, code);
  }
  const factor = 10 ** (adyen - iso);
  if (value % factor !== 0) {
    throw new AdyenPayloadError(`${value} ${code} (Adyen minor units, ${adyen} decimals) has a fraction ${code} cannot hold (${iso} decimals)`);
  }
  return money(value / factor, code);
}

/**
 * additionalData keys that may carry a SEPA (ISO 20022) reason code, most specific first:
 * `chargebackReasonCode` (dispute notifications, and SEPA returns which Adyen reports as
 * chargebacks — psp-webhooks.md §3.1/§3.5) and `refusalReasonRaw` (the raw acquirer/bank response,
 * sent when "Add Raw Acquirer Result" is enabled on the webhook — §3.4; that a SEPA refusal puts the
 * R-code first in it is **unverified**, so the code is used only when it is one sepa.yaml knows).
 */
const SEPA_REASON_KEYS = ['chargebackReasonCode', 'refusalReasonRaw'] as const;
const ISO_REASON_CODE = /^([A-Z]{2}\d{2})(?![A-Za-z0-9])/;

export function normalizeAdyenItem(raw: RawInboundEvent, ctx: NormalizeContext<AdyenProviderConfig>): PaymentEvent {
  const parsed = adyenStoredItemSchema.safeParse(raw.payload);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new AdyenPayloadError(`adyen item ${raw.providerEventId}: ${issue.path.map(String).join('.') || '(root)'}: ${issue.message}`);
  }
  const { live, NotificationRequestItem: item } = parsed.data;
  const kind = kindOf(ctx.mapping, item.eventCode, item.success);
  const eventDate = isoOf(item.eventDate, raw.providerEventId);
  // eventDate is not signed: verify.ts bounded it by the delivery's arrival, and that is occurredAt.
  const occurredAt = raw.occurredAt ?? eventDate;
  const amount = adyenAmountToMoney(item.amount.value, item.amount.currency);
  const data = item.additionalData ?? {};
  const method = methodOf(item);
  const merchantReference = str(item.merchantReference);
  const shopperReference = str(data.shopperReference);

  const base: PaymentEvent = {
    merchantId: ctx.merchantId,
    provider: ADYEN_PROVIDER,
    providerEventId: `${item.pspReference}:${item.eventCode}:${item.success}`,
    providerEventType: item.eventCode,
    kind,
    occurredAt,
  };
  const detail: Record<string, unknown> = compact({
    success: item.success === 'true',
    live: live === 'true',
    merchantAccount: item.merchantAccountCode,
    pspReference: item.pspReference,
    originalReference: str(item.originalReference),
    paymentMethod: str(item.paymentMethod),
    reason: str(item.reason),
    recurringProcessingModel: str(data.recurringProcessingModel),
  });

  const invoice: InvoiceInfo | undefined = merchantReference ? { ref: merchantReference, amountDue: amount } : undefined;
  const customerOf = (ref: string | undefined): CustomerInfo | undefined =>
    // The merchant's own customer id (src/ledger/debtor-key.ts): `metadata.<key>` in additionalData, else the
    // shopperReference, which Adyen defines as the merchant's own id for the shopper (not the order stand-in).
    ref ? compact<CustomerInfo>({ ref, email: str(data.shopperEmail), type: 'consumer', merchantRef: merchantRefOf([adyenMetadata(data)], ctx.merchantRefKeys) ?? (ref === shopperReference ? ref : undefined) }) : undefined;

  // A returned SEPA direct debit arrives as a CHARGEBACK with an ISO reason code (psp-webhooks.md
  // §3.1/§3.5). Only a contested debit (MD06 refund request, MD01 unauthorised) is a dispute; a
  // return for lack of funds or a closed account leaves the debt owed, so it is a final payment
  // failure the hub may hand over (shared/reference/collections.md §C.4). Which is which is
  // `onReturn` in sepa.yaml, decided as for Mollie (../sepa-return.ts).
  const sepaReturn = kind === 'chargeback' ? sepaReturnOf(ctx.mapping, sepaCodeOf(ctx.mapping, item), str(item.reason)) : undefined;
  if (sepaReturn?.kind === 'payment_failed') {
    const customer = customerOf(shopperReference ?? (merchantReference ? `${ORDER_CUSTOMER_PREFIX}${merchantReference}` : undefined));
    const disputed = str(item.originalReference);
    return compact<PaymentEvent>({
      ...base,
      kind: 'payment_failed',
      customer,
      invoice,
      payment: compact<PaymentInfo>({ ref: disputed ?? item.pspReference, method, relatedRefs: disputed && disputed !== item.pspReference ? [item.pspReference] : undefined }),
      failure: sepaReturn.failure,
      detail: compact({ ...detail, sepaReturn: true, returnRef: item.pspReference, chargebackReasonCode: str(data.chargebackReasonCode) }),
    });
  }

  switch (kind) {
    case 'payment_failed':
    case 'payment_succeeded': {
      const customer = customerOf(shopperReference ?? (merchantReference ? `${ORDER_CUSTOMER_PREFIX}${merchantReference}` : undefined));
      const payment: PaymentInfo = { ref: item.pspReference, method, ...(kind === 'payment_succeeded' ? { amount } : {}) };
      const customerRefSource = shopperReference ? 'shopperReference' : customer ? 'merchantReference' : undefined;
      const event: PaymentEvent = { ...base, customer, invoice, payment, detail: compact({ ...detail, customerRefSource }) };
      if (kind === 'payment_failed') event.failure = refusal(ctx.mapping, item);
      return compact(event);
    }
    case 'chargeback':
    case 'refund': {
      const disputed = str(item.originalReference);
      const payment: PaymentInfo = compact<PaymentInfo>({
        ref: disputed ?? item.pspReference,
        method,
        relatedRefs: disputed && disputed !== item.pspReference ? [item.pspReference] : undefined,
        amount: kind === 'refund' ? amount : undefined,
      });
      const event: PaymentEvent = {
        ...base,
        customer: customerOf(shopperReference),
        invoice,
        payment,
        detail: compact({
          ...detail,
          ...(kind === 'chargeback' ? { disputeRef: item.pspReference } : { refundRef: item.pspReference }),
          amount,
          chargebackReasonCode: str(data.chargebackReasonCode),
          chargebackSchemeCode: str(data.chargebackSchemeCode),
          disputeStatus: str(data.disputeStatus),
          defendable: str(data.defendable),
        }),
      };
      if (kind === 'chargeback') event.failure = chargebackFailure(ctx.mapping, item);
      return compact(event);
    }
    default:
      // Ignored (or a kind this connector has no facts for): kept for the timeline with its refs.
      return compact({
        ...base,
        customer: customerOf(shopperReference),
        payment: { ref: item.pspReference, method, relatedRefs: str(item.originalReference) ? [str(item.originalReference) as string] : undefined },
        detail: compact({ ...detail, merchantReference }),
      });
  }
}

function kindOf(mapping: PspMapping, eventCode: string, success: string): PaymentEventKind {
  // Own keys only: an event code such as `constructor` must not find Object.prototype's.
  const own = (key: string) => (Object.hasOwn(mapping.events, key) ? mapping.events[key] : undefined);
  return own(`${eventCode}:${success}`) ?? own(eventCode) ?? 'ignored';
}

/**
 * A refused authorisation's failure. The raw code is a SEPA reason code when the item carries one
 * the mapping knows (via sepa.yaml), else the refusal text in `reason` (§3.4), spelled as the
 * mapping spells it when it matches ignoring case; an empty reason is `unknown`.
 *
 * `final: true` always: Adyen does not retry a refused authorisation by itself — a recurring
 * payment is retried by the merchant with a new payment request (a new pspReference on the same
 * merchantReference, psp-webhooks.md §3.1 "recovered: AUTHORISATION success:true on a later retry"),
 * and Adyen's webhook retries (§3.3) re-deliver the same notification, not a new attempt. The
 * exception is Adyen's opt-in Auto Rescue (https://docs.adyen.com/online-payments/auto-rescue),
 * which retries refused shopper-not-present payments and reports through AUTORESCUE events; those
 * are `ignored` in adyen.yaml today, so a merchant with Auto Rescue enabled should set
 * `handoverAfterDays` beyond its rescue window.
 */
function refusal(mapping: PspMapping, item: AdyenNotificationItem): FailureInfo {
  const text = str(item.reason);
  const raw = str(item.additionalData?.refusalReasonRaw);
  const sepa = sepaCodeOf(mapping, item);
  const code = sepa ?? (text ? mappingKeyFor(mapping, text) : undefined);
  const rule = mapFailureCode(mapping, code);
  // The refusal text and the raw bank/acquirer answer, each once, unless it is the code itself.
  const message = [...new Set([text, raw])].filter((m): m is string => !!m && m !== rule.code).join(' — ');
  return compact<FailureInfo>({ code: rule.code, reason: rule.reason, message: message || undefined, retryable: rule.retryable, final: true });
}

/**
 * A dispute's failure: a SEPA code (a contested direct debit, which Adyen reports as a chargeback)
 * as ../sepa-return.ts reads it from sepa.yaml; anything else (card scheme codes such as 10.4 or
 * 4837) is kept raw as `disputed`. Never retryable, always final.
 */
function chargebackFailure(mapping: PspMapping, item: AdyenNotificationItem): FailureInfo {
  const sepa = sepaReturnOf(mapping, sepaCodeOf(mapping, item), str(item.reason));
  if (sepa) return sepa.failure;
  const code = str(item.additionalData?.chargebackReasonCode) ?? str(item.reason) ?? 'unknown';
  return compact<FailureInfo>({ code, reason: 'disputed', message: str(item.reason) !== code ? str(item.reason) : undefined, retryable: false, final: true });
}

/** The first SEPA reason code (one the mapping knows) the item carries in additionalData. */
function sepaCodeOf(mapping: PspMapping, item: AdyenNotificationItem): string | undefined {
  for (const key of SEPA_REASON_KEYS) {
    const value = str(item.additionalData?.[key])?.trim();
    const m = value ? ISO_REASON_CODE.exec(value) : null;
    if (m && Object.hasOwn(mapping.failureCodes, m[1])) return m[1];
  }
  return undefined;
}

/** The mapping's own spelling of a refusal text (exact, then ignoring case), else the text as sent. */
function mappingKeyFor(mapping: PspMapping, text: string): string {
  const trimmed = text.trim();
  if (Object.hasOwn(mapping.failureCodes, trimmed)) return trimmed;
  const lower = trimmed.toLowerCase();
  return Object.keys(mapping.failureCodes).find((k) => k.toLowerCase() === lower) ?? trimmed;
}

function methodOf(item: AdyenNotificationItem): PaymentMethod {
  const name = str(item.paymentMethod)?.toLowerCase();
  return name && Object.hasOwn(METHODS, name) ? METHODS[name] : 'other';
}

function isoOf(eventDate: string, eventId: string): string {
  const at = Date.parse(eventDate);
  if (Number.isNaN(at)) throw new AdyenPayloadError(`adyen item ${eventId}: eventDate is not a date: ${JSON.stringify(eventDate)}`);
  return new Date(at).toISOString();
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v.length > 0 ? v : undefined;
}

/** Drops keys whose value is undefined, so stored events carry no empty keys. */
function compact<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}
