/**
 * The queue only dispatches outbox ids (design.md). Two implementations behind one interface:
 * in-process (default) and BullMQ on Redis (REDIS_URL). Losing a message is harmless: the
 * reconciler finds due rows in the outbox again.
 */
import type { DispatchItem, OutboxKind } from '../outbox/outbox';

/**
 * Runs one outbox row; `lane` lets it skip work for a partner whose circuit is open without
 * reading the row, `kind` (when the dispatch knew it) lets it route the row to a batch.
 */
export type OutboxHandler = (id: number, lane?: string, kind?: OutboxKind) => Promise<void>;

export interface Dispatcher {
  readonly kind: 'in-process' | 'bullmq';
  /** Hand committed outbox rows to the queue. Never throws: a failure is logged and the reconciler catches up. */
  dispatch(items: DispatchItem[]): Promise<void>;
  /** Start consuming (worker role). `lanes` are 'hub' and `partner.<id>`. */
  startWorkers(lanes: string[], handler: OutboxHandler, concurrency: number): Promise<void>;
  /** Stop taking new work and wait for what is running (SIGTERM). */
  close(): Promise<void>;
  ping(): Promise<void>;
  /** Jobs waiting or running, for progress and tests. */
  pending(): Promise<number>;
}

export interface CoalescingOptions {
  /** How long the first item waits for others before they go to the queue together [2 ms]. */
  windowMs?: number;
  /** Hand the buffer over at once when it holds this many items [500]. */
  maxItems?: number;
}

/**
 * Coalesces dispatches made within a few milliseconds into one call of the wrapped dispatcher
 * (for BullMQ one `addBulk` per lane instead of one per commit). `dispatch` puts the items in the
 * buffer synchronously and resolves once the call that carried them has returned, so a caller
 * that awaits it still knows its items were handed over; one that does not (a commit
 * acknowledging a webhook) is not held up by Redis. `pending()` and `close()` hand over what is
 * buffered first, so nothing counts as drained while it still sits here.
 */
export function coalesceDispatches(inner: Dispatcher, opts: CoalescingOptions = {}): Dispatcher {
  const windowMs = opts.windowMs ?? 2;
  const maxItems = opts.maxItems ?? 500;
  let buffer: DispatchItem[] = [];
  let waiters: (() => void)[] = [];
  let timer: NodeJS.Timeout | null = null;
  let closing = false;
  const handing = new Set<Promise<void>>();

  function flush(): void {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    if (!buffer.length) return;
    const items = buffer;
    const done = waiters;
    buffer = [];
    waiters = [];
    // The wrapped dispatch never throws by contract; a rejection is swallowed all the same (the
    // rows are committed, and the reconciler dispatches what the queue did not get).
    const p: Promise<void> = Promise.resolve()
      .then(() => inner.dispatch(items))
      .catch(() => undefined)
      .then(() => {
        handing.delete(p);
        for (const w of done) w();
      });
    handing.add(p);
  }

  async function settle(): Promise<void> {
    flush();
    while (handing.size) await Promise.all([...handing]);
  }

  return {
    kind: inner.kind,
    dispatch(items) {
      if (!items.length) return Promise.resolve();
      for (const it of items) buffer.push(it);
      const handed = new Promise<void>((resolve) => waiters.push(resolve));
      // While closing (the wrapped dispatcher waits for running jobs, which may still commit) no
      // timer is left behind: what comes in is handed over at once.
      if (closing || buffer.length >= maxItems) flush();
      else if (!timer) timer = setTimeout(flush, windowMs);
      return handed;
    },
    startWorkers: (lanes, handler, concurrency) => inner.startWorkers(lanes, handler, concurrency),
    async close() {
      closing = true;
      await settle();
      await inner.close();
    },
    ping: () => inner.ping(),
    async pending() {
      await settle();
      return inner.pending();
    },
  };
}
