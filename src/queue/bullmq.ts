/**
 * BullMQ on Redis (production mode). One queue per lane — the hub's own and one per partner —
 * so each agency gets its own rate limit and an outage of one does not block the others
 * (design.md habit 12). Jobs carry only the outbox id; job ids derive from it (no `:`).
 */
import { Queue, Worker, type ConnectionOptions } from 'bullmq';
import IORedis from 'ioredis';
import { coalesceDispatches, type Dispatcher, type OutboxHandler } from './dispatcher';
import type { Logger } from '../observability/logger';

const queueName = (lane: string) => `hub-${lane.replace(/[^A-Za-z0-9_-]/g, '-')}`;

export function createBullmqDispatcher(redisUrl: string, logger: Logger, opts: { prefix?: string } = {}): Dispatcher {
  const prefix = opts.prefix ?? 'collection-hub';
  // Producers fail fast when Redis is away (the outbox keeps the work; design.md).
  const producer = new IORedis(redisUrl, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
  producer.on('error', (err) => logger.warn('redis (producer) error', { error: err.message }));
  const queues = new Map<string, Queue>();
  const workers: Worker[] = [];
  const workerConnections: IORedis[] = [];

  const queue = (lane: string): Queue => {
    let q = queues.get(lane);
    if (!q) {
      q = new Queue(queueName(lane), { connection: producer as unknown as ConnectionOptions, prefix });
      q.on('error', (err) => logger.warn('bullmq queue error', { lane, error: err.message }));
      queues.set(lane, q);
    }
    return q;
  };

  // Commits dispatch without waiting for Redis (context.ts); what they hand over within a couple of
  // milliseconds goes to Redis in one addBulk per lane.
  return coalesceDispatches({
    kind: 'bullmq',
    async dispatch(items) {
      const byLane = new Map<string, typeof items>();
      for (const it of items) byLane.set(it.lane, [...(byLane.get(it.lane) ?? []), it]);
      for (const [lane, list] of byLane) {
        try {
          await queue(lane).addBulk(
            list.map((it) => ({
              name: 'outbox',
              data: it.kind ? { id: it.id, lane, kind: it.kind } : { id: it.id, lane },
              opts: {
                // One job per row, due time and attempt count: a re-dispatch of the same moment is
                // deduplicated while it waits, a new moment (retry, deferral) or a row taken again
                // after its lease ran out (its worker was killed: the old job may still sit in
                // Redis as active or stalled) is a new job. A finished job is removed so its id
                // never swallows a later dispatch; duplicates are harmless since a worker must
                // claim the row first.
                jobId: `ob-${it.id}-${it.dueAt.getTime()}-${it.attempt}`,
                delay: Math.max(0, it.dueAt.getTime() - Date.now()),
                removeOnComplete: true,
                removeOnFail: { age: 24 * 3600 },
              },
            })),
          );
        } catch (err) {
          // Not fatal: the rows are committed and the reconciler will dispatch them.
          logger.warn('could not enqueue; the reconciler will pick it up', { lane, count: list.length, error: (err as Error).message });
        }
      }
    },
    async startWorkers(lanes, handler: OutboxHandler, concurrency) {
      for (const lane of lanes) {
        const conn = new IORedis(redisUrl, { maxRetriesPerRequest: null });
        conn.on('error', (err) => logger.warn('redis (worker) error', { lane, error: err.message }));
        workerConnections.push(conn);
        const w = new Worker(queueName(lane), async (job) => handler(Number(job.data.id), typeof job.data.lane === 'string' ? job.data.lane : lane, typeof job.data.kind === 'string' ? job.data.kind : undefined), {
          connection: conn as unknown as ConnectionOptions,
          prefix,
          concurrency,
        });
        w.on('error', (err) => logger.warn('bullmq worker error', { lane, error: err.message }));
        workers.push(w);
      }
    },
    async close() {
      // worker.close() stops fetching and waits for the jobs that are running (graceful drain).
      await Promise.all(workers.map((w) => w.close()));
      await Promise.all([...queues.values()].map((q) => q.close()));
      for (const c of workerConnections) c.disconnect();
      producer.disconnect();
    },
    async ping() {
      await producer.ping();
    },
    async pending() {
      let n = 0;
      for (const q of queues.values()) {
        const c = await q.getJobCounts('waiting', 'active', 'delayed');
        n += (c.waiting ?? 0) + (c.active ?? 0) + (c.delayed ?? 0);
      }
      return n;
    },
  });
}
