/**
 * What a merchant's webhook endpoint receives: one event per invoice or case status change, made
 * from a status_history row when the scanner reads it.
 *
 * ```json
 * { "id": "msg_h123", "type": "invoice.status_changed", "createdAt": "…",
 *   "data": { …the invoice (or case) as GET /v1/invoices/:ref (/v1/cases/:id) shows it…,
 *             "change": { "status": "paid", "reason": "paid_in_full", "source": "refagency", "occurredAt": "…" } } }
 * ```
 *
 * `data` is the entity as it stood when the change was read (a later change has its own event);
 * `change` is the change itself. `id` is stable across retries (the receiver's idempotency key).
 */
import type { Sql } from '../store/db';
import type { CaseRow, ClaimRow, InvoiceRow } from '../ledger/rows';
import { INVOICE_STATUSES, COLLECTION_STATUSES } from '../domain/types';
import { MERCHANT_WEBHOOK_EVENT_TYPES } from '../config/schema';
import { invoiceView } from '../http/merchant-api';

export type MerchantEventType = (typeof MERCHANT_WEBHOOK_EVENT_TYPES)[number];

export interface HistoryRow {
  id: number | string;
  merchant_id: string;
  entity: string;
  entity_id: string;
  status: string;
  reason: string | null;
  source: string;
  detail: Record<string, unknown> | null;
  occurred_at: Date | string;
  recorded_at?: Date | string;
}

export interface MerchantEvent {
  id: string;
  type: MerchantEventType;
  createdAt: string;
  data: Record<string, unknown> & { change: StatusChange };
}

export interface StatusChange {
  status: string;
  reason: string | null;
  source: string;
  occurredAt: string;
  /** Only on invoice.owed_back: what is owed back to the debtor in total. */
  amount?: { value: number; currency: string };
}

const iso = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString() : null);
const money = (value: number | string, currency: string) => ({ value: Number(value), currency });

/**
 * The event type a history row is, or null when it is not a status change of an invoice or case
 * (timeline-only entries such as `payment_failed`, `withdrawal_sent`, claim rows).
 */
export function eventTypeOf(h: Pick<HistoryRow, 'entity' | 'status'>): MerchantEventType | null {
  // Not a status: money the debtor paid twice, which the merchant must pay back (src/ledger/owed-back.ts).
  if (h.entity === 'invoice' && h.status === 'owed_back') return 'invoice.owed_back';
  if (h.entity === 'invoice' && (INVOICE_STATUSES as readonly string[]).includes(h.status)) return 'invoice.status_changed';
  if (h.entity === 'case' && (COLLECTION_STATUSES as readonly string[]).includes(h.status)) return 'case.status_changed';
  return null;
}

/** The message id of a history row: stable, and free of "." (Standard Webhooks). */
export const eventIdOf = (historyId: number | string) => `msg_h${historyId}`;

function change(h: HistoryRow): StatusChange {
  const c: StatusChange = { status: h.status, reason: h.reason ?? null, source: h.source, occurredAt: new Date(h.occurred_at).toISOString() };
  // invoice.owed_back: the total now owed back to the debtor (the invoice's amountOwedBack, as of this change).
  if (h.status === 'owed_back' && h.detail && typeof h.detail.amount === 'number') c.amount = money(h.detail.amount, String(h.detail.currency));
  return c;
}

export function caseEventView(c: CaseRow, claims: (ClaimRow & { invoice_ref?: string | null })[]) {
  return {
    id: c.id,
    customerId: c.customer_id,
    partner: c.partner_id,
    partnerRef: c.partner_ref,
    status: c.status,
    resolution: c.resolution,
    principal: money(claims.reduce((n, x) => n + Number(x.principal), 0), c.currency),
    collected: money(claims.reduce((n, x) => n + Number(x.amount_collected), 0), c.currency),
    openedAt: iso(c.opened_at),
    submittedAt: iso(c.submitted_at),
    closedAt: iso(c.closed_at),
    claims: claims.map((x) => ({
      id: x.id,
      invoiceId: x.invoice_id,
      invoiceRef: x.invoice_ref ?? null,
      status: x.status,
      resolution: x.resolution,
      principal: money(x.principal, x.currency),
      amountCollected: money(x.amount_collected, x.currency),
      arrangement: x.arrangement ?? null,
    })),
  };
}

/** The event for one history row, read in the scanner's transaction; null when the row is not one or its entity is gone. */
export async function buildEvent(sql: Sql, h: HistoryRow): Promise<{ event: MerchantEvent; customerId: string; invoiceId: string | null; caseId: string | null } | null> {
  const type = eventTypeOf(h);
  if (!type) return null;
  const base = { id: eventIdOf(h.id), type, createdAt: new Date(h.occurred_at).toISOString() };
  if (h.entity === 'invoice') {
    const inv = (await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE id = $1 AND merchant_id = $2`, [h.entity_id, h.merchant_id])).rows[0];
    if (!inv) return null;
    const claim = (await sql.query<ClaimRow>(`SELECT * FROM claims WHERE invoice_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1`, [inv.id])).rows[0] ?? null;
    const kase = inv.case_id ? ((await sql.query<CaseRow>(`SELECT * FROM cases WHERE id = $1`, [inv.case_id])).rows[0] ?? null) : null;
    return { event: { ...base, data: { ...invoiceView(inv, claim, kase), change: change(h) } }, customerId: inv.customer_id, invoiceId: inv.id, caseId: inv.case_id };
  }
  const kase = (await sql.query<CaseRow>(`SELECT * FROM cases WHERE id = $1 AND merchant_id = $2`, [h.entity_id, h.merchant_id])).rows[0];
  if (!kase) return null;
  const claims = (await sql.query<ClaimRow & { invoice_ref: string }>(
    `SELECT c.*, i.provider_ref AS invoice_ref FROM claims c JOIN invoices i ON i.id = c.invoice_id WHERE c.case_id = $1 ORDER BY c.created_at, c.id`,
    [kase.id],
  )).rows;
  return { event: { ...base, data: { ...caseEventView(kase, claims), change: change(h) } }, customerId: kase.customer_id, invoiceId: null, caseId: kase.id };
}
