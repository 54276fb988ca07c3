/**
 * The riverty personality's words: what its API accepts (Riverty Back in Flow's claim, payment and
 * recall shapes, collections.md §A.2/§A.6, amounts as decimal strings) turned into the case book's
 * canonical input, and every canonical update the case book makes turned into a Riverty
 * transaction (types, status words, closing types). Pure: no HTTP, no clock.
 *
 * It is the agency's side of mappings/agency/riverty.yaml, written independently of the hub's
 * connector on purpose: the e2e tests then prove the two agree, instead of one reusing the other.
 */
import { z } from 'zod';
import { decimalToMinor, minorToDecimal } from '../../src/domain/money';
import { FAILURE_REASONS, type AgencyStatus, type AgencyUpdate, type FailureReason, type Money, type ResolutionReason } from '../../src/domain/types';
import { BookError, isTerminal, type SimCase, type SimClaim } from './case-book';
import type { CaseInput, ClaimInput } from './schemas';

// ---- ids ----------------------------------------------------------------------------------------

export interface RivertyIds {
  /** The hand-over's id, answered by `POST /v1/claims` (uuid-shaped, as Riverty's). */
  requestId: string;
  /** The claim number Riverty assigns (here: at once, confirmed in the feed). */
  claimNumber: string;
}

const CLAIM_NUMBER_BASE = 700_000_000;

function caseNumber(caseId: string): number {
  const m = /^case_(\d+)$/.exec(caseId);
  if (!m) throw new Error(`not a simulator case id: ${caseId}`);
  return Number(m[1]);
}

/** Derived from the case book's id, so every lookup is a computation, not a second table. */
export function rivertyIds(caseId: string): RivertyIds {
  const n = caseNumber(caseId);
  return { requestId: `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`, claimNumber: String(CLAIM_NUMBER_BASE + n) };
}

/** A request id, claim number or case id → the case book's id (undefined: not one of ours). */
export function caseIdOf(ref: string): string | undefined {
  if (/^case_\d+$/.test(ref)) return ref;
  const req = /^00000000-0000-4000-8000-(\d{12})$/.exec(ref);
  const n = req ? Number(req[1]) : /^\d{9,}$/.test(ref) ? Number(ref) - CLAIM_NUMBER_BASE : NaN;
  return Number.isInteger(n) && n > 0 ? `case_${String(n).padStart(6, '0')}` : undefined;
}

// ---- requests -----------------------------------------------------------------------------------

const text = z.string().trim().min(1, 'must be a non-empty string');
const currency = z.string().regex(/^[A-Z]{3}$/, 'must be a 3-letter ISO 4217 code in capitals');
/** Riverty's amounts as the modelled API takes them: decimal strings, never JSON numbers. */
const decimal = z.string({ error: 'must be a decimal string such as "49.00"' }).regex(/^\d+(\.\d+)?$/, 'must be a decimal string such as "49.00"');
const date = z.union([z.iso.date(), z.iso.datetime({ offset: true })], { error: 'must be an ISO 8601 date' });
const keyValues = z.array(z.object({ key: text, value: z.string() }));

export const rivertyInvoiceSchema = z.object({
  invoiceNumber: text.max(40, 'must be at most 40 characters'),
  invoiceDate: date.optional(),
  dueDate: date.optional(),
  originalAmount: decimal.optional(),
  remainingAmount: decimal,
  currency,
  placementDate: date.optional(),
  additionalProperties: keyValues.optional(),
});
export type RivertyInvoiceInput = z.infer<typeof rivertyInvoiceSchema>;

const customerSchema = z
  .object({
    customerNumber: text,
    type: z.enum(['PRIVATE', 'COMPANY']),
    preferredLanguage: z.string().optional(),
    firstName: z.string().optional(),
    lastName: z.string().optional(),
    companyName: z.string().optional(),
    addresses: z
      .array(
        z.object({
          type: z.string().default('BILLING'),
          street: z.string().optional(),
          houseNumber: z.string().optional(),
          addressAddition: z.string().optional(),
          zipCode: z.string().optional(),
          city: z.string().optional(),
          countryCode: z.string().regex(/^[A-Z]{2}$/, 'must be a 2-letter ISO 3166 code in capitals').optional(),
        }),
      )
      .optional(),
    communicationChannels: z.array(z.object({ type: z.enum(['PHONE', 'MOBILE_PHONE', 'EMAIL']), value: text })).optional(),
  })
  .superRefine((c, ctx) => {
    if (c.type === 'PRIVATE' && !c.lastName?.trim()) ctx.addIssue({ code: 'custom', path: ['lastName'], message: 'a PRIVATE customer needs a lastName' });
    if (c.type === 'COMPANY' && !c.companyName?.trim()) ctx.addIssue({ code: 'custom', path: ['companyName'], message: 'a COMPANY customer needs a companyName' });
  });

export const rivertyClaimSchema = z
  .object({
    customer: customerSchema,
    contracts: z
      .array(z.object({ contractNumber: text, startDate: date.optional(), endDate: date.optional(), invoices: z.array(rivertyInvoiceSchema).min(1, 'a contract needs at least one invoice') }))
      .length(1, 'the simulator takes exactly one contract per claim'),
    costs: z.array(z.object({ type: text, amount: decimal, currency, description: z.string().optional() })).optional(),
    additionalProperties: keyValues.optional(),
  })
  .superRefine((b, ctx) => {
    const invoices = b.contracts[0]?.invoices ?? [];
    const seen = new Set<string>();
    invoices.forEach((inv, i) => {
      if (inv.currency !== invoices[0].currency) {
        ctx.addIssue({ code: 'custom', path: ['contracts', 0, 'invoices', i, 'currency'], message: `all invoices of a claim must be in one currency (invoices[0] is ${invoices[0].currency})` });
      }
      if (seen.has(inv.invoiceNumber)) ctx.addIssue({ code: 'custom', path: ['contracts', 0, 'invoices', i, 'invoiceNumber'], message: `duplicate invoiceNumber "${inv.invoiceNumber}"` });
      seen.add(inv.invoiceNumber);
    });
  });
export type RivertyClaimInput = z.infer<typeof rivertyClaimSchema>;

export const rivertyAddInvoicesSchema = z.object({
  contractNumber: text.optional(),
  invoices: z.array(rivertyInvoiceSchema).min(1, 'at least one invoice'),
});

export const rivertyPaymentSchema = z.object({
  invoiceNumber: text,
  paymentNumber: text.max(255, 'must be at most 255 characters'),
  contractNumber: text.optional(),
  date,
  description: z.string().optional(),
  amount: decimal,
  currency,
  allocateTo: z.enum(['PRINCIPAL_CLAIM', 'CLIENT_COSTS', 'CLIENT_INTERESTS']).default('PRINCIPAL_CLAIM'),
});

export const rivertyRecallSchema = z.object({
  comment: z.string().optional(),
  invoices: z
    .array(z.object({ invoiceNumber: text, contractNumber: text.optional(), type: z.enum(['RECALL', 'CREDIT_WAIVER', 'CANCELLATION']).default('RECALL') }))
    .min(1, 'a partial recall names at least one invoice')
    .optional(),
});

export const rivertyPauseSchema = z.object({
  comment: z.string().optional(),
  invoiceNumber: text.optional(),
});

/** "49.00" in `currency` → minor units; anything not positive is refused as Riverty does ("Negative amounts or 0 amounts are not allowed"). */
export function positiveMinor(amount: string, cur: string, path: string): number {
  let value: number;
  try {
    value = decimalToMinor(amount, cur);
  } catch (err) {
    throw new BookError(400, 'invalid_body', `${path}: ${(err as Error).message}`, { detail: { path } });
  }
  if (value <= 0) throw new BookError(400, 'invalid_body', `${path}: negative amounts or 0 amounts are not allowed`, { detail: { path } });
  return value;
}

const prop = (props: { key: string; value: string }[] | undefined, key: string) => props?.find((p) => p.key === key)?.value;

/** `stripe:insufficient_funds (insufficient_funds)`, as the hub's connector writes it; else unknown. */
function failureOf(props: { key: string; value: string }[] | undefined): ClaimInput['failure'] {
  const m = /^([^:]+):(.+) \(([a-z_]+)\)$/.exec(prop(props, 'paymentFailure') ?? '');
  const reason = m && (FAILURE_REASONS as readonly string[]).includes(m[3]) ? (m[3] as FailureReason) : 'unknown';
  return m ? { provider: m[1], code: m[2], reason } : { provider: 'unknown', code: 'unknown', reason: 'unknown' };
}

export function toClaimInput(inv: RivertyInvoiceInput, path: string): ClaimInput {
  const claim: ClaimInput = {
    reference: inv.invoiceNumber,
    principal: { value: positiveMinor(inv.remainingAmount, inv.currency, `${path}.remainingAmount`), currency: inv.currency },
    failure: failureOf(inv.additionalProperties),
  };
  const number = prop(inv.additionalProperties, 'merchantInvoiceNumber');
  const description = prop(inv.additionalProperties, 'description');
  if (number) claim.number = number;
  if (description) claim.description = description;
  if (inv.invoiceDate) claim.issuedAt = inv.invoiceDate;
  if (inv.dueDate) claim.dueAt = inv.dueDate;
  return claim;
}

/** A Riverty claim → the case book's canonical case (contract number = case reference, invoice number = claim reference). */
export function toCaseInput(body: RivertyClaimInput): CaseInput {
  const { customer } = body;
  const contract = body.contracts[0];
  const address = customer.addresses?.[0];
  const channel = (...types: string[]) => customer.communicationChannels?.find((c) => types.includes(c.type))?.value;
  const name = customer.type === 'COMPANY' ? customer.companyName!.trim() : [customer.firstName, customer.lastName].filter((s) => s?.trim()).join(' ');
  const debtor: CaseInput['debtor'] = { reference: customer.customerNumber, type: customer.type === 'COMPANY' ? 'business' : 'consumer', name };
  const email = channel('EMAIL');
  const phone = channel('PHONE', 'MOBILE_PHONE');
  if (email) debtor.email = email;
  if (phone) debtor.phone = phone;
  if (customer.preferredLanguage) debtor.locale = customer.preferredLanguage;
  if (address) {
    const line1 = [address.street, address.houseNumber].filter(Boolean).join(' ');
    debtor.address = {
      ...(line1 ? { line1 } : {}),
      ...(address.addressAddition ? { line2: address.addressAddition } : {}),
      ...(address.zipCode ? { postalCode: address.zipCode } : {}),
      ...(address.city ? { city: address.city } : {}),
      ...(address.countryCode ? { country: address.countryCode } : {}),
    };
    if (address.countryCode) debtor.country = address.countryCode;
  }
  const input: CaseInput = {
    reference: contract.contractNumber,
    creditor: { id: prop(body.additionalProperties, 'creditorId') ?? 'client', name: prop(body.additionalProperties, 'creditorName') ?? 'client' },
    debtor,
    claims: contract.invoices.map((inv, i) => toClaimInput(inv, `contracts[0].invoices[${i}]`)),
  };
  const cost = body.costs?.[0];
  if (cost) {
    input.collectionCosts = { value: decimalToMinor(cost.amount, cost.currency), currency: cost.currency, basis: cost.description ?? cost.type };
  }
  return input;
}

// ---- the feed -----------------------------------------------------------------------------------

export type RivertyTransactionType = 'CONFIRMATION' | 'REJECTION' | 'STATUS' | 'ACCOUNTING_DOCUMENT' | 'CLOSING';

/** One transaction as the riverty personality serves it (field names modelled; see the connector's schema.ts). */
export interface RivertyTransaction {
  transactionId: string;
  sortNumber: number;
  type: RivertyTransactionType;
  createdAt: string;
  requestId: string;
  claimNumber: string;
  contractNumber: string;
  invoiceNumber: string | null;
  status?: string;
  closingType?: string;
  objectType?: string;
  documentType?: string;
  collectedAmount?: string;
  currency?: string;
  paymentPlan?: { numberOfInstallments: number; installmentAmount: string; currency: string; firstDueDate: string };
  comment?: string;
}

/** Non-closing canonical statuses → Riverty status words. */
const STATUS_WORDS: Record<AgencyStatus, string> = {
  submitted: 'REGISTERED',
  in_collection: 'IN_PROGRESS',
  arrangement: 'PAYMENT_PLAN',
  partially_paid: 'PARTIALLY_PAID',
  paid: 'PAID',
  disputed: 'DISPUTED',
  on_hold: 'ON_HOLD',
  withdrawn: 'CLOSED',
  uncollectible: 'CLOSED',
  closed: 'CLOSED',
};

/** An ending with its reason → Riverty's documented closing type. */
const CLOSING_TYPES: Partial<Record<AgencyStatus, Partial<Record<ResolutionReason, string>>>> = {
  paid: { paid_in_full: 'FULL_PAYMENT', paid_via_arrangement: 'COMPLETED_BY_SETTLEMENT', paid_to_merchant: 'PAYMENT_BEFORE_HANDOVER' },
  uncollectible: {
    debtor_insolvent: 'INSOLVENCY',
    debtor_deceased: 'DEBTOR_DECEASED',
    debtor_untraceable: 'UNKNOWN_ADDRESS',
    time_barred: 'PERIOD_OF_LIMITATION_REACHED',
    written_off: 'WRITE_OFF',
  },
  closed: { disputed_upheld: 'CLAIM_DISPUTED', credit_note: 'COMPLETED_BY_CREDIT', written_off: 'PARTIAL_SUCCESS' },
};

/**
 * How Riverty words a canonical status: a closing type when it ends the claim for a reason
 * Riverty names (withdrawals are always recalls — a credit note a credit), else a status word.
 */
export function rivertyWords(status: AgencyStatus, reason: ResolutionReason | undefined): { status: string; closingType?: string } {
  if (status === 'withdrawn') return { status: 'CLOSED', closingType: reason === 'credit_note' ? 'COMPLETED_BY_CREDIT' : 'RECALLED_BY_CLIENT' };
  const closingType = reason ? CLOSING_TYPES[status]?.[reason] : undefined;
  if (closingType) return { status: 'CLOSED', closingType };
  // An uncollectible end without a reason Riverty names: it could not be recovered.
  if (status === 'uncollectible') return { status: 'CLOSED', closingType: 'IRRECOVERABLE' };
  return { status: STATUS_WORDS[status] };
}

function decimalOf(m: Money): string {
  return minorToDecimal(m.value, m.currency);
}

/** One canonical update of the case book → the transaction Riverty would list for it. */
export function toTransaction(u: AgencyUpdate, c: Pick<SimCase, 'id' | 'reference'>, sortNumber: number): RivertyTransaction {
  const ids = rivertyIds(c.id);
  const words = rivertyWords(u.status, u.reason);
  const t: RivertyTransaction = {
    transactionId: `trx_${String(sortNumber).padStart(8, '0')}`,
    sortNumber,
    type: 'STATUS',
    createdAt: u.occurredAt,
    requestId: ids.requestId,
    claimNumber: ids.claimNumber,
    contractNumber: c.reference,
    invoiceNumber: u.claimReference,
  };
  if (words.closingType) {
    t.type = 'CLOSING';
    t.closingType = words.closingType;
  } else {
    t.status = words.status;
    if (u.status === 'submitted') {
      t.type = 'CONFIRMATION';
      t.objectType = 'INVOICE';
    } else if (u.status === 'partially_paid') {
      t.type = 'ACCOUNTING_DOCUMENT';
      t.documentType = 'AGENCY_PAYMENTS';
    }
  }
  if (u.amountCollected) {
    t.collectedAmount = decimalOf(u.amountCollected);
    t.currency = u.amountCollected.currency;
  }
  if (u.arrangement) {
    t.paymentPlan = {
      numberOfInstallments: u.arrangement.installments,
      installmentAmount: decimalOf(u.arrangement.amount),
      currency: u.arrangement.amount.currency,
      firstDueDate: u.arrangement.firstDueAt.slice(0, 10),
    };
  }
  if (u.note) t.comment = u.note;
  return t;
}

/** A claim (Riverty: an invoice) as `GET /v1/claims/{claimNumber}` shows it. */
export function invoiceView(k: SimClaim, open: number) {
  const words = rivertyWords(k.status, k.reason);
  const cur = k.principal.currency;
  return {
    invoiceNumber: k.reference,
    status: words.status,
    ...(words.closingType ? { closingType: words.closingType } : {}),
    originalAmount: minorToDecimal(k.principal.value, cur),
    remainingAmount: minorToDecimal(open, cur),
    collectedAmount: minorToDecimal(k.collected, cur),
    paidToClientAmount: minorToDecimal(k.paidToMerchant, cur),
    currency: cur,
    onHold: k.held,
  };
}

/** The claim as a whole: its case-level words, or CLOSED with the case's closing type once finalized. */
export function claimWords(c: SimCase): { status: string; closingType?: string } {
  if (c.finalized) return rivertyWords(c.status, c.reason);
  const open = c.claims.filter((k) => !isTerminal(k.status));
  if (open.length && open.every((k) => k.held)) return { status: 'ON_HOLD' };
  return rivertyWords(isTerminal(c.status) ? 'in_collection' : c.status, undefined);
}
