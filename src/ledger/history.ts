/** Status history rows: the material of every timeline (invoice, claim, case, customer). */
import type { Sql } from '../store/db';
import { deferWrites, flushHeld, holdBack } from '../store/deferred';

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

/**
 * A batch's handle on its transaction (src/store/deferred.ts): history written through it is held
 * back and written by `flush` as one multi-row INSERT, in the order it was added. The one read of
 * the history inside a batch goes through flushHistory first, so it sees every row.
 */
export const deferHistory = deferWrites;

/** Write the history rows a batch holds back for `sql` now (before a read of status_history); a no-op elsewhere. */
export const flushHistory = (sql: Sql) => flushHeld(sql, 'status_history');

type HeldEntry = { entry: HistoryEntry; recordedAt: Date };

/** The held rows, one INSERT per recorded-at stamp (a batch has one: its `now`). */
async function writeHeld(sql: Sql, rows: HeldEntry[]): Promise<void> {
  let start = 0;
  while (start < rows.length) {
    let end = start + 1;
    while (end < rows.length && rows[end].recordedAt.getTime() === rows[start].recordedAt.getTime()) end++;
    await insertHistoryRows(sql, rows.slice(start, end).map((r) => r.entry), rows[start].recordedAt);
    start = end;
  }
}

export async function addHistory(sql: Sql, e: HistoryEntry, recordedAt: Date): Promise<void> {
  if (holdBack<HeldEntry>(sql, 'status_history', [{ entry: e, recordedAt }], writeHeld)) return;
  await sql.query(
    `INSERT INTO status_history (merchant_id, entity, entity_id, status, reason, source, detail, occurred_at, recorded_at)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)`,
    [e.merchantId, e.entity, e.entityId, e.status, e.reason ?? null, e.source, e.detail ? JSON.stringify(e.detail) : null, new Date(e.occurredAt), recordedAt],
  );
}

/**
 * Several status_history rows in one INSERT: a stage that writes a case's and its invoices'
 * entries (or a claim's and its invoice's) in one transaction pays one round trip, not one per
 * row. Same rows, same columns as addHistory, in the order given; held back in a batch.
 */
export async function addHistoryRows(sql: Sql, entries: HistoryEntry[], recordedAt: Date): Promise<void> {
  if (!entries.length) return;
  if (holdBack<HeldEntry>(sql, 'status_history', entries.map((entry) => ({ entry, recordedAt })), writeHeld)) return;
  await insertHistoryRows(sql, entries, recordedAt);
}

async function insertHistoryRows(sql: Sql, entries: HistoryEntry[], recordedAt: Date): Promise<void> {
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
