/**
 * A fetched Mollie payment → canonical PaymentEvent (contract §3). Pure: reads only what lookup.ts
 * fetched, the merchant's context and mappings/psp/mollie.yaml — the API calls live in index.ts.
 *
 * Which fact a delivery reports is decided from the fetched state, because Mollie posts the same
 * payment id for every change (psp-webhooks.md §2.2): the newest unreversed chargeback or refund
 * if the payment has one, else its status. `factKey` names that fact (`tr_…:failed`,
 * `tr_…:chargeback:chb_…`, `tr_…:refund:re_…`), so a fact delivered again — Mollie retries, or a
 * classic and a next-gen delivery of the same change — is applied once (src/domain/types.ts).
 *
 * The invoice's ref is the payment that opened it: `invoice.ref` is the `tr_…` id, which is what a
 * Mollie merchant knows and looks up (contract §6). A merchant's own invoice reference in
 * `metadata` becomes `invoice.number`, not the ref: Mollie copies a subscription's metadata onto
 * every payment it creates, so one reference may stand for many payments. A later payment for the
 * same invoice (a failed payment is final; the debtor pays through a new `tr_…`) finds it through
 * `invoice.linkKeys` (invoice-link-keys.ts, the merchant's `invoiceLink` rules).
 */
import type {
  Address,
  CustomerInfo,
  DebtorType,
  FailureInfo,
  InvoiceInfo,
  Money,
  PaymentEvent,
  PaymentEventKind,
  PaymentInfo,
  PaymentMethod,
} from '../../../src/domain/types';
import { decimalToMinor, money } from '../../../src/domain/money';
import { mapFailureCode } from '../../../src/mappings/load';
import { Permanent } from '../../../src/pipeline/errors';
import type { NormalizeContext, RawInboundEvent } from '../types';
import {
  mollieChargebackSchema,
  mollieClassicPayloadSchema,
  mollieCustomerSchema,
  mollieNextGenEventSchema,
  molliePaymentSchema,
  mollieRefundSchema,
  PAYMENT_ID,
  type MollieAddressPayload,
  type MollieAmountPayload,
  type MollieChargebackPayload,
  type MollieCustomerPayload,
  type MolliePaymentPayload,
  type MollieProviderConfig,
  type MollieRefundPayload,
} from './schema';
import { mollieLinkKeys } from './invoice-link-keys';
import { sepaReturnCode, sepaReturnOf } from '../sepa-return';
import { merchantRefOf, withMerchantRef } from '../merchant-ref';
import { normaliseIban } from '../../../src/screening/identifiers';

export const MOLLIE_PROVIDER = 'mollie';

/**
 * A stored event or a fetched resource that lacks what the canonical event needs. Retrying cannot
 * fix it, so it is Permanent (dead-lettered at once, src/pipeline/errors.ts).
 */
export class MolliePayloadError extends Permanent {
  constructor(message: string) {
    super(message);
    this.name = 'MolliePayloadError';
  }
}

/** Mollie method ids (payments/data.d.ts PaymentMethod) → canonical methods; anything else is `other`. */
const METHODS: Record<string, PaymentMethod> = {
  directdebit: 'sepa_debit',
  creditcard: 'card',
  ideal: 'ideal',
  bancontact: 'bancontact',
  paypal: 'paypal',
  banktransfer: 'bank_transfer',
};

/** Mollie does not retry a payment in these statuses by itself (contract §7). */
const FINAL_STATUSES = new Set(['failed', 'expired', 'canceled']);

/** Refunds that moved or will move money (refunds/data.d.ts RefundStatus). */
const DEAD_REFUND_STATUSES = new Set(['failed', 'canceled']);

/** Where a merchant typically puts its own invoice reference in a payment's metadata. */
const INVOICE_METADATA_KEYS = ['invoiceNumber', 'invoiceId', 'invoice_number', 'invoice_id', 'invoiceRef', 'invoice'];

// ---------------------------------------------------------------------------------------------
// What a raw event is about.

export interface WebhookTarget {
  /** The payment to fetch, when the webhook is about one. */
  paymentId?: string;
  /** Why there is nothing to fetch. */
  note?: string;
}

/**
 * The payment a stored webhook is about: the form's `id` (classic) or the next-gen event's
 * `entityId` — or, for an event about a refund or chargeback, its snapshot's `paymentId`.
 */
export function targetOf(raw: RawInboundEvent): WebhookTarget {
  const nextGen = mollieNextGenEventSchema.safeParse(raw.payload);
  if (nextGen.success) {
    const e = nextGen.data;
    if (e.entityId && PAYMENT_ID.test(e.entityId)) return { paymentId: e.entityId };
    const viaEntity = e._embedded?.entity?.paymentId;
    if (viaEntity && PAYMENT_ID.test(viaEntity)) return { paymentId: viaEntity };
    return { note: `next-gen event ${e.type} is about ${e.entityId ?? 'no entity'}, not a payment: nothing to fetch` };
  }
  const classic = mollieClassicPayloadSchema.safeParse(raw.payload);
  if (classic.success) {
    const id = classic.data.id;
    if (PAYMENT_ID.test(id)) return { paymentId: id };
    return { note: `classic webhook for ${id}: only payments (tr_…) are handled` };
  }
  throw new MolliePayloadError(`mollie event ${raw.providerEventId}: stored payload is neither a classic webhook nor a next-gen event`);
}

/** An event that is stored and kept on the log, but changes nothing (an unknown id, another resource). */
export function ignoredEvent(raw: RawInboundEvent, ctx: NormalizeContext<MollieProviderConfig>, note: string, extra: Record<string, unknown> = {}): PaymentEvent {
  return {
    merchantId: ctx.merchantId,
    provider: MOLLIE_PROVIDER,
    providerEventId: raw.providerEventId,
    providerEventType: raw.eventType,
    kind: 'ignored',
    occurredAt: raw.occurredAt ?? receivedAtOf(raw) ?? new Date().toISOString(),
    detail: compact({ note, webhookType: raw.eventType, ...extra }),
  };
}

// ---------------------------------------------------------------------------------------------
// The fetched payment.

export interface FetchedPayment {
  payment: unknown;
  /** Fetched separately when the payment did not embed them. */
  chargebacks?: unknown[];
  customer?: unknown;
  /** What could not be fetched and why (kept on the event's detail). */
  notes?: string[];
}

interface Fact {
  /** The key in the mapping's `events` table, kept as the event type. */
  type: string;
  at: string;
  factKey: string;
  chargeback?: MollieChargebackPayload;
  refund?: MollieRefundPayload;
}

export function normalizeMolliePayment(raw: RawInboundEvent, ctx: NormalizeContext<MollieProviderConfig>, fetched: FetchedPayment): PaymentEvent {
  const parsed = molliePaymentSchema.safeParse(fetched.payment);
  if (!parsed.success) throw payloadError(raw.providerEventId, 'payment', parsed.error);
  const p = parsed.data;
  const notes = [...(fetched.notes ?? [])];

  let customer: MollieCustomerPayload | undefined;
  if (fetched.customer !== undefined) {
    const c = mollieCustomerSchema.safeParse(fetched.customer);
    if (c.success) customer = c.data;
    else notes.push(`customer ${p.customerId}: the fetched object could not be read`);
  }
  const chargebacks = readList(fetched.chargebacks ?? p._embedded?.chargebacks ?? [], mollieChargebackSchema);
  const refunds = readList(p._embedded?.refunds ?? [], mollieRefundSchema);

  const fact = currentFact(p, chargebacks, refunds);
  const kind: PaymentEventKind = ctx.mapping.events[fact.type] ?? 'ignored';
  const amount = toMoney(raw, 'amount', p.amount);

  const event: PaymentEvent = {
    merchantId: ctx.merchantId,
    provider: MOLLIE_PROVIDER,
    providerEventId: raw.providerEventId,
    providerEventType: fact.type,
    kind,
    occurredAt: fact.at,
    // The merchant's own customer id (src/ledger/debtor-key.ts): the Mollie customer's metadata, then the payment's.
    customer: withMerchantRef(readCustomer(p, customer), merchantRefOf([customer?.metadata, p.metadata], ctx.merchantRefKeys)),
    invoice: compact<InvoiceInfo>({
      ref: p.id,
      number: invoiceNumberOf(p.metadata),
      amountDue: amount,
      // A direct debit's collection date is when the money was due.
      dueAt: iso(p.details?.dueDate),
      issuedAt: iso(p.createdAt),
      subscriptionRef: p.subscriptionId ?? undefined,
      description: p.description ?? undefined,
      linkKeys: nonEmptyList(mollieLinkKeys(p, amount, ctx.config.invoiceLink)),
    }),
    // The debtor's account (SEPA Direct Debit, iDEAL, Bancontact, bank transfer: an IBAN; PayPal puts
    // an e-mail there, which is not taken) and card, for screening's salted hashes only.
    payment: compact<PaymentInfo>({ ref: p.id, method: methodOf(p.method), iban: normaliseIban(p.details?.consumerAccount) ?? undefined, cardFingerprint: nonEmpty(p.details?.cardFingerprint) }),
    factKey: fact.factKey,
  };
  const detail: Record<string, unknown> = {
    status: p.status,
    method: p.method ?? undefined,
    sequenceType: p.sequenceType ?? undefined,
    mandateRef: p.mandateId ?? undefined,
    mode: p.mode ?? undefined,
    webhookType: raw.eventType,
  };

  if (kind === 'payment_failed') {
    const f = readFailure(p, ctx);
    event.failure = f.failure;
    if (f.candidates.length > 1) detail.failureCodes = f.candidates;
  } else if (kind === 'payment_succeeded') {
    event.payment = { ...event.payment!, amount };
    detail.amountPaid = amount;
  } else if (kind === 'chargeback') {
    const cb = fact.chargeback;
    const cbAmount = cb ? toMoney(raw, 'chargeback amount', cb.amount) : p.amountChargedBack ? toMoney(raw, 'amountChargedBack', p.amountChargedBack) : amount;
    // A returned SEPA debit is reported as a chargeback: its ISO reason code (the chargeback's
    // reason, else the payment's bankReasonCode) decides, as for Adyen (../sepa-return.ts): a
    // return for lack of funds is a final failure to collect, a contested debit (MD06, MD01) a
    // dispute. Without a SEPA code (a card chargeback), a dispute of the payment, as for Stripe.
    const sepa = sepaReturnOf(ctx.mapping, sepaReturnCode(ctx.mapping, cb?.reason?.code) ?? sepaReturnCode(ctx.mapping, p.details?.bankReasonCode), cb?.reason?.description ?? p.details?.bankReason ?? undefined);
    if (sepa?.kind === 'payment_failed') {
      event.kind = 'payment_failed';
      detail.sepaReturn = true;
    } else {
      event.payment = { ...event.payment!, amount: cbAmount };
    }
    event.failure =
      sepa?.failure ??
      compact<FailureInfo>({
        code: cb?.reason?.code ?? 'chargeback',
        reason: 'disputed',
        message: cb?.reason?.description ?? undefined,
        retryable: false,
        final: true,
      });
    Object.assign(detail, {
      chargebackRef: cb?.id,
      chargebackReason: cb?.reason?.code ?? undefined,
      amount: cbAmount,
      amountChargedBack: p.amountChargedBack ? toMoney(raw, 'amountChargedBack', p.amountChargedBack) : undefined,
    });
  } else if (kind === 'refund') {
    const rf = fact.refund;
    const rfAmount = rf ? toMoney(raw, 'refund amount', rf.amount) : p.amountRefunded ? toMoney(raw, 'amountRefunded', p.amountRefunded) : amount;
    event.payment = { ...event.payment!, amount: rfAmount };
    Object.assign(detail, {
      refundRef: rf?.id,
      refundStatus: rf?.status ?? undefined,
      amount: rfAmount,
      amountRefunded: p.amountRefunded ? toMoney(raw, 'amountRefunded', p.amountRefunded) : undefined,
    });
  } else if (kind === 'ignored' && !(fact.type in ctx.mapping.events)) {
    detail.note = `payment status ${p.status} is not in mappings/psp/mollie.yaml: ignored`;
  }

  const reversed = chargebacks.filter((c) => c.reversedAt).map((c) => c.id);
  if (reversed.length > 0) detail.chargebacksReversed = reversed;
  if (notes.length > 0) detail.lookupNotes = notes;
  event.detail = compact(detail);
  return compact(event);
}

/**
 * The newest of: the latest unreversed chargeback, the latest refund that moves money — else the
 * payment's status. A refund or chargeback only exists on a paid payment, so "newest" decides
 * between them; the status fact is the payment's own (its failedAt/paidAt/… timestamp).
 */
function currentFact(p: MolliePaymentPayload, chargebacks: MollieChargebackPayload[], refunds: MollieRefundPayload[]): Fact {
  const statusAt = statusTime(p);
  const candidates: Fact[] = [];

  const cb = latest(chargebacks.filter((c) => !c.reversedAt));
  if (cb) {
    candidates.push({ type: 'payment.chargeback', at: iso(cb.createdAt) ?? statusAt, factKey: `${p.id}:chargeback:${cb.id}`, chargeback: cb });
  } else if (chargebacks.length === 0 && isPositive(p.amountChargedBack)) {
    // Charged back, but the chargeback objects were not available: the amount tells the fact apart.
    candidates.push({ type: 'payment.chargeback', at: statusAt, factKey: `${p.id}:chargeback:${p.amountChargedBack!.value}` });
  }

  const rf = latest(refunds.filter((r) => !DEAD_REFUND_STATUSES.has(r.status ?? '')));
  if (rf) {
    candidates.push({ type: 'payment.refund', at: iso(rf.createdAt) ?? statusAt, factKey: `${p.id}:refund:${rf.id}`, refund: rf });
  } else if (refunds.length === 0 && isPositive(p.amountRefunded)) {
    candidates.push({ type: 'payment.refund', at: statusAt, factKey: `${p.id}:refund:${p.amountRefunded!.value}` });
  }

  if (candidates.length > 0) {
    // Newest first; on a tie the chargeback (pushed first) wins.
    return candidates.reduce((a, b) => (Date.parse(b.at) > Date.parse(a.at) ? b : a));
  }
  return { type: `payment.${p.status}`, at: statusAt, factKey: `${p.id}:${p.status}` };
}

/** When the payment reached its status (payments/data.d.ts: failedAt, expiredAt, …), else when it was created. */
function statusTime(p: MolliePaymentPayload): string {
  const byStatus: Record<string, string | null | undefined> = {
    failed: p.failedAt,
    expired: p.expiredAt,
    canceled: p.canceledAt,
    paid: p.paidAt,
    authorized: p.authorizedAt,
  };
  const at = iso(byStatus[p.status]) ?? iso(p.createdAt);
  if (!at) throw new MolliePayloadError(`mollie payment ${p.id}: no timestamp for status ${p.status} and no createdAt`);
  return at;
}

function readFailure(p: MolliePaymentPayload, ctx: NormalizeContext<MollieProviderConfig>): { failure: FailureInfo; candidates: string[] } {
  // Most specific first: the bank's SEPA R-code, the card failure reason, then the status itself.
  const candidates = unique([p.details?.bankReasonCode, p.details?.failureReason]);
  const code = candidates[0] ?? p.status;
  const rule = mapFailureCode(ctx.mapping, code);
  const failure = compact<FailureInfo>({
    code: rule.code,
    reason: rule.reason,
    message: p.details?.bankReason ?? p.details?.failureMessage ?? undefined,
    retryable: rule.retryable,
    final: FINAL_STATUSES.has(p.status),
  });
  return { failure, candidates };
}

// ---------------------------------------------------------------------------------------------
// The debtor.

function readCustomer(p: MolliePaymentPayload, c: MollieCustomerPayload | undefined): CustomerInfo | undefined {
  const ref = p.customerId ?? c?.id;
  // A one-off payment without a Mollie customer names nobody the hub could collect from.
  if (!ref) return undefined;
  const billing = p.billingAddress ?? undefined;
  const address = toAddress(billing);
  const locale = bcp47(c?.locale ?? p.locale);
  return compact<CustomerInfo>({
    ref,
    name: nonEmpty(c?.name) ?? billingName(billing) ?? nonEmpty(p.details?.consumerName) ?? nonEmpty(p.details?.cardHolder),
    email: nonEmpty(c?.email) ?? nonEmpty(billing?.email),
    phone: nonEmpty(billing?.phone),
    address,
    country: address?.country ?? countryCode(p.countryCode) ?? ibanCountry(p.details?.consumerAccount) ?? countryCode(p.details?.cardCountryCode) ?? localeCountry(locale),
    locale,
    type: debtorType(p, c),
  });
}

/**
 * `business` when the merchant said so in metadata (`debtorType`/`customerType`) or the billing
 * address names an organization; otherwise `consumer` (CustomerInfo.type is required).
 */
function debtorType(p: MolliePaymentPayload, c: MollieCustomerPayload | undefined): DebtorType {
  for (const metadata of [p.metadata, c?.metadata]) {
    if (!isObject(metadata)) continue;
    for (const key of ['debtorType', 'customerType']) {
      const v = metadata[key];
      if (typeof v === 'string' && v.toLowerCase() === 'business') return 'business';
      if (typeof v === 'string' && v.toLowerCase() === 'consumer') return 'consumer';
    }
  }
  return nonEmpty(p.billingAddress?.organizationName) ? 'business' : 'consumer';
}

function billingName(a: MollieAddressPayload | undefined): string | undefined {
  if (!a) return undefined;
  const person = [a.givenName, a.familyName].map(nonEmpty).filter(Boolean).join(' ');
  return nonEmpty(person) ?? nonEmpty(a.organizationName);
}

function toAddress(a: MollieAddressPayload | undefined): Address | undefined {
  if (!a) return undefined;
  const address = compact<Address>({
    line1: nonEmpty(a.streetAndNumber),
    line2: nonEmpty(a.streetAdditional),
    postalCode: nonEmpty(a.postalCode),
    city: nonEmpty(a.city),
    state: nonEmpty(a.region),
    country: countryCode(a.country),
  });
  return Object.keys(address).length > 0 ? address : undefined;
}

/** Mollie locales are `nl_NL`; the canonical model keeps BCP 47 (`nl-NL`). */
function bcp47(locale: string | null | undefined): string | undefined {
  const l = nonEmpty(locale);
  return l ? l.replace('_', '-') : undefined;
}

function localeCountry(locale: string | undefined): string | undefined {
  const m = locale ? /^[a-z]{2,3}-([A-Z]{2})$/.exec(locale) : null;
  return m ? m[1] : undefined;
}

/** The first two letters of an IBAN are the account's country (ISO 13616). */
function ibanCountry(account: string | null | undefined): string | undefined {
  const iban = account?.replace(/\s+/g, '').toUpperCase();
  return iban && /^[A-Z]{2}\d{2}[A-Z0-9]{8,30}$/.test(iban) ? iban.slice(0, 2) : undefined;
}

function countryCode(c: string | null | undefined): string | undefined {
  return c && /^[A-Za-z]{2}$/.test(c) ? c.toUpperCase() : undefined;
}

function invoiceNumberOf(metadata: unknown): string | undefined {
  if (!isObject(metadata)) return undefined;
  for (const key of INVOICE_METADATA_KEYS) {
    const v = metadata[key];
    if (typeof v === 'string' && v.trim()) return v.trim();
    if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Small readers.

function methodOf(method: string | null | undefined): PaymentMethod {
  return (method && METHODS[method]) || 'other';
}

/** `{ value: "49.00", currency: "EUR" }` → 4900 EUR, exactly, with the currency's exponent (contract §2). */
function toMoney(raw: RawInboundEvent, what: string, amount: MollieAmountPayload): Money {
  try {
    return money(decimalToMinor(amount.value, amount.currency), amount.currency);
  } catch (err) {
    throw new MolliePayloadError(`mollie event ${raw.providerEventId}: ${what}: ${(err as Error).message}`);
  }
}

function isPositive(amount: MollieAmountPayload | null | undefined): boolean {
  return !!amount && !amount.value.trim().startsWith('-') && /[1-9]/.test(amount.value);
}

function latest<T extends { createdAt?: string | null }>(items: T[]): T | undefined {
  let best: T | undefined;
  for (const item of items) {
    if (!best || (Date.parse(item.createdAt ?? '') || 0) >= (Date.parse(best.createdAt ?? '') || 0)) best = item;
  }
  return best;
}

function readList<T>(items: unknown[], schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } }): T[] {
  const out: T[] = [];
  for (const item of items) {
    const r = schema.safeParse(item);
    if (r.success) out.push(r.data);
  }
  return out;
}

/** The arrival time a classic delivery's event id carries (`tr_…:<ms>`, verify.ts). */
function receivedAtOf(raw: RawInboundEvent): string | undefined {
  const m = /:(\d{12,})$/.exec(raw.providerEventId);
  return m ? new Date(Number(m[1])).toISOString() : undefined;
}

function iso(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

function nonEmpty(v: string | null | undefined): string | undefined {
  return typeof v === 'string' && v.trim() ? v.trim() : undefined;
}

function nonEmptyList<T>(list: T[]): T[] | undefined {
  return list.length > 0 ? list : undefined;
}

function unique(values: (string | null | undefined)[]): string[] {
  return [...new Set(values.filter((v): v is string => typeof v === 'string' && v.trim().length > 0).map((v) => v.trim()))];
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Drops keys whose value is undefined, so stored events carry no empty keys. */
function compact<T extends object>(obj: T): T {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}

function payloadError(eventId: string, where: string, error: { issues: { path: PropertyKey[]; message: string }[] }): MolliePayloadError {
  const issue = error.issues[0];
  const path = issue.path.map(String).join('.') || '(root)';
  return new MolliePayloadError(`mollie event ${eventId}: ${where}: ${path}: ${issue.message}`);
}
