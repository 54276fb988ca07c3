/**
 * The lease of a row in flight, kept alive while its stage runs (issue 14: "a crash must not park
 * work for the whole lease").
 *
 * A worker claims a row until `locked_until` (claimRow); a worker that dies leaves the row in
 * flight until then, when the reconciler frees it (dueRows) and another worker takes it. A long
 * lease parks a dead worker's rows for that long (120 s was the default); a short one would let a
 * second worker take a row whose slow agency call is still running. So the lease is short
 * (`delivery.leaseSeconds`, 15 s by default) and renewed every third of it while the stage runs:
 * a live worker never loses its row, a dead one stops renewing and its rows are free within one
 * lease plus one reconcile period.
 *
 * The renewal is fenced on the lease this worker holds (status in flight and `locked_until` as it
 * set it), so a row another worker has taken since — or that was finished, freed or cancelled —
 * is never touched; the heartbeat then stops. The row object's `locked_until` follows every
 * renewal, because what happens after the stage fences on it too: releaseRow for a call the
 * circuit held back, and the runner's `abandoned` map for rows a database outage left in flight.
 * The heartbeat has stopped, and its last renewal has landed, before withLeaseHeartbeat returns.
 */
import type { HubContext } from '../context';
import type { Sql } from '../store/db';
import { isConnectionError } from '../store/db';
import type { OutboxRow } from './outbox';

/** Renewals happen this often, as a share of the lease. */
export const HEARTBEAT_SHARE = 1 / 3;

/**
 * Move a row's lease to `until` if this worker still holds it: in flight with one of `fences` as
 * its `locked_until`. Returns whether it did.
 */
export async function renewLease(sql: Sql, id: number, fences: Date[], until: Date, now: Date): Promise<boolean> {
  const r = await sql.query(
    `UPDATE outbox SET locked_until = $3, updated_at = $4 WHERE id = $1 AND status = 'in_flight' AND locked_until = ANY($2::timestamptz[])`,
    [id, fences, until, now],
  );
  return r.rowCount > 0;
}

/**
 * Run `fn` (the row's stage) while renewing the row's lease every leaseSeconds/3. Resolves or
 * rejects as `fn` does, once the heartbeat is stopped and settled.
 */
export async function withLeaseHeartbeat<T>(ctx: HubContext, row: OutboxRow, fn: () => Promise<T>): Promise<T> {
  const leaseMs = ctx.config.delivery.leaseSeconds * 1000;
  if (!(leaseMs > 0)) return fn();
  const everyMs = Math.max(50, leaseMs * HEARTBEAT_SHARE);
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  /** The renewal under way, if any. */
  const heart: { beating: Promise<void> | null } = { beating: null };
  /**
   * Renewals whose answer was lost (the connection broke): one may have committed, so the next
   * renewal is fenced on the lease we know and on these (the last few).
   */
  let uncertain: Date[] = [];

  const beat = async (): Promise<void> => {
    if (!row.locked_until) return;
    const now = ctx.clock.now();
    const until = new Date(now.getTime() + leaseMs);
    const fences = [new Date(row.locked_until), ...uncertain];
    try {
      if (await renewLease(ctx.db, row.id, fences, until, now)) {
        row.locked_until = until;
        uncertain = [];
      } else {
        // Finished by the stage (the usual race at its end), or no longer ours: stop renewing.
        if (!done) {
          const status = (await ctx.db.query<{ status: string }>(`SELECT status FROM outbox WHERE id = $1`, [row.id]).catch(() => null))?.rows[0]?.status;
          if (status === 'in_flight' || status === 'pending') {
            ctx.logger.warn('outbox row lease lost while its stage runs (taken or freed meanwhile); not renewed', { outboxId: row.id, kind: row.kind, status });
          }
        }
        done = true;
      }
    } catch (err) {
      if (isConnectionError(err)) uncertain = [...uncertain, until].slice(-4);
      ctx.logger.warn('could not renew outbox row lease; will try again', { outboxId: row.id, kind: row.kind, error: (err as Error).message });
    }
  };

  const schedule = () => {
    if (done) return;
    timer = setTimeout(() => {
      heart.beating = beat().finally(() => {
        heart.beating = null;
        schedule();
      });
    }, everyMs);
    timer.unref();
  };

  schedule();
  try {
    return await fn();
  } finally {
    done = true;
    clearTimeout(timer);
    // A renewal under way may still move locked_until: let it land so the row object is exact.
    if (heart.beating) await heart.beating;
  }
}
