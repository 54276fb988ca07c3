/**
 * GoCardless connector schemas: the merchant's `providers.gocardless` config block (validated at
 * boot, design.md habit 6), the webhook event as GoCardless sends it, and the parts of the API
 * resources (payment, mandate, customer) the normalizer reads.
 *
 * Sources: shared/reference/psp-webhooks.md §4.1 (event shape `{id, created_at, resource_type,
 * action, links, details, metadata}`) and the field lists of the official SDK's types
 * (`gocardless/gocardless-nodejs:src/types/Types.ts`: Payment, Mandate, Customer). The payload
 * schemas are lenient (loose objects, optional/nullable fields): GoCardless adds fields without a
 * new API version, and a field we do not read must never fail an event.
 */
import { z } from 'zod';

/** A webhook endpoint secret; several are accepted while one is being rolled. */
const webhookSecret = z.string().trim().min(1);

export const gocardlessProviderConfigSchema = z
  .object({
    /** The webhook endpoint secret from the GoCardless dashboard; a list while rotating. */
    webhookSecret: z.union([webhookSecret, z.array(webhookSecret).min(1)]),
    /**
     * Read access token. Required: GoCardless events carry only links (psp-webhooks.md §7.6), so
     * amount, currency and customer must be fetched for every event the hub acts on.
     */
    accessToken: z.string().trim().min(1),
    /** Another API host (the sandbox `https://api-sandbox.gocardless.com`, a test double) — contract §7. */
    apiBase: z.url({ protocol: /^https?$/ }).optional(),
  })
  // A typo such as `acessToken` must stop start-up, not silently disable lookups.
  .strict();

export type GoCardlessProviderConfig = z.output<typeof gocardlessProviderConfigSchema>;

// ---------------------------------------------------------------------------------------------
// Webhook events.

const id = z.string().min(1);

/** An ISO 8601 timestamp such as `2014-04-08T17:01:06.000Z`. */
const timestamp = z.string().refine((s) => !Number.isNaN(Date.parse(s)), 'not a timestamp');

export const gocardlessEventDetailsSchema = z.looseObject({
  /** `bank`, `gocardless`, `api`, `customer` (psp-webhooks.md §4.1). */
  origin: z.string().nullish(),
  /** What GoCardless says to switch on (psp-webhooks.md §4.1). */
  cause: z.string().nullish(),
  description: z.string().nullish(),
  /** e.g. `sepa_core`, `bacs`; on bank-origin failures. */
  scheme: z.string().nullish(),
  /** The scheme's own code (SEPA `AM04`, Bacs ARUDD `0`…); "can be inconsistent between banks". */
  reason_code: z.string().nullish(),
  /** On `payments.failed`: GoCardless will retry by itself when true (intelligent retries). */
  will_attempt_retry: z.boolean().nullish(),
  /** `failure_filter_applied`, `other`. */
  not_retried_reason: z.string().nullish(),
});

export const gocardlessEventSchema = z.looseObject({
  id,
  created_at: timestamp,
  resource_type: z.string().min(1),
  action: z.string().min(1),
  /** Ids only: `{ payment: "PM…" }`, `{ mandate: "MD…" }`, plus `payout`, `subscription`, … */
  links: z.record(z.string(), z.unknown()).nullish(),
  details: gocardlessEventDetailsSchema.nullish(),
  metadata: z.record(z.string(), z.unknown()).nullish(),
  resource_metadata: z.record(z.string(), z.unknown()).nullish(),
});

/** `{"events":[…], "meta":{"webhook_id":"WB…"}}` — psp-webhooks.md §0, §4.1. */
export const gocardlessWebhookBodySchema = z.looseObject({
  events: z.array(z.unknown()),
  meta: z.looseObject({ webhook_id: z.string().nullish() }).nullish(),
});

export type GoCardlessEventPayload = z.output<typeof gocardlessEventSchema>;

// ---------------------------------------------------------------------------------------------
// API resources, as `GET /payments/:id` etc. answer them inside their envelope (`{"payments": {…}}`).

/**
 * Minor units ("in the lowest denomination for the currency (e.g. pence in GBP, cents in EUR)",
 * Types.ts). The API sends an integer; the SDK's types declare a string, so a digit string is read too.
 */
const minorUnits = z.union([z.number().int(), z.string().regex(/^-?\d+$/).transform((s) => Number(s))]).pipe(z.number().int().refine(Number.isSafeInteger, 'amount out of range'));

const stringMap = z.record(z.string(), z.unknown());

export const gocardlessPaymentSchema = z.looseObject({
  id,
  amount: minorUnits,
  currency: z.string().min(3),
  /** `YYYY-MM-DD`: the day the payment is (or was) collected. */
  charge_date: z.string().nullish(),
  created_at: z.string().nullish(),
  description: z.string().nullish(),
  reference: z.string().nullish(),
  status: z.string().nullish(),
  scheme: z.string().nullish(),
  retry_if_possible: z.boolean().nullish(),
  metadata: stringMap.nullish(),
  links: z
    .looseObject({
      mandate: z.string().nullish(),
      creditor: z.string().nullish(),
      subscription: z.string().nullish(),
      instalment_schedule: z.string().nullish(),
      payout: z.string().nullish(),
    })
    .nullish(),
});

export const gocardlessMandateSchema = z.looseObject({
  id,
  status: z.string().nullish(),
  scheme: z.string().nullish(),
  reference: z.string().nullish(),
  metadata: stringMap.nullish(),
  links: z
    .looseObject({
      customer: z.string().nullish(),
      customer_bank_account: z.string().nullish(),
      creditor: z.string().nullish(),
    })
    .nullish(),
});

export const gocardlessCustomerSchema = z.looseObject({
  id,
  email: z.string().nullish(),
  given_name: z.string().nullish(),
  family_name: z.string().nullish(),
  company_name: z.string().nullish(),
  address_line1: z.string().nullish(),
  address_line2: z.string().nullish(),
  address_line3: z.string().nullish(),
  city: z.string().nullish(),
  region: z.string().nullish(),
  postal_code: z.string().nullish(),
  /** ISO 3166-1 alpha-2. */
  country_code: z.string().nullish(),
  /** ISO 639-1, e.g. `nl`. */
  language: z.string().nullish(),
  phone_number: z.string().nullish(),
  metadata: stringMap.nullish(),
});

export type GoCardlessPayment = z.output<typeof gocardlessPaymentSchema>;
export type GoCardlessMandate = z.output<typeof gocardlessMandateSchema>;
export type GoCardlessCustomer = z.output<typeof gocardlessCustomerSchema>;

/**
 * The API's error body (`gocardless/gocardless-nodejs:src/errors.ts`, ApiError): `type` is
 * `invalid_api_usage`, `invalid_state`, `validation_failed` or `gocardless`; `errors[].reason`
 * names the cause (`resource_not_found`, …).
 */
export const gocardlessErrorBodySchema = z.looseObject({
  error: z.looseObject({
    message: z.string().nullish(),
    type: z.string().nullish(),
    code: z.union([z.number(), z.string()]).nullish(),
    request_id: z.string().nullish(),
    documentation_url: z.string().nullish(),
    errors: z.array(z.looseObject({ reason: z.string().nullish(), message: z.string().nullish() })).nullish(),
  }),
});
