/**
 * The GoCardless PSP connector (design.md habit 4): verifies `Webhook-Signature` (verify.ts), splits
 * a delivery into its events, and normalizes each one — fetching the payment, mandate and customer
 * it links to (lookup.ts through client.ts), since GoCardless events carry only links
 * (psp-webhooks.md §7.6). Registered once in the explicit connector list under id `gocardless`.
 *
 * Events the mapping does not list are normalized as `ignored` without any API call.
 */
import type { PaymentEvent } from '../../../src/domain/types';
import type { NormalizeContext, PspConnector, RawInboundEvent } from '../types';
import { gocardlessClientFor, type GoCardlessApi } from './client';
import { lookupEventResources } from './lookup';
import { GOCARDLESS_PROVIDER, kindOf, normalizeGoCardlessEvent, parseGoCardlessEvent } from './normalize';
import { gocardlessProviderConfigSchema, type GoCardlessProviderConfig } from './schema';
import { verifyGoCardlessWebhook } from './verify';

export type { GoCardlessProviderConfig } from './schema';
export { createGoCardlessClient } from './client';

type Ctx = NormalizeContext<GoCardlessProviderConfig>;

export const gocardlessConnector: PspConnector<GoCardlessProviderConfig> = {
  id: GOCARDLESS_PROVIDER,
  configSchema: gocardlessProviderConfigSchema,
  verify: (req, config, now) => verifyGoCardlessWebhook(req, config, now),
  normalize: (raw, ctx) => normalizeWithLookups(raw, ctx),
};

/**
 * parse → (a kind we act on) → fetch the linked resources → normalize. `api` is injectable; by
 * default the axios client of the merchant's config (client.ts).
 */
export async function normalizeWithLookups(raw: RawInboundEvent, ctx: Ctx, api?: GoCardlessApi): Promise<PaymentEvent> {
  const event = parseGoCardlessEvent(raw);
  if (kindOf(event, ctx.mapping) === 'ignored') return normalizeGoCardlessEvent(raw, ctx);
  const found = await lookupEventResources(api ?? gocardlessClientFor(ctx.config), event);
  return normalizeGoCardlessEvent(raw, ctx, found);
}
