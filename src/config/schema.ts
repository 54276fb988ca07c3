/**
 * The hub's configuration schema (contract §7), validated with zod at boot. Provider and
 * partner blocks are validated again by their connector's own schema (see ./load.ts), so a
 * connector owns the shape of its settings.
 */
import { z } from 'zod';
import { DEBTOR_TYPES } from '../domain/types';
import { secretSchema } from './secrets';
import { RETENTION_DEFAULTS } from '../privacy/retention';
import { DONE_RETENTION_DEFAULT_DAYS } from '../outbox/sweep';

const currency = z.string().regex(/^[A-Z]{3}$/, 'must be an ISO 4217 code like EUR');
export const moneySchema = z.object({ value: z.number().int().nonnegative(), currency });

export const policySchema = z.object({
  /** Days after the first failure before an unpaid invoice may go to the partner (0 = at once). */
  handoverAfterDays: z.number().int().min(0).max(3650).default(14),
  /** The customer's open amount must be at least this for a hand-over. */
  minAmount: moneySchema.default({ value: 0, currency: 'EUR' }),
  /**
   * Accepted for older configs, no longer used: a debtor's later unpaid invoice is stacked onto its
   * live case whatever the case's age (at most one live case per debtor and partner, issue 12).
   */
  stackWindowDays: z.number().int().min(0).max(3650).default(45),
  /** Debtor type assumed when the PSP does not tell (most subscription customers are consumers). */
  defaultDebtorType: z.enum(DEBTOR_TYPES).default('consumer'),
  /**
   * Apply the debtor-process rules of mappings/policy/country-rules.yaml (notice before
   * hand-over, statutory collection costs). The debtor's country decides, else the merchant's.
   */
  countryRules: z.boolean().default(true),
  /**
   * Letter evidence (src/policy/letter-evidence.ts): the merchant states that its own dunning
   * sends the country rule's letter (the NL 14-day letter) on this day after the first failure.
   * No default: without it (or a date reported per invoice, `POST /v1/invoices/:ref/reminder`)
   * the hub has no evidence of a letter, so no statutory costs (art. 6:96 lid 6 BW).
   */
  dunningLetterAfterDays: z.number().int().min(0).max(3650).optional(),
  /**
   * An invoice under a letter rule without letter evidence: `wait` (default) keeps it waiting
   * ("waiting for letter evidence"); `hand_over_without_costs` hands it over with no statutory
   * costs and says why (for a merchant whose agency sends the letter itself). Absent = `wait`
   * (optional rather than defaulted, so a Policy written out in code needs no key).
   */
  withoutLetterEvidence: z.enum(['wait', 'hand_over_without_costs']).optional(),
  /** The merchant cannot deduct VAT: statutory costs are charged plus VAT where the rule allows (WIK: Stb. 2012/141 art. 2 lid 3). Absent = false. */
  costsIncludeVat: z.boolean().optional(),
  /** Replaced by `dunningLetterAfterDays` (which has no default): refused, so no config keeps assuming a letter. */
  noticeAfterDays: z
    .unknown()
    .refine((v): boolean => v === undefined, { error: 'noticeAfterDays was replaced by dunningLetterAfterDays: set it only when your dunning sends the 14-day letter on that day after the first failure (README "Country rules")' })
    .optional(),
  /**
   * How one person's customers at several PSPs become one debtor (src/ledger/debtor-key.ts,
   * README "Debtors across PSPs"): the merchant's own customer id under the first of
   * `metadataKeys` found in the PSP's customer or payment metadata; else, only when
   * `matchEmail` is on, the normalised e-mail; else the PSP customer alone.
   */
  debtorIdentity: z
    .strictObject({
      metadataKeys: z.array(z.string().min(1).max(40)).min(1).default(['customer_id', 'merchantCustomerId']),
      matchEmail: z.boolean().default(false),
    })
    // Optional rather than defaulted, so a Policy written out in code (tests) needs no block; absent = the defaults.
    .optional(),
  /**
   * The thresholds of the payment-behaviour flags (src/profile/compute.ts, README "Payment behaviour
   * profile"). Absent, or a key absent: the defaults (BEHAVIOUR_DEFAULTS there).
   */
  behaviour: z
    .strictObject({
      /** `repeated_insufficient_funds`: at least `count` attempts failed for insufficient funds within the last `months` (3, 6 or 12). */
      repeatedInsufficientFunds: z
        .strictObject({
          count: z.number().int().min(1).max(1000).default(3),
          months: z.union([z.literal(3), z.literal(6), z.literal(12)]).default(6),
        })
        .optional(),
      /** `broken_arrangement_12m`: at least `count` payment arrangements broken within the last 12 months. */
      brokenArrangements: z.strictObject({ count: z.number().int().min(1).max(1000).default(1) }).optional(),
      /** `disputed_12m`: at least `count` disputes (chargebacks, or claims disputed with the partner) within the last 12 months. */
      disputes: z.strictObject({ count: z.number().int().min(1).max(1000).default(1) }).optional(),
    })
    .optional(),
});
export type Policy = z.infer<typeof policySchema>;

/**
 * A Standard Webhooks signing secret: `whsec_` + base64 of 24 to 64 random bytes (the spec's
 * 192-bit minimum and 512-bit maximum; src/notify/standard-webhooks.ts signs with the decoded bytes).
 */
export const standardWebhookSecretSchema = z.string().superRefine((s, ctx) => {
  const body = s.startsWith('whsec_') ? s.slice('whsec_'.length) : null;
  if (body === null || !/^[A-Za-z0-9+/]+={0,2}$/.test(body)) {
    ctx.addIssue({ code: 'custom', message: 'must be whsec_ followed by base64 (e.g. whsec_ + `openssl rand -base64 32`)' });
    return;
  }
  const bytes = Buffer.from(body, 'base64').length;
  if (bytes < 24 || bytes > 64) ctx.addIssue({ code: 'custom', message: `must decode to 24–64 bytes (192–512 bits); this one is ${bytes}` });
});

/** Events a merchant endpoint can receive (src/notify/events.ts). */
// invoice.owed_back: the debtor paid through the PSP and the agency both; the excess is owed back (issue 12).
// customer.flags_changed: a debtor's payment-behaviour flags turned on or off (issue 17, src/profile/flags-sync.ts).
export const MERCHANT_WEBHOOK_EVENT_TYPES = ['invoice.status_changed', 'case.status_changed', 'invoice.owed_back', 'customer.flags_changed'] as const;

/** Where the hub sends the merchant's invoice and case status changes, signed per Standard Webhooks. */
export const merchantWebhooksSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
  secret: standardWebhookSecretSchema,
  /** Only these event types; absent: all of them. */
  events: z.array(z.enum(MERCHANT_WEBHOOK_EVENT_TYPES)).min(1).optional(),
});

/**
 * Writing the agency's outcome back to the PSP (src/notify/stripe-writeback-stage.ts). Absent:
 * nothing is written back. `stripe: {}` turns it on with the defaults; it needs the merchant's
 * Stripe `apiKey`.
 */
export const writeBackSchema = z.strictObject({
  stripe: z
    .strictObject({
      /** Mark the Stripe invoice paid out of band when the agency collected it (the subscription recovers). */
      markPaid: z.boolean().default(true),
      /** Mark the Stripe invoice uncollectible when the agency wrote it off. */
      markUncollectible: z.boolean().default(false),
      /**
       * Write the debtor's payment-behaviour flags to each of its Stripe customers' metadata
       * (`collection_hub_flags`, the names of the flags that are on, space-separated; removed when none),
       * whenever they change — so the merchant's billing sees them without calling the hub (issue 17).
       * Absent = false (optional rather than defaulted, so a write-back written out in code needs no key).
       */
      customerFlags: z.boolean().optional(),
    })
    .optional(),
});

export const merchantSchema = z.object({
  id: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, - and _ only'),
  name: z.string().min(1),
  country: z.string().regex(/^[A-Z]{2}$/, 'must be an ISO 3166 alpha-2 code like NL'),
  /** Provider id → that provider's settings; validated by the provider's connector. */
  providers: z.record(z.string(), z.unknown()).default({}),
  partner: z.string().min(1),
  policy: policySchema.default(policySchema.parse({})),
  /** The merchant's endpoint for status-change webhooks (Standard Webhooks); absent: none sent. */
  webhooks: merchantWebhooksSchema.optional(),
  /** PSP write-back of agency outcomes; absent: none. */
  writeBack: writeBackSchema.optional(),
  /**
   * Revokes every merchant token of this merchant issued (`iat`) before this time (ISO 8601), e.g.
   * after a token leaked; the merchant's new tokens work at once (src/http/merchant-auth.ts).
   */
  tokensIssuedAfter: z.iso.datetime({ offset: true, error: 'must be an ISO 8601 date-time, e.g. 2026-12-07T12:00:00Z' }).optional(),
}).superRefine((m, ctx) => {
  // Write-back calls Stripe's API: without the merchant's key every write-back would dead-letter.
  const stripe = m.providers.stripe as { apiKey?: unknown } | null | undefined;
  if (m.writeBack?.stripe && !(typeof stripe?.apiKey === 'string' && stripe.apiKey.trim())) {
    ctx.addIssue({ code: 'custom', path: ['writeBack', 'stripe'], message: 'needs providers.stripe.apiKey (write-back calls the Stripe API)' });
  }
});

const signingKeySchema = z.object({
  kid: z.string().min(1),
  alg: z.enum(['RS256', 'ES256']),
  privateKeyPem: z.string().includes('PRIVATE KEY', { message: 'must be a PEM private key' }),
});

const perSecond = z.number().min(0, 'must be 0 (no limit) or more');
const burst = z.number().int().min(1, 'must be at least 1');

/** Defaults of `rateLimits`: far above what one merchant's PSPs send, below what floods a process. */
export const RATE_LIMIT_DEFAULTS = {
  webhooksPerSecondPerMerchant: 1000,
  webhooksBurst: 2000,
  apiPerSecondPerMerchant: 100,
  apiBurst: 200,
  partnerPushPerSecond: 200,
  partnerPushBurst: 400,
  perAddressPerSecond: 2000,
  perAddressBurst: 4000,
  unsignedWebhooksPerSecondPerMerchant: 20,
  unsignedWebhooksBurst: 200,
  failedVerificationsPerSecondPerAddress: 1,
  failedVerificationsBurst: 60,
};

/**
 * The HTTP server (src/hub.ts listen). Node's own defaults let a silent socket live ~90 s
 * (headersTimeout 60 s, checked every 30 s) and a slow body 300 s (requestTimeout).
 */
export const HTTP_DEFAULTS = {
  /** Whole request head within this long after the connection opened; a silent socket is closed after it. */
  headersTimeoutMs: 10_000,
  /** Whole request (head and body) within this long. A 256 KiB webhook takes well under a second. */
  requestTimeoutMs: 30_000,
  /** An idle keep-alive socket is closed after this; above a load balancer's idle timeout (often 60 s). */
  keepAliveTimeoutMs: 65_000,
  /** Open connections at once; beyond it new ones are closed at once (0 = no cap). */
  maxConnections: 2000,
  /** Express `trust proxy`: false (the peer is the client), true, a hop count, or addresses/subnets of the proxies. */
  trustProxy: false as boolean | number | string | string[],
};

/** The leakage report's bounds: one report is built in memory, so its period and rows are capped. */
export const REPORT_DEFAULTS = {
  leakageMaxPeriodDays: 366,
  leakageMaxRows: 50_000,
};

/** The unsigned-webhook coalescing and the aggregated sync-log line of refused deliveries (src/ingest/). */
export const INGEST_DEFAULTS = {
  /** Unsigned deliveries (Mollie classic) for one resource within this long are one stored event and one fetch. */
  coalesceUnsignedSeconds: 2,
  /** Refused deliveries of one merchant and provider (or one partner) are one sync-log line per window. */
  rejectedLogWindowSeconds: 60,
};

export const circuitBreakerSchema = z.strictObject({
  enabled: z.boolean().default(true),
  /**
   * Consecutive retryable failures (network, timeout, 408, 5xx) that open the circuit; 0 = off (the
   * default): a partner failing at random makes runs of failures too (5 in a row once per ~1,000
   * calls at 25 %), so a run says "flaky", not "down" (src/delivery/circuit-breaker.ts).
   */
  failureThreshold: z.number().int().min(0).default(0),
  /** Open when this share of the calls in the window failed (0..1)… */
  failureRate: z.number().gt(0).max(1).default(0.7),
  /** …once the window holds at least this many calls. */
  minimumCalls: z.number().int().min(1).default(30),
  windowMs: z.number().int().positive().default(60_000),
  /** Open this long before probe calls are let through (half-open). */
  coolDownMs: z.number().int().positive().default(30_000),
  /** A failed probe doubles the cool-down, up to this. */
  maxCoolDownMs: z.number().int().positive().default(300_000),
  /** Calls let through when half-open: all must succeed to close the circuit, one failure reopens it. */
  halfOpenProbes: z.number().int().min(1).max(64).default(3),
});

export const configSchema = z.object({
  hub: z.object({
    id: z.string().min(1).default('collection-hub'),
    publicUrl: z.url().default('http://localhost:3000'),
    port: z.number().int().min(0).max(65535).default(3000),
    /** Loopback unless the config says otherwise: a hub is reachable from outside only on purpose. */
    host: z.string().default('127.0.0.1'),
    /** Where the embedded database lives when DATABASE_URL is not set. */
    dataDir: z.string().default('./data'),
    logLevel: z.enum(['error', 'warn', 'info', 'debug']).default('info'),
    /** Largest webhook body accepted, in bytes. */
    maxBodyBytes: z.number().int().positive().default(256 * 1024),
    /** The hub's own key for RS256/ES256 calls to partners; generated and kept in the database when absent. */
    signingKey: signingKeySchema.optional(),
    /** Keys replaced in a rotation of `signingKey`: still published in the JWKS, never used to sign; remove them after a day. */
    previousSigningKeys: z.array(signingKeySchema).max(4).optional(),
    /**
     * Encrypts the hub's generated signing key in the database (src/auth/key-store.ts): 32 random
     * bytes in base64 (`openssl rand -base64 32`), from the environment. Absent: the key is stored in clear.
     */
    keyEncryptionKey: z
      .string()
      .refine((v) => Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64').length === 32, 'must be 32 random bytes in base64 (openssl rand -base64 32)')
      .optional(),
    /**
     * The key of the salted hashes screening stores and matches identifiers by (e-mail, the
     * merchant's customer id, IBAN, card fingerprint; src/screening/identifiers.ts): 32+ random
     * bytes from the environment, required, never a default. Replacing it makes every stored hash
     * unmatchable (README "Screening a sign-up").
     */
    identifierHashSecret: secretSchema('identifierHash'),
    /** Server timeouts, connection cap and `trust proxy` (HTTP_DEFAULTS). */
    http: z
      .strictObject({
        headersTimeoutMs: z.number().int().min(100).default(HTTP_DEFAULTS.headersTimeoutMs),
        requestTimeoutMs: z.number().int().min(100).default(HTTP_DEFAULTS.requestTimeoutMs),
        keepAliveTimeoutMs: z.number().int().min(100).default(HTTP_DEFAULTS.keepAliveTimeoutMs),
        maxConnections: z.number().int().min(0).default(HTTP_DEFAULTS.maxConnections),
        trustProxy: z.union([z.boolean(), z.number().int().min(0), z.string().min(1), z.array(z.string().min(1)).min(1)]).default(false),
      })
      .default(HTTP_DEFAULTS),
    /**
     * `/metrics`: `token` makes it answer only `Authorization: Bearer <token>`; `port` serves it on
     * its own listener (on `host`) instead of the public one. Absent: open on the public port.
     */
    metrics: z
      .strictObject({
        token: z.string().min(16, 'must be at least 16 characters').optional(),
        port: z.number().int().min(0).max(65535).optional(),
      })
      .default({}),
  }),
  auth: z.object({
    /** HS256 key of merchant tokens: at least 32 random bytes, never a placeholder or published value (./secrets.ts). */
    merchantTokenSecret: secretSchema('merchantToken'),
    /** Earlier merchant-token secrets still accepted during a rotation (src/http/merchant-auth.ts); remove one to retire it. */
    merchantTokenPreviousSecrets: z.array(secretSchema('merchantToken')).max(4, 'keep at most 4 previous secrets').default([]),
    merchantTokenTtlSeconds: z.number().int().positive().default(8 * 3600),
    /** Tokens living longer than this (exp - iat) are refused at verification, whoever signed them. */
    merchantTokenMaxLifetimeSeconds: z.number().int().positive().max(366 * 24 * 3600).default(7 * 24 * 3600),
  }).refine((a) => a.merchantTokenTtlSeconds <= a.merchantTokenMaxLifetimeSeconds, {
    path: ['merchantTokenTtlSeconds'],
    message: 'must not exceed merchantTokenMaxLifetimeSeconds (tokens that long would be refused)',
  }),
  delivery: z
    .object({
      maxAttempts: z.number().int().min(1).default(12),
      baseDelayMs: z.number().int().positive().default(2000),
      maxDelayMs: z.number().int().positive().default(3600_000),
      /** How often the reconciler re-enqueues due outbox rows. */
      reconcileEverySeconds: z.number().positive().default(5),
      /**
       * A worker holds the row it works on for this long, renewed every third of it while the
       * stage runs (src/outbox/lease.ts): a slow call keeps its row, and a row whose worker died is
       * taken again at the first reconcile pass after this (so within about lease + reconcile period).
       */
      leaseSeconds: z.number().int().positive().default(15),
      concurrency: z.number().int().min(1).max(64).default(8),
      /** Per partner: stop calling an agency that is down, probe it after a cool-down (src/delivery/circuit-breaker.ts). */
      circuitBreaker: circuitBreakerSchema.default(circuitBreakerSchema.parse({})),
      /**
       * Done and cancelled outbox rows are deleted this many days after they finished, by a sweep
       * that runs with the privacy purge (every privacy.purgeEveryMinutes); dead rows stay until a
       * person retries them, and the few finished rows the hub reads back later are kept
       * (src/outbox/sweep.ts). /v1/deliveries?status=done lists this many days.
       */
      doneRetentionDays: z.number().int().min(1).max(3650).default(DONE_RETENTION_DEFAULT_DAYS),
    })
    .default({ maxAttempts: 12, baseDelayMs: 2000, maxDelayMs: 3600_000, reconcileEverySeconds: 5, leaseSeconds: 15, concurrency: 8, circuitBreaker: circuitBreakerSchema.parse({}), doneRetentionDays: DONE_RETENTION_DEFAULT_DAYS }),
  /**
   * Token-bucket limits on the public endpoints (src/http/rate-limit.ts), per process: requests per
   * second (0 = no limit; fractions allowed) and the burst a quiet bucket holds. Answered 429 with
   * Retry-After. Generous by default: the demo and a PSP's retry storm stay well inside them.
   */
  rateLimits: z
    .object({
      /** Webhooks of one merchant (all its PSPs together). */
      webhooksPerSecondPerMerchant: perSecond.default(RATE_LIMIT_DEFAULTS.webhooksPerSecondPerMerchant),
      webhooksBurst: burst.default(RATE_LIMIT_DEFAULTS.webhooksBurst),
      /** Merchant API calls of one merchant (counted after its token is verified). */
      apiPerSecondPerMerchant: perSecond.default(RATE_LIMIT_DEFAULTS.apiPerSecondPerMerchant),
      apiBurst: burst.default(RATE_LIMIT_DEFAULTS.apiBurst),
      /** Pushes of one partner to /v1/partners/:id/events. */
      partnerPushPerSecond: perSecond.default(RATE_LIMIT_DEFAULTS.partnerPushPerSecond),
      partnerPushBurst: burst.default(RATE_LIMIT_DEFAULTS.partnerPushBurst),
      /** Every /v1/… request of one source address (IPv6: one /64), before anything else is read. */
      perAddressPerSecond: perSecond.default(RATE_LIMIT_DEFAULTS.perAddressPerSecond),
      perAddressBurst: burst.default(RATE_LIMIT_DEFAULTS.perAddressBurst),
      /** Verified but unsigned webhooks (Mollie classic) of one merchant: their own, lower budget. */
      unsignedWebhooksPerSecondPerMerchant: perSecond.default(RATE_LIMIT_DEFAULTS.unsignedWebhooksPerSecondPerMerchant),
      unsignedWebhooksBurst: burst.default(RATE_LIMIT_DEFAULTS.unsignedWebhooksBurst),
      /** Webhooks and pushes that failed verification, per source address; past it the address gets 429 before its body is read. */
      failedVerificationsPerSecondPerAddress: perSecond.default(RATE_LIMIT_DEFAULTS.failedVerificationsPerSecondPerAddress),
      failedVerificationsBurst: burst.default(RATE_LIMIT_DEFAULTS.failedVerificationsBurst),
    })
    .strict()
    .default(RATE_LIMIT_DEFAULTS),
  /** Unsigned-webhook coalescing and the aggregated log of refused deliveries (INGEST_DEFAULTS). */
  ingest: z
    .strictObject({
      coalesceUnsignedSeconds: z.number().min(0).max(60).default(INGEST_DEFAULTS.coalesceUnsignedSeconds),
      rejectedLogWindowSeconds: z.number().min(1).max(3600).default(INGEST_DEFAULTS.rejectedLogWindowSeconds),
    })
    .default(INGEST_DEFAULTS),
  /** Bounds of the leakage report (src/http/report-bounds.ts): a longer period or more rows is a 400 that says so. */
  reports: z
    .strictObject({
      leakageMaxPeriodDays: z.number().int().min(1).max(3660).default(REPORT_DEFAULTS.leakageMaxPeriodDays),
      leakageMaxRows: z.number().int().min(1).max(1_000_000).default(REPORT_DEFAULTS.leakageMaxRows),
    })
    .default(REPORT_DEFAULTS),
  /**
   * Personal data kept small (src/privacy/retention.ts): raw PSP payloads, sync-log bodies and
   * agency notes are purged of personal data after `retentionDays`; the accounting trail stays.
   */
  privacy: z
    .strictObject({
      retentionDays: z.number().int().min(1).max(3650).default(RETENTION_DEFAULTS.retentionDays),
      purgeEveryMinutes: z.number().positive().max(24 * 60).default(RETENTION_DEFAULTS.purgeEveryMinutes),
    })
    .default(RETENTION_DEFAULTS),
  merchants: z.array(merchantSchema).min(1, 'at least one merchant is needed'),
  /** Partner blocks are validated by their connector's schema (connector: reference, …). */
  partners: z.array(z.object({ id: z.string().min(1), connector: z.string().min(1) }).loose()).min(1, 'at least one partner is needed'),
});

export type RawHubConfig = z.infer<typeof configSchema>;
export type MerchantConfig = z.infer<typeof merchantSchema>;
