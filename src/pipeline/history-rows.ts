/**
 * Several status_history rows in one INSERT: a stage that writes a case's and its invoices'
 * entries (or a claim's and its invoice's) in one transaction pays one round trip, not one per
 * row. Same rows, same columns as addHistory (src/ledger/history.ts), in the order given.
 */
import type { Sql } from '../store/db';
import type { HistoryEntry } from '../ledger/history';

export async function addHistoryRows(sql: Sql, entries: HistoryEntry[], recordedAt: Date): Promise<void> {
  if (!entries.length) return;
  await sql.query(
    `INSERT INTO status_history (merchant_id, entity, entity_id, status, reason, source, detail, occurred_at, recorded_at)
     SELECT x.merchant_id, x.entity, x.entity_id, x.status, x.reason, x.source, x.detail, x.occurred_at, $9
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::jsonb[], $8::timestamptz[])
       WITH ORDINALITY AS x(merchant_id, entity, entity_id, status, reason, source, detail, occurred_at, n)
     ORDER BY x.n`,
    [
      entries.map((e) => e.merchantId),
      entries.map((e) => e.entity),
      entries.map((e) => e.entityId),
      entries.map((e) => e.status),
      entries.map((e) => e.reason ?? null),
      entries.map((e) => e.source),
      entries.map((e) => (e.detail ? JSON.stringify(e.detail) : null)),
      entries.map((e) => new Date(e.occurredAt)),
      recordedAt,
    ],
  );
}
