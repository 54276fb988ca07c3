/**
 * The queue only dispatches outbox ids (design.md). Two implementations behind one interface:
 * in-process (default) and BullMQ on Redis (REDIS_URL). Losing a message is harmless: the
 * reconciler finds due rows in the outbox again.
 */
import type { DispatchItem } from '../outbox/outbox';

/** Runs one outbox row; `lane` lets it skip work for a partner whose circuit is open without reading the row. */
export type OutboxHandler = (id: number, lane?: string) => Promise<void>;

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
