/**
 * zod schemas of the reference collection protocol (contract §5): the partner block in the hub's
 * config, the agency's answers, and the update shape that arrives by pull and by push.
 * Statuses and reasons stay raw strings here; mapping them is normalize.ts's job, so an agency
 * speaking another vocabulary only needs another mapping file.
 */
import crypto from 'node:crypto';
import { z } from 'zod';

/** HS256 keys shorter than the hash output are forbidden by RFC 7518 §3.2. */
export const MIN_HS256_SECRET_LENGTH = 32;

/** Debtor fields the protocol knows; `debtorFields` in config picks which optional ones may leave the hub. */
export const DEBTOR_FIELDS = ['reference', 'type', 'name', 'email', 'phone', 'address', 'country', 'locale'] as const;
export type DebtorField = (typeof DEBTOR_FIELDS)[number];

const hs256Secret = z
  .string()
  .min(MIN_HS256_SECRET_LENGTH, `must be at least ${MIN_HS256_SECRET_LENGTH} characters (RFC 7518 §3.2)`);

/** The agency's public key must parse now, or every push would fail only at run time. */
const publicKeyPem = z.string().refine(
  (pem) => {
    try {
      crypto.createPublicKey(pem);
      return true;
    } catch {
      return false;
    }
  },
  { error: 'not a readable public key PEM' },
);

const outboundAuth = z.discriminatedUnion('alg', [
  z.strictObject({ alg: z.literal('HS256'), secret: hs256Secret }),
  // Signed with the hub's own key; the agency fetches it from the hub's JWKS.
  z.strictObject({ alg: z.enum(['RS256', 'ES256']) }),
]);

/** Cap on a push token's lifetime (exp - iat); contract §5 bounds the hub's own tokens to 5 minutes. */
const maxTokenLifetimeSeconds = z.number().int().min(30).max(3600).optional();

const inboundAuth = z
  .discriminatedUnion('alg', [
    // previousSecrets / previousPublicKeys: still accepted during a rotation, until removed.
    z.strictObject({ alg: z.literal('HS256'), secret: hs256Secret, previousSecrets: z.array(hs256Secret).max(4).optional(), maxTokenLifetimeSeconds }),
    z.strictObject({ alg: z.enum(['RS256', 'ES256']), publicKey: publicKeyPem, previousPublicKeys: z.array(publicKeyPem).max(4).optional(), maxTokenLifetimeSeconds }),
  ])
  .superRefine((auth, ctx) => {
    if (auth.alg === 'HS256') return;
    let key: crypto.KeyObject;
    try {
      key = crypto.createPublicKey(auth.publicKey);
    } catch {
      return; // already reported on publicKey
    }
    const fits =
      auth.alg === 'RS256'
        ? key.asymmetricKeyType === 'rsa'
        : key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
    if (!fits) {
      ctx.addIssue({
        code: 'custom',
        path: ['publicKey'],
        message: `a ${auth.alg} key must be ${auth.alg === 'RS256' ? 'RSA' : 'EC P-256'}, got ${key.asymmetricKeyType}`,
      });
    }
  });

/**
 * The whole `partners[]` block for `connector: reference`. The top level is not strict so the
 * shared config module can add keys common to every partner; nested blocks are, so a typo in
 * `auth` or `pull` stops start-up instead of silently falling back to a default.
 */
export const referencePartnerConfigSchema = z.object({
  id: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9_-]*$/, 'letters, digits, - and _ only (it appears in URLs and as the JWT aud)'),
  connector: z.literal('reference'),
  name: z.string().min(1).optional(),
  baseUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
  timeoutMs: z.number().int().positive().max(120_000).default(10_000),
  auth: z.strictObject({ outbound: outboundAuth, inbound: inboundAuth }),
  pull: z
    .strictObject({
      everySeconds: z.number().int().positive().default(60),
      limit: z.number().int().positive().max(1000).default(100),
    })
    .optional(),
  /**
   * Which debtor fields may be sent to this agency (data minimisation). `reference`, `type` and
   * `name` are required by the protocol and always sent. Absent: the minimal set of
   * src/privacy/minimise.ts (address, country, locale; no e-mail or phone).
   */
  debtorFields: z.array(z.enum(DEBTOR_FIELDS)).optional(),
});
export type ReferencePartnerConfig = z.infer<typeof referencePartnerConfigSchema>;
export type ReferenceOutboundAuth = ReferencePartnerConfig['auth']['outbound'];
export type ReferenceInboundAuth = ReferencePartnerConfig['auth']['inbound'];

// ---- the agency's answers -------------------------------------------------------------------

export const moneySchema = z.object({
  value: z.number().int(),
  currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code'),
});

const isoTime = z.iso.datetime({ offset: true });

/** `201 { id, status }` of `POST /v1/cases`. */
export const createdCaseSchema = z.object({
  id: z.string().min(1),
  status: z.string().min(1),
});

/**
 * Body of a `409` answer. The protocol leaves error bodies open; the connector relies only on
 * `id` (the case that already exists) and on a duplicate marker in `code`/`message`, either flat
 * or inside `error` (`{ error: { code, message }, id }`, as the agency simulator answers).
 */
const errorDetail = z.looseObject({ code: z.string().optional(), message: z.string().optional() });
export const conflictSchema = z.looseObject({
  id: z.string().min(1).optional(),
  status: z.string().optional(),
  error: z.union([z.string(), errorDetail]).optional(),
  code: z.string().optional(),
  message: z.string().optional(),
});

/** `GET /v1/cases/:id`. */
export const caseViewSchema = z.object({
  id: z.string().min(1),
  reference: z.string(),
  status: z.string().min(1),
  claims: z.array(
    z.object({
      reference: z.string().min(1),
      status: z.string().min(1),
      reason: z.string().nullish(),
      amountCollected: moneySchema,
    }),
  ),
});

/** An update as the agency sends it (contract §5); status and reason in the agency's words. */
export const referenceUpdateSchema = z.object({
  id: z.string().min(1),
  seq: z.number().int().nonnegative(),
  caseId: z.string().min(1),
  caseReference: z.string().min(1),
  claimReference: z.string().min(1).nullable(),
  status: z.string().min(1),
  reason: z.string().min(1).nullish(),
  amountCollected: moneySchema.nullish(),
  arrangement: z
    .object({
      installments: z.number().int().positive(),
      amount: moneySchema,
      firstDueAt: isoTime,
    })
    .nullish(),
  note: z.string().nullish(),
  occurredAt: isoTime,
});
export type ReferenceUpdate = z.infer<typeof referenceUpdateSchema>;

/** `GET /v1/updates?after=&limit=`. A missing `next` means "nothing newer yet". */
export const updatesPageSchema = z.object({
  updates: z.array(referenceUpdateSchema),
  next: z.union([z.string(), z.number()]).nullish(),
});

/** Body of `POST /v1/partners/:partnerId/events`. */
export const pushBodySchema = z.object({
  events: z.array(referenceUpdateSchema),
});

/** `events[0].status: …` — the path named the way the agency would write it. */
export function describeIssues(error: z.ZodError, max = 3): string {
  return error.issues
    .slice(0, max)
    .map((issue) => {
      const where = issue.path.reduce<string>(
        (acc, part) => (typeof part === 'number' ? `${acc}[${part}]` : acc ? `${acc}.${String(part)}` : String(part)),
        '',
      );
      return `${where || '(body)'}: ${issue.message}`;
    })
    .join('; ');
}
