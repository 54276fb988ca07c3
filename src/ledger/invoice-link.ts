/**
 * Which open invoice a PSP payment is for, when the payment itself is new to the hub (issue 12,
 * hole 2). A Mollie payment that failed, expired or was canceled is final and never turns paid
 * (psp-webhooks reference §2.5: "canceled/expired/failed/paid are definitive"); a debtor who pays
 * later pays through a new `tr_…` payment. Modelled as the merchant's invoice, the later payment
 * must land on the invoice the first one opened — else a claim at the agency is never told the
 * debt was paid.
 *
 * The connector says how a payment may name its invoice (`InvoiceInfo.linkKeys`, in the merchant's
 * priority order: connectors/psp/mollie/invoice-link-keys.ts). Each invoice keeps its keys
 * (table invoice_link_keys, migration 012), written with the invoice (the ledger's insertInvoice).
 * `decideInvoiceLink` is the pure rule; findLinkedInvoice below is its SQL edge, called from the
 * ledger's findInvoice.
 *
 * The rule: the keys are tried in order; the first key that names any open invoice decides.
 * Exactly one such invoice → linked. Two or more → never guessed: the payment gets an invoice of
 * its own and the sync log says which invoices it could have been. An invoice of another
 * currency, or of another customer (when both customers are known), is never a match.
 */
import type { InvoiceLinkKey, PaymentEvent } from '../domain/types';
import type { Sql } from '../store/db';
import type { InvoiceRow } from './rows';

/**
 * Invoice statuses in which money is still owed, so a later payment may be for it. `disputed` too:
 * a debtor contesting the claim at the agency (or a chargeback) still owes until it is settled, and
 * the merchant's new payment attempt for it must land on it — a failed one as its failure (the
 * status stays), a paid one reported to the agency — not open a second debt (found by the model
 * test: test/model/regressions.test.ts).
 */
export const LINKABLE_STATUSES: readonly string[] = ['open', 'pending_handover', 'submitted', 'in_collection', 'arrangement', 'partially_paid', 'on_hold', 'disputed'];

/** An invoice one of the payment's keys names, as the store holds it. */
export interface LinkCandidate {
  invoiceId: string;
  rule: string;
  key: string;
  status: string;
  currency: string;
  /** The PSP's ref of the invoice's customer. */
  customerRef: string | null;
  /** Every key the invoice holds, under every rule (to see a key of the payment contradict it). */
  ownKeys?: readonly { rule: string; key: string }[];
}

export interface LinkInput {
  keys: readonly InvoiceLinkKey[];
  /** The payment's currency: an invoice in another one is not what it pays. */
  currency: string;
  /** The payment's customer (PSP ref), when the PSP names one. */
  customerRef?: string;
  candidates: readonly LinkCandidate[];
}

export type LinkDecision =
  | { kind: 'none' }
  | { kind: 'linked'; invoiceId: string; rule: string; key: string; note: string }
  | { kind: 'ambiguous'; rule: string; key: string; invoiceIds: string[]; note: string };

/**
 * An invoice that holds a key under a stronger rule the payment also carries, but another one, is
 * not what the payment pays: a payment naming invoice B is never linked to invoice A by a weaker rule
 * (the same subscription and month, the same customer and amount) — found by the model-based test.
 */
function contradicts(c: LinkCandidate, keys: readonly InvoiceLinkKey[]): boolean {
  return keys.some((k) => {
    const own = (c.ownKeys ?? []).filter((o) => o.rule === k.rule);
    return own.length > 0 && !own.some((o) => o.key === k.key);
  });
}

export function decideInvoiceLink(input: LinkInput): LinkDecision {
  for (const [i, k] of input.keys.entries()) {
    if (k.registerOnly) continue;
    // Only a stronger rule (earlier in the merchant's order) can rule a candidate out.
    const stronger = input.keys.slice(0, i);
    const ids = [
      ...new Set(
        input.candidates
          .filter((c) => c.rule === k.rule && c.key === k.key)
          .filter((c) => LINKABLE_STATUSES.includes(c.status))
          .filter((c) => c.currency === input.currency)
          .filter((c) => !input.customerRef || !c.customerRef || c.customerRef === input.customerRef)
          .filter((c) => !contradicts(c, stronger))
          .map((c) => c.invoiceId),
      ),
    ].sort();
    if (ids.length === 1) {
      return { kind: 'linked', invoiceId: ids[0], rule: k.rule, key: k.key, note: `linked to open invoice ${ids[0]} by ${k.rule} ${k.key}` };
    }
    if (ids.length > 1) {
      return {
        kind: 'ambiguous',
        rule: k.rule,
        key: k.key,
        invoiceIds: ids,
        note: `not linked: ${k.rule} ${k.key} names ${ids.length} open invoices (${ids.join(', ')}); recorded as an invoice of its own`,
      };
    }
  }
  return { kind: 'none' };
}

/** What the link step decided for one event, for the ledger's sync-log line. */
export interface LinkOutcome {
  decision?: LinkDecision;
}

/**
 * The open invoice this event's keys name, locked — or null. Asked only when the event's own
 * refs found nothing. `outcome.decision` tells the ledger why (linked, or ambiguous).
 */
export async function findLinkedInvoice(sql: Sql, ev: PaymentEvent, outcome?: LinkOutcome): Promise<InvoiceRow | null> {
  if (ev.kind !== 'payment_succeeded' && ev.kind !== 'payment_failed') return null;
  const keys = (ev.invoice?.linkKeys ?? []).filter((k) => !k.registerOnly);
  const currency = ev.payment?.amount?.currency ?? ev.invoice?.amountDue.currency;
  if (!keys.length || !currency) return null;
  const params: unknown[] = [ev.merchantId, ev.provider];
  const pairs = keys.map((k) => {
    params.push(k.rule, k.key);
    return `(k.rule = $${params.length - 1} AND k.link_key = $${params.length})`;
  });
  const rows = await sql.query<{ invoice_id: string; rule: string; link_key: string; status: string; currency: string; customer_ref: string | null }>(
    `SELECT k.invoice_id, k.rule, k.link_key, i.status, i.currency, c.provider_ref AS customer_ref
       FROM invoice_link_keys k JOIN invoices i ON i.id = k.invoice_id LEFT JOIN customers c ON c.id = i.customer_id
      WHERE k.merchant_id = $1 AND k.provider = $2 AND (${pairs.join(' OR ')})`,
    params,
  );
  // Every key of the invoices found, so a key of the payment that contradicts one of them is seen.
  const found = [...new Set(rows.rows.map((r) => r.invoice_id))];
  const own = new Map<string, { rule: string; key: string }[]>();
  if (found.length) {
    const all = await sql.query<{ invoice_id: string; rule: string; link_key: string }>(`SELECT invoice_id, rule, link_key FROM invoice_link_keys WHERE invoice_id = ANY($1::text[])`, [found]);
    for (const r of all.rows) own.set(r.invoice_id, [...(own.get(r.invoice_id) ?? []), { rule: r.rule, key: r.link_key }]);
  }
  const decision = decideInvoiceLink({
    keys: ev.invoice?.linkKeys ?? [],
    currency,
    customerRef: ev.customer?.ref,
    candidates: rows.rows.map((r) => ({ invoiceId: r.invoice_id, rule: r.rule, key: r.link_key, status: r.status, currency: r.currency, customerRef: r.customer_ref, ownKeys: own.get(r.invoice_id) ?? [] })),
  });
  if (outcome) outcome.decision = decision;
  if (decision.kind !== 'linked') return null;
  const r = await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE id = $1 FOR UPDATE`, [decision.invoiceId]);
  return r.rows[0] ?? null;
}

/** The ledger's note with the link decision appended, when there was one to tell. */
export function withLinkNote(note: string, outcome: LinkOutcome): string {
  const d = outcome.decision;
  return d && d.kind !== 'none' ? `${note} (${d.note})` : note;
}
