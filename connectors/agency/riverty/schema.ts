/**
 * zod schemas of the Riverty-shaped agency API (modelled on Riverty Back in Flow, collections.md
 * §A.2–§A.6): the partner block in the hub's config, the OAuth2 token answer, the agency's answers
 * and the transaction feed. Riverty's vocabulary stays raw here (statuses, closing types); mapping
 * it is normalize.ts's job, through mappings/agency/riverty.yaml.
 *
 * Documented by Riverty (per collections.md): `POST /v1/claims` → `{ requestId }`, the claim's
 * customer/contracts/invoices fields, `POST /claims/{claimNumber}/payments` with `paymentNumber`,
 * `POST /claims/{claimNumber}/recalls`, the transaction feed ordered by `sortNumber` (0, 1, 2, …),
 * transaction types, closing types, rejection reasons, object and accounting-document types.
 * Modelled here (not in the sources): the field names inside a transaction, the status words of
 * STATUS transactions, decimal strings for amounts, `GET /v1/requests/{requestId}`,
 * `GET /v1/claims/{claimNumber}`, `POST /v1/claims/{claimNumber}/invoices`, `/hold`, `/resume`,
 * and `fromSortNumber` on the feed. The connector README lines in index.ts say why.
 */
import { z } from 'zod';
import { DEBTOR_FIELDS } from '../reference/schema';

export { DEBTOR_FIELDS };
export type DebtorField = (typeof DEBTOR_FIELDS)[number];

// ---- Riverty's documented enums (collections.md §A.3) --------------------------------------------

export const TRANSACTION_TYPES = ['CONFIRMATION', 'REJECTION', 'STATUS', 'ACCOUNTING_DOCUMENT', 'CLOSING'] as const;
export type TransactionType = (typeof TRANSACTION_TYPES)[number];

/** docs.riverty.com/back_in_flow/documentation/closing — every one is in mappings/agency/riverty.yaml. */
export const CLOSING_TYPES = [
  'IRRECOVERABLE', 'POOR_CREDIT_RATING', 'WRITE_OFF', 'PARTIAL_SUCCESS', 'RECALLED_BY_CLIENT', 'FRAUD',
  'FULL_PAYMENT', 'UNKNOWN_ADDRESS', 'CLAIM_DISPUTED', 'DEBTOR_LIVING_ABROAD', 'CUSTOMER_INCAPABLE_OF_CONTRACTING',
  'RETURNED_TO_CLIENT', 'COMPANY_LIQUIDATED', 'INSOLVENCY', 'COMPLETED_BY_CREDIT', 'HIGH_COST_RISK',
  'LONGTERM_MONITORING', 'SOLDIER', 'MISSING_DATA', 'NO_CONTRACT_DOCUMENTATION', 'CLAIM_DISMISSED', 'MINOR_DEBTOR',
  'PERIOD_OF_LIMITATION_REACHED', 'TOO_LOW_FOR_LEGAL_ACTION', 'DEBTOR_DECEASED', 'DUPLICATE_CONTRACT',
  'PAYMENT_BEFORE_HANDOVER', 'SECOND_PLACEMENT', 'COMPLETED_BY_SETTLEMENT',
] as const;
export type ClosingType = (typeof CLOSING_TYPES)[number];

/** …/documentation/rejection. Kept raw in the update's note; never mapped to a reason. */
export const REJECTION_REASONS = [
  'AMOUNT_TOO_LOW', 'AMOUNT_TOO_HIGH', 'CLAIM_NOT_PLAUSIBLE', 'BREACH_OF_CONTRACT', 'CONTRAVENTION', 'INSOLVENCY',
  'INCORRECT_CURRENCY', 'NO_ASSIGNMENT_POSSIBLE', 'CUSTOMER_INCAPABLE_OF_CONTRACTING', 'CUSTOMER_ABROAD', 'FRAUD_KNOWN',
] as const;

/** What a CONFIRMATION or REJECTION is about (…/get_all_transactions_within_a_period_of_time). */
export const OBJECT_TYPES = ['INVOICE', 'CLIENT_INTERESTS', 'CLIENT_COSTS', 'CREDIT_WAIVER', 'DIRECT_PAYMENT', 'RECALL', 'CANCELLATION', 'DOCUMENT'] as const;

/** …/documentation/accounting_document. */
export const ACCOUNTING_DOCUMENT_TYPES = ['DIRECT_PAYMENT', 'AGENCY_PAYMENTS', 'CREDIT_WAIVER', 'DEBIT', 'WRITE_OFF', 'CANCELLATION', 'REALLOCATION'] as const;

/** Riverty: "invoiceNumber max 40". The hub's claim ids are 24 characters. */
export const MAX_INVOICE_NUMBER_LENGTH = 40;

// ---- the partner block -----------------------------------------------------------------------

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

/**
 * The whole `partners[]` block for `connector: riverty`, strict at every level: a typo (say
 * `clientSecert`) stops start-up instead of leaving the agency unauthenticated.
 */
export const rivertyPartnerConfigSchema = z.strictObject({
  id: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'letters, digits, - and _ only (it appears in URLs and logs)'),
  connector: z.literal('riverty'),
  name: z.string().min(1).optional(),
  /** Where `/v1/claims`, `/v1/transactions`… live. */
  baseUrl: httpUrl,
  /** OAuth2 token endpoint (RFC 6749 §4.4). Absent: `{baseUrl}/oauth/token`. */
  tokenUrl: httpUrl.optional(),
  clientId: z.string().min(1),
  clientSecret: z.string().min(1),
  /** Sent as `audience` in the token request when set (Riverty's identity server asks for one, §A.5). */
  audience: z.string().min(1).optional(),
  /** RFC 6749 §2.3.1: credentials in the form body (default) or as HTTP Basic. */
  tokenAuth: z.enum(['client_secret_post', 'client_secret_basic']).default('client_secret_post'),
  timeoutMs: z.number().int().positive().max(120_000).default(10_000),
  /** Riverty has no push: the feed is pulled on this schedule. */
  pull: z
    .strictObject({
      everySeconds: z.number().int().positive().default(60),
      limit: z.number().int().positive().max(1000).default(100),
      /**
       * sortNumber counts up by one per transaction, so a missing number is a transaction not
       * visible yet (written, not committed). The cursor waits at the gap this long for it to
       * appear, then steps over it.
       */
      gapGraceSeconds: z.number().int().nonnegative().max(86_400).default(120),
    })
    .prefault({}),
  /** Data minimisation, as for the reference connector: reference, type and name always go. */
  debtorFields: z.array(z.enum(DEBTOR_FIELDS)).optional(),
});
export type RivertyPartnerConfig = z.output<typeof rivertyPartnerConfigSchema>;

// ---- wire shapes -------------------------------------------------------------------------------

/** "49.00": a decimal string, converted exactly with the currency's exponent (src/domain/money.ts). */
export const decimalAmount = z.string().regex(/^\d{1,15}(\.\d{1,6})?$/, 'must be a decimal amount such as "49.00"');
const currency = z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code');
const isoTime = z.iso.datetime({ offset: true });
const isoDateOrTime = z.union([z.iso.date(), isoTime]);

/** RFC 6749 §5.1. `expires_in` is RECOMMENDED only; some servers send it as a string. */
export const tokenAnswerSchema = z.object({
  access_token: z.string().min(1),
  token_type: z.string().refine((t) => t.toLowerCase() === 'bearer', { error: 'must be Bearer' }),
  expires_in: z.coerce.number().positive().optional(),
});

/** `POST /v1/claims` → `{ requestId }` (documented: the claim number comes later, asynchronously). */
export const createdClaimSchema = z.looseObject({ requestId: z.string().min(1) });

/** `GET /v1/requests/{requestId}` (modelled): where an asynchronous hand-over stands. */
export const requestStatusSchema = z.looseObject({
  requestId: z.string().min(1),
  status: z.enum(['PENDING', 'PROCESSED', 'REJECTED']),
  claimNumber: z.string().min(1).nullish(),
  contractNumber: z.string().min(1).nullish(),
  rejectionReason: z.string().nullish(),
});
export type RequestStatus = z.infer<typeof requestStatusSchema>;

/** A 409 answer: the claim (or invoice) exists already; `requestId` names the existing hand-over. */
export const conflictSchema = z.looseObject({
  requestId: z.string().min(1).optional(),
  error: z.union([z.string(), z.looseObject({ code: z.string().optional(), message: z.string().optional() })]).optional(),
});

/** `GET /v1/claims/{claimNumber}` (modelled). */
export const claimViewSchema = z.looseObject({
  claimNumber: z.string().min(1),
  contractNumber: z.string().min(1),
  status: z.string().min(1),
  closingType: z.string().nullish(),
  invoices: z.array(
    z.looseObject({
      invoiceNumber: z.string().min(1),
      status: z.string().min(1),
      closingType: z.string().nullish(),
      collectedAmount: decimalAmount,
      currency,
    }),
  ),
});

/**
 * One transaction of the feed. Riverty documents the types and `sortNumber` ("starts with 0 and
 * will be incremented by 1 for each further transaction"); the other field names are modelled.
 * `invoiceNumber: null` means the whole claim (the hub's case).
 */
export const transactionSchema = z
  .looseObject({
    transactionId: z.string().min(1),
    sortNumber: z.number().int().nonnegative(),
    type: z.enum(TRANSACTION_TYPES),
    createdAt: isoTime,
    requestId: z.string().min(1).nullish(),
    claimNumber: z.string().min(1).nullish(),
    /** The hub's case reference, sent as the claim's contract number. */
    contractNumber: z.string().min(1),
    /** The hub's claim reference, sent as the invoice number; null: the whole claim. */
    invoiceNumber: z.string().min(1).nullable(),
    status: z.string().min(1).nullish(),
    closingType: z.string().min(1).nullish(),
    objectType: z.string().nullish(),
    rejectionReason: z.string().nullish(),
    documentType: z.string().nullish(),
    collectedAmount: decimalAmount.nullish(),
    currency: currency.nullish(),
    paymentPlan: z
      .object({
        numberOfInstallments: z.number().int().positive(),
        installmentAmount: decimalAmount,
        currency,
        firstDueDate: isoDateOrTime,
      })
      .nullish(),
    comment: z.string().nullish(),
  })
  .superRefine((t, ctx) => {
    if (t.type === 'CLOSING' && !t.closingType) ctx.addIssue({ code: 'custom', path: ['closingType'], message: 'a CLOSING transaction needs its closingType' });
    if (t.type !== 'CLOSING' && !t.status) ctx.addIssue({ code: 'custom', path: ['status'], message: `a ${t.type} transaction needs the claim's status` });
    if (t.collectedAmount != null && !t.currency) ctx.addIssue({ code: 'custom', path: ['currency'], message: 'collectedAmount needs its currency' });
    if (!t.claimNumber && !t.requestId) ctx.addIssue({ code: 'custom', path: ['claimNumber'], message: 'a transaction names its claimNumber (or, before one exists, its requestId)' });
  });
export type RivertyTransaction = z.infer<typeof transactionSchema>;

/** `GET /v1/transactions?fromSortNumber=&limit=` → `{ transactions }`, ascending sortNumber. */
export const transactionsPageSchema = z.looseObject({ transactions: z.array(transactionSchema) });

export { describeIssues } from '../reference/schema';
