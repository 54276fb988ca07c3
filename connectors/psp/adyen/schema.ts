/**
 * Adyen connector schemas: the merchant's `providers.adyen` config block (validated at boot,
 * design.md habit 6) and the parts of a Standard notification the connector reads.
 *
 * Payload shape (shared/reference/psp-webhooks.md §3.1, `@adyen/api-library` typings
 * NotificationRequestItem): `{ live: "false", notificationItems: [ { NotificationRequestItem: {…} } ] }`,
 * `live` and `success` are the *strings* "true"/"false", `amount.value` is an integer in Adyen's
 * minor units. The item schema is loose (unknown keys kept) because Adyen adds fields freely;
 * what the HMAC covers and what the normalizer needs is required.
 */
import { z } from 'zod';

/**
 * One HMAC key as the Customer Area shows it: hex. Validated here because `Buffer.from(key, 'hex')`
 * (what the reference does) silently stops at the first non-hex character, which would turn a typo
 * into a key that never matches. Adyen's keys are 64 hex characters (32 bytes); a shorter one is
 * accepted here down to 16 bytes, but the hub's config refuses it (src/config/secrets.ts: 32 bytes,
 * no placeholder or published key). A key made only of digits is read by YAML as a number — quote it.
 */
const hmacKey = z
  .string({ error: (iss) => (iss.input === undefined ? 'required' : 'must be a string of hex digits (quote it in YAML)') })
  .trim()
  .regex(/^(?:[0-9a-fA-F]{2}){16,}$/, 'must be the HMAC key in hex, as the Customer Area shows it (an even number of 0-9/A-F characters, at least 32)');

/** Defaults of the eventDate bounds (verify.ts `boundEventDate`). */
export const ADYEN_EVENT_DATE_DEFAULTS = { maxClockSkewSeconds: 300, maxEventAgeDays: 31 };

export const adyenProviderConfigSchema = z
  .object({
    /** The webhook's HMAC key, or a list while one is being replaced: an item signed with any of them passes. */
    hmacKeys: z.union([hmacKey, z.array(hmacKey).min(1)], {
      // Said when the value is neither a string nor a list (missing, or a number YAML made of a key).
      error: (iss) => (iss.input === undefined ? 'required: the HMAC key in hex, or a list of them' : 'must be the HMAC key in hex, or a list of them (quote a key in YAML)'),
    }),
    /**
     * The HTTP Basic credentials set on the webhook in the Customer Area; every delivery must carry
     * them (401 otherwise). Required (issue 13): the HMAC covers only eight fields, so the ones that
     * say whose debt it is (`additionalData.shopperReference`, `shopperEmail`) and `reason` and
     * `eventDate` are trusted only from a sender that also knows this password.
     */
    basicAuth: z
      // The password's strength is checked with the hub's other secrets (src/config/secrets.ts).
      .object({ username: z.string().trim().min(1), password: z.string().min(1) }, {
        error: (iss) =>
          iss.input === undefined
            ? "required: { username, password } as set on the webhook in Adyen's Customer Area (the HMAC does not cover shopperReference, shopperEmail, reason or eventDate)"
            : 'must be { username, password }',
      })
      .strict(),
    /**
     * `eventDate` is not signed: a delivery is judged by the time it arrived. An eventDate later than
     * arrival + this skew is taken as the arrival time (a clock cannot run ahead of the delivery).
     */
    maxClockSkewSeconds: z.number().int().min(0).max(3600).default(ADYEN_EVENT_DATE_DEFAULTS.maxClockSkewSeconds),
    /**
     * An item whose eventDate is more than this many days before its arrival is refused (400): Adyen
     * retries a delivery for at most 30 days (psp-webhooks reference §3.3), so a genuine one is never
     * older. A replay of older history (the demo) raises it.
     */
    maxEventAgeDays: z.number().int().min(1).max(3660).default(ADYEN_EVENT_DATE_DEFAULTS.maxEventAgeDays),
    /**
     * The Adyen merchant account this merchant's webhook belongs to (`merchantAccountCode`). When set,
     * a delivery with an item for any other account is refused with 401 (verify.ts says why). Leave it
     * out for a company-level webhook that sends several accounts of this merchant.
     */
    merchantAccount: z.string().trim().min(1).optional(),
    /**
     * Accepted because every provider block takes it (contract §7); unused today: the connector makes
     * no API call (notifications carry every fact it needs), so there is no SDK to point elsewhere.
     */
    apiBase: z.url({ protocol: /^https?$/ }).optional(),
  })
  // A typo such as `hmacKey` or `basicauth` must stop start-up, not silently disable a check.
  .strict();

export type AdyenProviderConfig = z.output<typeof adyenProviderConfigSchema>;

// ---------------------------------------------------------------------------------------------
// Payload.

/** `"true"`/`"false"` as Adyen sends them; a JSON boolean is read the same way (it joins to the same text). */
const flag = z.union([z.enum(['true', 'false']), z.boolean().transform((b) => (b ? 'true' : 'false'))]);

export const adyenAmountSchema = z.looseObject({
  /** Adyen minor units (docs.adyen.com/development-resources/currency-codes). */
  value: z.number().int(),
  currency: z.string().regex(/^[A-Za-z]{3}$/, 'must be an ISO 4217 code'),
});

/** NotificationRequestItem; required fields as in Adyen's Webhooks OpenAPI. */
export const adyenNotificationItemSchema = z.looseObject({
  pspReference: z.string().min(1),
  /** The payment a modification or dispute is about; absent on an AUTHORISATION. */
  originalReference: z.string().nullish(),
  merchantAccountCode: z.string().min(1),
  merchantReference: z.string().nullish(),
  amount: adyenAmountSchema,
  eventCode: z.string().min(1),
  eventDate: z.string().min(1),
  success: flag,
  paymentMethod: z.string().nullish(),
  reason: z.string().nullish(),
  operations: z.array(z.string()).nullish(),
  additionalData: z.record(z.string(), z.unknown()).nullish(),
});

export const adyenNotificationSchema = z.looseObject({
  live: flag,
  notificationItems: z
    .array(z.looseObject({ NotificationRequestItem: adyenNotificationItemSchema }))
    .min(1, 'a notification has at least one item'),
});

/** What the connector stores per item (one raw event each): the item with the delivery's `live` flag. */
export const adyenStoredItemSchema = z.looseObject({
  live: flag,
  NotificationRequestItem: adyenNotificationItemSchema,
});

export type AdyenNotificationItem = z.output<typeof adyenNotificationItemSchema>;
export type AdyenNotification = z.output<typeof adyenNotificationSchema>;
export type AdyenStoredItem = z.output<typeof adyenStoredItemSchema>;
