/**
 * Mollie webhook verification (design.md habit 1: verify over the raw bytes, then parse).
 *
 * Two systems arrive here (psp-webhooks.md §2.1):
 *  - classic: `application/x-www-form-urlencoded`, one field `id=tr_…`, unsigned. Mollie's security
 *    model is "fetch the resource with your API key": the body carries no state, so verify only
 *    checks the shape; normalize fetches the truth. Every delivery is its own raw event
 *    (`${id}:${receivedAt ms}`), because Mollie posts the same id for every status change (§2.2);
 *    the fact it turns out to report is deduplicated later by `factKey`.
 *  - next-gen: a JSON event signed with `X-Mollie-Signature: sha256=<hex>`, HMAC-SHA256 of the raw
 *    body with the webhook's signing secret (§2.4; mollie-api-php SignatureValidator). During a
 *    rotation Mollie sends two signature headers, which Node joins with `,`; any one may match any
 *    configured secret. The event's `id` is its dedup key. There is no timestamp in the scheme, so
 *    no skew window: a replayed event carries an id already stored and is a duplicate.
 *
 * When the merchant configured `webhookSigningSecret`, every delivery must be validly signed —
 * an unsigned (classic) request is refused too, so a secret cannot be bypassed by dropping the
 * header. Without a secret, a request that carries a signature is refused: we could not check it.
 */
import crypto from 'node:crypto';
import { WebhookRejection, type InboundRequest, type RawInboundEvent, type VerifiedDelivery } from '../types';
import { MOLLIE_ID, mollieNextGenEventSchema, type MollieProviderConfig } from './schema';

/** The header as our ingress hands it over (names lower-case, InboundRequest). */
export const SIGNATURE_HEADER = 'x-mollie-signature';
const SIGNATURE_PREFIX = 'sha256=';

/** What a classic delivery of each id prefix is about (the event type we store it under). */
const CLASSIC_TYPES: Record<string, string> = {
  tr: 'payment.webhook',
  ord: 'order.webhook',
  pl: 'payment-link.webhook',
  re: 'refund.webhook',
  chb: 'chargeback.webhook',
  cst: 'customer.webhook',
  mdt: 'mandate.webhook',
  sub: 'subscription.webhook',
};

export function configuredSigningSecrets(config: Pick<MollieProviderConfig, 'webhookSigningSecret'>): string[] {
  const s = config.webhookSigningSecret;
  if (s === undefined) return [];
  return Array.isArray(s) ? s : [s];
}

/** `sha256=<hex>` (prefix optional, as the PHP SDK strips it when present) → the hex digests offered. */
function offeredSignatures(header: string): Buffer[] {
  const out: Buffer[] = [];
  for (const part of header.split(',')) {
    let value = part.trim();
    if (value.toLowerCase().startsWith(SIGNATURE_PREFIX)) value = value.slice(SIGNATURE_PREFIX.length);
    else if (value.includes('=')) continue; // another scheme: never matches
    if (/^[0-9a-fA-F]{64}$/.test(value)) out.push(Buffer.from(value, 'hex'));
  }
  return out;
}

/** HMAC-SHA256 of the raw body, hex — what Mollie puts after `sha256=`. */
export function mollieSignature(rawBody: Buffer | string, secret: string): string {
  return crypto.createHmac('sha256', secret).update(rawBody).digest('hex');
}

/**
 * The signature layer alone: throws WebhookRejection(401) unless one offered signature equals the
 * HMAC of the raw body under one configured secret (constant-time compare).
 */
export function verifyMollieSignature(rawBody: Buffer, header: string | undefined, secrets: string[]): void {
  if (!header || header.trim() === '') {
    throw new WebhookRejection(401, 'missing X-Mollie-Signature header (this merchant has a webhookSigningSecret configured)');
  }
  const offered = offeredSignatures(header);
  if (offered.length === 0) throw new WebhookRejection(401, 'X-Mollie-Signature has no sha256=<hex> signature');
  let matched = false;
  for (const secret of secrets) {
    const expected = crypto.createHmac('sha256', secret).update(rawBody).digest();
    // Every pair is compared (no early exit), so timing says nothing about which one matched.
    for (const sig of offered) {
      if (sig.length === expected.length && crypto.timingSafeEqual(sig, expected)) matched = true;
    }
  }
  if (!matched) throw new WebhookRejection(401, 'X-Mollie-Signature does not match the body under any configured signing secret');
}

export function verifyMollieWebhook(req: InboundRequest, config: MollieProviderConfig, now: Date): VerifiedDelivery {
  const secrets = configuredSigningSecrets(config);
  const header = req.headers[SIGNATURE_HEADER];
  if (secrets.length > 0) {
    verifyMollieSignature(req.rawBody, header, secrets);
    return { events: [nextGenEvent(req)] };
  }
  if (header !== undefined) {
    throw new WebhookRejection(401, 'signed Mollie webhook, but this merchant has no webhookSigningSecret configured to check it');
  }
  return classicDelivery(req, now);
}

// ---------------------------------------------------------------------------------------------

function classicDelivery(req: InboundRequest, now: Date): VerifiedDelivery {
  const mediaType = req.contentType.split(';')[0].trim().toLowerCase();
  if (mediaType !== 'application/x-www-form-urlencoded') {
    throw new WebhookRejection(400, `a classic Mollie webhook is application/x-www-form-urlencoded, not ${mediaType || 'without a content type'}`);
  }
  const form = new URLSearchParams(req.rawBody.toString('utf8'));
  const ids = form.getAll('id');
  if (ids.length !== 1) throw new WebhookRejection(400, ids.length === 0 ? 'classic Mollie webhook without an id' : 'classic Mollie webhook with more than one id');
  const id = ids[0].trim();
  if (!MOLLIE_ID.test(id)) throw new WebhookRejection(400, 'classic Mollie webhook id is not a Mollie id (tr_…, ord_…, …)');
  const prefix = id.slice(0, id.indexOf('_'));
  const event: RawInboundEvent = {
    // Each delivery is its own event: the same id comes again for the next status change.
    providerEventId: `${id}:${now.getTime()}`,
    eventType: CLASSIC_TYPES[prefix] ?? 'webhook',
    payload: { id },
  };
  // Mollie only needs a 200 within 15 s (psp-webhooks.md §2.3); the body is not read. Unsigned:
  // ingress coalesces deliveries for one id (one stored event, one fetch) and budgets them apart.
  return { events: [event], ack: { status: 200, body: '', contentType: 'text/plain' }, unsigned: { coalesceKey: id } };
}

function nextGenEvent(req: InboundRequest): RawInboundEvent {
  let body: unknown;
  try {
    body = JSON.parse(req.rawBody.toString('utf8'));
  } catch {
    throw new WebhookRejection(400, 'signed Mollie webhook body is not valid JSON');
  }
  const parsed = mollieNextGenEventSchema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new WebhookRejection(400, `not a Mollie webhook event: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const e = parsed.data;
  const occurredAt = e.createdAt && !Number.isNaN(Date.parse(e.createdAt)) ? new Date(e.createdAt).toISOString() : undefined;
  return { providerEventId: e.id, eventType: e.type, ...(occurredAt ? { occurredAt } : {}), payload: body };
}
