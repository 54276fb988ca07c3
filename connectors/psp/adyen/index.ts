/**
 * The Adyen PSP connector (Standard notifications; design.md habit 4): verifies HTTP Basic auth
 * and each item's HMAC signature with node:crypto as Adyen's own library does (verify.ts), stores
 * one raw event per NotificationRequestItem answered `[accepted]`, and normalizes each item into a
 * canonical PaymentEvent (normalize.ts, mappings/psp/adyen.yaml). Registered once in the explicit
 * connector list under id `adyen`.
 *
 * No client.ts: a Standard notification carries every fact the hub needs (refusal reason, amount,
 * merchantReference, shopperReference), so the connector never calls Adyen's API and has no SDK to
 * configure. A lookup or write-back would go in a client.ts beside these files.
 */
import type { PspConnector } from '../types';
import { ADYEN_PROVIDER, normalizeAdyenItem } from './normalize';
import { adyenProviderConfigSchema, type AdyenProviderConfig } from './schema';
import { verifyAdyenWebhook } from './verify';

export type { AdyenProviderConfig } from './schema';

export const adyenConnector: PspConnector<AdyenProviderConfig> = {
  id: ADYEN_PROVIDER,
  configSchema: adyenProviderConfigSchema,
  verify: (req, config, now) => verifyAdyenWebhook(req, config, now),
  normalize: (raw, ctx) => normalizeAdyenItem(raw, ctx),
};
