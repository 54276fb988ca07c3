/**
 * apply_update in batches (issue 14): the agency's updates, once stored (push or pull), are applied
 * as process_event is (src/pipeline/event-batch.ts, src/pipeline/batch-tx.ts): a worker claims
 * whatever is due, loads in one query which customer each update's case belongs to, and applies
 * them in one transaction that first takes those customers' locks in the same sorted order as the
 * event batches (so the two never deadlock), locks the stored updates in one statement, and writes
 * the updates' own marks, the history and the outbox rows as one multi-row statement each. The
 * updates themselves are set-based (src/sync/update-state.ts): the cases, claims and invoices they
 * touch are locked and loaded in a few statements, decided in memory, written once per table.
 */
import type { HubContext } from '../context';
import { DatabaseUnavailable, isConnectionError } from '../store/db';
import type { OutboxRow } from '../outbox/outbox';
import { EVENT_BATCH_DEFAULTS, type BatchOutcome, type EventBatchOptions } from '../outbox/batch';
import { applyInTransactions, type TxBatchPlan } from '../pipeline/batch-tx';
import { customerLockKey } from '../pipeline/event-batch';
import { lockStoredUpdates, markUpdates, reportUpdate, updateApplier, type StoredUpdate, type UpdateOutcome } from './partner-updates';

interface Item {
  row: OutboxRow<'apply_update'>;
  id: number;
  /** The lock key of the customer whose case the update is about (null: no such case, nothing to lock). */
  key: string | null;
  /** That customer (read with the key). */
  customerId: string | null;
}

/** Which customer each update's case belongs to, in one query (read without locks: only to know what to lock). */
async function lockKeysOf(ctx: HubContext, ids: number[]): Promise<Map<number, { key: string | null; customerId: string | null }>> {
  const r = await ctx.db.query<{ id: number; customer_id: string | null; merchant_id: string | null; provider: string | null; provider_ref: string | null }>(
    `SELECT pu.id, c.id AS customer_id, c.merchant_id, c.provider, c.provider_ref
       FROM partner_updates pu
       LEFT JOIN LATERAL (SELECT k.customer_id FROM cases k
                           WHERE k.partner_id = pu.partner_id AND (k.partner_ref = pu.payload->>'caseId' OR k.id = pu.payload->>'caseReference') LIMIT 1) k ON true
       LEFT JOIN customers c ON c.id = k.customer_id
      WHERE pu.id = ANY($1::bigint[])`,
    [ids],
  );
  return new Map(r.rows.map((x) => [
    Number(x.id),
    { key: x.merchant_id && x.provider && x.provider_ref ? customerLockKey(x.merchant_id, x.provider, x.provider_ref) : null, customerId: x.customer_id },
  ]));
}

function updatePlan(ctx: HubContext): TxBatchPlan<Item, UpdateOutcome> {
  /** The running transaction's stored updates (locked once for all of them) and its applier (src/sync/update-state.ts). */
  let stored = new Map<number, StoredUpdate>();
  let applier: ReturnType<typeof updateApplier>;
  return {
    lockKeys: (items) => items.map((i) => i.key).filter((k): k is string => !!k),
    async start(sql, items, now) {
      stored = await lockStoredUpdates(sql, items.map((i) => i.id));
      applier = updateApplier(sql, now);
      await applier.load([...stored.values()], items.map((i) => i.customerId).filter((c): c is string => !!c));
    },
    apply: async (_sql, _outbox, item) => applier.apply(item.id, stored.get(item.id) ?? null),
    async finish(sql, applied, now) {
      await applier.finish();
      await markUpdates(sql, applied.map((a) => a.result.mark).filter((m): m is NonNullable<UpdateOutcome['mark']> => !!m), now);
    },
    report: (item, result) => reportUpdate(ctx, item.row, result.outcome),
  };
}

/** Apply claimed apply_update rows. */
export async function runUpdateBatch(ctx: HubContext, rows: OutboxRow<'apply_update'>[], opts: EventBatchOptions = EVENT_BATCH_DEFAULTS): Promise<BatchOutcome> {
  const out: BatchOutcome = { done: [], failed: [], abandoned: [] };
  if (!rows.length) return out;
  const ids = rows.map((r) => Number(r.payload.partnerUpdateId));
  let keys: Map<number, { key: string | null; customerId: string | null }>;
  try {
    keys = await lockKeysOf(ctx, ids);
  } catch (err) {
    if (err instanceof DatabaseUnavailable || isConnectionError(err)) out.abandoned.push(...rows);
    else out.failed.push(...rows.map((row) => ({ row, error: err })));
    return out;
  }
  const items = rows.map((row, i) => ({ row, id: ids[i], key: keys.get(ids[i])?.key ?? null, customerId: keys.get(ids[i])?.customerId ?? null }));
  await applyInTransactions(ctx, items, opts, out, updatePlan(ctx));
  return out;
}
