/**
 * Runs one outbox row: claim it with a lease, call the stage for its kind, and on failure
 * decide — retry later with backoff and jitter, defer, or dead-letter (design.md habit 7).
 * Also the reconciler, which re-dispatches due rows so a lost queue message or a crashed
 * worker loses nothing.
 *
 * Partner lanes have two more rules: a partner whose circuit is open is not called (its rows
 * stay pending, untouched, in their order), and calls about one case go in the order they were
 * decided (a row waits for the older rows of its case; see claimRow).
 */
import type { HubContext } from '../context';
import type { Sql } from '../store/db';
import {
  backoffMs,
  claimRow,
  deadRow,
  dueRows,
  nextInCase,
  partnerLane,
  releaseRow,
  rescheduleRow,
  wakeLane,
  type DispatchItem,
  type OutboxKind,
  type OutboxRow,
} from './outbox';
import { DeliveryError } from '../../connectors/agency/types';
import { DatabaseUnavailable, isConnectionError } from '../store/db';
import { Defer, Permanent } from '../pipeline/errors';
import { claimEventBatch, DOORBELL_KINDS, doorbell, EVENT_BATCH_DEFAULTS, releaseLostClaim, renewBatchLease, type BatchOutcome, type BatchStage, type LostClaim } from './batch';
import type { Stage, StageRegistry } from './stages';
import { circuitBreakers, CircuitOpen, lendAdmission, takeAdmission } from '../delivery/circuit-breaker';
import { withLeaseHeartbeat } from './lease';

const partnerOfLane = (lane: string | undefined): string | null => (lane?.startsWith('partner.') ? lane.slice('partner.'.length) : null);

/**
 * Kinds whose whole work is one transaction of ours (no call out in the middle): they are claimed
 * inside that transaction — a row lock, not a lease — so a row costs one commit instead of two.
 * A worker that dies mid-way leaves no lease to wait out: its transaction rolls back and the row
 * is simply pending again for the reconciler. All of them run in the hub's own lane.
 */
export const CLAIMED_IN_WORK: ReadonlySet<OutboxKind> = new Set<OutboxKind>(['handover_check']);


/** The row was taken by another worker's transaction, or finished, between the look and the lock. */
class NotClaimable extends Error {
  constructor(id: number) {
    super(`outbox row ${id} is not claimable any more`);
    this.name = 'NotClaimable';
  }
}

/** A due, pending row as it stands (no lock, no write), for a stage that claims it in its own transaction. */
async function peekRow(ctx: HubContext, id: number, now: Date): Promise<OutboxRow | null> {
  const r = await ctx.db.query<OutboxRow>(`SELECT * FROM outbox WHERE id = $1 AND status = 'pending' AND next_attempt_at <= $2`, [id, now]);
  return r.rows[0] ?? null;
}

/**
 * Lock the row for this transaction, or throw NotClaimable. SKIP LOCKED: a second worker with a
 * duplicate message does not wait for the first one's transaction, it gives up at once. The row
 * is completed by the stage in the same transaction (completeRow), so it is never in flight.
 */
async function lockDueRow(sql: Sql, id: number, now: Date): Promise<void> {
  const r = await sql.query(`SELECT id FROM outbox WHERE id = $1 AND status = 'pending' AND next_attempt_at <= $2 FOR UPDATE SKIP LOCKED`, [id, now]);
  if (!r.rows.length) throw new NotClaimable(id);
}

export interface OutboxRunner {
  (id: number, lane?: string): Promise<void>;
  /**
   * Give back the rows this process had claimed but could not settle because the database was
   * away, so they run again as soon as it is back instead of when their lease runs out.
   */
  releaseAbandoned(): Promise<number>;
  /** Stop the probe timers (hub stop). */
  stop(): void;
}

/**
 * The runner of this process. `registry` says which stage works each kind, and which hub-lane
 * kinds are worked in batches (a message for one of their rows only wakes its batch loop, which
 * claims whatever is due of that kind): the hub passes HUB_STAGES (./stages.ts), a test its own.
 */
export interface RunnerHooks {
  /**
   * Called after work of this runner committed (a batch pass that completed rows, a row done): the
   * hub wakes its notification scanner with it, so a status change reaches the merchant's webhook
   * without waiting for the reconcile interval. Must not throw or block.
   */
  afterCommit?: () => void;
}

export function createOutboxRunner(ctx: HubContext, registry: StageRegistry, hooks: RunnerHooks = {}): OutboxRunner {
  const STAGES = registry.stages;
  /** The stage of a row's kind (the registry pairs each kind with a stage of that kind's rows). */
  const stageOf = (row: OutboxRow) => STAGES[row.kind] as Stage;
  // A doorbell kind's rows have one message per commit, not per row: only a batch loop finds the others.
  for (const kind of DOORBELL_KINDS) if (!registry.batches[kind]) throw new Error(`outbox kind ${kind} is rung as a doorbell but has no batch stage`);
  const { delivery } = ctx.config;
  const breakers = circuitBreakers(ctx);
  /** Rows claimed by this process and left in flight by a database outage: id → our lease (the fence). */
  const abandoned = new Map<number, Date | null>();
  /** Batch claims a database outage cut off before their answer came: their rows are unknown, their lease is not. */
  const lostClaims: LostClaim[] = [];
  const probeTimers = new Map<string, NodeJS.Timeout>();
  let stopped = false;

  /** Offer the oldest due rows of a lane to the queue (after a circuit closes, or to send a probe). */
  async function offerLane(lane: string, wake: boolean): Promise<void> {
    if (stopped) return;
    try {
      const now = ctx.clock.now();
      const items = await ctx.db.tx(async (sql) => {
        if (wake) await wakeLane(sql, lane, now);
        return dueRows(sql, now, 0, wake ? 1000 : Math.max(1, delivery.concurrency), { onlyLane: lane });
      });
      if (items.length) await ctx.dispatcher.dispatch(items);
    } catch (err) {
      ctx.logger.warn('could not offer a lane its rows; the reconciler will', { lane, error: (err as Error).message });
    }
  }

  /** When an open circuit's cool-down ends, send it a probe without waiting for the reconciler. */
  function armProbe(partnerId: string): void {
    if (stopped) return;
    clearTimeout(probeTimers.get(partnerId));
    const breaker = breakers.get(partnerId);
    const wait = Math.max(0, breaker.retryAt(new Date()).getTime() - Date.now()) + 5;
    const t = setTimeout(() => {
      probeTimers.delete(partnerId);
      if (breaker.blocks(new Date())) armProbe(partnerId);
      else if (breaker.stateAt(new Date()) !== 'closed') void offerLane(partnerLane(partnerId), false);
    }, wait);
    t.unref();
    probeTimers.set(partnerId, t);
  }

  breakers.onTransition = (t) => {
    if (t.to === 'open') armProbe(t.partnerId);
    if (t.to === 'closed') {
      // The partner is back: its backlog is due at once and goes oldest first.
      clearTimeout(probeTimers.get(t.partnerId));
      probeTimers.delete(t.partnerId);
      void offerLane(partnerLane(t.partnerId), true);
    }
  };

  async function afterFinish(row: OutboxRow): Promise<void> {
    // The next call about the same case was waiting for this one.
    try {
      // One read: no transaction around it (BEGIN/COMMIT would be two more round trips per row).
      const next = await nextInCase(ctx.db, row);
      if (next) await ctx.dispatcher.dispatch([next]);
    } catch {
      // The reconciler finds it.
    }
  }

  /**
   * Claim a row (one UPDATE, its own transaction). When the connection breaks during that
   * statement, whether it committed is unknown: the row may now be in flight with a lease nobody
   * holds, which would keep it from every worker until the lease runs out. Its lease is known
   * exactly (we chose it), so the row goes in `abandoned`: once the database answers again,
   * releaseAbandoned gives it back if — and only if — it is in flight with that very lease.
   */
  async function claimOrRemember(id: number): Promise<OutboxRow | null> {
    const now = ctx.clock.now();
    const leaseMs = delivery.leaseSeconds * 1000;
    try {
      return await claimRow(ctx.db, id, now, leaseMs);
    } catch (err) {
      if (err instanceof DatabaseUnavailable || isConnectionError(err)) abandoned.set(id, new Date(now.getTime() + leaseMs));
      throw err;
    }
  }

  /**
   * Run a CLAIMED_IN_WORK row: the stage's transaction locks the row first and completes it last,
   * so claim and work are one commit. On failure the transaction rolled back and the row is
   * pending as if never touched; it is then claimed the ordinary way (counting the attempt, with
   * a lease) only to record the failure, so retries, deferrals and the dead letter behave as for
   * every other row.
   */
  async function runClaimedInWork(peeked: OutboxRow): Promise<void> {
    const id = peeked.id;
    let claimed = false;
    const leaseUntil = new Date(ctx.clock.now().getTime() + delivery.leaseSeconds * 1000);
    const row: OutboxRow = { ...peeked, status: 'in_flight', attempts: peeked.attempts + 1, locked_until: leaseUntil };
    const workCtx: HubContext = {
      ...ctx,
      commit: (fn) =>
        ctx.commit(async (sql, outbox) => {
          // Once a commit of this run has claimed (and so completed) the row, later ones are the stage's own.
          if (!claimed) await lockDueRow(sql, id, ctx.clock.now());
          const out = await fn(sql, outbox);
          return out;
        }).then((out) => {
          claimed = true;
          return out;
        }),
    };
    const stage = stageOf(row);
    try {
      await stage(workCtx, row);
      if (!claimed) {
        ctx.logger.warn('outbox stage finished without committing its row; the reconciler will run it again', { outboxId: id, kind: row.kind });
        return;
      }
      ctx.metrics.deliveries.inc({ kind: row.kind, outcome: 'done' });
      hooks.afterCommit?.();
    } catch (err) {
      if (err instanceof NotClaimable) return;
      if (claimed) {
        // The work committed; what failed came after it (logging, metrics). Nothing to undo.
        ctx.logger.warn('outbox stage failed after its commit', { outboxId: id, kind: row.kind, error: (err as Error).message });
        return;
      }
      if (err instanceof DatabaseUnavailable) {
        // Nothing was written: the row is pending and due, and the reconciler offers it again.
        ctx.logger.warn('database unavailable during outbox work', { outboxId: id, kind: row.kind, error: err.message });
        return;
      }
      let failed: OutboxRow | null;
      try {
        failed = await claimOrRemember(id);
      } catch (inner) {
        ctx.logger.warn('could not record outbox failure; the reconciler will retry', { outboxId: id, error: (err as Error).message, inner: (inner as Error).message });
        return;
      }
      // Another worker ran it meanwhile (or a person cancelled it): nothing to record.
      if (!failed) return;
      const outcome = await settleFailure(ctx, failed, err);
      if (outcome === 'abandoned') abandoned.set(failed.id, failed.locked_until ? new Date(failed.locked_until) : null);
    }
  }

  /**
   * The batch loops of the hub's lane, one per batched kind (process_event, apply_update) and process (`batchGroup` is
   * written for any group of kinds worked in batches). A message rings the loop; it claims and
   * works batches until a pass finds less than a full batch and nobody rang meanwhile. A
   * message's job waits for the next pass to end (the one that takes its row, unless a backlog is
   * ahead of it), not for the whole loop: under a backlog the queue's slots are freed pass by
   * pass, so the lane's other kinds (handover_check, the other batch kind) are never starved by waiting
   * messages, and a queue that counts running jobs still knows when the work is done.
   */
  const batchOpts = EVENT_BATCH_DEFAULTS;
  const leaseMs = () => delivery.leaseSeconds * 1000;
  const groups = new Map<OutboxKind, ReturnType<typeof batchGroup>>();
  for (const [kind, work] of Object.entries(registry.batches) as [OutboxKind, BatchStage][]) groups.set(kind, batchGroup([kind], (rows) => work(ctx, rows, batchOpts)));

  function batchGroup(kinds: readonly OutboxKind[], work: (rows: OutboxRow[]) => Promise<BatchOutcome>) {
    /** Rows this loop completed lately: their late messages need no read at all. */
    const doneIds = new Map<number, true>();
    let loop: Promise<void> | null = null;
    let rung = false;
    let passesStarted = 0;
    /** Messages waiting for a pass that starts after theirs came in (`after`: the passes started then). */
    let waiters: { after: number; resolve: () => void }[] = [];
    const release = (upTo: number) => {
      const keep: typeof waiters = [];
      for (const w of waiters) (w.after < upTo ? w.resolve : () => keep.push(w))();
      waiters = keep;
    };

    async function pass(): Promise<number> {
      // The lease has a random part so that it names this claim alone, should its answer be lost.
      const claimedAt = ctx.clock.now();
      const lease = leaseMs() + Math.floor(Math.random() * 1000);
      let rows: OutboxRow[];
      try {
        rows = await claimEventBatch(ctx.db, claimedAt, lease, batchOpts.maxBatch, kinds);
      } catch (err) {
        if (err instanceof DatabaseUnavailable || isConnectionError(err)) lostClaims.push({ kinds, claimedAt, lockedUntil: new Date(claimedAt.getTime() + lease) });
        throw err;
      }
      if (!rows.length) return 0;
      const stopRenewing = renewBatchLease(ctx, rows, leaseMs());
      let out: BatchOutcome;
      try {
        out = await work(rows);
      } finally {
        stopRenewing();
      }
      for (const row of out.done) {
        doneIds.set(Number(row.id), true);
        ctx.metrics.deliveries.inc({ kind: row.kind, outcome: 'done' });
      }
      if (out.done.length) hooks.afterCommit?.();
      while (doneIds.size > 20_000) doneIds.delete(doneIds.keys().next().value as number);
      for (const row of out.abandoned) abandoned.set(Number(row.id), row.locked_until ? new Date(row.locked_until) : null);
      for (const { row, error } of out.failed) {
        const outcome = await settleFailure(ctx, row, error);
        if (outcome === 'abandoned') abandoned.set(Number(row.id), row.locked_until ? new Date(row.locked_until) : null);
      }
      return rows.length;
    }

    async function runLoop(): Promise<void> {
      do {
        rung = false;
        const n = ++passesStarted;
        let claimed: number;
        try {
          claimed = await pass();
        } catch (err) {
          // Nothing was claimed (or the claim's fate is unknown: its lease runs out). The reconciler rings again.
          ctx.logger.warn('could not work a batch of hub rows; the reconciler will retry', { kinds, error: (err as Error).message });
          return;
        } finally {
          release(n);
        }
        if (claimed >= batchOpts.maxBatch) rung = true;
      } while (rung && !stopped);
    }

    function start(): void {
      loop ??= runLoop().finally(() => {
        loop = null;
        release(Infinity);
        // Rung between the loop's last look and its end: go round once more.
        if (rung && !stopped) start();
      });
    }

    return {
      kinds: new Set(kinds),
      ring(id: number): Promise<void> {
        if (doneIds.has(id) || stopped) return Promise.resolve();
        rung = true;
        const waited = new Promise<void>((resolve) => waiters.push({ after: passesStarted, resolve }));
        start();
        return waited;
      },
    };
  }

  const groupOf = (kind: OutboxKind | undefined) => (kind === undefined ? null : (groups.get(kind) ?? null));

  const run = async function run(id: number, lane?: string, kind?: OutboxKind): Promise<void> {
    if (lane === 'hub' && groupOf(kind)) return groupOf(kind)!.ring(id);
    if (lane === 'hub') {
      // The hub's lane: look at the row first; its kind decides how it is claimed.
      let peeked: OutboxRow | null;
      try {
        peeked = await peekRow(ctx, id, ctx.clock.now());
      } catch (err) {
        ctx.logger.warn('could not read outbox row; the reconciler will retry', { outboxId: id, error: (err as Error).message });
        return;
      }
      if (!peeked) return;
      if (groupOf(peeked.kind)) return groupOf(peeked.kind)!.ring(id);
      if (CLAIMED_IN_WORK.has(peeked.kind)) return runClaimedInWork(peeked);
    }
    const partnerId = partnerOfLane(lane);
    // A partner row asks the circuit first. Held back: the row stays as it is (pending, due, in
    // its place) — no claim, no write; the probe timer or the reconciler offers it again. Let
    // through: the admission (maybe the half-open probe) goes with the row to its call.
    const breaker = partnerId ? breakers.get(partnerId) : null;
    const admission = breaker?.admit(new Date());
    if (admission && !admission.allowed) return;
    const probe = admission?.allowed ? admission.probe : false;
    /** A probe that made no call (row not claimable, stage stopped before calling) frees its slot. */
    const freeUnusedProbe = (row: OutboxRow | null) => {
      const unused = row ? takeAdmission(row) : admission;
      if (breaker && unused?.allowed && unused.probe) breaker.record({ kind: 'not_called' }, new Date(), true);
    };
    let row: OutboxRow | null;
    try {
      // One statement, atomic on its own: no BEGIN/COMMIT around it.
      row = await claimOrRemember(id);
    } catch (err) {
      freeUnusedProbe(null);
      ctx.logger.warn('could not claim outbox row; the reconciler will retry', { outboxId: id, error: (err as Error).message });
      return;
    }
    if (!row) {
      freeUnusedProbe(null);
      return;
    }
    if (breaker) lendAdmission(row, probe);
    const stage = stageOf(row);
    try {
      if (!stage) throw new Permanent(`no stage for outbox kind ${row.kind}`);
      // The lease is short and renewed while the stage runs (./lease.ts): a slow call keeps its
      // row, a dead worker's row is free within a lease. row.locked_until follows each renewal.
      await withLeaseHeartbeat(ctx, row, () => stage(ctx, row));
      ctx.metrics.deliveries.inc({ kind: row.kind, outcome: 'done' });
      hooks.afterCommit?.();
      freeUnusedProbe(row);
      await afterFinish(row);
    } catch (err) {
      freeUnusedProbe(row);
      const outcome = await settleFailure(ctx, row, err);
      if (outcome === 'abandoned') abandoned.set(row.id, row.locked_until ? new Date(row.locked_until) : null);
      if (outcome === 'dead') await afterFinish(row);
    }
  } as OutboxRunner;

  run.releaseAbandoned = async () => {
    if (!abandoned.size && !lostClaims.length) return 0;
    let released = 0;
    while (lostClaims.length) {
      // Throws while the database is still away: keep it for the next pass.
      released += await ctx.db.tx((sql) => releaseLostClaim(sql, lostClaims[0], ctx.clock.now()));
      lostClaims.shift();
    }
    for (const [id, lockedUntil] of [...abandoned]) {
      // Throws while the database is still away: keep them for the next pass.
      const ok = await ctx.db.tx((sql) => releaseRow(sql, id, ctx.clock.now(), lockedUntil));
      abandoned.delete(id);
      if (ok) released++;
    }
    if (released) ctx.logger.info('rows left in flight by a database outage given back', { count: released });
    return released;
  };

  run.stop = () => {
    stopped = true;
    for (const t of probeTimers.values()) clearTimeout(t);
    probeTimers.clear();
  };

  return run;
}

type Settled = 'retry' | 'deferred' | 'dead' | 'held' | 'abandoned';

async function settleFailure(ctx: HubContext, row: OutboxRow, err: unknown): Promise<Settled> {
  const { delivery } = ctx.config;
  const now = ctx.clock.now();
  const message = (err as Error)?.message ?? String(err);
  const log = { outboxId: row.id, kind: row.kind, merchantId: row.merchant_id, caseId: row.case_id, attempt: row.attempts, error: message };
  try {
    if (err instanceof DatabaseUnavailable) {
      // Nothing can be written now. The row stays in flight; this process gives it back as soon
      // as the database answers again (releaseAbandoned), or its lease runs out.
      ctx.logger.warn('database unavailable during outbox work', log);
      return 'abandoned';
    }
    if (err instanceof CircuitOpen) {
      // Not an attempt and not a failure of this row: back to pending with its due time kept.
      await ctx.db.tx((sql) => releaseRow(sql, row.id, now, row.locked_until ? new Date(row.locked_until) : null, message));
      ctx.metrics.deliveries.inc({ kind: row.kind, outcome: 'deferred' });
      return 'held';
    }
    if (err instanceof Defer) {
      await ctx.db.tx((sql) => rescheduleRow(sql, row.id, now, new Date(now.getTime() + err.delayMs), message, { countAttempt: false }));
      ctx.metrics.deliveries.inc({ kind: row.kind, outcome: 'deferred' });
      await ctx.dispatcher.dispatch([{ id: row.id, lane: row.lane, dueAt: new Date(Date.now() + err.delayMs), attempt: row.attempts - 1, kind: row.kind }]);
      return 'deferred';
    }
    const retryable = err instanceof DeliveryError ? err.retryable : !(err instanceof Permanent);
    const status = err instanceof DeliveryError ? err.status : undefined;
    const body = err instanceof DeliveryError ? err.responseBody : undefined;
    if (!retryable || row.attempts >= delivery.maxAttempts) {
      await ctx.db.tx((sql) => deadRow(sql, row.id, now, message, status, body));
      ctx.metrics.deliveries.inc({ kind: row.kind, outcome: 'dead' });
      ctx.logger.error('outbox row dead-lettered', { ...log, status });
      return 'dead';
    }
    const delay = backoffMs(row.attempts, delivery.baseDelayMs, delivery.maxDelayMs, err instanceof DeliveryError ? err.retryAfterMs : undefined);
    await ctx.db.tx((sql) => rescheduleRow(sql, row.id, now, new Date(now.getTime() + delay), message, { countAttempt: true, status, body }));
    ctx.metrics.deliveries.inc({ kind: row.kind, outcome: 'retry' });
    ctx.logger.warn('outbox row will be retried', { ...log, status, retryInMs: Math.round(delay) });
    await ctx.dispatcher.dispatch([{ id: row.id, lane: row.lane, dueAt: new Date(Date.now() + delay), attempt: row.attempts, kind: row.kind }]);
    return 'retry';
  } catch (inner) {
    ctx.logger.warn('could not record outbox failure; it runs again once the database is back', { ...log, inner: (inner as Error).message });
    return 'abandoned';
  }
}

/** One reconcile pass: re-dispatch what is due (and free rows whose worker died), skipping partners whose circuit is open. */
export async function reconcileOnce(ctx: HubContext, limit = 1000): Promise<number> {
  const horizon = ctx.config.delivery.reconcileEverySeconds * 1000;
  const skipLanes = circuitBreakers(ctx).blockedPartners(new Date()).map(partnerLane);
  const items: DispatchItem[] = await ctx.db.tx((sql) => dueRows(sql, ctx.clock.now(), horizon, limit, { skipLanes }));
  if (items.length) await ctx.dispatcher.dispatch(doorbell(items));
  ctx.metrics.outboxPending.set(items.length);
  return items.length;
}
