/**
 * Stripe connector schemas: the merchant's `providers.stripe` config block (validated at boot,
 * design.md habit 6) and the parts of Stripe's payloads the normalizer reads.
 *
 * The payload schemas are deliberately lenient: every field is optional/nullable and objects are
 * loose (unknown keys kept), because Stripe adds fields in every API version and moved several in
 * 2025-03-31.basil (shared/reference/psp-webhooks.md §1.1). Field names follow stripe-node's
 * types (node_modules/stripe/cjs/resources/{Invoices,Charges,PaymentIntents,Disputes,InvoicePayments}.d.ts).
 */
import { z } from 'zod';

/** A webhook signing secret; several are accepted while one is being rolled (psp-webhooks.md §1.2). */
const webhookSecret = z.string().trim().min(1);

export const stripeProviderConfigSchema = z
  .object({
    /** `whsec_…`; a list while rotating: a delivery signed with any of them passes. */
    webhookSecret: z.union([webhookSecret, z.array(webhookSecret).min(1)]),
    /** Secret API key, needed only for lookups and write-back (client.ts). */
    apiKey: z.string().trim().min(1).optional(),
    /** Points the SDK at another host (a sandbox, a test double on loopback) — contract §7. */
    apiBase: z.url({ protocol: /^https?$/ }).optional(),
    /**
     * Maximum age of a signed delivery. The SDK's default is 300 s (psp-webhooks.md §1.2). Must be
     * positive: stripe-node 23 treats 0 as "skip the age check" (`tolerance ?? DEFAULT_TOLERANCE`
     * in node_modules/stripe/cjs/Webhooks.js), which we never want.
     */
    toleranceSeconds: z.number().int().positive().default(300),
    /**
     * Tries of an enrichment lookup (the decline code behind a payment_intent, lookup.ts) before the
     * event goes on without it: with the reason it has (or `unknown`), and a re-lookup later fills
     * the reason in (src/pipeline/re-enrich.ts). Small, so an unreachable Stripe API never holds a
     * final failure back from its case (issue 12, hole 9). Default 3 (index.ts).
     */
    lookupAttempts: z.number().int().min(1).max(20).optional(),
  })
  // A typo such as `apiBse` must stop start-up rather than silently send lookups to api.stripe.com.
  .strict();

export type StripeProviderConfig = z.output<typeof stripeProviderConfigSchema>;

// ---------------------------------------------------------------------------------------------
// Payload parts. `nullish` everywhere: Stripe sends `null` for absent values, older API versions
// omit fields entirely.

const id = z.string().min(1);
/** An expandable reference: the id, or the expanded object carrying `id`. */
const expandable = <T extends z.ZodType>(obj: T) => z.union([id, obj]);
const unixSeconds = z.number().int();
const minorUnits = z.number().int();

export const stripeAddressSchema = z.looseObject({
  line1: z.string().nullish(),
  line2: z.string().nullish(),
  postal_code: z.string().nullish(),
  city: z.string().nullish(),
  state: z.string().nullish(),
  country: z.string().nullish(),
});

/** `billing_details` of a Charge or PaymentMethod. */
export const stripeBillingDetailsSchema = z.looseObject({
  name: z.string().nullish(),
  email: z.string().nullish(),
  phone: z.string().nullish(),
  address: stripeAddressSchema.nullish(),
});

/** Metadata: string values per Stripe, kept lenient (a value we never read must not fail a parse). */
const metadata = z.record(z.string(), z.unknown()).nullish();

/** A card's details as a PaymentMethod or a charge's `payment_method_details` carry them; only the fingerprint is read. */
const cardDetails = z.looseObject({ fingerprint: z.string().nullish() }).nullish();

/** A charge's `payment_method_details`: the method used and, for a card, its details. */
const paymentMethodDetails = z.looseObject({ type: z.string().nullish(), card: cardDetails }).nullish();

/** The shape of `last_payment_error` / `last_finalization_error` (psp-webhooks.md §1.4). */
export const stripeApiErrorSchema = z.looseObject({
  type: z.string().nullish(),
  code: z.string().nullish(),
  decline_code: z.string().nullish(),
  message: z.string().nullish(),
  payment_method_type: z.string().nullish(),
  /** The PaymentMethod the attempt used, expanded in webhooks (its `billing_details` name the payer). */
  payment_method: z
    .looseObject({
      id: z.string().nullish(),
      type: z.string().nullish(),
      customer: z.union([z.string(), z.looseObject({ id: z.string().nullish() })]).nullish(),
      billing_details: stripeBillingDetailsSchema.nullish(),
      /** `card.fingerprint`: the same card number, the same value within the account (hashed for screening only). */
      card: cardDetails,
    })
    .nullish(),
});

export const stripeCustomerSchema = z.looseObject({
  id,
  name: z.string().nullish(),
  email: z.string().nullish(),
  phone: z.string().nullish(),
  address: stripeAddressSchema.nullish(),
  preferred_locales: z.array(z.string()).nullish(),
});

export const stripeChargeSchema = z.looseObject({
  id,
  object: z.literal('charge').optional(),
  customer: expandable(z.looseObject({ id })).nullish(),
  amount: minorUnits.nullish(),
  /** Refunded so far (cumulative), and whether that is all of `amount` (Charges.d.ts). */
  amount_refunded: minorUnits.nullish(),
  refunded: z.boolean().nullish(),
  currency: z.string().nullish(),
  created: unixSeconds.nullish(),
  status: z.string().nullish(),
  description: z.string().nullish(),
  metadata,
  receipt_email: z.string().nullish(),
  /** Pre-basil only: removed from Charge in 2025-03-31.basil (psp-webhooks.md §1.1). */
  invoice: z.union([id, z.looseObject({ id })]).nullish(),
  payment_intent: expandable(z.looseObject({ id })).nullish(),
  failure_code: z.string().nullish(),
  failure_message: z.string().nullish(),
  outcome: z
    .looseObject({
      reason: z.string().nullish(),
      type: z.string().nullish(),
      seller_message: z.string().nullish(),
    })
    .nullish(),
  payment_method_details: paymentMethodDetails,
  billing_details: stripeBillingDetailsSchema.nullish(),
});

export const stripePaymentIntentSchema = z.looseObject({
  id,
  object: z.literal('payment_intent').optional(),
  customer: expandable(z.looseObject({ id })).nullish(),
  amount: minorUnits.nullish(),
  currency: z.string().nullish(),
  created: unixSeconds.nullish(),
  status: z.string().nullish(),
  description: z.string().nullish(),
  metadata,
  receipt_email: z.string().nullish(),
  /** Set when the payment method is saved for later (off_session: typical of subscription payments). */
  setup_future_usage: z.string().nullish(),
  latest_charge: expandable(stripeChargeSchema).nullish(),
  /** Pre-basil only: removed from PaymentIntent in 2025-03-31.basil (psp-webhooks.md §1.1). */
  invoice: z.union([id, z.looseObject({ id })]).nullish(),
  payment_method_types: z.array(z.string()).nullish(),
  last_payment_error: stripeApiErrorSchema.nullish(),
});

/** One entry of basil's `invoice.payments` (InvoicePayment). */
export const stripeInvoicePaymentSchema = z.looseObject({
  id: z.string().nullish(),
  is_default: z.boolean().nullish(),
  status: z.string().nullish(),
  payment: z
    .looseObject({
      type: z.string().nullish(),
      payment_intent: expandable(stripePaymentIntentSchema).nullish(),
      charge: expandable(stripeChargeSchema).nullish(),
    })
    .nullish(),
});

export const stripeInvoiceSchema = z.looseObject({
  id,
  object: z.literal('invoice').optional(),
  number: z.string().nullish(),
  description: z.string().nullish(),
  status: z.string().nullish(),
  billing_reason: z.string().nullish(),
  currency: z.string().min(1),
  amount_due: minorUnits,
  amount_paid: minorUnits.nullish(),
  amount_remaining: minorUnits.nullish(),
  created: unixSeconds.nullish(),
  due_date: unixSeconds.nullish(),
  status_transitions: z.looseObject({ finalized_at: unixSeconds.nullish() }).nullish(),
  attempt_count: z.number().int().nullish(),
  next_payment_attempt: unixSeconds.nullish(),
  customer: expandable(stripeCustomerSchema).nullish(),
  customer_name: z.string().nullish(),
  customer_email: z.string().nullish(),
  customer_phone: z.string().nullish(),
  customer_address: stripeAddressSchema.nullish(),
  customer_tax_ids: z.array(z.looseObject({ type: z.string().nullish(), value: z.string().nullish() })).nullish(),
  /** Pre-basil subscription reference (deprecated in 2025-03-31.basil). */
  subscription: expandable(z.looseObject({ id })).nullish(),
  /** Basil: `parent.subscription_details.subscription`. */
  parent: z
    .looseObject({
      type: z.string().nullish(),
      subscription_details: z
        .looseObject({ subscription: expandable(z.looseObject({ id })).nullish() })
        .nullish(),
    })
    .nullish(),
  /** Pre-basil payment references; gone in basil (use `payments`). */
  charge: expandable(stripeChargeSchema).nullish(),
  payment_intent: expandable(stripePaymentIntentSchema).nullish(),
  /** Basil: a list, present when the event or lookup expanded/included it. */
  payments: z.looseObject({ data: z.array(stripeInvoicePaymentSchema).nullish() }).nullish(),
  payment_settings: z.looseObject({ payment_method_types: z.array(z.string()).nullish() }).nullish(),
  last_finalization_error: stripeApiErrorSchema.nullish(),
  /** `invoices.pay(id, { paid_out_of_band: true })` was called (by the hub's write-back, or by hand in the Dashboard). */
  paid_out_of_band: z.boolean().nullish(),
});

export const stripeDisputeSchema = z.looseObject({
  id,
  object: z.literal('dispute').optional(),
  charge: expandable(stripeChargeSchema),
  payment_intent: expandable(stripePaymentIntentSchema).nullish(),
  amount: minorUnits,
  currency: z.string().min(1),
  reason: z.string().nullish(),
  status: z.string().nullish(),
  payment_method_details: z.looseObject({ type: z.string().nullish() }).nullish(),
});

/** A PaymentMethod (GET /v1/payment_methods/:id; PaymentMethods.d.ts): who it belongs to. */
export const stripePaymentMethodSchema = z.looseObject({
  id,
  object: z.literal('payment_method').optional(),
  type: z.string().nullish(),
  customer: expandable(stripeCustomerSchema).nullish(),
  billing_details: stripeBillingDetailsSchema.nullish(),
});

/**
 * A Mandate (Mandates.d.ts): `status` active | inactive | pending; it names only its
 * `payment_method` — the customer is reached through that payment method.
 */
export const stripeMandateSchema = z.looseObject({
  id,
  object: z.literal('mandate').optional(),
  status: z.string().nullish(),
  type: z.string().nullish(),
  payment_method: expandable(stripePaymentMethodSchema).nullish(),
  payment_method_details: z.looseObject({ type: z.string().nullish() }).nullish(),
});

/** A Subscription (Subscriptions.d.ts): `status` active | past_due | unpaid | canceled | …. */
export const stripeSubscriptionSchema = z.looseObject({
  id,
  object: z.literal('subscription').optional(),
  customer: expandable(stripeCustomerSchema).nullish(),
  status: z.string().nullish(),
  latest_invoice: expandable(z.looseObject({ id })).nullish(),
});

/** The snapshot event envelope (https://stripe.com/docs/api/events/). */
export const stripeEventSchema = z.looseObject({
  id,
  object: z.literal('event'),
  type: z.string().min(1),
  created: unixSeconds,
  api_version: z.string().nullish(),
  livemode: z.boolean().nullish(),
  /**
   * The API request that caused the event (null: Stripe's own automation). Since API version
   * 2017-05-25 an object whose `idempotency_key` is the one the caller sent; before, the request id.
   */
  request: z
    .union([z.string(), z.looseObject({ id: z.string().nullish(), idempotency_key: z.string().nullish() })])
    .nullish(),
  data: z.looseObject({
    object: z.looseObject({ id: z.string().nullish(), object: z.string().nullish() }),
    previous_attributes: z.record(z.string(), z.unknown()).nullish(),
  }),
});

export type StripeEventPayload = z.output<typeof stripeEventSchema>;
export type StripeInvoicePayload = z.output<typeof stripeInvoiceSchema>;
export type StripeChargePayload = z.output<typeof stripeChargeSchema>;
export type StripePaymentIntentPayload = z.output<typeof stripePaymentIntentSchema>;
export type StripeDisputePayload = z.output<typeof stripeDisputeSchema>;
export type StripeApiErrorPayload = z.output<typeof stripeApiErrorSchema>;
export type StripeAddressPayload = z.output<typeof stripeAddressSchema>;
export type StripeBillingDetailsPayload = z.output<typeof stripeBillingDetailsSchema>;
export type StripePaymentMethodPayload = z.output<typeof stripePaymentMethodSchema>;
export type StripeMandatePayload = z.output<typeof stripeMandateSchema>;
export type StripeSubscriptionPayload = z.output<typeof stripeSubscriptionSchema>;
