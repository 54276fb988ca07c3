/**
 * The default queue: in memory, one lane per partner plus the hub's own, each with its own
 * concurrency. Timers hold delayed items; a restart forgets them, and the reconciler
 * re-dispatches from the outbox.
 */
import type { Dispatcher, OutboxHandler } from './dispatcher';
import type { DispatchItem, OutboxKind } from '../outbox/outbox';
import type { Logger } from '../observability/logger';

interface Lane {
  waiting: number[];
  /** The kind of a waiting row, when its dispatch said. */
  kinds: Map<number, OutboxKind>;
  queued: Set<number>;
  running: number;
}

export function createInProcessDispatcher(logger: Logger): Dispatcher {
  const lanes = new Map<string, Lane>();
  const timers = new Map<string, NodeJS.Timeout>();
  let handler: OutboxHandler | null = null;
  let concurrency = 4;
  let closing = false;
  const idle: (() => void)[] = [];

  const lane = (name: string): Lane => {
    let l = lanes.get(name);
    if (!l) {
      l = { waiting: [], kinds: new Map(), queued: new Set(), running: 0 };
      lanes.set(name, l);
    }
    return l;
  };

  const busy = () => [...lanes.values()].reduce((n, l) => n + l.running, 0);

  function pump(name: string) {
    const l = lane(name);
    while (handler && !closing && l.running < concurrency && l.waiting.length) {
      const id = l.waiting.shift()!;
      const kind = l.kinds.get(id);
      l.kinds.delete(id);
      l.queued.delete(id);
      l.running++;
      handler(id, name, kind)
        .catch((err) => logger.error('outbox handler failed', { outboxId: id, error: (err as Error).message }))
        .finally(() => {
          l.running--;
          if (busy() === 0) idle.splice(0).forEach((f) => f());
          pump(name);
        });
    }
  }

  function enqueueNow(item: DispatchItem) {
    const l = lane(item.lane);
    if (l.queued.has(item.id)) return;
    l.queued.add(item.id);
    l.waiting.push(item.id);
    if (item.kind) l.kinds.set(item.id, item.kind);
    pump(item.lane);
  }

  return {
    kind: 'in-process',
    async dispatch(items) {
      if (closing) return;
      for (const item of items) {
        const delay = item.dueAt.getTime() - Date.now();
        if (delay <= 0) {
          enqueueNow(item);
        } else {
          const key = `${item.lane}/${item.id}/${item.attempt}`;
          if (timers.has(key)) continue;
          // Long delays are left to the reconciler; timers only cover the near future.
          if (delay > 10 * 60_000) continue;
          const t = setTimeout(() => {
            timers.delete(key);
            enqueueNow(item);
          }, delay);
          t.unref();
          timers.set(key, t);
        }
      }
    },
    async startWorkers(names, h, c) {
      handler = h;
      concurrency = c;
      for (const n of names) pump(n);
      for (const n of lanes.keys()) pump(n);
    },
    async close() {
      closing = true;
      for (const t of timers.values()) clearTimeout(t);
      timers.clear();
      if (busy() > 0) await new Promise<void>((resolve) => idle.push(resolve));
    },
    async ping() {},
    async pending() {
      return [...lanes.values()].reduce((n, l) => n + l.running + l.waiting.length, 0) + timers.size;
    },
  };
}
