/**
 * The hub's own one-row stage that makes no call out (handover_check) is claimed inside its
 * work transaction (src/outbox/runner.ts, CLAIMED_IN_WORK): one commit per row instead of a claim
 * and then the work. What must still hold, over both backends: a row's work commits once; a
 * failure leaves nothing of the work and counts as one attempt (retry, dead letter); a worker
 * that loses its database mid-way leaves the row pending, with no lease to wait out; and a second
 * message for a row being worked on does not run it again.
 */
import type { HubContext } from '../../src/context';
import { addToOutbox, completeRow, type DispatchItem, type OutboxRow } from '../../src/outbox/outbox';
import { CLAIMED_IN_WORK, createOutboxRunner, reconcileOnce } from '../../src/outbox/runner';
import { HUB_STAGES } from '../../src/outbox/stages';
import { Permanent } from '../../src/pipeline/errors';
import { DatabaseUnavailable } from '../../src/store/db';
import { createLogger } from '../../src/observability/logger';
import { createMetrics } from '../../src/observability/metrics';
import type { Dispatcher } from '../../src/queue/dispatcher';
import { waitFor } from '../support/services';
import { BACKENDS, type Backend, type BackendEnv } from './backends';

// Only the stage's own work is scripted (given to the runner in its registry); claiming,
// completing and settling are the real runner's.

type Step = 'ok' | 'fail' | 'permanent' | 'db-lost' | 'slow';
const script = new Map<string, Step[]>();
const stageCalls = new Map<string, number>();
/** What the stage saw of its own row from outside its transaction (PostgreSQL only), by key. */
const seenFromOutside = new Map<string, { status: string; attempts: number; lockable: boolean }>();
let outside: BackendEnv['db'] | null = null;
/** Released by the test while a 'slow' step holds its transaction open. */
let releaseSlow: () => void = () => undefined;

async function scriptedStage(ctx: HubContext, row: OutboxRow): Promise<void> {
  const key = row.idempotency_key;
  stageCalls.set(key, (stageCalls.get(key) ?? 0) + 1);
  const step = script.get(key)?.shift() ?? 'ok';
  await ctx.commit(async (sql) => {
    // The work: a row of its own, so a test can tell whether it committed, and how often.
    await sql.query(`INSERT INTO partner_cursors (partner_id, cursor, updated_at) VALUES ($1, $2, now())`, [`${key}-${stageCalls.get(key)}`, key]);
    if (outside) {
      const r = await outside.query<{ status: string; attempts: number }>(`SELECT status, attempts FROM outbox WHERE id = $1`, [row.id]);
      const lock = await outside.query(`SELECT id FROM outbox WHERE id = $1 FOR UPDATE SKIP LOCKED`, [row.id]);
      seenFromOutside.set(key, { ...r.rows[0], lockable: lock.rows.length > 0 });
    }
    if (step === 'slow') await new Promise<void>((resolve) => (releaseSlow = resolve));
    if (step === 'fail') throw new Error('constraint trouble');
    if (step === 'permanent') throw new Permanent('customer cust_7 not found');
    if (step === 'db-lost') throw new DatabaseUnavailable(new Error('Connection terminated unexpectedly'));
    await completeRow(sql, row.id, ctx.clock.now());
  });
}

let seq = 0;

describe.each<Backend>(BACKENDS)('claimed in the work transaction ($name)', (backend) => {
  let env: BackendEnv;
  let available = true;
  let dispatcher: Dispatcher | undefined;

  beforeAll(async () => {
    available = await backend.available();
    if (available) env = await backend.open();
    outside = available && env.db.kind === 'postgres' ? env.db : null;
  }, 30_000);

  afterEach(async () => {
    releaseSlow();
    if (dispatcher) await dispatcher.close();
    dispatcher = undefined;
  }, 30_000);

  afterAll(async () => {
    outside = null;
    if (env) await env.cleanup();
  }, 30_000);

  const maybe = (name: string, fn: () => Promise<void>, timeout = 20_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  async function start(): Promise<HubContext> {
    dispatcher = env.newDispatcher();
    const ctx = {
      config: { delivery: { leaseSeconds: 30, maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 300, reconcileEverySeconds: 1, concurrency: 4 } },
      db: env.db,
      dispatcher,
      clock: { now: () => new Date() },
      logger: createLogger({ silent: true }),
      metrics: createMetrics(),
    } as unknown as HubContext;
    ctx.commit = async (fn) => env.db.tx((sql) => fn(sql, { add: async () => undefined }));
    await dispatcher.startWorkers(['hub'], createOutboxRunner(ctx, { ...HUB_STAGES, stages: { ...HUB_STAGES.stages, handover_check: scriptedStage } }), 4);
    return ctx;
  }

  async function addUpdateRow(steps: Step[]): Promise<DispatchItem & { key: string }> {
    const key = `upd-${backend.mode}-${Date.now().toString(36)}-${++seq}`;
    const item = await env.db.tx((sql) =>
      addToOutbox(sql, { kind: 'handover_check', lane: 'hub', payload: { customerId: 'cust_7' }, idempotencyKey: key }, new Date()),
    );
    script.set(key, [...steps]);
    return { ...item!, key };
  }

  const get = async (id: number) => (await env.db.query<OutboxRow>('SELECT * FROM outbox WHERE id = $1', [id])).rows[0];
  const committedWork = async (key: string) =>
    Number((await env.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM partner_cursors WHERE cursor = $1`, [key])).rows[0].n);

  async function settle(ctx: HubContext, id: number, status: OutboxRow['status'], timeoutMs = 6000): Promise<OutboxRow> {
    return waitFor(
      async () => {
        await reconcileOnce(ctx);
        const r = await get(id);
        return r.status === status ? r : null;
      },
      timeoutMs,
      150,
      `outbox row ${id} to be ${status}`,
    );
  }

  it('covers exactly the hub stage that makes no call out and is not batched (process_event and apply_update are worked in batches: event-batch.test.ts, update-batch.test.ts)', () => {
    expect([...CLAIMED_IN_WORK].sort()).toEqual(['handover_check']);
    expect(Object.keys(HUB_STAGES.batches).sort()).toEqual(['apply_update', 'process_event']);
  });

  maybe('a row is done in one transaction: while it works the row is pending and locked, never in flight', async () => {
    const ctx = await start();
    const item = await addUpdateRow(['ok']);
    await ctx.dispatcher.dispatch([item]);
    const row = await settle(ctx, item.id, 'done');
    expect(row).toMatchObject({ status: 'done', locked_until: null, last_error: null });
    expect(await committedWork(item.key)).toBe(1);
    if (outside) {
      // No claim was committed before the work: other sessions saw it pending, and could not lock it.
      expect(seenFromOutside.get(item.key)).toEqual({ status: 'pending', attempts: 0, lockable: false });
    }
  });

  maybe('a failure inside the transaction leaves none of its work and counts one attempt; the retry commits once', async () => {
    const ctx = await start();
    const item = await addUpdateRow(['fail', 'ok']);
    await ctx.dispatcher.dispatch([item]);
    const row = await settle(ctx, item.id, 'done');
    // Two runs at least (the retry timer and the reconciler may both offer it; only one commits).
    expect(stageCalls.get(item.key)).toBeGreaterThanOrEqual(2);
    expect(await committedWork(item.key)).toBe(1);
    expect(row).toMatchObject({ status: 'done', attempts: 1, last_error: null });
  });

  maybe('a permanent failure is dead-lettered with one attempt and nothing of its work', async () => {
    const ctx = await start();
    const item = await addUpdateRow(['permanent']);
    await ctx.dispatcher.dispatch([item]);
    const row = await settle(ctx, item.id, 'dead');
    expect(row).toMatchObject({ status: 'dead', attempts: 1, last_error: 'customer cust_7 not found', locked_until: null });
    expect(await committedWork(item.key)).toBe(0);
  });

  maybe('a worker that loses the database mid-way leaves the row pending and unleased; the reconciler runs it again', async () => {
    const ctx = await start();
    const item = await addUpdateRow(['db-lost', 'ok']);
    await ctx.dispatcher.dispatch([item]);
    await waitFor(async () => stageCalls.get(item.key) === 1 && (await ctx.dispatcher.pending()) === 0, 5000, 20, 'the first run to end');
    // Not in flight with a 30 s lease to wait out (as a crashed worker's claimed row would be).
    expect(await get(item.id)).toMatchObject({ status: 'pending', attempts: 0, locked_until: null });
    const row = await settle(ctx, item.id, 'done', 3000);
    expect(row.status).toBe('done');
    expect(await committedWork(item.key)).toBe(1);
  });

  maybe('a second message for a row being worked on does not run its work again', async () => {
    const ctx = await start();
    const item = await addUpdateRow(['slow', 'ok']);
    await ctx.dispatcher.dispatch([item]);
    await waitFor(async () => stageCalls.get(item.key) === 1, 5000, 10, 'the first run to start');
    // A duplicate (another attempt number, so neither queue folds it into the first).
    await ctx.dispatcher.dispatch([{ ...item, attempt: item.attempt + 1 }]);
    if (outside) {
      // PostgreSQL: the duplicate skips the locked row at once, while the first still holds it.
      await waitFor(async () => (await ctx.dispatcher.pending()) <= 1, 5000, 20, 'the duplicate to give up');
    }
    releaseSlow();
    const row = await settle(ctx, item.id, 'done');
    await waitFor(async () => (await ctx.dispatcher.pending()) === 0, 5000, 20, 'every run to end');
    expect(row.status).toBe('done');
    expect(await committedWork(item.key)).toBe(1);
  });
});
