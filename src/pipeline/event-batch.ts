/**
 * process_event in batches (issue 14). One pass of a worker:
 *
 * 1. **Claim** whatever is due, up to `maxBatch` rows, in one statement (`FOR UPDATE SKIP LOCKED`,
 *    a short lease): never waiting for a batch to fill, so a batch is small under light load and
 *    large under a backlog. Two workers never claim the same row.
 * 2. **Prepare** every event outside any transaction: one query loads the stored events, the
 *    connectors normalize them concurrently (a PSP lookup may run here, never inside a transaction).
 * 3. **Apply** them in one transaction (batch-tx.ts): the batch's customers are locked first, in a
 *    fixed order (advisory locks sorted by key), so two concurrent batches never deadlock; the
 *    stored events are locked and checked in one statement; the ledger decides event by event;
 *    the hand-overs the events made due are then checked for the whole batch at once (one read,
 *    one write for every case opened or stacked: handover-check.ts);
 *    what needs no read-back (history, outbox rows) and the events' own marks are written at the
 *    end, one multi-row statement each; the batch's rows are completed in one statement and the
 *    batch commits once. A transaction is also capped by time (`maxTxMs`): what is left goes on
 *    in the next one, so the embedded database — one connection shared with the HTTP side — is
 *    never held for long.
 * 4. **One bad event never fails its batch**: a transaction that fails is split and its halves are
 *    tried again on their own, down to the single event that fails, which is then settled alone
 *    (attempts, backoff, dead letter, as every row).
 *
 * A worker that dies mid-batch leaves its rows in flight until the lease runs out; the reconciler
 * then frees them, and the inbound event's own status (checked under a row lock) keeps an event
 * from being applied twice.
 */
import type { HubContext } from '../context';
import { DatabaseUnavailable, isConnectionError } from '../store/db';
import type { OutboxRow } from '../outbox/outbox';
import { EVENT_BATCH_DEFAULTS, type BatchOutcome, type EventBatchOptions } from '../outbox/batch';
import { Permanent } from './errors';
import { applyInTransactions, mapLimited, type TxBatchPlan } from './batch-tx';
import { prefetchLedger } from '../ledger/prefetch';
import {
  applyPreparedEvent, loadStoredEvents, lockReceived, markEvents, prepareEvent, reportApplied, runChecks,
  type AppliedEvent, type EventMark, type InboundEventRow, type PreparedEvent,
} from './process-event';

/**
 * The lock key of an event's customer: the same person at the same PSP of the same merchant
 * (apply_update's batches lock the same keys: src/sync/update-batch.ts).
 */
export function customerLockKey(merchantId: string, provider: string, customerRef: string): string {
  return `${merchantId}:${provider}:${customerRef}`;
}

function customerKey(p: PreparedEvent): string {
  return customerLockKey(p.merchant.id, p.stored.provider, p.event.customer?.ref ?? p.event.invoice?.ref ?? p.stored.provider_event_id);
}

interface Ready {
  row: OutboxRow<'process_event'>;
  /** null: the event was settled before this pass (processed, duplicate, ignored): only the row is completed. */
  prepared: PreparedEvent | null;
}

/** How process_event rows are applied in a batch's transaction (batch-tx.ts). */
function eventPlan(ctx: HubContext): TxBatchPlan<Ready, AppliedEvent | null> {
  /** The events of the running transaction still to apply (locked and checked once for all of them). */
  let received = new Set<number>();
  return {
    lockKeys: (items) => items.filter((r) => r.prepared).map((r) => customerKey(r.prepared!)),
    async start(sql, items) {
      received = await lockReceived(sql, items.filter((r) => r.prepared).map((r) => Number(r.prepared!.stored.id)));
      // The batch's customers (locked, in id order) and which of its invoice refs name none yet: three statements for all.
      await prefetchLedger(sql, items.filter((r) => r.prepared && received.has(Number(r.prepared.stored.id))).map((r) => r.prepared!.event));
    },
    apply: async (sql, outbox, item, now) =>
      item.prepared ? applyPreparedEvent(ctx, sql, outbox, item.prepared, now, received.has(Number(item.prepared.stored.id))) : null,
    async finish(sql, applied, now, outbox) {
      // The hand-over checks the batch's events made due, set-based for the whole batch (handover-check.ts).
      await runChecks(ctx, sql, outbox, applied.map((a) => a.result), now);
      await markEvents(sql, applied.map((a) => a.result?.mark).filter((m): m is EventMark => !!m), now);
    },
    report(item, result) {
      if (result && item.prepared) reportApplied(ctx, item.prepared, result);
    },
  };
}

/** Prepare and apply claimed rows (step 2–4 above). */
export async function runEventBatch(ctx: HubContext, rows: OutboxRow<'process_event'>[], opts: EventBatchOptions = EVENT_BATCH_DEFAULTS): Promise<BatchOutcome> {
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
  const prepared = await mapLimited(rows, opts.prepareConcurrency, async (row): Promise<Ready | { row: OutboxRow<'process_event'>; error: unknown }> => {
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
  await applyInTransactions(ctx, ready, opts, out, eventPlan(ctx));
  return out;
}
