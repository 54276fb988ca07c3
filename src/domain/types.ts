/**
 * The canonical model (contract §2–§5): what every PSP connector produces and every agency
 * connector consumes. The enum arrays are the single source of truth; mapping files are
 * validated against them at boot.
 */

/** Money in integer minor units with its ISO 4217 currency (contract §2). Never a float. */
export interface Money {
  value: number;
  currency: string;
}

export const PAYMENT_EVENT_KINDS = [
  'payment_failed',
  'payment_succeeded',
  'chargeback',
  'refund',
  'mandate_revoked',
  'invoice_uncollectible',
  // Not in contract §3: Stripe's invoice.voided means nothing is owed any more (README, "Deviations").
  'invoice_voided',
  // Not in contract §3: a subscription turning past_due/unpaid, kept on the customer's timeline.
  'subscription_status',
  'ignored',
] as const;
export type PaymentEventKind = (typeof PAYMENT_EVENT_KINDS)[number];

export const FAILURE_REASONS = [
  'insufficient_funds',
  'card_declined',
  'card_expired',
  'authentication_required',
  'mandate_invalid',
  'account_closed',
  'account_invalid',
  'debtor_refused',
  'disputed',
  'fraud_suspected',
  'technical',
  'expired_or_canceled',
  'unknown',
] as const;
export type FailureReason = (typeof FAILURE_REASONS)[number];

export const PAYMENT_METHODS = ['card', 'sepa_debit', 'ideal', 'bancontact', 'paypal', 'bank_transfer', 'other'] as const;
export type PaymentMethod = (typeof PAYMENT_METHODS)[number];

export const DEBTOR_TYPES = ['consumer', 'business'] as const;
export type DebtorType = (typeof DEBTOR_TYPES)[number];

export interface Address {
  line1?: string;
  line2?: string;
  postalCode?: string;
  city?: string;
  state?: string;
  country?: string;
}

export interface CustomerInfo {
  ref: string;
  name?: string;
  email?: string;
  phone?: string;
  address?: Address;
  country?: string;
  locale?: string;
  /** Absent when the PSP does not tell: the merchant's policy default applies. */
  type?: DebtorType;
  /**
   * The merchant's own id for this person, from the PSP's metadata (`policy.debtorIdentity`) or
   * a field the PSP defines for it (Adyen `shopperReference`): what makes one debtor of the same
   * person's customers at several PSPs (src/ledger/debtor-key.ts).
   */
  merchantRef?: string;
}

export interface InvoiceInfo {
  ref: string;
  number?: string;
  amountDue: Money;
  dueAt?: string;
  issuedAt?: string;
  subscriptionRef?: string;
  description?: string;
  /**
   * Other names of the merchant's invoice this payment may be for, in the merchant's priority
   * order: a payment the hub holds no invoice for is linked to the one open invoice they name
   * (a Mollie re-payment through a new `tr_…`, src/ledger/invoice-link.ts).
   */
  linkKeys?: InvoiceLinkKey[];
}

/** One way a payment names its invoice: `rule` (e.g. `metadata.invoiceId`) and the value it reads. */
export interface InvoiceLinkKey {
  rule: string;
  key: string;
  /** Kept on the invoice for later payments to find, but never used to find one for this payment. */
  registerOnly?: boolean;
}

export interface PaymentInfo {
  /** The PSP's id of the payment attempt (charge, payment intent, Mollie payment…). */
  ref: string;
  method: PaymentMethod;
  attempt?: number;
  /** Other PSP ids of the same payment (a charge and its payment intent) used to find the invoice. */
  relatedRefs?: string[];
  amount?: Money;
  /**
   * The account or card the payment used, where the PSP tells (Mollie `details.consumerAccount`,
   * `details.cardFingerprint`; Stripe `payment_method…card.fingerprint`). Only ever stored as a
   * salted hash for screening (src/screening/identifiers.ts), never in plain.
   */
  iban?: string;
  cardFingerprint?: string;
}

export interface FailureInfo {
  /** The PSP's raw code, always kept (AM04, insufficient_funds, …). */
  code: string;
  reason: FailureReason;
  message?: string;
  /** Whether retrying the same payment method could succeed (from mappings/). */
  retryable: boolean;
  /** The PSP will not retry by itself: the first condition of the hand-over rule (contract §7). */
  final: boolean;
  /** When the PSP will try again, if it said so. */
  nextAttemptAt?: string;
}

/** Canonical payment event (contract §3). */
export interface PaymentEvent {
  merchantId: string;
  provider: string;
  providerEventId: string;
  /** The PSP's own event type, kept for the log and timelines. */
  providerEventType: string;
  kind: PaymentEventKind;
  occurredAt: string;
  customer?: CustomerInfo;
  invoice?: InvoiceInfo;
  payment?: PaymentInfo;
  failure?: FailureInfo;
  /** Free-form extra facts for the timeline (subscription status, dispute reason, mandate id…). */
  detail?: Record<string, unknown>;
  /**
   * For PSPs that deliver one id for several changes and let the hub fetch the state (Mollie
   * classic): the fact this event turned out to report (e.g. `tr_123:failed`). A second event
   * with a fact already applied is recorded as a duplicate and not applied again.
   */
  factKey?: string;
}

/** Collection statuses at invoice, claim and case level (contract §4). */
export const COLLECTION_STATUSES = [
  'pending_handover',
  'submitted',
  'in_collection',
  'arrangement',
  'partially_paid',
  'paid',
  'disputed',
  'on_hold',
  'withdrawn',
  'uncollectible',
  'closed',
] as const;
export type CollectionStatus = (typeof COLLECTION_STATUSES)[number];

/** Statuses an agency may report (all but the hub's own pending_handover). */
export const AGENCY_STATUSES = COLLECTION_STATUSES.filter((s) => s !== 'pending_handover') as Exclude<
  CollectionStatus,
  'pending_handover'
>[];
export type AgencyStatus = Exclude<CollectionStatus, 'pending_handover'>;

/** Statuses after which nothing more is collected on a claim or case. */
export const TERMINAL_STATUSES: readonly CollectionStatus[] = ['paid', 'withdrawn', 'uncollectible', 'closed'];

export const RESOLUTION_REASONS = [
  'paid_in_full',
  'paid_via_arrangement',
  'paid_to_merchant',
  'credit_note',
  'disputed_upheld',
  'withdrawn_by_merchant',
  'debtor_insolvent',
  'debtor_deceased',
  'debtor_untraceable',
  'written_off',
  'time_barred',
] as const;
export type ResolutionReason = (typeof RESOLUTION_REASONS)[number];

/**
 * Invoice statuses the hub keeps: the canonical collection statuses plus the states an invoice
 * has before it ever fails or goes to collection.
 *  - `open`: known to the hub, not failed (or the PSP is still retrying and it is not final yet
 *    — then failure fields are set and `pending_handover` follows once the failure is final).
 *  - `recovered`: failed, then paid through the PSP before any hand-over.
 *  - `settled`: paid through the PSP with no failure known to the hub (kept for the payment-behaviour picture).
 *  - `voided`: cancelled by the merchant, nothing owed.
 */
export const INVOICE_STATUSES = ['open', 'recovered', 'settled', 'voided', ...COLLECTION_STATUSES] as const;
export type InvoiceStatus = (typeof INVOICE_STATUSES)[number];

export interface Arrangement {
  installments: number;
  amount: Money;
  firstDueAt: string;
}

/** An update from a collection agency (contract §5), after its connector's mapping. */
export interface AgencyUpdate {
  id: string;
  seq: number;
  caseId: string;
  caseReference: string;
  claimReference: string | null;
  status: AgencyStatus;
  reason?: ResolutionReason;
  amountCollected?: Money;
  arrangement?: Arrangement;
  note?: string;
  occurredAt: string;
}
