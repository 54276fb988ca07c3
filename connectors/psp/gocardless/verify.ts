/**
 * GoCardless webhook verification: checks `Webhook-Signature` over the exact raw bytes, then (and
 * only then) parses the batch and splits it into one raw event per GoCardless event
 * (design.md habit 1).
 *
 * Scheme (psp-webhooks.md §4.2; the official SDK's `verifySignature` in
 * `gocardless/gocardless-nodejs:compiled_library/generated_library/src/webhooks.ts`): the header is
 * the hex HMAC-SHA256 of the raw body keyed with the endpoint secret, compared with a length check
 * and `crypto.timingSafeEqual`. We do the same with node:crypto (the SDK is not a dependency), and:
 *  - accept several configured secrets (rotation): every secret is tried, with no early exit;
 *  - require exactly 64 hex digits: `Buffer.from(header, 'hex')` in the SDK stops at the first
 *    non-hex character, so a valid signature with junk appended would pass there — not here;
 *  - answer **498** for a missing or invalid signature ("Webhooks with an invalid signature must
 *    return a 498 Token Invalid error", §4.2).
 * There is no timestamp in the scheme, hence no replay window (§0); a replayed delivery only
 * repeats event ids, which the ingress stores once.
 *
 * A delivery may hold several events ("Webhooks may contain multiple events", "may arrive out of
 * order", §4.2): they are returned sorted by `created_at` so that they are stored — and queued —
 * in the order they happened. The answer is 204 with an empty body (§0: "2xx (204 recommended)").
 */
import crypto from 'node:crypto';
import { WebhookRejection, type InboundRequest, type RawInboundEvent, type VerifiedDelivery } from '../types';
import { gocardlessWebhookBodySchema, type GoCardlessProviderConfig } from './schema';

/** The header as our ingress hands it over (names lower-case, InboundRequest). */
export const SIGNATURE_HEADER = 'webhook-signature';

/** "498 Token Invalid" (psp-webhooks.md §4.2). */
export const INVALID_SIGNATURE_STATUS = 498;

/** The SDK's own InvalidSignatureError message (webhooks.ts). */
export const INVALID_SIGNATURE_MESSAGE = 'The signature header secret does not match your webhook secret!';

const HEX_SHA256 = /^[0-9a-f]{64}$/i;

export function configuredSecrets(config: Pick<GoCardlessProviderConfig, 'webhookSecret'>): string[] {
  return Array.isArray(config.webhookSecret) ? config.webhookSecret : [config.webhookSecret];
}

/** The hex HMAC-SHA256 GoCardless puts in `Webhook-Signature` for this body and secret. */
export function gocardlessSignature(rawBody: Buffer | string, secret: string): string {
  return crypto.createHmac('sha256', secret).update(rawBody).digest('hex');
}

/**
 * The signature layer alone: throws WebhookRejection(498) unless `header` is the HMAC of exactly
 * these bytes under one of the secrets. Exported so the SDK's test vector can pin it.
 */
export function verifyGoCardlessSignature(rawBody: Buffer | string, header: string | undefined, secrets: string | readonly string[]): void {
  if (header === undefined || header.trim() === '') {
    throw new WebhookRejection(INVALID_SIGNATURE_STATUS, 'missing Webhook-Signature header');
  }
  const given = header.trim();
  if (!HEX_SHA256.test(given)) {
    throw new WebhookRejection(INVALID_SIGNATURE_STATUS, 'Webhook-Signature is not a hex HMAC-SHA256');
  }
  const expectedBytes = Buffer.from(given, 'hex');
  let matched = false;
  for (const secret of typeof secrets === 'string' ? [secrets] : secrets) {
    const digest = crypto.createHmac('sha256', secret).update(rawBody).digest();
    // Both are 32 bytes here (checked above); the length check stays as the SDK has it.
    const equal = digest.length === expectedBytes.length && crypto.timingSafeEqual(digest, expectedBytes);
    matched = matched || equal;
  }
  if (!matched) throw new WebhookRejection(INVALID_SIGNATURE_STATUS, INVALID_SIGNATURE_MESSAGE);
}

export function verifyGoCardlessWebhook(req: InboundRequest, config: GoCardlessProviderConfig, _now: Date): VerifiedDelivery {
  verifyGoCardlessSignature(req.rawBody, req.headers[SIGNATURE_HEADER], configuredSecrets(config));

  let body: unknown;
  try {
    body = JSON.parse(req.rawBody.toString('utf8'));
  } catch {
    throw new WebhookRejection(400, 'GoCardless webhook body is not valid JSON');
  }
  const parsed = gocardlessWebhookBodySchema.safeParse(body);
  if (!parsed.success) throw new WebhookRejection(400, 'not a GoCardless webhook: expected {"events":[…]}');

  const events = parsed.data.events.map((event, index): RawInboundEvent & { index: number; at: number } => {
    const e = (typeof event === 'object' && event !== null && !Array.isArray(event) ? event : undefined) as Record<string, unknown> | undefined;
    const eventId = e && typeof e.id === 'string' && e.id.length > 0 ? e.id : undefined;
    // Without its id an event cannot be deduplicated; the bytes are GoCardless's, so this never
    // happens with a genuine delivery — refuse rather than store something we could apply twice.
    if (!e || !eventId) throw new WebhookRejection(400, `GoCardless webhook: event #${index} has no id`);
    const at = typeof e.created_at === 'string' ? Date.parse(e.created_at) : NaN;
    return {
      providerEventId: eventId,
      eventType: eventTypeOf(e),
      occurredAt: Number.isNaN(at) ? undefined : new Date(at).toISOString(),
      payload: e,
      index,
      at,
    };
  });

  // Oldest first; events without a readable time go last; equal times keep the delivery's order.
  events.sort((a, b) => {
    const an = Number.isNaN(a.at);
    const bn = Number.isNaN(b.at);
    if (an || bn) return an === bn ? a.index - b.index : an ? 1 : -1;
    return a.at - b.at || a.index - b.index;
  });

  return {
    events: events.map(({ index: _i, at: _a, ...raw }) => raw),
    ack: { status: 204, body: '' },
  };
}

/** `payments.failed`, `mandates.cancelled`, … — the key of the mapping's `events` table. */
export function eventTypeOf(e: { resource_type?: unknown; action?: unknown }): string {
  const resource = typeof e.resource_type === 'string' && e.resource_type ? e.resource_type : 'unknown';
  const action = typeof e.action === 'string' && e.action ? e.action : 'unknown';
  return `${resource}.${action}`;
}
