/**
 * The leakage report (contract §6): every failed payment of the period accounted for, and a
 * list of anything unexplained — a failure with no follow-up the hub can name.
 */
import type { Sql } from '../store/db';
import type { InvoiceRow } from '../ledger/rows';
import { DAY_MS } from '../domain/clock';

export const LEAKAGE_BUCKETS = [
  'recovered_by_psp',
  'psp_retrying',
  'pending_handover',
  'in_collection',
  'collected',
  'paid_to_merchant_after_handover',
  'written_off',
  'disputed',
  'cancelled',
  'unexplained',
] as const;
export type LeakageBucket = (typeof LEAKAGE_BUCKETS)[number];

/** A PSP that has said nothing for this long about a failure it said it would retry has dropped it. */
const RETRY_SILENCE_MS = 30 * DAY_MS;
/** A hand-over this late past its due time means the hub did not act. */
const HANDOVER_OVERDUE_MS = DAY_MS;

export function classify(inv: Pick<InvoiceRow, 'status' | 'resolution' | 'failure_final' | 'handover_due_at' | 'last_failed_at'>, now: Date): { bucket: LeakageBucket; why?: string } {
  switch (inv.status) {
    case 'recovered':
    case 'settled':
      return { bucket: 'recovered_by_psp' };
    case 'open':
      if (inv.failure_final) return { bucket: 'unexplained', why: 'final failure but no hand-over scheduled' };
      if (inv.last_failed_at && now.getTime() - new Date(inv.last_failed_at).getTime() > RETRY_SILENCE_MS) {
        return { bucket: 'unexplained', why: 'the PSP said it would retry, and nothing has come for 30 days' };
      }
      return { bucket: 'psp_retrying' };
    case 'pending_handover':
      if (inv.handover_due_at && now.getTime() - new Date(inv.handover_due_at).getTime() > HANDOVER_OVERDUE_MS) {
        return { bucket: 'unexplained', why: 'hand-over overdue (below the minimum amount, or not handed over)' };
      }
      return { bucket: 'pending_handover' };
    case 'submitted':
    case 'in_collection':
    case 'arrangement':
    case 'partially_paid':
    case 'on_hold':
      return { bucket: 'in_collection' };
    case 'paid':
      return { bucket: inv.resolution === 'paid_to_merchant' ? 'paid_to_merchant_after_handover' : 'collected' };
    case 'uncollectible':
      return { bucket: 'written_off' };
    case 'disputed':
      return { bucket: 'disputed' };
    case 'voided':
    case 'withdrawn':
    case 'closed':
      return { bucket: 'cancelled' };
    default:
      return { bucket: 'unexplained', why: `unknown status ${inv.status}` };
  }
}

export async function buildLeakageReport(sql: Sql, merchantId: string, opts: { from?: Date; to?: Date; now: Date }) {
  const params: unknown[] = [merchantId];
  const where = ['merchant_id = $1', 'failure_count > 0'];
  if (opts.from) {
    params.push(opts.from);
    where.push(`first_failed_at >= $${params.length}`);
  }
  if (opts.to) {
    params.push(opts.to);
    where.push(`first_failed_at < $${params.length}`);
  }
  const rows = (await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE ${where.join(' AND ')} ORDER BY first_failed_at, id`, params)).rows;
  const totals: Record<string, { count: number; amounts: Record<string, number> }> = {};
  for (const b of LEAKAGE_BUCKETS) totals[b] = { count: 0, amounts: {} };
  const unexplained: unknown[] = [];
  const items = rows.map((inv) => {
    const { bucket, why } = classify(inv, opts.now);
    const t = totals[bucket];
    t.count++;
    t.amounts[inv.currency] = (t.amounts[inv.currency] ?? 0) + Number(inv.amount_due);
    const item = {
      invoiceId: inv.id, ref: inv.provider_ref, provider: inv.provider, customerId: inv.customer_id, number: inv.number, bucket, why,
      status: inv.status, resolution: inv.resolution, amountDue: { value: Number(inv.amount_due), currency: inv.currency },
      failureReason: inv.failure_reason, firstFailedAt: inv.first_failed_at ? new Date(inv.first_failed_at).toISOString() : null,
      handoverDueAt: inv.handover_due_at ? new Date(inv.handover_due_at).toISOString() : null, caseId: inv.case_id,
    };
    if (bucket === 'unexplained') unexplained.push(item);
    return item;
  });
  return {
    merchantId,
    period: { from: opts.from?.toISOString() ?? null, to: opts.to?.toISOString() ?? null },
    failedPayments: rows.length,
    accountedFor: rows.length - unexplained.length,
    totals,
    unexplained,
    items,
  };
}
