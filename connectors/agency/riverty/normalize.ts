/**
 * Pure translation between the hub's shapes and Riverty's, both ways:
 *  - out: a case submission, a claim, a payment… → Riverty's request bodies (customer, contracts,
 *    invoices, decimal-string amounts);
 *  - in: one transaction of the feed → the canonical AgencyUpdate, through
 *    mappings/agency/riverty.yaml. A status or closing type the mapping does not know is refused
 *    with an error naming it (the page is not acknowledged until the mapping knows it).
 * Amounts go through src/domain/money.ts only: exact, with the currency's own exponent.
 */
import { decimalToMinor, minorToDecimal } from '../../../src/domain/money';
import type { AgencyUpdate, Money } from '../../../src/domain/types';
import type { AgencyMapping } from '../../../src/mappings/types';
import type { CaseClaim, CaseDebtor, CaseSubmission, DirectPayment } from '../types';
import { MAX_INVOICE_NUMBER_LENGTH, type DebtorField, type RivertyTransaction } from './schema';

export class UnmappedValueError extends Error {
  constructor(
    /** `status` (a status word or a closing type) or `reason` (a closing type without a reason row). */
    readonly field: 'status' | 'reason',
    readonly value: string,
    /** The transaction as received, so the caller can keep it. */
    readonly transaction: RivertyTransaction,
  ) {
    super(
      `Riverty transaction ${transaction.transactionId} (sortNumber ${transaction.sortNumber}): ` +
        `${field === 'status' ? (transaction.type === 'CLOSING' ? 'closing type' : 'status') : 'closing type'} "${value}" ` +
        `is not in mappings/agency/riverty.yaml ${field === 'status' ? 'statuses' : 'reasons'}`,
    );
    this.name = 'UnmappedValueError';
  }
}

/** A request that Riverty would refuse whatever we retry: found before sending. */
export class InvalidRequestError extends Error {
  override name = 'InvalidRequestError';
}

/** Own keys only: a raw value such as `constructor` must not resolve through the prototype. */
function lookup<T>(table: Record<string, T>, raw: string): T | undefined {
  return Object.prototype.hasOwnProperty.call(table, raw) ? table[raw] : undefined;
}

/** ISO 8601 (date or date-time, any offset) → UTC `…Z`, so ordering by string compares instants. */
function toUtc(iso: string): string {
  return new Date(iso).toISOString();
}

/** `2024-03-01T00:00:00.000Z` → `2024-03-01` (Riverty's dates are plain dates). */
export function toDate(iso: string | undefined): string | undefined {
  if (!iso) return undefined;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) throw new InvalidRequestError(`not a date: ${JSON.stringify(iso)}`);
  return d.toISOString().slice(0, 10);
}

export function toDecimal(m: Money): string {
  return minorToDecimal(m.value, m.currency);
}

export function toMoney(amount: string, currency: string): Money {
  return { value: decimalToMinor(amount, currency), currency: currency.toUpperCase() };
}

// ---- in: transaction → canonical update ------------------------------------------------------

/** Statuses that end a claim; a closing that ends in one of them must say why. */
const NEEDS_REASON = new Set(['paid', 'withdrawn', 'uncollectible']);

export function normalizeTransaction(t: RivertyTransaction, mapping: AgencyMapping): AgencyUpdate {
  let status: AgencyUpdate['status'] | undefined;
  let reason: AgencyUpdate['reason'];
  const notes: string[] = [];
  if (t.type === 'CLOSING') {
    const closingType = t.closingType!;
    status = lookup(mapping.statuses, closingType);
    if (status === undefined) throw new UnmappedValueError('status', closingType, t);
    reason = lookup(mapping.reasons, closingType);
    if (reason === undefined && NEEDS_REASON.has(status)) throw new UnmappedValueError('reason', closingType, t);
    notes.push(`Riverty closing type ${closingType}`);
  } else {
    const raw = t.status!;
    status = lookup(mapping.statuses, raw);
    if (status === undefined) throw new UnmappedValueError('status', raw, t);
    if (t.type === 'REJECTION') {
      notes.push(`rejected by Riverty${t.objectType ? ` (${t.objectType})` : ''}${t.rejectionReason ? `: ${t.rejectionReason}` : ''}`);
    }
  }
  if (t.comment) notes.push(t.comment);

  const update: AgencyUpdate = {
    id: t.transactionId,
    seq: t.sortNumber,
    // Riverty's own id of the claim; before a claim number exists, the hand-over's request id.
    caseId: (t.claimNumber ?? t.requestId)!,
    caseReference: t.contractNumber,
    claimReference: t.invoiceNumber,
    status,
    occurredAt: toUtc(t.createdAt),
  };
  if (reason !== undefined) update.reason = reason;
  if (t.collectedAmount != null) update.amountCollected = toMoney(t.collectedAmount, t.currency!);
  if (t.paymentPlan != null) {
    update.arrangement = {
      installments: t.paymentPlan.numberOfInstallments,
      amount: toMoney(t.paymentPlan.installmentAmount, t.paymentPlan.currency),
      firstDueAt: toUtc(t.paymentPlan.firstDueDate),
    };
  }
  if (notes.length) update.note = notes.join('; ');
  return update;
}

/** A Riverty status word or closing type → canonical status (for getCase). */
export function mapStatus(raw: { status: string; closingType?: string | null }, mapping: AgencyMapping): { status: string; reason?: string } {
  const key = raw.closingType ?? raw.status;
  const status = lookup(mapping.statuses, key);
  if (status === undefined) throw new Error(`Riverty ${raw.closingType ? 'closing type' : 'status'} "${key}" is not in mappings/agency/riverty.yaml statuses`);
  const reason = raw.closingType ? lookup(mapping.reasons, raw.closingType) : undefined;
  return reason ? { status, reason } : { status };
}

// ---- out: the hub's shapes → Riverty's request bodies -----------------------------------------

export interface RivertyAddress {
  type: 'BILLING';
  street?: string;
  houseNumber?: string;
  addressAddition?: string;
  zipCode?: string;
  city?: string;
  countryCode?: string;
}

export interface RivertyCustomer {
  customerNumber: string;
  type: 'PRIVATE' | 'COMPANY';
  preferredLanguage?: string;
  firstName?: string;
  lastName?: string;
  companyName?: string;
  addresses?: RivertyAddress[];
  communicationChannels?: { type: 'EMAIL' | 'PHONE'; value: string }[];
}

export interface KeyValue {
  key: string;
  value: string;
}

export interface RivertyInvoice {
  invoiceNumber: string;
  invoiceDate?: string;
  dueDate?: string;
  originalAmount: string;
  remainingAmount: string;
  currency: string;
  additionalProperties?: KeyValue[];
}

export interface RivertyClaimRequest {
  customer: RivertyCustomer;
  contracts: { contractNumber: string; invoices: RivertyInvoice[] }[];
  costs?: { type: 'COLLECTION_COSTS'; amount: string; currency: string; description: string }[];
  additionalProperties: KeyValue[];
}

/**
 * "Jan de Vries" → Jan / de Vries: the first word is the given name and the rest the family name,
 * so Dutch and German particles stay with the family name. One word is a family name only.
 */
export function splitName(name: string): { firstName?: string; lastName: string } {
  const words = name.trim().split(/\s+/);
  if (words.length < 2) return { lastName: words[0] ?? name };
  return { firstName: words[0], lastName: words.slice(1).join(' ') };
}

/** "Dorpsstraat 12a" → street Dorpsstraat, houseNumber 12a; a line without a trailing number stays whole. */
export function splitStreet(line: string): { street: string; houseNumber?: string } {
  const m = /^(.*?\S)\s+(\d+\s*[A-Za-z]?(?:[-/]\S+)?)$/.exec(line.trim());
  return m ? { street: m[1], houseNumber: m[2].replace(/\s+/g, '') } : { street: line.trim() };
}

function restrict(d: CaseDebtor, allowed: DebtorField[] | undefined): CaseDebtor {
  if (!allowed) return d;
  const keep = new Set<string>(['reference', 'type', 'name', ...allowed]);
  return Object.fromEntries(Object.entries(d).filter(([k]) => keep.has(k))) as unknown as CaseDebtor;
}

export function toCustomer(debtor: CaseDebtor, allowed?: DebtorField[]): RivertyCustomer {
  const d = restrict(debtor, allowed);
  const customer: RivertyCustomer = {
    customerNumber: d.reference,
    type: d.type === 'business' ? 'COMPANY' : 'PRIVATE',
  };
  if (d.locale) customer.preferredLanguage = d.locale.slice(0, 2).toLowerCase();
  if (d.type === 'business') customer.companyName = d.name;
  else Object.assign(customer, splitName(d.name));
  const countryCode = d.address?.country ?? d.country;
  if (d.address || countryCode) {
    const a: RivertyAddress = { type: 'BILLING' };
    if (d.address?.line1) Object.assign(a, splitStreet(d.address.line1));
    if (d.address?.line2) a.addressAddition = d.address.line2;
    if (d.address?.postalCode) a.zipCode = d.address.postalCode;
    if (d.address?.city) a.city = d.address.city;
    if (countryCode) a.countryCode = countryCode.toUpperCase();
    customer.addresses = [a];
  }
  const channels: RivertyCustomer['communicationChannels'] = [];
  if (d.email) channels.push({ type: 'EMAIL', value: d.email });
  if (d.phone) channels.push({ type: 'PHONE', value: d.phone });
  if (channels.length) customer.communicationChannels = channels;
  return customer;
}

/** The hub's claim reference is Riverty's invoice number: it is what the feed reports back. */
export function toInvoice(claim: CaseClaim): RivertyInvoice {
  if (claim.reference.length > MAX_INVOICE_NUMBER_LENGTH) {
    throw new InvalidRequestError(`claim reference ${claim.reference} is longer than Riverty's ${MAX_INVOICE_NUMBER_LENGTH}-character invoiceNumber`);
  }
  // Riverty: "Negative amounts or 0 amounts are not allowed".
  if (!(claim.principal.value > 0)) throw new InvalidRequestError(`claim ${claim.reference}: Riverty refuses an amount of ${claim.principal.value}`);
  const amount = toDecimal(claim.principal);
  const invoice: RivertyInvoice = {
    invoiceNumber: claim.reference,
    originalAmount: amount,
    remainingAmount: amount,
    currency: claim.principal.currency,
  };
  const invoiceDate = toDate(claim.issuedAt);
  const dueDate = toDate(claim.dueAt);
  if (invoiceDate) invoice.invoiceDate = invoiceDate;
  if (dueDate) invoice.dueDate = dueDate;
  const props: KeyValue[] = [];
  if (claim.number) props.push({ key: 'merchantInvoiceNumber', value: claim.number });
  if (claim.description) props.push({ key: 'description', value: claim.description });
  props.push({ key: 'paymentFailure', value: `${claim.failure.provider}:${claim.failure.code} (${claim.failure.reason})` });
  invoice.additionalProperties = props;
  return invoice;
}

/**
 * `POST /v1/claims`. `placementDate` is left to Riverty (the day it receives the claim): a date we
 * set would differ on a retry after midnight, and the same Idempotency-Key must carry the same body.
 */
export function toClaimRequest(c: CaseSubmission, allowed?: DebtorField[]): RivertyClaimRequest {
  const body: RivertyClaimRequest = {
    customer: toCustomer(c.debtor, allowed),
    contracts: [{ contractNumber: c.reference, invoices: c.claims.map(toInvoice) }],
    additionalProperties: [
      { key: 'creditorId', value: c.creditor.id },
      { key: 'creditorName', value: c.creditor.name },
    ],
  };
  // A zero costs line (no costs may be charged, e.g. no evidence of the 14-day letter) is not sent:
  // Riverty takes no zero amounts; the reason stays in the hub's case basis.
  if (c.collectionCosts && c.collectionCosts.value > 0) {
    body.costs = [{ type: 'COLLECTION_COSTS', amount: toDecimal(c.collectionCosts), currency: c.collectionCosts.currency, description: c.collectionCosts.basis }];
  }
  return body;
}

/** `POST /v1/claims/{claimNumber}/payments` (documented fields). `paymentNumber` is Riverty's own dedupe key. */
export function toPaymentRequest(claimReference: string, p: DirectPayment, paymentNumber: string, contractNumber?: string) {
  return {
    invoiceNumber: claimReference,
    ...(contractNumber ? { contractNumber } : {}),
    paymentNumber,
    date: toDate(p.paidAt)!,
    description: `paid to the merchant via ${p.channel}`,
    amount: toDecimal(p.amount),
    currency: p.amount.currency,
    allocateTo: 'PRINCIPAL_CLAIM' as const,
  };
}

/**
 * `POST /v1/claims/{claimNumber}/recalls`: total (no invoices) or partial. Riverty documents the
 * total recall as `{}` and the partial one per invoice with a type (e.g. CREDIT_WAIVER); `comment`
 * carrying the merchant's reason is modelled.
 */
export function toRecallRequest(w: { reason: string; claimReference?: string }, contractNumber?: string) {
  if (w.claimReference === undefined) return { comment: w.reason };
  return {
    comment: w.reason,
    invoices: [
      {
        invoiceNumber: w.claimReference,
        ...(contractNumber ? { contractNumber } : {}),
        type: w.reason === 'credit_note' ? ('CREDIT_WAIVER' as const) : ('RECALL' as const),
      },
    ],
  };
}

/** `POST /v1/claims/{claimNumber}/hold` and `/resume` (modelled). */
export function toPauseRequest(p: { reason: string; claimReference?: string }) {
  return p.claimReference === undefined ? { comment: p.reason } : { comment: p.reason, invoiceNumber: p.claimReference };
}
