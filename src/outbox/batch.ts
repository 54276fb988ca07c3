/**
 * The generic part of working hub rows in batches (issue 14): the claim, the lease kept while a
 * batch runs, and what a batch stage returns. The batch stages themselves (process_event:
 * src/pipeline/event-batch.ts) reach the runner through its stage registry (./stages.ts).
 */
import type { HubContext } from '../context';
import type { Sql } from '../store/db';
import type { DispatchItem, OutboxKind, OutboxRow } from './outbox';

/** How big and how long a batch may be. */
export interface EventBatchOptions {
  /** Rows claimed at most per pass. */
  maxBatch: number;
  /** A transaction stops taking further events once it has run this long. */
  maxTxMs: number;
  /** Normalizations running at once (they may call the PSP). */
  prepareConcurrency: number;
}

export const EVENT_BATCH_DEFAULTS: EventBatchOptions = { maxBatch: 200, maxTxMs: 250, prepareConcurrency: 16 };

/** What a pass did with each row, for the runner to settle. */
export interface BatchOutcome {
  done: OutboxRow[];
  failed: { row: OutboxRow; error: unknown }[];
  /** Rows whose transaction failed for want of a database: they stay in flight under their lease. */
  abandoned: OutboxRow[];
}

/** Claim due rows of these kinds in the hub's lane, oldest first, up to `limit`, under a lease. */
export async function claimEventBatch<K extends OutboxKind = 'process_event'>(
  sql: Sql, now: Date, leaseMs: number, limit: number, kinds: readonly K[] = ['process_event' as K],
): Promise<OutboxRow<K>[]> {
  const r = await sql.query<OutboxRow<K>>(
    `UPDATE outbox SET status = 'in_flight', attempts = attempts + 1, locked_until = $2, updated_at = $1
      WHERE id IN (SELECT id FROM outbox WHERE lane = 'hub' AND kind = ANY($4::text[]) AND status = 'pending' AND next_attempt_at <= $1
                    ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED)
      RETURNING *`,
    [now, new Date(now.getTime() + leaseMs), limit, kinds],
  );
  return r.rows.sort((a, b) => Number(a.id) - Number(b.id));
}

/**
 * Give back the rows of a claim whose answer was lost (the connection broke during the claim's
 * statement, so whether it committed is unknown and its rows are not known either). Its lease and
 * time were ours (chosen, with a random part, by the claimer): the rows in flight with exactly
 * those are that claim's and nobody else's. Returns how many it gave back (0 if it never committed).
 */
export async function releaseLostClaim(sql: Sql, claim: LostClaim, now: Date): Promise<number> {
  const r = await sql.query(
    `UPDATE outbox SET status = 'pending', locked_until = NULL, attempts = GREATEST(attempts - 1, 0), updated_at = $4
      WHERE lane = 'hub' AND kind = ANY($1::text[]) AND status = 'in_flight' AND locked_until = $2 AND updated_at = $3`,
    [claim.kinds, claim.lockedUntil, claim.claimedAt, now],
  );
  return r.rowCount;
}

/** A batch claim whose fate is unknown: its kinds, its time and its lease (see releaseLostClaim). */
export interface LostClaim {
  kinds: readonly OutboxKind[];
  claimedAt: Date;
  lockedUntil: Date;
}

/**
 * Keep a batch's lease while it is worked (every third of the lease), fenced on the lease this
 * worker set: a row another worker has taken since is left alone. Returns the stop function.
 */
export function renewBatchLease(ctx: HubContext, rows: OutboxRow[], leaseMs: number): () => void {
  if (!rows.length || !(leaseMs > 0)) return () => undefined;
  const ids = rows.map((r) => Number(r.id));
  let fence = rows[0].locked_until ? new Date(rows[0].locked_until) : null;
  const timer = setInterval(() => {
    if (!fence) return;
    const until = new Date(ctx.clock.now().getTime() + leaseMs);
    const was = fence;
    ctx.db
      .query(`UPDATE outbox SET locked_until = $3 WHERE id = ANY($1::bigint[]) AND status = 'in_flight' AND locked_until = $2`, [ids, was, until])
      .then(() => {
        if (fence === was) fence = until;
        for (const r of rows) if (r.locked_until && new Date(r.locked_until).getTime() === was.getTime()) r.locked_until = until;
      })
      .catch(() => undefined);
  }, Math.max(50, leaseMs / 3));
  timer.unref();
  return () => clearInterval(timer);
}

/** A stage that works many claimed rows of its kinds at once (their failures settled by the runner). */
export type BatchStage<K extends OutboxKind = OutboxKind> = (ctx: HubContext, rows: OutboxRow<K>[], opts: EventBatchOptions) => Promise<BatchOutcome>;

/**
 * Kinds whose queue message is only a doorbell: a worker's batch loop claims whatever of them is
 * due, so one message per commit wakes it as well as one per row. Every one of them must have a
 * batch stage in the runner's registry (createOutboxRunner checks).
 */
export const DOORBELL_KINDS: ReadonlySet<OutboxKind> = new Set<OutboxKind>(['process_event', 'apply_update']);

/**
 * The queue as a doorbell (issue 14): of the items a commit (or a reconcile pass) hands the
 * queue, the due ones of a doorbell kind become one message per lane and kind — the newest row's,
 * so a worker that finds it done by its own batch knows every older due row of that kind was
 * claimed by a batch then, its own or another worker's. Items due later keep their own message
 * (it wakes the loop at their time). Other kinds are left as they are.
 */
export function doorbell(items: DispatchItem[], nowMs: number = Date.now()): DispatchItem[] {
  const rang = new Map<string, DispatchItem>();
  const out: DispatchItem[] = [];
  for (const it of items) {
    if (!it.kind || !DOORBELL_KINDS.has(it.kind) || it.dueAt.getTime() > nowMs) {
      out.push(it);
      continue;
    }
    const key = `${it.lane}\u0000${it.kind}`;
    const seen = rang.get(key);
    if (!seen || Number(it.id) > Number(seen.id)) rang.set(key, it);
  }
  return [...out, ...rang.values()];
}
