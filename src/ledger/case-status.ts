/**
 * A case closes only when every claim has (issue 4): after any claim changes, derive the
 * case's end state from its claims.
 */
import type { Sql } from '../store/db';
import { addHistory } from './history';

const TERMINAL = ['paid', 'withdrawn', 'uncollectible', 'closed'];

export async function refreshCaseStatus(sql: Sql, caseId: string, now: Date, source: string): Promise<void> {
  const c = await sql.query<{ status: string; merchant_id: string }>(`SELECT status, merchant_id FROM cases WHERE id = $1`, [caseId]);
  if (!c.rows[0] || TERMINAL.includes(c.rows[0].status)) return;
  const claims = await sql.query<{ status: string; resolution: string | null }>(`SELECT status, resolution FROM claims WHERE case_id = $1`, [caseId]);
  if (!claims.rows.length || claims.rows.some((x) => !TERMINAL.includes(x.status))) return;
  const all = (s: string) => claims.rows.every((x) => x.status === s);
  const [status, resolution] = all('paid')
    ? ['paid', claims.rows.every((x) => x.resolution === 'paid_to_merchant') ? 'paid_to_merchant' : 'paid_in_full']
    : all('withdrawn')
      ? ['withdrawn', 'withdrawn_by_merchant']
      : all('uncollectible')
        ? ['uncollectible', claims.rows[0].resolution ?? 'written_off']
        : ['closed', null];
  await sql.query(`UPDATE cases SET status = $2, resolution = $3, closed_at = $4, updated_at = $4 WHERE id = $1`, [caseId, status, resolution, now]);
  await addHistory(sql, { merchantId: c.rows[0].merchant_id, entity: 'case', entityId: caseId, status, reason: resolution, source, occurredAt: now, detail: { derived: 'every claim has ended' } }, now);
}
