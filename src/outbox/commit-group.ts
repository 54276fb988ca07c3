/**
 * Group commit for small write-only transactions (issue 14: "results are completed in small
 * batches"): the completion of an agency call (its row done, its sync-log lines, the case's or
 * claim's new state) and the store of an agency's push are each a handful of writes whose cost is
 * mostly the transaction around them. Callers that commit at about the same time share one
 * transaction: their functions run one after the other in it, the rows that need no read-back
 * (history, sync log, completed outbox rows, new outbox rows) are written at the end as one
 * multi-row statement per table (src/store/deferred.ts), and every caller's promise resolves only
 * once that transaction has committed — nothing is acknowledged before it is durable.
 *
 * A group holds at most `maxItems` callers and starts `maxWaitMs` after its first one came in, or
 * at once when full; at most `maxConcurrent` groups are in the database at once, and callers
 * arriving meanwhile wait for the next (under load groups grow by themselves).
 *
 * A caller's function must write only, or read only what no other caller of the group writes:
 * the functions of a group see each other's writes.
 *
 * Failure: the database being away fails every caller with that error. Any other failure may be
 * one caller's (its data, a constraint) — or two groups waiting on each other's row locks, which
 * `lockTimeoutMs` turns into an error quickly instead of PostgreSQL's deadlock check a second
 * later — so each caller's function then runs again in a transaction of its own and gets its own
 * outcome: one bad completion never fails the others.
 */
import type { Database, Sql } from '../store/db';
import { DatabaseUnavailable, isConnectionError } from '../store/db';
import { deferWrites } from '../store/deferred';
import type { Dispatcher } from '../queue/dispatcher';
import { addManyToOutbox, type DispatchItem, type OutboxInput } from './outbox';
import { dispatchCommitted } from '../context';

/** Collects outbox rows inside a transaction (the shape of HubContext's OutboxWriter). */
interface Writer {
  add(row: OutboxInput): Promise<void>;
}

export type SharedWork<T> = (sql: Sql, outbox: Writer) => Promise<T>;

export interface CommitGroupOptions {
  maxItems?: number;
  maxWaitMs?: number;
  maxConcurrent?: number;
  /** PostgreSQL only: a group waiting longer than this for a row lock gives up and its callers go alone. */
  lockTimeoutMs?: number;
}

export const COMMIT_GROUP_DEFAULTS: Required<CommitGroupOptions> = { maxItems: 32, maxWaitMs: 1, maxConcurrent: 2, lockTimeoutMs: 250 };

export interface CommitGroup {
  commit<T>(fn: SharedWork<T>): Promise<T>;
}

interface Waiting {
  fn: SharedWork<unknown>;
  resolve(v: unknown): void;
  reject(e: unknown): void;
}

export function createCommitGroup(
  deps: { db: Database; dispatcher: Dispatcher; now: () => Date },
  options: CommitGroupOptions = {},
): CommitGroup {
  const o = { ...COMMIT_GROUP_DEFAULTS, ...options };
  let queue: Waiting[] = [];
  let running = 0;
  let timer: NodeJS.Timeout | null = null;

  async function inOneTx(batch: Waiting[]): Promise<{ results: unknown[]; dispatch: DispatchItem[] }> {
    return deps.db.tx(async (tx) => {
      if (batch.length > 1 && deps.db.kind === 'postgres') await tx.query(`SELECT set_config('lock_timeout', $1, true)`, [`${o.lockTimeoutMs}ms`]);
      const held = deferWrites(tx);
      const pending: OutboxInput[] = [];
      const writer: Writer = { add: async (row) => void pending.push(row) };
      const results: unknown[] = [];
      for (const w of batch) results.push(await w.fn(held.sql, writer));
      await held.flush();
      return { results, dispatch: await addManyToOutbox(tx, pending, deps.now()) };
    });
  }

  async function run(batch: Waiting[]): Promise<void> {
    try {
      const { results, dispatch } = await inOneTx(batch);
      dispatchCommitted(deps.dispatcher, dispatch);
      batch.forEach((w, i) => w.resolve(results[i]));
      return;
    } catch (err) {
      if (batch.length === 1 || err instanceof DatabaseUnavailable || isConnectionError(err)) {
        for (const w of batch) w.reject(err);
        return;
      }
    }
    for (const w of batch) {
      try {
        const { results, dispatch } = await inOneTx([w]);
        dispatchCommitted(deps.dispatcher, dispatch);
        w.resolve(results[0]);
      } catch (err) {
        w.reject(err);
      }
    }
  }

  function start(): void {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    if (!queue.length || running >= o.maxConcurrent) return;
    const batch = queue.slice(0, o.maxItems);
    queue = queue.slice(batch.length);
    running++;
    void run(batch).finally(() => {
      running--;
      if (queue.length) start();
    });
    if (queue.length) schedule();
  }

  function schedule(): void {
    if (!queue.length || running >= o.maxConcurrent) return;
    if (queue.length >= o.maxItems) return start();
    if (!timer) {
      timer = setTimeout(start, o.maxWaitMs);
      timer.unref();
    }
  }

  return {
    commit<T>(fn: SharedWork<T>): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        queue.push({ fn: fn as SharedWork<unknown>, resolve: resolve as (v: unknown) => void, reject });
        schedule();
      });
    },
  };
}
