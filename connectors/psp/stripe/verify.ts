/**
 * Stripe webhook verification: checks `Stripe-Signature` over the exact raw bytes with the
 * official SDK, then (and only then) parses the event (design.md habit 1).
 *
 * Scheme (psp-webhooks.md §1.2, stripe-node src/Webhooks.ts): HMAC-SHA256 hex over
 * `${t}.${rawBody}`, any `v1=` in the header may match (Stripe's own rotation), other schemes such
 * as `v0` are ignored, constant-time compare, deliveries older than the tolerance are refused,
 * future timestamps are accepted. We add our own rotation on top: several configured secrets.
 */
import Stripe from 'stripe';
import { WebhookRejection, type InboundRequest, type VerifiedDelivery } from '../types';
import { stripeEventSchema, type StripeProviderConfig } from './schema';

/** The header as our ingress hands it over (names lower-case, InboundRequest). */
export const SIGNATURE_HEADER = 'stripe-signature';

/** The SDK's message when no `v1` matched this secret — the only failure worth trying the next secret for. */
const NO_MATCH_PREFIX = 'No signatures found matching the expected signature';

export function configuredSecrets(config: Pick<StripeProviderConfig, 'webhookSecret'>): string[] {
  return Array.isArray(config.webhookSecret) ? config.webhookSecret : [config.webhookSecret];
}

/**
 * The SDK's messages carry advice and doc links over several lines; the first line says what is
 * wrong. They never include the secret or the expected signature (node_modules/stripe/cjs/Webhooks.js).
 */
function firstLine(message: string): string {
  return message.split('\n')[0].trim();
}

/**
 * The signature layer alone: verifies the header over the raw bytes with each configured secret and
 * returns the JSON-parsed body. Exported so the published/derived test vectors can pin it.
 */
export function verifyStripeSignature(
  rawBody: Buffer | string,
  header: string | undefined,
  config: Pick<StripeProviderConfig, 'webhookSecret' | 'toleranceSeconds'>,
  now: Date,
): unknown {
  if (!header) throw new WebhookRejection(400, 'missing Stripe-Signature header');

  let event: unknown;
  let mismatch: string | undefined;
  for (const secret of configuredSecrets(config)) {
    try {
      // constructEvent(payload, header, secret, tolerance, cryptoProvider, receivedAt[ms]) verifies
      // first and JSON-parses only afterwards; `receivedAt` pins "now" (node_modules/stripe/cjs/Webhooks.js).
      event = Stripe.webhooks.constructEvent(rawBody, header, secret, config.toleranceSeconds, undefined, now.getTime());
      break;
    } catch (err) {
      if (err instanceof Stripe.errors.StripeSignatureVerificationError) {
        const message = firstLine(err.message);
        // Not signed with this secret: the next configured one may match. Every other verification
        // failure (no `t=`, no `v1`, too old once a secret matched) would be the same for all secrets.
        if (message.startsWith(NO_MATCH_PREFIX)) {
          mismatch = message;
          continue;
        }
        throw new WebhookRejection(400, message);
      }
      // The signature matched; what follows is about the body.
      if (err instanceof SyntaxError) throw new WebhookRejection(400, 'Stripe webhook body is not valid JSON');
      if (err instanceof Error && /thin event/i.test(err.message)) throw thinEventRejection();
      // Anything else the SDK throws on a hostile header (e.g. `t=0,v1=` makes its constant-time
      // compare throw "secureCompare must receive two arguments") is a refused delivery, not a 5xx.
      throw new WebhookRejection(400, `invalid Stripe-Signature header: ${firstLine((err as Error)?.message ?? String(err))}`);
    }
  }
  if (event === undefined) throw new WebhookRejection(400, mismatch ?? 'no webhook secret matched');

  // stripe-node accepts any future timestamp (only `age > tolerance` fails). We allow the same
  // skew both ways (design.md habits 1 and 11), so a signed delivery cannot be replayed for
  // longer than the tolerance by dating it ahead.
  const t = timestampOf(header);
  if (t !== undefined && t - Math.floor(now.getTime() / 1000) > config.toleranceSeconds) {
    throw new WebhookRejection(400, 'Timestamp outside the tolerance zone (in the future)');
  }
  return event;
}

export function verifyStripeWebhook(req: InboundRequest, config: StripeProviderConfig, now: Date): VerifiedDelivery {
  const event = verifyStripeSignature(req.rawBody, req.headers[SIGNATURE_HEADER], config, now);

  // The SDK already refuses thin events; checked again so a future SDK change cannot let one through.
  if (isThinEvent(event)) throw thinEventRejection();
  const parsed = stripeEventSchema.safeParse(event);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new WebhookRejection(400, `not a Stripe event: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const e = parsed.data;
  return {
    events: [
      {
        providerEventId: e.id,
        eventType: e.type,
        occurredAt: new Date(e.created * 1000).toISOString(),
        payload: event,
      },
    ],
  };
}

/** `t=` of an already verified header, parsed as the SDK does (split on `,` then `=`, last `t` wins). */
function timestampOf(header: string): number | undefined {
  let t: number | undefined;
  for (const item of header.split(',')) {
    const [key, value] = item.split('=');
    if (key === 't') t = parseInt(value, 10);
  }
  return t !== undefined && Number.isFinite(t) ? t : undefined;
}

function isThinEvent(event: unknown): boolean {
  return typeof event === 'object' && event !== null && (event as { object?: unknown }).object === 'v2.core.event';
}

function thinEventRejection(): WebhookRejection {
  return new WebhookRejection(
    400,
    'Stripe thin event (v2.core.event) refused: this endpoint takes snapshot events; point a snapshot event destination at it',
  );
}
