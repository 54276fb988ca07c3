/**
 * Finished outbox rows are deleted after `delivery.doneRetentionDays` (issue 14, supporting): the
 * outbox is a queue, and a queue that keeps every row it ever carried makes every claim, every
 * index and every vacuum pay for the past. Run by the hub's background loop beside the privacy
 * purge (src/hub.ts), in bounded batches, each its own short statement, so a sweep never holds a
 * long lock or (embedded) the event loop for long.
 *
 * What goes: rows `done` or `cancelled` whose `done_at` is older than the retention. What stays:
 *  - `dead` rows, whatever their age: each waits for a person (/v1/deliveries, the leakage report).
 *  - pending and in-flight rows: they are work.
 *  - rows some code reads back after they finished, with no time bound on how late:
 *    * `agency.create_case` (done or cancelled): a later call about the case reads it by its
 *      idempotency key to tell "never sent" (a Permanent failure) from "not sent yet" (a Defer) —
 *      src/delivery/agency-delivery.ts caseAtAgency. Without it a row about a case settled before
 *      submission would defer for ever. One row per case.
 *    * `psp.writeback` of an invoice (pay, mark uncollectible) when done: a Stripe payment event
 *      is recognised as the echo of the hub's own write-back by it (src/ledger/payment-ledger.ts
 *      writeBackEcho — Stripe retries a webhook for days and a merchant may replay events later),
 *      and a second write-back of the same outcome finds the first
 *      (src/notify/stripe-writeback-stage.ts). Deleting it would turn the echo into a new payment
 *      reported to the agency. One row per written-back invoice. (A customer-flags write-back has
 *      no invoice and is read back by nobody: it goes like the rest.)
 * The other readers of finished rows are unaffected: the leakage report reads dead rows only
 * (src/reports/leakage.ts), /v1/deliveries?status=done lists what the retention keeps, and a late
 * queue message for a deleted row finds nothing to claim.
 *
 * Idempotency keys of deleted rows can be used again. None of the kinds deleted here is ever added
 * again with the key of a row that finished days ago: their keys name a fresh id (an inbound event,
 * a history row, a partner update, a claim's n-th hold) or the moment of a hand-over check, which
 * only re-checks. `withdraw-<claim>` is owed once, when the claim leaves its live statuses.
 */
import type { Database } from '../store/db';
import { DAY_MS } from '../domain/clock';

export const DONE_RETENTION_DEFAULT_DAYS = 7;
/** Rows deleted per statement. */
export const SWEEP_BATCH = 1000;
/** Statements per pass at most; the rest waits for the next pass (a backlog must not hold the loop). */
export const SWEEP_MAX_BATCHES = 200;

/**
 * The finished rows kept whatever their age (see above), as SQL over an outbox row. Code that
 * starts reading finished rows back (a `status = 'done'` read) must keep its rows here too.
 */
export const KEPT_FINISHED_SQL = `(kind = 'agency.create_case' OR (kind = 'psp.writeback' AND status = 'done' AND invoice_id IS NOT NULL))`;

/** Rows that finished before this instant are swept. */
export function sweepCutoff(now: Date, retentionDays: number): Date {
  return new Date(now.getTime() - retentionDays * DAY_MS);
}

export interface SweepResult {
  deleted: number;
  /** Stopped at SWEEP_MAX_BATCHES with more to delete: the next pass goes on. */
  more: boolean;
}

const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/** One pass of the sweep. */
export async function sweepFinishedRows(
  db: Database,
  now: Date,
  retentionDays: number,
  opts: { batch?: number; maxBatches?: number } = {},
): Promise<SweepResult> {
  const batch = opts.batch ?? SWEEP_BATCH;
  const maxBatches = opts.maxBatches ?? SWEEP_MAX_BATCHES;
  const cutoff = sweepCutoff(now, retentionDays);
  let deleted = 0;
  for (let i = 0; i < maxBatches; i++) {
    // SKIP LOCKED: two workers sweeping at once share the work instead of waiting on each other.
    const r = await db.query(
      `DELETE FROM outbox WHERE id IN (
         SELECT id FROM outbox
          WHERE status IN ('done', 'cancelled') AND done_at < $1 AND NOT ${KEPT_FINISHED_SQL}
          LIMIT $2 FOR UPDATE SKIP LOCKED)`,
      [cutoff, batch],
    );
    deleted += r.rowCount;
    if (r.rowCount < batch) return { deleted, more: false };
    // Embedded, the database runs on the event loop: let webhooks in between two batches.
    await yieldToEventLoop();
  }
  return { deleted, more: true };
}

/**
 * PGlite runs PostgreSQL in single-user mode, where autovacuum never runs (migration 020's
 * settings apply to PostgreSQL only): without a VACUUM now and then, the space of deleted and
 * updated rows is never reused, and no row is ever frozen against transaction-id wraparound.
 * So the embedded hub vacuums the whole database after each sweep: pages nothing touched since
 * the last pass are skipped (visibility map), so a pass costs about what changed since the
 * previous one (measured: under 0.1 s when little changed, ~1-2 s after 100,000 rows changed in
 * a 40 MB database, on a loaded 2-core machine). Statistics are refreshed for the outbox only,
 * whose status mix decides whether the planner takes its partial indexes; a database-wide
 * ANALYZE samples every table and cost about as much again as the vacuum.
 */
export async function vacuumEmbedded(db: Database): Promise<void> {
  if (db.kind !== 'pglite') return;
  await db.exec('VACUUM');
  await db.exec('ANALYZE outbox');
}
