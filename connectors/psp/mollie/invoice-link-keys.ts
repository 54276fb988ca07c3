/**
 * The names a Mollie payment gives the merchant's invoice, for src/ledger/invoice-link.ts (issue
 * 12, hole 2). Pure: reads the fetched payment and the merchant's `invoiceLink` rules.
 *
 * Why: a Mollie payment that failed, expired or was canceled is final (psp-webhooks reference
 * §2.5, "canceled/expired/failed/paid are definitive"); Mollie does not retry it, and a debtor who
 * pays later pays through a new `tr_…` payment — a payment link, a one-off checkout, or the next
 * subscription payment. The hub must see that payment as paying the invoice the first one opened.
 *
 * The rules, tried in the merchant's order (`providers.mollie.invoiceLink`):
 *  - `metadata.<key>` — the merchant's own invoice id in the payment's metadata
 *    (`metadata.invoiceId` by default);
 *  - `subscriptionPeriod` — the subscription and the period the payment is for: a subscription
 *    payment's `subscriptionId` and the month (Europe/Amsterdam) Mollie created it in, or
 *    `metadata.period` (`YYYY-MM`) when the merchant sets one; a re-payment outside the
 *    subscription names both in its metadata (`subscriptionId`, `period`);
 *  - `customerAndAmount` — the Mollie customer and the exact amount (opt-in: the weakest guess).
 *    Only a paid payment looks an invoice up by it: two failed orders of one customer for the same
 *    amount are two debts, and a failure linked to the other one would lose a claim.
 *
 * A payment Mollie created for a subscription is for its own period: Mollie copies the
 * subscription's metadata onto every payment it creates, so its metadata and its customer and
 * amount are the same each month and would name an earlier month's unpaid invoice. Those keys are
 * kept on its invoice (a later re-payment may use them) but never used to find one for it
 * (`registerOnly`); it finds an invoice only by its own subscription period.
 */
import type { InvoiceLinkKey, Money } from '../../../src/domain/types';
import type { MolliePaymentPayload } from './schema';

export type MollieInvoiceLinkRule = 'subscriptionPeriod' | 'customerAndAmount' | `metadata.${string}`;

/** Used when the merchant's mollie block has no `invoiceLink`. */
export const DEFAULT_INVOICE_LINK: readonly MollieInvoiceLinkRule[] = ['metadata.invoiceId', 'subscriptionPeriod'];

const MONTH = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Amsterdam', year: 'numeric', month: '2-digit' });

export function mollieLinkKeys(p: MolliePaymentPayload, amount: Money, rules: readonly string[] = DEFAULT_INVOICE_LINK): InvoiceLinkKey[] {
  const metadata = isObject(p.metadata) ? p.metadata : {};
  const fromSubscription = !!p.subscriptionId;
  const keys: InvoiceLinkKey[] = [];
  const add = (rule: string, key: string | undefined, registerOnly: boolean) => {
    if (key) keys.push(registerOnly ? { rule, key, registerOnly } : { rule, key });
  };
  for (const rule of rules) {
    if (rule.startsWith('metadata.')) {
      add(rule, scalar(metadata[rule.slice('metadata.'.length)]), fromSubscription);
    } else if (rule === 'subscriptionPeriod') {
      const subscription = p.subscriptionId ?? scalar(metadata.subscriptionId);
      const period = scalar(metadata.period) ?? (fromSubscription ? monthOf(p.createdAt) : undefined);
      add(rule, subscription && period ? `${subscription}|${period}` : undefined, false);
    } else if (rule === 'customerAndAmount') {
      add(rule, p.customerId ? `${p.customerId}|${amount.currency}|${amount.value}` : undefined, fromSubscription || p.status !== 'paid');
    }
  }
  return keys;
}

/** `YYYY-MM` in Amsterdam time, where Mollie schedules subscription payments. */
function monthOf(at: string | null | undefined): string | undefined {
  const t = at ? Date.parse(at) : NaN;
  return Number.isNaN(t) ? undefined : MONTH.format(new Date(t));
}

function scalar(v: unknown): string | undefined {
  if (typeof v === 'string' && v.trim()) return v.trim();
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
