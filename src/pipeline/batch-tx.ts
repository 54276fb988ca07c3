/**
 * The transaction side of a batch stage (issue 14), shared by process_event (event-batch.ts) and
 * apply_update (src/sync/update-batch.ts): apply claimed items in as few transactions as the time
 * cap allows, with
 *
 * - the batch's customers locked first, in a fixed order (advisory locks sorted by key), so two
 *   concurrent batches of either stage wait for each other instead of deadlocking;
 * - the writes that need no read-back deferred to the end of the transaction and written as one
 *   multi-row statement each: the outbox rows (addManyToOutbox), the status_history and the
 *   exchanges rows (src/store/deferred.ts);
 * - the batch's outbox rows completed in one statement and one commit for the whole batch;
 * - no savepoint per item (hundreds of subtransactions in one transaction overflow PostgreSQL's
 *   per-backend subtransaction cache and slow every other session down): an item that throws
 *   rolls the transaction back, and the prefix is split and tried again in halves, down to the one
 *   item that fails, which is then settled alone (attempts, backoff, dead letter, as every row);
 * - a lost database abandons what was tried to its lease (the runner releases it when it is back).
 */
import type { HubContext, OutboxWriter } from '../context';
import { dispatchCommitted } from '../context';
import type { Sql } from '../store/db';
import { DatabaseUnavailable, isConnectionError } from '../store/db';
import { addManyToOutbox, type DispatchItem, type OutboxInput, type OutboxRow } from '../outbox/outbox';
import type { BatchOutcome, EventBatchOptions } from '../outbox/batch';
import { deferWrites } from '../store/deferred';

/** How a batch stage applies its items; `T` is an item (its outbox row and what was loaded for it). */
export interface TxBatchPlan<T extends { row: OutboxRow }, R> {
  /** The customer lock keys of these items (`merchant:provider:customer ref`), taken sorted before any item runs. */
  lockKeys(items: T[]): string[];
  /** Once a transaction holds the locks, before any item runs (e.g. lock and check the items' own rows in one statement). */
  start?(sql: Sql, items: T[], now: Date): Promise<void>;
  /** Apply one item inside the batch's transaction. */
  apply(sql: Sql, outbox: OutboxWriter, item: T, now: Date): Promise<R>;
  /** Batch-level work once every item of the transaction has run (set-based decisions, multi-row statements). */
  finish?(sql: Sql, applied: { item: T; result: R }[], now: Date, outbox: OutboxWriter): Promise<void>;
  /** After the commit: metrics and log lines. */
  report?(item: T, result: R): void;
}

/** Complete many rows in one statement, fenced on this batch's lease (a row someone else took since is left alone). */
export async function completeRows(sql: Sql, rows: OutboxRow[], now: Date): Promise<void> {
  if (!rows.length) return;
  await sql.query(
    `UPDATE outbox SET status = 'done', done_at = $2, updated_at = $2, locked_until = NULL, last_error = NULL
      WHERE id = ANY($1::bigint[]) AND status = 'in_flight'`,
    [rows.map((r) => r.id), now],
  );
}

/** Take the advisory locks of these customer keys in one statement, in a fixed (sorted) order. */
export async function lockCustomerKeys(sql: Sql, keys: string[]): Promise<void> {
  const unique = [...new Set(keys)];
  if (!unique.length) return;
  await sql.query(`SELECT pg_advisory_xact_lock(k) FROM (SELECT hashtextextended(t, 7) AS k FROM unnest($1::text[]) t ORDER BY 1) s`, [unique]);
}

/** Apply every item (in the given order), in as many transactions as the time cap needs. */
export async function applyInTransactions<T extends { row: OutboxRow }, R>(
  ctx: HubContext, items: T[], opts: EventBatchOptions, out: BatchOutcome, plan: TxBatchPlan<T, R>,
): Promise<void> {
  let rest = items;
  while (rest.length) {
    const taken = await applyInOneTx(ctx, rest, opts, out, plan);
    rest = rest.slice(taken);
  }
}

/** One transaction over a prefix of `items` (as many as fit in `maxTxMs`); returns how many it took. */
async function applyInOneTx<T extends { row: OutboxRow }, R>(
  ctx: HubContext, items: T[], opts: EventBatchOptions, out: BatchOutcome, plan: TxBatchPlan<T, R>,
): Promise<number> {
  const now = ctx.clock.now();
  const started = Date.now();
  let dispatch: DispatchItem[] = [];
  const applied: { item: T; result: R }[] = [];
  let taken = 0;
  try {
    await ctx.db.tx(async (txSql) => {
      applied.length = 0;
      taken = 0;
      const pending: OutboxInput[] = [];
      const outbox: OutboxWriter = { add: async (row) => void pending.push(row) };
      const held = deferWrites(txSql);
      const sql = held.sql;
      await lockCustomerKeys(sql, plan.lockKeys(items));
      if (plan.start) await plan.start(sql, items, now);
      for (const item of items) {
        if (taken > 0 && Date.now() - started > opts.maxTxMs) break;
        taken++;
        applied.push({ item, result: await plan.apply(sql, outbox, item, now) });
      }
      if (plan.finish) await plan.finish(sql, applied, now, outbox);
      await held.flush();
      dispatch = await addManyToOutbox(txSql, pending, now);
      await completeRows(txSql, applied.map((a) => a.item.row), now);
    });
  } catch (err) {
    const tried = items.slice(0, Math.max(1, taken));
    if (err instanceof DatabaseUnavailable || isConnectionError(err)) {
      out.abandoned.push(...tried.map((r) => r.row));
      return tried.length;
    }
    if (tried.length === 1) {
      out.failed.push({ row: tried[0].row, error: err });
      return 1;
    }
    const half = Math.ceil(tried.length / 2);
    ctx.logger.warn('batch failed; trying its halves', { kind: tried[0].row.kind, size: tried.length, error: (err as Error).message });
    await applyInTransactions(ctx, tried.slice(0, half), opts, out, plan);
    await applyInTransactions(ctx, tried.slice(half), opts, out, plan);
    return tried.length;
  }
  dispatchCommitted(ctx.dispatcher, dispatch);
  for (const a of applied) {
    out.done.push(a.item.row);
    plan.report?.(a.item, a.result);
  }
  return taken;
}

/** Run `fn` over `items` with at most `limit` at once, keeping their order in the result. */
export async function mapLimited<T, R>(items: T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  });
  await Promise.all(workers);
  return out;
}
