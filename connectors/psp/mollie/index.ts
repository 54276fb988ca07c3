/**
 * The Mollie PSP connector (design.md habit 4), registered under id `mollie`.
 *
 *  - verify (verify.ts): classic form webhooks (`id=tr_…`, unsigned: shape only) and next-gen
 *    signed JSON events (`X-Mollie-Signature`, when the merchant configured a signing secret).
 *  - normalize: which payment the webhook is about (normalize.ts targetOf) → fetch it through the
 *    official SDK (lookup.ts, client.ts) → the pure normalizer on what was fetched. The fetched
 *    state is the truth; the webhook body never is (psp-webhooks.md §2.1).
 *
 * Errors at normalize: Mollie's 404 for the payment → kind `ignored` with the note (never retried);
 * network, timeout, 429 and 5xx → MollieRetryable, a plain Error the outbox retries with backoff;
 * other 4xx (a revoked key) → MollieRejected, Permanent, dead-lettered with the message.
 */
import type { PaymentEvent } from '../../../src/domain/types';
import type { NormalizeContext, PspConnector, RawInboundEvent } from '../types';
import { mollieApiFor, type MollieApi } from './client';
import { lookupPayment } from './lookup';
import { ignoredEvent, MOLLIE_PROVIDER, normalizeMolliePayment, targetOf } from './normalize';
import { mollieProviderConfigSchema, type MollieProviderConfig } from './schema';
import { verifyMollieWebhook } from './verify';

export type { MollieProviderConfig } from './schema';
export { createMollieApi, createMollieSdkClient, type MollieApi } from './client';

type Ctx = NormalizeContext<MollieProviderConfig>;

export const mollieConnector: PspConnector<MollieProviderConfig> = {
  id: MOLLIE_PROVIDER,
  configSchema: mollieProviderConfigSchema,
  verify: (req, config, now) => verifyMollieWebhook(req, config, now),
  normalize: (raw, ctx) => normalizeWithLookup(raw, ctx),
};

/** `api` is injectable; by default the SDK client of the merchant's config (client.ts). */
export async function normalizeWithLookup(raw: RawInboundEvent, ctx: Ctx, api?: MollieApi): Promise<PaymentEvent> {
  const target = targetOf(raw);
  if (!target.paymentId) return ignoredEvent(raw, ctx, target.note ?? 'nothing to fetch');
  const found = await lookupPayment(api ?? mollieApiFor(ctx.config), target.paymentId);
  if (!found.found) {
    // A stray or foreign id: answered 200 at ingress (Mollie's advice), kept on the log, not retried.
    return ignoredEvent(raw, ctx, `payment ${target.paymentId} is unknown to Mollie under this API key`, { paymentRef: target.paymentId, lookupError: found.note });
  }
  return normalizeMolliePayment(raw, ctx, found);
}
