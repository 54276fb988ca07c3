/**
 * zod schemas of what the simulated agency accepts (contract §5 request bodies, plus the
 * simulator's own control calls), and the one place their errors become a field path + message.
 * Unknown fields are ignored rather than refused, as agencies do when a client sends more than
 * they use; missing or malformed required fields are refused with a 400 naming the field.
 */
import { z } from 'zod';
import { AGENCY_STATUSES, DEBTOR_TYPES, FAILURE_REASONS, RESOLUTION_REASONS } from '../../src/domain/types';

const text = z.string().trim().min(1, 'must be a non-empty string');

export const moneySchema = z.object({
  value: z.number().int('must be an integer amount in minor units'),
  currency: z.string().regex(/^[A-Z]{3}$/, 'must be a 3-letter ISO 4217 code in capitals'),
});

/** An amount that is owed or paid: zero or negative makes no sense for a principal or a payment. */
const positiveMoney = moneySchema.extend({
  value: z.number().int('must be an integer amount in minor units').positive('must be greater than 0'),
});

const isoDateTime = z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. 2024-05-01T12:00:00Z' });
/** Due and issue dates are often plain dates on invoices. */
const isoDateOrDateTime = z.union([z.iso.date(), z.iso.datetime({ offset: true })], {
  error: 'must be an ISO 8601 date or date-time',
});

const addressSchema = z.object({
  line1: z.string().optional(),
  line2: z.string().optional(),
  postalCode: z.string().optional(),
  city: z.string().optional(),
  state: z.string().optional(),
  country: z.string().optional(),
});

export const claimSchema = z.object({
  reference: text,
  number: z.string().optional(),
  principal: positiveMoney,
  issuedAt: isoDateOrDateTime.optional(),
  dueAt: isoDateOrDateTime.optional(),
  description: z.string().optional(),
  failure: z.object({
    provider: text,
    code: text,
    reason: z.enum(FAILURE_REASONS),
  }),
  /** The claim's own statutory costs (hub extension of contract §5; 0 with the reason when none may be charged). */
  collectionCosts: moneySchema.extend({ value: z.number().int().nonnegative(), basis: text }).optional(),
});
export type ClaimInput = z.infer<typeof claimSchema>;

export const caseSchema = z
  .object({
    reference: text,
    creditor: z.object({ id: text, name: text }),
    debtor: z.object({
      reference: text,
      type: z.enum(DEBTOR_TYPES),
      name: text,
      email: z.email('must be an e-mail address').optional(),
      phone: z.string().optional(),
      address: addressSchema.optional(),
      country: z.string().regex(/^[A-Z]{2}$/, 'must be a 2-letter ISO 3166 code in capitals').optional(),
      locale: z.string().optional(),
    }),
    claims: z.array(claimSchema).min(1, 'a case needs at least one claim'),
    collectionCosts: moneySchema
      .extend({ value: z.number().int().nonnegative(), basis: text })
      .optional(),
  })
  .superRefine((c, ctx) => {
    // One case is collected in one currency; mixing them would make every case total meaningless.
    const currency = c.claims[0]?.principal.currency;
    const seen = new Set<string>();
    c.claims.forEach((claim, i) => {
      if (claim.principal.currency !== currency) {
        ctx.addIssue({
          code: 'custom',
          path: ['claims', i, 'principal', 'currency'],
          message: `all claims of a case must be in one currency (claims[0] is ${currency})`,
        });
      }
      if (seen.has(claim.reference)) {
        ctx.addIssue({ code: 'custom', path: ['claims', i, 'reference'], message: `duplicate claim reference "${claim.reference}"` });
      }
      seen.add(claim.reference);
    });
  });
export type CaseInput = z.infer<typeof caseSchema>;

export const paymentSchema = z.object({
  amount: positiveMoney,
  paidAt: isoDateTime,
  channel: text,
});

export const withdrawSchema = z.object({
  reason: text,
  claimReference: text.optional(),
});

/** `POST /v1/cases/:id/hold` and `/resume`: the hub's extension of contract §5, like withdraw's claimReference. */
export const pauseSchema = z.object({
  reason: text,
  claimReference: text.optional(),
});

// ---- control calls (/_sim/*) ------------------------------------------------------------------

export const arrangementSchema = z.object({
  installments: z.number().int().positive(),
  amount: moneySchema,
  firstDueAt: isoDateTime,
});

export const controlEventSchema = z.object({
  status: z.enum(AGENCY_STATUSES as [string, ...string[]]).transform((s) => s as (typeof AGENCY_STATUSES)[number]),
  reason: z.enum(RESOLUTION_REASONS).optional(),
  claimReference: text.nullish(),
  amountCollected: moneySchema.optional(),
  arrangement: arrangementSchema.optional(),
  note: z.string().optional(),
});
export type ControlEvent = z.infer<typeof controlEventSchema>;

const rate = z.number().min(0, 'must be between 0 and 1').max(1, 'must be between 0 and 1');

export const faultsSchema = z.strictObject({
  errorRate: rate,
  latencyMs: z.number().int().nonnegative(),
  timeoutRate: rate,
  timeoutMs: z.number().int().positive(),
  duplicateRate: rate,
  outOfOrder: z.boolean(),
  pushBatch: z.number().int().positive(),
});
export type Faults = z.infer<typeof faultsSchema>;

// ---- errors ---------------------------------------------------------------------------------

/** `claims[0].principal.value` — the path written the way a client would look for it. */
export function issuePath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)),
    '',
  );
}

export interface BodyProblem {
  message: string;
  /** The first offending field; `(body)` when the body itself is wrong. */
  path: string;
  issues: { path: string; message: string }[];
}

export function describeBodyError(error: z.ZodError): BodyProblem {
  const issues = error.issues.map((i) => ({ path: issuePath(i.path) || '(body)', message: i.message }));
  return {
    message: issues
      .slice(0, 5)
      .map((i) => `${i.path}: ${i.message}`)
      .join('; '),
    path: issues[0]?.path ?? '(body)',
    issues,
  };
}
