/**
 * The queues against both backends (in-process over PGlite, BullMQ on Redis over PostgreSQL):
 * the queue only dispatches outbox ids, the outbox claim makes duplicates harmless, delays
 * hold, close() drains, and losing the queue mid-stream (a Redis flush of our keys, or a
 * process restart) loses no work once the reconciler has run.
 */
import type { HubContext } from '../../src/context';
import { addToOutbox, claimRow, completeRow, type DispatchItem } from '../../src/outbox/outbox';
import { reconcileOnce } from '../../src/outbox/runner';
import type { Dispatcher } from '../../src/queue/dispatcher';
import { waitFor } from '../support/services';
import { BACKENDS, sleep, type Backend, type BackendEnv } from './backends';

let seq = 0;

describe.each<Backend>(BACKENDS)('queue ($name)', (backend) => {
  let env: BackendEnv;
  let available = true;
  let dispatchers: Dispatcher[] = [];

  beforeAll(async () => {
    available = await backend.available();
    if (available) env = await backend.open();
  }, 30_000);

  afterEach(async () => {
    for (const d of dispatchers) await d.close();
    dispatchers = [];
  }, 30_000);

  afterAll(async () => {
    if (env) await env.cleanup();
  }, 30_000);

  const maybe = (name: string, fn: () => Promise<void>, timeout = 25_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  const dispatcher = () => {
    const d = env.newDispatcher();
    dispatchers.push(d);
    return d;
  };

  /** n committed outbox rows on the 'hub' lane, due now; returns what to dispatch. */
  async function rows(n: number): Promise<DispatchItem[]> {
    const tag = `${Date.now().toString(36)}-${++seq}`;
    const now = new Date();
    const items = await env.db.tx(async (sql) => {
      const out: DispatchItem[] = [];
      for (let i = 0; i < n; i++) {
        // A one-row kind: process_event rows are rung as a doorbell (one message per commit) for the batch loop, which this queue test does not run.
        const it = await addToOutbox(sql, { kind: 'handover_check', lane: 'hub', payload: { customerId: `q-${i}` }, idempotencyKey: `q-${tag}-${i}`, merchantId: 'acme' }, now);
        out.push(it!);
      }
      return out;
    });
    expect(items).toHaveLength(n);
    return items;
  }

  /**
   * The stub worker: claim the row like the runner does, do the "work", mark it done. `calls`
   * counts every time the queue ran the handler; `effective` counts claims that won (effects).
   */
  function stubHandler(opts: { workMs?: number } = {}) {
    const calls = new Map<number, number>();
    const effective = new Map<number, number>();
    const startedAt = new Map<number, number>();
    const handler = async (id: number) => {
      calls.set(id, (calls.get(id) ?? 0) + 1);
      if (!startedAt.has(id)) startedAt.set(id, Date.now());
      const row = await env.db.tx((sql) => claimRow(sql, id, new Date(), 30_000));
      if (!row) return;
      if (opts.workMs) await sleep(opts.workMs);
      effective.set(id, (effective.get(id) ?? 0) + 1);
      await env.db.tx((sql) => completeRow(sql, id, new Date(), { status: 200 }));
    };
    return { handler, calls, effective, startedAt };
  }

  const statusCounts = async (ids: number[]) => {
    const r = await env.db.query<{ status: string; n: number }>(`SELECT status, count(*)::int AS n FROM outbox WHERE id = ANY($1::bigint[]) GROUP BY status`, [ids]);
    return Object.fromEntries(r.rows.map((x) => [x.status, x.n]));
  };

  maybe('200 rows each dispatched twice are each run exactly once', async () => {
    const d = dispatcher();
    const items = await rows(200);
    const ids = items.map((i) => i.id);
    const stub = stubHandler({ workMs: 2 });
    await d.startWorkers(['hub'], stub.handler, 8);
    await d.dispatch(items);
    await d.dispatch(items);
    // Dispatch everything a third time once part of it has run (a reconciler pass racing the workers).
    await waitFor(async () => stub.effective.size >= 50, 15_000, 10, '50 rows done');
    await d.dispatch(items);
    await waitFor(async () => (await statusCounts(ids)).done === 200, 20_000, 50, 'all 200 rows done');
    await waitFor(async () => (await d.pending()) === 0, 10_000, 50, 'the queue to drain');

    expect(await statusCounts(ids)).toEqual({ done: 200 });
    expect([...stub.effective.keys()].sort((a, b) => a - b)).toEqual(ids);
    expect([...stub.effective.values()].every((n) => n === 1)).toBe(true);
    const attempts = await env.db.query<{ attempts: number }>('SELECT DISTINCT attempts FROM outbox WHERE id = ANY($1::bigint[])', [ids]);
    expect(attempts.rows).toEqual([{ attempts: 1 }]);
    // The queue may hand a duplicate to a worker (in-process: a row already taken; BullMQ: only if its
    // job id was free again); the claim is what makes it a no-op. Three dispatches, at most three runs.
    expect([...stub.calls.values()].every((n) => n >= 1 && n <= 3)).toBe(true);
  });

  maybe('a delayed dispatch runs after its delay, not before', async () => {
    const d = dispatcher();
    const stub = stubHandler();
    await d.startWorkers(['hub'], stub.handler, 4);
    const [item] = await rows(1);
    const sentAt = Date.now();
    await d.dispatch([{ ...item, dueAt: new Date(sentAt + 1200) }]);
    await sleep(700);
    expect(stub.calls.get(item.id)).toBeUndefined();
    expect(await statusCounts([item.id])).toEqual({ pending: 1 });
    await waitFor(async () => (await statusCounts([item.id])).done === 1, 10_000, 20, 'the delayed row done');
    expect(stub.startedAt.get(item.id)! - sentAt).toBeGreaterThanOrEqual(1150);
    expect(stub.effective.get(item.id)).toBe(1);
  });

  maybe('close() waits for a running handler to finish (SIGTERM drain)', async () => {
    const d = dispatcher();
    const [item] = await rows(1);
    let started = 0;
    let finished = 0;
    await d.startWorkers(
      ['hub'],
      async (id) => {
        const row = await env.db.tx((sql) => claimRow(sql, id, new Date(), 30_000));
        started = Date.now();
        await sleep(300);
        if (row) await env.db.tx((sql) => completeRow(sql, id, new Date()));
        finished = Date.now();
      },
      2,
    );
    await d.dispatch([item]);
    await waitFor(async () => started > 0, 10_000, 5, 'the handler to start');
    expect(finished).toBe(0);
    await d.close();
    const closedAt = Date.now();
    expect(finished).toBeGreaterThan(0);
    expect(closedAt).toBeGreaterThanOrEqual(finished);
    expect(finished - started).toBeGreaterThanOrEqual(290);
    expect(await statusCounts([item.id])).toEqual({ done: 1 });
  });

  maybe('losing the queue mid-stream loses no work: the reconciler re-dispatches from the outbox, each row done exactly once', async () => {
    let d = dispatcher();
    const items = await rows(200);
    const ids = items.map((i) => i.id);
    const stub = stubHandler({ workMs: 15 });
    await d.startWorkers(['hub'], stub.handler, 4);
    await d.dispatch(items);
    await waitFor(async () => stub.effective.size >= 20, 15_000, 5, 'some rows done');

    // Redis: delete only our prefix's keys (never the whole Redis). In-process: the process "restarts".
    const lost = await env.loseQueue(d);
    const doneAtLoss = (await statusCounts(ids)).done ?? 0;
    expect(doneAtLoss).toBeGreaterThan(0);
    expect(doneAtLoss).toBeLessThan(200);
    expect(lost.keysDeleted).toBeGreaterThan(0);
    if (lost.dispatcher !== d) {
      d = lost.dispatcher;
      dispatchers.push(d);
      await d.startWorkers(['hub'], stub.handler, 4);
    }
    await sleep(300);
    // With the queue gone, the rest stays pending in the outbox until someone re-dispatches it.
    const stalled = await statusCounts(ids);
    expect(stalled.pending ?? 0).toBeGreaterThan(0);

    // The reconciler as the hub runs it (src/outbox/runner.ts), over a minimal context.
    const ctx = {
      db: env.db,
      dispatcher: d,
      clock: { now: () => new Date() },
      config: { delivery: { reconcileEverySeconds: 1 } },
      metrics: { outboxPending: { set: () => undefined } },
    } as unknown as HubContext;
    const redispatched: number[] = [];
    await waitFor(
      async () => {
        redispatched.push(await reconcileOnce(ctx));
        return (await statusCounts(ids)).done === 200;
      },
      20_000,
      250,
      'every row done after reconciling',
    );

    expect(redispatched[0]).toBeGreaterThan(0);
    expect(await statusCounts(ids)).toEqual({ done: 200 });
    expect([...stub.effective.keys()].sort((a, b) => a - b)).toEqual(ids);
    expect([...stub.effective.values()].filter((n) => n !== 1)).toEqual([]);
    const attempts = await env.db.query<{ attempts: number }>('SELECT DISTINCT attempts FROM outbox WHERE id = ANY($1::bigint[])', [ids]);
    expect(attempts.rows).toEqual([{ attempts: 1 }]);
  });
});
