/**
 * Creates the stripe-node SDK instance for one merchant's config: used for lookups (an invoice
 * whose basil payload lacks its payments) and write-back. Webhook verification does not need it.
 */
import Stripe from 'stripe';
import type { StripeProviderConfig } from './schema';

export function createStripeClient(config: Pick<StripeProviderConfig, 'apiKey' | 'apiBase'>): Stripe {
  // Never name the key itself in the message (design.md habit 8).
  if (!config.apiKey) throw new Error('stripe: apiKey is not configured; it is needed for API calls');
  const options: Stripe.StripeConfig = {};
  if (config.apiBase) {
    // stripe-node has no base-URL option, only host/port/protocol (psp-webhooks.md §1.6, stripe-node
    // test/testUtils.ts getTestServerStripe); a path in apiBase is therefore ignored.
    const url = new URL(config.apiBase);
    const protocol = url.protocol === 'http:' ? 'http' : 'https';
    options.host = url.hostname;
    options.port = url.port ? Number(url.port) : protocol === 'http' ? 80 : 443;
    options.protocol = protocol;
    // A sandbox or local fake answering 500 must be hit once, not retried behind our own retry
    // policy (stripe-node retries once by default since v13).
    options.maxNetworkRetries = 0;
  }
  return new Stripe(config.apiKey, options);
}
