/**
 * What a batch of events will look up first, read for the whole batch at once (issue 14): the
 * batch's known customers with their debtors (locked, in id order), and which of its invoice refs
 * and payment refs name no invoice yet. The ledger then takes an event's customer from here, and
 * skips the invoice lookup of an event whose refs all named none, instead of one lookup each.
 * Invoices themselves are not kept: any event of the batch may write one (the hand-over moves the
 * debtor's other invoices), so only "there is none" is trusted, and only creating an invoice or
 * recording payment refs can change that.
 *
 * Coherence: an entry is used once — taking it removes it, so a second event of the same customer
 * or invoice in the batch reads the store again and sees what the first one wrote. Writes that
 * change what another event would find drop the entries concerned: a new invoice or new payment
 * refs (forgetInvoiceRefs), and a debtor shared with other customers changed (forgetCustomers).
 * Outside a batch nothing is prefetched and every lookup goes to the store, as before.
 */
import type { Sql } from '../store/db';
import type { PaymentEvent } from '../domain/types';

/** A customer as linkDebtor reads it: its row's debtor fields and its debtor's keys. */
export interface CurrentCustomer {
  id: string;
  debtor_id: string;
  merchant_ref: string | null;
  email: string | null;
  external_ref: string | null;
  email_norm: string | null;
}

interface Prefetched {
  /** merchant|provider|customer ref → the customer (null: none in the store when the batch began). */
  customers: Map<string, CurrentCustomer | null>;
  /** merchant|provider|invoice ref or payment ref that named no invoice when the batch began. */
  noInvoice: Set<string>;
}

const batches = new WeakMap<Sql, Prefetched>();
const key = (...parts: string[]) => parts.join('\u0000');

/** An event's payment refs (its payment and the related ones: a charge and its intent), each once. */
export function paymentRefsOf(ev: Pick<PaymentEvent, 'payment'>): string[] {
  return [...new Set([ev.payment?.ref, ...(ev.payment?.relatedRefs ?? [])].filter((x): x is string => !!x))];
}

/** Read (and lock) what these events will look up first; three statements for the whole batch. */
export async function prefetchLedger(sql: Sql, events: PaymentEvent[]): Promise<void> {
  const p: Prefetched = { customers: new Map(), noInvoice: new Set() };
  const cust = events.filter((e) => e.customer?.ref).map((e) => [e.merchantId, e.provider, e.customer!.ref] as const);
  const inv = events.filter((e) => e.invoice?.ref).map((e) => [e.merchantId, e.provider, e.invoice!.ref] as const);
  const pay = events.flatMap((e) => paymentRefsOf(e).map((r) => [e.merchantId, e.provider, r] as const));
  const cols = (rows: readonly (readonly [string, string, string])[]) => [rows.map((r) => r[0]), rows.map((r) => r[1]), rows.map((r) => r[2])];
  if (cust.length) {
    for (const [m, pr, r] of cust) p.customers.set(key(m, pr, r), null);
    const found = await sql.query<CurrentCustomer & { merchant_id: string; provider: string; provider_ref: string }>(
      `SELECT c.id, c.debtor_id, c.merchant_ref, c.email, d.external_ref, d.email_norm, c.merchant_id, c.provider, c.provider_ref
         FROM customers c JOIN debtors d ON d.id = c.debtor_id
        WHERE (c.merchant_id, c.provider, c.provider_ref) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
        ORDER BY c.id FOR UPDATE OF c, d`,
      cols(cust),
    );
    for (const c of found.rows) {
      const { merchant_id, provider, provider_ref, ...current } = c;
      p.customers.set(key(merchant_id, provider, provider_ref), current);
    }
  }
  if (inv.length || pay.length) {
    // Which of these name an invoice (by its PSP ref or one of its payment refs): the rest name none.
    for (const [m, pr, r] of [...inv, ...pay]) p.noInvoice.add(key(m, pr, r));
    const found = await sql.query<{ merchant_id: string; provider: string; ref: string }>(
      `SELECT merchant_id, provider, provider_ref AS ref FROM invoices
        WHERE (merchant_id, provider, provider_ref) IN (SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
       UNION ALL
       SELECT merchant_id, provider, payment_ref FROM invoice_payment_refs
        WHERE (merchant_id, provider, payment_ref) IN (SELECT * FROM unnest($4::text[], $5::text[], $6::text[]))`,
      [...cols(inv), ...cols(pay)],
    );
    for (const r of found.rows) p.noInvoice.delete(key(r.merchant_id, r.provider, r.ref));
  }
  batches.set(sql, p);
}

/** The customer linkDebtor looks up, if the batch read it: the row, null (none), or undefined (ask the store). Used once. */
export function takeCustomer(sql: Sql, merchantId: string, provider: string, ref: string): CurrentCustomer | null | undefined {
  const p = batches.get(sql);
  const k = key(merchantId, provider, ref);
  if (!p?.customers.has(k)) return undefined;
  const c = p.customers.get(k)!;
  p.customers.delete(k);
  return c;
}

/** A debtor other customers may share changed: the batch's other customers are read from the store again. */
export function forgetCustomers(sql: Sql): void {
  batches.get(sql)?.customers.clear();
}

/**
 * Did the event's invoice ref and every payment ref name no invoice when the batch began (and has
 * nothing of this batch recorded them since)? Then findInvoice need not look them up. Asked once.
 */
export function namesNoInvoice(sql: Sql, ev: PaymentEvent): boolean {
  const p = batches.get(sql);
  if (!p || !ev.invoice?.ref) return false;
  const keys = [key(ev.merchantId, ev.provider, ev.invoice.ref), ...paymentRefsOf(ev).map((r) => key(ev.merchantId, ev.provider, r))];
  const none = keys.every((k) => p.noInvoice.has(k));
  for (const k of keys) p.noInvoice.delete(k);
  return none;
}

/** An invoice was created, or payment refs recorded, for this event: its refs may name an invoice now. */
export function forgetInvoiceRefs(sql: Sql, ev: PaymentEvent): void {
  const p = batches.get(sql);
  if (!p) return;
  if (ev.invoice?.ref) p.noInvoice.delete(key(ev.merchantId, ev.provider, ev.invoice.ref));
  for (const r of paymentRefsOf(ev)) p.noInvoice.delete(key(ev.merchantId, ev.provider, r));
}
