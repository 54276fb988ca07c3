/** Status history rows: the material of every timeline (invoice, claim, case, customer). */
import type { Sql } from '../store/db';

export interface HistoryEntry {
  merchantId: string;
  entity: 'invoice' | 'claim' | 'case' | 'customer';
  entityId: string;
  status: string;
  reason?: string | null;
  /** Who said so: a PSP id, a partner id, 'hub' or 'merchant'. */
  source: string;
  detail?: Record<string, unknown> | null;
  occurredAt: Date | string;
}

export async function addHistory(sql: Sql, e: HistoryEntry, recordedAt: Date): Promise<void> {
  await sql.query(
    `INSERT INTO status_history (merchant_id, entity, entity_id, status, reason, source, detail, occurred_at, recorded_at)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
    [e.merchantId, e.entity, e.entityId, e.status, e.reason ?? null, e.source, e.detail ? JSON.stringify(e.detail) : null, new Date(e.occurredAt), recordedAt],
  );
}
