/**
 * Writes held back inside a transaction (issue 14): a batch stage (src/pipeline/batch-tx.ts) or a
 * group of completions (src/outbox/commit-group.ts) runs many items' work in one transaction; rows
 * that nothing reads back in that transaction — timeline (status_history) and sync-log (exchanges)
 * rows — are then held and written at the end as one multi-row statement per table, in the order
 * they were added, instead of one INSERT per item. A reader of such a table inside the transaction
 * calls flushHeld first. Outside a deferring transaction nothing is held (holdBack returns false).
 */
import type { Sql } from './db';

interface Held {
  rows: unknown[];
  write(sql: Sql, rows: unknown[]): Promise<void>;
}

const deferring = new WeakMap<Sql, { tx: Sql; byTable: Map<string, Held> }>();

/** A handle on `tx` whose held-back writes `flush` writes (one statement per table). */
export function deferWrites(tx: Sql): { sql: Sql; flush(): Promise<void> } {
  const sql: Sql = { query: (text, params) => tx.query(text, params) };
  deferring.set(sql, { tx, byTable: new Map() });
  return { sql, flush: () => flushHeld(sql) };
}

/** Hold `rows` for `table` when `sql` defers writes (true), else leave the writing to the caller (false). */
export function holdBack<T>(sql: Sql, table: string, rows: readonly T[], write: (sql: Sql, rows: T[]) => Promise<void>): boolean {
  const d = deferring.get(sql);
  if (!d) return false;
  let held = d.byTable.get(table);
  if (!held) d.byTable.set(table, (held = { rows: [], write: write as Held['write'] }));
  held.rows.push(...rows);
  return true;
}

/** Write what `sql` holds back (of one table, or all); a no-op outside a deferring transaction. */
export async function flushHeld(sql: Sql, table?: string): Promise<void> {
  const d = deferring.get(sql);
  if (!d) return;
  for (const [name, held] of d.byTable) {
    if ((table && name !== table) || !held.rows.length) continue;
    await held.write(d.tx, held.rows.splice(0, held.rows.length));
  }
}
