/**
 * Realistic Adyen Standard notifications for tests and the demo: NotificationRequestItems shaped
 * like shared/reference/psp-webhooks.md §3.5 (from `Adyen/adyen-node-api-library:src/__mocks__/notification/*.json`),
 * and a signer that computes `additionalData.hmacSignature` as Adyen does (§3.2).
 *
 * The signer is written here on its own, not imported from the connector, so a mistake in the
 * connector's signing string cannot be mirrored by the messages it is tested with (the connector
 * is pinned to Adyen's published vector separately).
 */
import { createHmac, randomBytes } from 'node:crypto';

/** A NotificationRequestItem as Adyen sends it (`success` and `live` are strings). */
export interface AdyenItem {
  additionalData?: Record<string, string>;
  amount: { currency: string; value: number };
  eventCode: string;
  eventDate: string;
  merchantAccountCode: string;
  merchantReference: string;
  originalReference?: string;
  paymentMethod?: string;
  pspReference: string;
  reason?: string;
  success: 'true' | 'false';
  operations?: string[];
}

export interface AdyenNotificationBody {
  live: 'true' | 'false';
  notificationItems: { NotificationRequestItem: AdyenItem }[];
}

export interface AdyenFacts {
  /** The merchant's order/invoice reference (`merchantReference`). */
  merchantReference: string;
  /** Minor units, as Adyen sends them. */
  amount: number;
  currency?: string;
  /** Defaults to a fresh 16-character reference. */
  pspReference?: string;
  merchantAccount?: string;
  shopperReference?: string;
  shopperEmail?: string;
  paymentMethod?: string;
  /** ISO 8601 with offset, or a Date; default now. */
  eventDate?: string | Date;
  /** Extra additionalData entries. */
  additionalData?: Record<string, string>;
}

export const DEFAULT_MERCHANT_ACCOUNT = 'AcmeECOM';

const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

/** A fresh 16-character PSP reference in Adyen's style (e.g. `QFQTPCQ8HXSKGK82`). */
export function pspReference(): string {
  return [...randomBytes(16)].map((b) => ALNUM[b % ALNUM.length]).join('');
}

/** Adyen's eventDate style: local time with offset (`2024-06-03T09:12:00+02:00`), here in +02:00. */
export function adyenDate(at: Date = new Date()): string {
  const shifted = new Date(at.getTime() + 2 * 3600_000);
  return `${shifted.toISOString().slice(0, 19)}+02:00`;
}

function item(f: AdyenFacts, eventCode: string, success: 'true' | 'false', extra: Partial<AdyenItem> = {}, data: Record<string, string> = {}): AdyenItem {
  const additionalData: Record<string, string> = { ...data, ...(f.additionalData ?? {}) };
  if (f.shopperReference) additionalData.shopperReference = f.shopperReference;
  if (f.shopperEmail) additionalData.shopperEmail = f.shopperEmail;
  return {
    additionalData,
    amount: { currency: f.currency ?? 'EUR', value: f.amount },
    eventCode,
    eventDate: typeof f.eventDate === 'string' ? f.eventDate : adyenDate(f.eventDate),
    merchantAccountCode: f.merchantAccount ?? DEFAULT_MERCHANT_ACCOUNT,
    merchantReference: f.merchantReference,
    paymentMethod: f.paymentMethod ?? 'visa',
    pspReference: f.pspReference ?? pspReference(),
    reason: '',
    success,
    ...extra,
  };
}

export const adyenItems = {
  /** A refused recurring (subscription) authorisation, the §3.5 example: `reason` is Adyen's refusal text. */
  refusedRecurring: (f: AdyenFacts & { reason?: string }) =>
    item(f, 'AUTHORISATION', 'false', { reason: f.reason ?? 'Not enough balance' }, {
      recurringProcessingModel: 'Subscription',
      paymentMethodVariant: f.paymentMethod ?? 'visa',
    }),

  /**
   * A refused SEPA Direct Debit recurring authorisation whose raw bank answer names the ISO reason
   * code (`refusalReasonRaw`, sent with "Add Raw Acquirer Result"; the exact text is illustrative).
   */
  refusedSepa: (f: AdyenFacts & { sepaCode?: string; reason?: string }) =>
    item({ ...f, paymentMethod: 'sepadirectdebit' }, 'AUTHORISATION', 'false', { reason: f.reason ?? 'Refused' }, {
      recurringProcessingModel: 'Subscription',
      refusalReasonRaw: `${f.sepaCode ?? 'AM04'} : Insufficient funds`,
    }),

  /** A successful authorisation (a first payment, or the merchant's retry recovering a refused one). */
  authorised: (f: AdyenFacts) =>
    item(f, 'AUTHORISATION', 'true', { operations: ['CANCEL', 'CAPTURE', 'REFUND'] }, { recurringProcessingModel: 'Subscription', authCode: '012345' }),

  /** Funds debited for a dispute (§3.1): pspReference is the dispute's, originalReference the payment's. */
  chargeback: (f: AdyenFacts & { originalReference: string; chargebackReasonCode?: string; reason?: string }) =>
    item(f, 'CHARGEBACK', 'true', { originalReference: f.originalReference, reason: f.reason ?? 'Fraudulent' }, {
      chargebackReasonCode: f.chargebackReasonCode ?? '10.4',
      chargebackSchemeCode: f.paymentMethod === 'sepadirectdebit' ? 'sepadirectdebit' : (f.paymentMethod ?? 'visa'),
      disputeStatus: 'Undefended',
      defendable: 'false',
    }),

  /** A dispute opened, still defendable (§3.1). */
  notificationOfChargeback: (f: AdyenFacts & { originalReference: string; chargebackReasonCode?: string; reason?: string }) =>
    item(f, 'NOTIFICATION_OF_CHARGEBACK', 'true', { originalReference: f.originalReference, reason: f.reason ?? 'Fraudulent' }, {
      chargebackReasonCode: f.chargebackReasonCode ?? '10.4',
      disputeStatus: 'Undefended',
      defendable: 'true',
    }),

  refund: (f: AdyenFacts & { originalReference: string; success?: boolean }) =>
    item(f, 'REFUND', f.success === false ? 'false' : 'true', { originalReference: f.originalReference }),

  /** Any other event code (REPORT_AVAILABLE, CAPTURE, …), stored and ignored by the hub. */
  other: (eventCode: string, f: AdyenFacts, success: 'true' | 'false' = 'true') => item(f, eventCode, success),
};

/** The signing string Adyen uses (§3.2): eight fields joined with `:`, a missing one empty. */
export function adyenSigningData(i: Pick<AdyenItem, 'pspReference' | 'originalReference' | 'merchantAccountCode' | 'merchantReference' | 'amount' | 'eventCode' | 'success'>): string {
  const fields = [i.pspReference, i.originalReference ?? '', i.merchantAccountCode, i.merchantReference, String(i.amount.value), i.amount.currency, i.eventCode, i.success];
  return fields.join(':');
}

/** The item with `additionalData.hmacSignature` set: base64 HMAC-SHA256 with the hex-decoded key. */
export function signAdyenItem(i: AdyenItem, hexKey: string): AdyenItem {
  const hmacSignature = createHmac('sha256', Buffer.from(hexKey, 'hex')).update(adyenSigningData(i), 'utf8').digest('base64');
  return { ...i, additionalData: { ...(i.additionalData ?? {}), hmacSignature } };
}

/** A whole notification as Adyen posts it, each item signed with `hmacKey` when one is given. */
export function adyenNotification(items: AdyenItem[], opts: { hmacKey?: string; live?: boolean } = {}): AdyenNotificationBody {
  return {
    live: opts.live ? 'true' : 'false',
    notificationItems: items.map((i) => ({ NotificationRequestItem: opts.hmacKey ? signAdyenItem(i, opts.hmacKey) : i })),
  };
}

/** `Authorization` header value for the webhook's HTTP Basic credentials. */
export function basicAuthHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`, 'utf8').toString('base64')}`;
}
