/**
 * The merchant's own customer id in a PSP's metadata, the same way for every PSP connector: the
 * first of the merchant's keys (`policy.debtorIdentity.metadataKeys`) found in the first metadata
 * map that has one, the PSP customer's metadata before the payment's (the customer's is about the
 * person; a payment's may be copied from elsewhere). What makes one debtor of one person's
 * customers at several PSPs (src/ledger/debtor-key.ts).
 */

/** The default keys: snake_case as Stripe's and GoCardless's docs write metadata, camelCase as Mollie's. */
export const DEFAULT_MERCHANT_REF_KEYS: readonly string[] = ['customer_id', 'merchantCustomerId'];

/** Longest id kept: every PSP caps metadata values (Stripe 500, GoCardless 500 characters); ours are ids. */
const MAX_LENGTH = 200;

/** Metadata maps in priority order (non-objects are skipped); string or number values only. */
export function merchantRefOf(sources: readonly unknown[], keys: readonly string[] = DEFAULT_MERCHANT_REF_KEYS): string | undefined {
  for (const source of sources) {
    if (!source || typeof source !== 'object' || Array.isArray(source)) continue;
    const map = source as Record<string, unknown>;
    for (const key of keys) {
      const v = map[key];
      const s = typeof v === 'string' ? v.trim() : typeof v === 'number' && Number.isFinite(v) ? String(v) : '';
      if (s && s.length <= MAX_LENGTH) return s;
    }
  }
  return undefined;
}

/** Adyen returns a payment's `metadata` flattened into additionalData as `metadata.<key>`. */
export function adyenMetadata(additionalData: Record<string, unknown> | null | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(additionalData ?? {})) if (k.startsWith('metadata.')) out[k.slice('metadata.'.length)] = v;
  return out;
}

/** The customer with the merchant's id added, when there is a customer and an id. */
export function withMerchantRef<C extends { merchantRef?: string }>(customer: C | undefined, merchantRef: string | undefined): C | undefined {
  return customer && merchantRef ? { ...customer, merchantRef } : customer;
}
