/**
 * The lease heartbeat (src/outbox/lease.ts) over both backends: a row's lease is short and renewed
 * while its stage runs, so
 *  - a call slower than the lease keeps its row: a second worker reconciling meanwhile (which
 *    frees expired leases) never takes it, and the call is made once;
 *  - a row another worker has taken is never renewed, and a finished one is left alone;
 *  - the row object follows the renewals, so what fences on it afterwards still matches: the
 *    release of a call the circuit held back, and the give-back of rows a database outage left.
 * The crash side (a dead worker's rows taken again within seconds) is kill-in-flight.test.ts.
 */
import type { HubContext } from '../../src/context';
import { addToOutbox, claimRow, completeRow, dueRows, type OutboxRow } from '../../src/outbox/outbox';
import { withLeaseHeartbeat } from '../../src/outbox/lease';
import { createOutboxRunner, reconcileOnce, type OutboxRunner } from '../../src/outbox/runner';
import { HUB_STAGES } from '../../src/outbox/stages';
import { CircuitOpen } from '../../src/delivery/circuit-breaker';
import { DatabaseUnavailable, type Database } from '../../src/store/db';
import { createMetrics } from '../../src/observability/metrics';
import { deliverAddClaim } from '../../src/delivery/agency-delivery';
import type { Dispatcher } from '../../src/queue/dispatcher';
import { waitFor } from '../support/services';
import { BACKENDS, sleep, type Backend, type BackendEnv } from './backends';

// Only the agency call is scripted; claiming, renewing, settling and reconciling are the real ones.
jest.mock('../../src/delivery/agency-delivery', () => ({
  ...jest.requireActual('../../src/delivery/agency-delivery'),
  deliverAddClaim: jest.fn(),
}));

type Step = { sleepMs: number; then: 'complete' | 'circuit_open' | 'db_down' };
const script = new Map<string, Step>();
const calls = new Map<string, number>();
/** Per key: stage runs under way now, and the most there ever were at once. */
const running = new Map<string, number>();
const maxRunning = new Map<string, number>();

(deliverAddClaim as jest.MockedFunction<typeof deliverAddClaim>).mockImplementation(async (ctx: HubContext, row: OutboxRow) => {
  calls.set(row.idempotency_key, (calls.get(row.idempotency_key) ?? 0) + 1);
  const k = row.idempotency_key;
  running.set(k, (running.get(k) ?? 0) + 1);
  maxRunning.set(k, Math.max(maxRunning.get(k) ?? 0, running.get(k)!));
  try {
    const step = script.get(row.idempotency_key) ?? { sleepMs: 0, then: 'complete' };
    await sleep(step.sleepMs);
    if (step.then === 'circuit_open') throw new CircuitOpen('refagency', new Date(Date.now() + 1000), 'open');
    if (step.then === 'db_down') throw new DatabaseUnavailable(new Error('connect ECONNREFUSED 127.0.0.1:5432'));
    await ctx.db.tx((sql) => completeRow(sql, row.id, ctx.clock.now(), { status: 201 }));
  } finally {
    running.set(k, running.get(k)! - 1);
  }
});

const LEASE_SECONDS = 1;
let seq = 0;

describe.each<Backend>(BACKENDS)('lease heartbeat ($name)', (backend) => {
  let env: BackendEnv;
  let available = true;
  const dispatchers: Dispatcher[] = [];
  const warnings: { message: string; meta: unknown }[] = [];

  beforeAll(async () => {
    available = await backend.available();
    if (process.env.CI === 'true' && !available) throw new Error(`${backend.name} is not reachable`);
    if (available) env = await backend.open();
  }, 30_000);

  afterEach(async () => {
    for (const d of dispatchers.splice(0)) await d.close();
    warnings.length = 0;
  }, 30_000);

  afterAll(async () => {
    if (env) await env.cleanup();
  }, 30_000);

  const maybe = (name: string, fn: () => Promise<void>, timeout = 30_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  const logger = {
    warn: (message: string, meta?: unknown) => warnings.push({ message, meta }),
    info: () => undefined,
    error: () => undefined,
    debug: () => undefined,
  };

  /** A worker: the real runner over a minimal hub context with a 1 s lease, its queue started. */
  async function worker(): Promise<{ ctx: HubContext; runner: OutboxRunner }> {
    const dispatcher = env.newDispatcher();
    dispatchers.push(dispatcher);
    const ctx = {
      config: { delivery: { leaseSeconds: LEASE_SECONDS, maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 500, reconcileEverySeconds: 1, concurrency: 4 } },
      db: env.db,
      dispatcher,
      clock: { now: () => new Date() },
      logger,
      metrics: createMetrics(),
    } as unknown as HubContext;
    const runner = createOutboxRunner(ctx, HUB_STAGES);
    await dispatcher.startWorkers(['partner.refagency'], runner, 4);
    return { ctx, runner };
  }

  async function addRow(step?: Step): Promise<{ id: number; key: string }> {
    const key = `lease-${backend.mode}-${Date.now().toString(36)}-${++seq}`;
    const item = await env.db.tx((sql) =>
      addToOutbox(sql, { kind: 'agency.add_claim', lane: 'partner.refagency', payload: { caseId: 'c', claimId: 'k' }, idempotencyKey: key, merchantId: 'acme' }, new Date()),
    );
    if (step) script.set(key, step);
    return { id: item!.id, key };
  }

  const get = async (id: number) => (await env.db.query<OutboxRow>('SELECT * FROM outbox WHERE id = $1', [id])).rows[0];

  maybe('renews the lease while the stage runs: another worker freeing expired leases never gets the row', async () => {
    const { ctx } = await worker();
    const { id } = await addRow();
    const row = (await claimRow(env.db, id, new Date(), LEASE_SECONDS * 1000))!;
    const claimedUntil = new Date(row.locked_until!).getTime();
    const seen = new Set<number>();
    let takenByOther = 0;
    await withLeaseHeartbeat(ctx, row, async () => {
      // 3.5 leases long; meanwhile another worker runs the reconciler's query and tries to claim.
      const until = Date.now() + 3500;
      while (Date.now() < until) {
        await env.db.tx((sql) => dueRows(sql, new Date(), 0, 100));
        if (await claimRow(env.db, id, new Date(), LEASE_SECONDS * 1000)) takenByOther++;
        const r = await get(id);
        expect(r.status).toBe('in_flight');
        seen.add(new Date(r.locked_until!).getTime());
        await sleep(50);
      }
    });
    expect(takenByOther).toBe(0);
    // Renewed every third of the lease: ten or so times in 3.5 s (at least a few on a loaded machine).
    expect(seen.size).toBeGreaterThanOrEqual(4);
    const after = await get(id);
    expect(after).toMatchObject({ status: 'in_flight', attempts: 1 });
    // The row object followed every renewal: it names the lease the database holds.
    expect(new Date(row.locked_until!).getTime()).toBe(new Date(after.locked_until!).getTime());
    expect(new Date(after.locked_until!).getTime()).toBeGreaterThan(claimedUntil + 2000);
    // After the stage the heartbeat is stopped: the lease is no longer renewed.
    await sleep(LEASE_SECONDS * 1000);
    expect(new Date((await get(id)).locked_until!).getTime()).toBe(new Date(after.locked_until!).getTime());
    expect(warnings).toEqual([]);
  });

  maybe('never renews a row another worker has taken, and says so', async () => {
    const { ctx } = await worker();
    const { id } = await addRow();
    const row = (await claimRow(env.db, id, new Date(), LEASE_SECONDS * 1000))!;
    const mine = new Date(row.locked_until!).getTime();
    const theirs = new Date(Date.now() + 60_000);
    await withLeaseHeartbeat(ctx, row, async () => {
      // Another worker holds it now (its lease, its attempt).
      await env.db.query(`UPDATE outbox SET locked_until = $2, attempts = attempts + 1 WHERE id = $1`, [id, theirs]);
      await sleep(1500);
    });
    const after = await get(id);
    expect(after).toMatchObject({ status: 'in_flight', attempts: 2 });
    expect(new Date(after.locked_until!).getTime()).toBe(theirs.getTime());
    // Ours was not moved onto theirs: what fences on the row object afterwards matches nothing of theirs.
    expect(new Date(row.locked_until!).getTime()).toBe(mine);
    expect(warnings.map((w) => w.message)).toEqual(['outbox row lease lost while its stage runs (taken or freed meanwhile); not renewed']);
  });

  maybe('a renewal whose answer was lost (it committed, the connection broke) does not lose the lease', async () => {
    const { ctx } = await worker();
    let loseAnswers = 1;
    const flaky: Database = {
      ...env.db,
      kind: env.db.kind,
      query: async (text, params) => {
        if (loseAnswers > 0 && /^\s*UPDATE outbox SET locked_until/.test(text)) {
          loseAnswers--;
          await env.db.query(text, params); // the server carries it out…
          throw new DatabaseUnavailable(new Error('Connection terminated unexpectedly')); // …the answer never comes
        }
        return env.db.query(text, params);
      },
    };
    const { id } = await addRow();
    const row = (await claimRow(env.db, id, new Date(), LEASE_SECONDS * 1000))!;
    await withLeaseHeartbeat({ ...ctx, db: flaky } as HubContext, row, () => sleep(1500));
    expect(loseAnswers).toBe(0);
    // The next renewal was fenced on both leases: still ours, and the row object names it.
    const after = await get(id);
    expect(new Date(row.locked_until!).getTime()).toBe(new Date(after.locked_until!).getTime());
    expect(warnings.map((w) => w.message)).toEqual(['could not renew outbox row lease; will try again']);
  });

  maybe('leaves a finished row alone, quietly', async () => {
    const { ctx } = await worker();
    const { id } = await addRow();
    const row = (await claimRow(env.db, id, new Date(), LEASE_SECONDS * 1000))!;
    await withLeaseHeartbeat(ctx, row, async () => {
      await env.db.tx((sql) => completeRow(sql, id, new Date()));
      await sleep(1200);
    });
    expect(await get(id)).toMatchObject({ status: 'done', locked_until: null });
    expect(warnings).toEqual([]);
  });

  maybe('a call slower than the lease is made once: a second worker reconciling meanwhile never takes its row', async () => {
    const a = await worker();
    const b = await worker();
    const { id, key } = await addRow({ sleepMs: 3500, then: 'complete' });
    const first = a.runner(id, 'partner.refagency');
    // Worker B reconciles every 200 ms (frees expired leases, dispatches what is due to its queue).
    let reconciling = true;
    const loop = (async () => {
      while (reconciling) {
        await reconcileOnce(b.ctx);
        await sleep(200);
      }
    })();
    await first;
    reconciling = false;
    await loop;
    await waitFor(async () => (await b.ctx.dispatcher.pending()) === 0, 5000, 50, 'worker B idle');
    expect(calls.get(key)).toBe(1);
    expect(maxRunning.get(key)).toBe(1);
    expect(await get(id)).toMatchObject({ status: 'done', attempts: 1, last_status: 201 });
  }, 30_000);

  maybe('a call held back by the circuit after renewals is released with its renewed lease (no attempt used)', async () => {
    const { runner } = await worker();
    const { id, key } = await addRow({ sleepMs: 1500, then: 'circuit_open' });
    await runner(id, 'partner.refagency');
    expect(calls.get(key)).toBe(1);
    // Released by the fence on row.locked_until: pending again, due, the attempt given back.
    expect(await get(id)).toMatchObject({ status: 'pending', attempts: 0, locked_until: null });
  });

  maybe('a row a database outage left in flight after renewals is given back with its renewed lease', async () => {
    const { runner } = await worker();
    const { id } = await addRow({ sleepMs: 1500, then: 'db_down' });
    await runner(id, 'partner.refagency');
    expect(await get(id)).toMatchObject({ status: 'in_flight', attempts: 1 });
    expect(await runner.releaseAbandoned()).toBe(1);
    expect(await get(id)).toMatchObject({ status: 'pending', attempts: 0, locked_until: null });
  });
});
