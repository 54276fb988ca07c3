/**
 * The interface every PSP connector implements (design.md, "A connector is a folder").
 * A connector verifies a webhook over its raw bytes, splits it into raw events, and
 * normalizes each raw event into one canonical PaymentEvent. It never touches the database.
 */
import type { z } from 'zod';
import type { PaymentEvent } from '../../src/domain/types';
import type { PspMapping } from '../../src/mappings/types';

/** The parts of an HTTP request a connector may look at. Header names are lower-case. */
export interface InboundRequest {
  headers: Record<string, string | undefined>;
  rawBody: Buffer;
  contentType: string;
}

/** One event inside a verified delivery (a delivery may batch several: Adyen, GoCardless). */
export interface RawInboundEvent {
  /** Deduplication key together with merchant and provider (contract §3). */
  providerEventId: string;
  eventType: string;
  /** When the PSP says it happened, if the envelope tells. */
  occurredAt?: string;
  /** The event as received (parsed JSON or form fields), stored raw. */
  payload: unknown;
}

export interface VerifiedDelivery {
  events: RawInboundEvent[];
  /** What to answer the PSP when stored (default 200 `{"received":true}`). */
  ack?: { status: number; body: string | Record<string, unknown>; contentType?: string };
  /**
   * Set when nothing authenticated the delivery (Mollie classic: unsigned by design, the hub fetches
   * the resource). Ingress charges it to the merchant's lower unsigned budget, and deliveries with
   * the same `coalesceKey` within a short window become one stored event and one fetch
   * (src/http/webhooks.ts, src/ingest/unsigned-coalescer.ts).
   */
  unsigned?: { coalesceKey?: string };
}

/** A refusal of a webhook: the status to answer and why. Never includes secrets. */
export class WebhookRejection extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'WebhookRejection';
  }
}

export interface NormalizeContext<Cfg> {
  merchantId: string;
  config: Cfg;
  mapping: PspMapping;
  /**
   * The metadata keys under which the merchant puts its own customer id
   * (`policy.debtorIdentity.metadataKeys`); absent: the defaults of ./merchant-ref.ts.
   */
  merchantRefKeys?: readonly string[];
  /**
   * Which try of this event this is (1 = first; the outbox row's attempt). A connector whose API
   * lookups have a retry budget goes on without a lookup it could not make once it is spent.
   */
  attempt?: number;
  /** The outbox's retry budget for the event (delivery.maxAttempts): a lookup budget never outlasts it. */
  maxAttempts?: number;
}

/** What a connector can do for the hub beyond webhooks, declared so the hub uses it only where it exists. */
export interface PspCapabilities {
  /**
   * The hub may write a debtor's payment-behaviour flags to the PSP customer's metadata, so the
   * merchant's billing sees them without calling the hub (issue 17; Stripe:
   * `metadata.collection_hub_flags`, `merchants[].writeBack.stripe.customerFlags`).
   */
  customerMetadata?: boolean;
}

export interface PspConnector<Cfg = unknown> {
  /** The `:provider` path segment and the key under `merchants[].providers`. */
  readonly id: string;
  /** What else it can do (absent: nothing). */
  readonly capabilities?: PspCapabilities;
  /** zod schema of this provider's block in a merchant's config. */
  readonly configSchema: z.ZodType<Cfg>;
  /**
   * Verify the delivery (signature over the raw bytes, constant-time compare) and split it
   * into raw events. Throws WebhookRejection for anything that must not be stored.
   * `now` is injectable so tests can pin the clock.
   */
  verify(req: InboundRequest, config: Cfg, now: Date): VerifiedDelivery | Promise<VerifiedDelivery>;
  /**
   * Raw event → canonical event. Pure for PSPs whose events carry the facts (Stripe); may call
   * the PSP's API through its SDK when the event only carries an id (Mollie classic).
   */
  normalize(raw: RawInboundEvent, ctx: NormalizeContext<Cfg>): PaymentEvent | Promise<PaymentEvent>;
}
