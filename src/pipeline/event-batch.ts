/**
 * process_event in batches (issue 14). One pass of a worker:
 *
 * 1. **Claim** whatever is due, up to `maxBatch` rows, in one statement (`FOR UPDATE SKIP LOCKED`,
 *    a short lease): never waiting for a batch to fill, so a batch is small under light load and
 *    large under a backlog. Two workers never claim the same row.
 * 2. **Prepare** every event outside any transaction: one query loads the stored events, the
 *    connectors normalize them concurrently (a PSP lookup may run here, never inside a transaction).
 * 3. **Apply** them in one transaction: the batch's customers are locked first, in a fixed order
 *    (advisory locks sorted by key), so two concurrent batches never deadlock on each other. The
 *    batch's rows are completed in one statement and the batch commits once. A transaction is also
 *    capped by time (`maxTxMs`): what is left goes on in the next one, so the embedded database —
 *    one connection shared with the HTTP side — is never held for long.
 * 4. **One bad event never fails its batch**: a transaction that fails is split and its halves are
 *    tried again on their own, down to the single event that fails, which is then settled alone
 *    (attempts, backoff, dead letter, as every row).
 *
 * A worker that dies mid-batch leaves its rows in flight until the lease runs out; the reconciler
 * then frees them, and the inbound event's own status (checked under a row lock) keeps an event
 * from being applied twice.
 */
import type { HubContext } from '../context';
import type { Sql } from '../store/db';
import { DatabaseUnavailable, isConnectionError } from '../store/db';
import { dispatchCommitted } from '../context';
import { addToOutbox, type DispatchItem, type OutboxRow } from '../outbox/outbox';
import { EVENT_BATCH_DEFAULTS, type BatchOutcome, type EventBatchOptions } from '../outbox/batch';
import { Permanent } from './errors';
import { applyPreparedEvent, loadStoredEvents, prepareEvent, reportApplied, type AppliedEvent, type InboundEventRow, type PreparedEvent } from './process-event';

/** Complete many rows in one statement, fenced on this batch's lease (a row someone else took since is left alone). */
async function completeRows(sql: Sql, rows: OutboxRow[], now: Date): Promise<void> {
  if (!rows.length) return;
  await sql.query(
    `UPDATE outbox SET status = 'done', done_at = $2, updated_at = $2, locked_until = NULL, last_error = NULL
      WHERE id = ANY($1::bigint[]) AND status = 'in_flight'`,
    [rows.map((r) => r.id), now],
  );
}

/** The lock key of an event's customer: the same person at the same PSP of the same merchant. */
function customerKey(p: PreparedEvent): string {
  const ref = p.event.customer?.ref ?? p.event.invoice?.ref ?? p.stored.provider_event_id;
  return `${p.merchant.id}:${p.stored.provider}:${ref}`;
}

async function mapLimited<T, R>(items: T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
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

interface Ready {
  row: OutboxRow;
  /** null: the event was settled before this pass (processed, duplicate, ignored): only the row is completed. */
  prepared: PreparedEvent | null;
}

/**
 * Apply `ready` (in id order) in as few transactions as the time cap allows. Returns what was
 * applied, what failed on its own, and what was abandoned to a lost database.
 */
async function applyAll(ctx: HubContext, ready: Ready[], opts: EventBatchOptions, out: BatchOutcome): Promise<void> {
  let rest = ready;
  while (rest.length) {
    const taken = await applyInOneTx(ctx, rest, opts, out);
    rest = rest.slice(taken);
  }
}

/**
 * One transaction over a prefix of `ready` (as many as fit in `maxTxMs`); returns how many it
 * took. No savepoint per event (hundreds of subtransactions in one transaction overflow
 * PostgreSQL's per-backend subtransaction cache and slow every other session down): an event
 * that throws rolls the transaction back, and the prefix is split and tried again in halves,
 * down to the one event that fails — which is then settled alone.
 */
async function applyInOneTx(ctx: HubContext, ready: Ready[], opts: EventBatchOptions, out: BatchOutcome): Promise<number> {
  const now = ctx.clock.now();
  const started = Date.now();
  const items: DispatchItem[] = [];
  const applied: { ready: Ready; result: AppliedEvent | null }[] = [];
  let taken = 0;
  try {
    await ctx.db.tx(async (sql) => {
      items.length = 0;
      applied.length = 0;
      taken = 0;
      // Customers in a fixed order: every batch takes its locks in the same order, so two batches
      // wait for each other instead of deadlocking.
      const keys = [...new Set(ready.filter((r) => r.prepared).map((r) => customerKey(r.prepared!)))];
      if (keys.length > 1) {
        await sql.query(`SELECT pg_advisory_xact_lock(k) FROM (SELECT hashtextextended(t, 7) AS k FROM unnest($1::text[]) t ORDER BY 1) s`, [keys]);
      }
      const outbox = { add: async (row: Parameters<typeof addToOutbox>[1]) => void (await addToOutbox(sql, row, now).then((it) => it && items.push(it))) };
      for (const r of ready) {
        if (taken > 0 && Date.now() - started > opts.maxTxMs) break;
        taken++;
        applied.push({ ready: r, result: r.prepared ? await applyPreparedEvent(ctx, sql, outbox, r.prepared, now) : null });
      }
      await completeRows(sql, applied.map((a) => a.ready.row), now);
    });
  } catch (err) {
    const tried = ready.slice(0, Math.max(1, taken));
    if (err instanceof DatabaseUnavailable || isConnectionError(err)) {
      out.abandoned.push(...tried.map((r) => r.row));
      return tried.length;
    }
    if (tried.length === 1) {
      out.failed.push({ row: tried[0].row, error: err });
      return 1;
    }
    const half = Math.ceil(tried.length / 2);
    ctx.logger.warn('event batch failed; trying its halves', { size: tried.length, error: (err as Error).message });
    await applyAll(ctx, tried.slice(0, half), opts, out);
    await applyAll(ctx, tried.slice(half), opts, out);
    return tried.length;
  }
  dispatchCommitted(ctx.dispatcher, items);
  for (const a of applied) {
    out.done.push(a.ready.row);
    if (a.result && a.ready.prepared) reportApplied(ctx, a.ready.prepared, a.result);
  }
  return taken;
}

/** Prepare and apply claimed rows (step 2–4 above). */
export async function runEventBatch(ctx: HubContext, rows: OutboxRow[], opts: EventBatchOptions = EVENT_BATCH_DEFAULTS): Promise<BatchOutcome> {
  const out: BatchOutcome = { done: [], failed: [], abandoned: [] };
  if (!rows.length) return out;
  let stored: Map<number, InboundEventRow>;
  try {
    stored = await loadStoredEvents(ctx.db, rows.map((r) => Number(r.payload.inboundEventId)));
  } catch (err) {
    if (err instanceof DatabaseUnavailable || isConnectionError(err)) out.abandoned.push(...rows);
    else out.failed.push(...rows.map((row) => ({ row, error: err })));
    return out;
  }
  const ready: Ready[] = [];
  const prepared = await mapLimited(rows, opts.prepareConcurrency, async (row): Promise<Ready | { row: OutboxRow; error: unknown }> => {
    const s = stored.get(Number(row.payload.inboundEventId));
    if (!s) return { row, error: new Permanent(`inbound event ${row.payload.inboundEventId} not found`) };
    if (s.status !== 'received') return { row, prepared: null };
    try {
      return { row, prepared: await prepareEvent(ctx, s, row.attempts) };
    } catch (error) {
      return { row, error };
    }
  });
  for (const p of prepared) {
    if ('error' in p) out.failed.push(p);
    else ready.push(p);
  }
  await applyAll(ctx, ready, opts, out);
  return out;
}
