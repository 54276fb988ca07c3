/**
 * Mollie connector schemas: the merchant's `providers.mollie` config block (validated at boot,
 * design.md habit 6) and the parts of Mollie's resources the normalizer reads.
 *
 * Field names follow @mollie/api-client 4.6 (node_modules/@mollie/api-client/dist/types/data/
 * payments/data.d.ts, chargebacks/Chargeback.d.ts, refunds/data.d.ts, customers/Customer.d.ts) and
 * shared/reference/psp-webhooks.md §2.5–2.6. The payload schemas are lenient (loose objects,
 * nullish fields): Mollie adds fields, and a resource we only read a few facts from must not fail
 * on one we do not need.
 */
import { z } from 'zod';

// ---------------------------------------------------------------------------------------------
// Ids. Mollie prefixes every id with its resource type (tr_ payment, ord_ order, pl_ payment link,
// re_ refund, chb_ chargeback, cst_ customer, mdt_ mandate, sub_ subscription). Classic webhooks
// post one of these as `id`; anything else is not from Mollie.

export const MOLLIE_ID_PREFIXES = ['tr', 'ord', 'pl', 're', 'chb', 'cst', 'mdt', 'sub'] as const;
export const MOLLIE_ID = new RegExp(`^(${MOLLIE_ID_PREFIXES.join('|')})_[A-Za-z0-9]{1,64}$`);
export const PAYMENT_ID = /^tr_[A-Za-z0-9]{1,64}$/;

// ---------------------------------------------------------------------------------------------
// Config.

/** A next-gen webhook signing secret; several are accepted while one is being rotated (§2.4). */
const signingSecret = z.string().trim().min(1);

export const mollieProviderConfigSchema = z
  .object({
    /** `test_…` or `live_…` (Options.d.ts: "The Mollie API key, starting with 'test_' or 'live_'"). */
    apiKey: z
      .string()
      .trim()
      .regex(/^(test|live)_[A-Za-z0-9]+$/, 'must be a Mollie API key starting with test_ or live_'),
    /**
     * Points the SDK at another host (a sandbox, a test double on loopback) — contract §7. The root
     * of the API as the SDK's `apiEndpoint` (default `https://api.mollie.com:443/v2/`); a bare
     * origin such as `http://127.0.0.1:4010` means `http://127.0.0.1:4010/v2/` (client.ts).
     */
    apiBase: z.url({ protocol: /^https?$/ }).optional(),
    /**
     * Next-gen webhooks' signing secret, or a list while rotating. When set, every delivery must
     * carry a valid `X-Mollie-Signature` (verify.ts).
     */
    webhookSigningSecret: z.union([signingSecret, z.array(signingSecret).min(1)]).optional(),
    /**
     * How a later payment finds the open invoice an earlier (final) payment opened, in priority
     * order (invoice-link-keys.ts; issue 12, hole 2). Absent: DEFAULT_INVOICE_LINK. `[]`: every
     * payment is an invoice of its own.
     */
    invoiceLink: z
      .array(z.union([z.enum(['subscriptionPeriod', 'customerAndAmount']), z.string().regex(/^metadata\.[A-Za-z0-9_-]{1,64}$/, 'must be subscriptionPeriod, customerAndAmount or metadata.<key>')]))
      .refine((rules) => new Set(rules).size === rules.length, 'names a rule twice')
      .optional(),
  })
  // A typo such as `apiBse` must stop start-up rather than silently send lookups to api.mollie.com.
  .strict();

export type MollieProviderConfig = z.output<typeof mollieProviderConfigSchema>;

// ---------------------------------------------------------------------------------------------
// Resources. Amounts are decimal strings with their currency: `{ currency: "EUR", value: "49.00" }`.

export const mollieAmountSchema = z.looseObject({
  currency: z.string().regex(/^[A-Za-z]{3}$/),
  value: z.string().min(1),
});

export const mollieAddressSchema = z.looseObject({
  title: z.string().nullish(),
  givenName: z.string().nullish(),
  familyName: z.string().nullish(),
  organizationName: z.string().nullish(),
  streetAndNumber: z.string().nullish(),
  streetAdditional: z.string().nullish(),
  postalCode: z.string().nullish(),
  email: z.string().nullish(),
  phone: z.string().nullish(),
  city: z.string().nullish(),
  region: z.string().nullish(),
  country: z.string().nullish(),
});

export const mollieChargebackSchema = z.looseObject({
  resource: z.literal('chargeback').optional(),
  id: z.string().min(1),
  amount: mollieAmountSchema,
  settlementAmount: mollieAmountSchema.nullish(),
  createdAt: z.string().nullish(),
  reversedAt: z.string().nullish(),
  /** Newer API versions: the bank's reason (Chargeback.d.ts `reason: { code, description }`). */
  reason: z.looseObject({ code: z.string().nullish(), description: z.string().nullish() }).nullish(),
  paymentId: z.string().nullish(),
});

export const mollieRefundSchema = z.looseObject({
  resource: z.literal('refund').optional(),
  id: z.string().min(1),
  amount: mollieAmountSchema,
  /** queued, pending, processing, refunded, failed, canceled (refunds/data.d.ts RefundStatus). */
  status: z.string().nullish(),
  createdAt: z.string().nullish(),
  description: z.string().nullish(),
  paymentId: z.string().nullish(),
});

/** `details` differ per method; the union of the fields read here (payments/data.d.ts). */
export const molliePaymentDetailsSchema = z.looseObject({
  // SEPA Direct Debit
  consumerName: z.string().nullish(),
  consumerAccount: z.string().nullish(),
  consumerBic: z.string().nullish(),
  dueDate: z.string().nullish(),
  mandateReference: z.string().nullish(),
  bankReasonCode: z.string().nullish(),
  bankReason: z.string().nullish(),
  // Credit card (and Bancontact's `failureReason`)
  cardHolder: z.string().nullish(),
  cardCountryCode: z.string().nullish(),
  /** Mollie's own id of the card (the same card, the same value), hashed for screening only. */
  cardFingerprint: z.string().nullish(),
  failureReason: z.string().nullish(),
  failureMessage: z.string().nullish(),
});

const link = z.looseObject({ href: z.string().nullish() }).nullish();

export const molliePaymentSchema = z.looseObject({
  resource: z.literal('payment').optional(),
  id: z.string().regex(PAYMENT_ID),
  mode: z.string().nullish(),
  status: z.string().min(1),
  createdAt: z.string().nullish(),
  authorizedAt: z.string().nullish(),
  paidAt: z.string().nullish(),
  canceledAt: z.string().nullish(),
  expiredAt: z.string().nullish(),
  failedAt: z.string().nullish(),
  amount: mollieAmountSchema,
  amountRefunded: mollieAmountSchema.nullish(),
  amountRemaining: mollieAmountSchema.nullish(),
  amountChargedBack: mollieAmountSchema.nullish(),
  description: z.string().nullish(),
  method: z.string().nullish(),
  metadata: z.unknown().optional(),
  locale: z.string().nullish(),
  countryCode: z.string().nullish(),
  profileId: z.string().nullish(),
  sequenceType: z.string().nullish(),
  customerId: z.string().nullish(),
  mandateId: z.string().nullish(),
  subscriptionId: z.string().nullish(),
  orderId: z.string().nullish(),
  billingAddress: mollieAddressSchema.nullish(),
  details: molliePaymentDetailsSchema.nullish(),
  _embedded: z
    .looseObject({
      refunds: z.array(z.unknown()).nullish(),
      chargebacks: z.array(z.unknown()).nullish(),
    })
    .nullish(),
  _links: z
    .looseObject({
      chargebacks: link,
      refunds: link,
    })
    .nullish(),
});

export const mollieCustomerSchema = z.looseObject({
  resource: z.literal('customer').optional(),
  id: z.string().min(1),
  name: z.string().nullish(),
  email: z.string().nullish(),
  locale: z.string().nullish(),
  metadata: z.unknown().optional(),
});

/**
 * A next-gen webhook event (psp-webhooks.md §2.4): `{ resource: "event", id: "event_…",
 * type: "payment.failed", entityId: "tr_…", createdAt, _embedded?: { entity } }`. The "simple"
 * payload variant has no `_embedded`.
 */
export const mollieNextGenEventSchema = z.looseObject({
  resource: z.literal('event'),
  id: z.string().min(1),
  type: z.string().min(1),
  entityId: z.string().nullish(),
  createdAt: z.string().nullish(),
  _embedded: z.looseObject({ entity: z.looseObject({ id: z.string().nullish(), paymentId: z.string().nullish() }).nullish() }).nullish(),
});

/** What a classic webhook delivery is stored as: its form fields. */
export const mollieClassicPayloadSchema = z.looseObject({ id: z.string().regex(MOLLIE_ID) });

export type MolliePaymentPayload = z.output<typeof molliePaymentSchema>;
export type MollieCustomerPayload = z.output<typeof mollieCustomerSchema>;
export type MollieChargebackPayload = z.output<typeof mollieChargebackSchema>;
export type MollieRefundPayload = z.output<typeof mollieRefundSchema>;
export type MollieAmountPayload = z.output<typeof mollieAmountSchema>;
export type MollieAddressPayload = z.output<typeof mollieAddressSchema>;
export type MollieNextGenEventPayload = z.output<typeof mollieNextGenEventSchema>;
