/**
 * The store and the outbox against both databases (in-memory PGlite, a fresh PostgreSQL
 * database): migrations, ingress dedupe, outbox idempotency, claims with a lease, retries,
 * the dead letter, and a rolled-back transaction taking its outbox row (and dispatch) with it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { migrate } from '../../src/store/migrate';
import { createPglite } from '../../src/store/pglite';
import { createPostgres } from '../../src/store/postgres';
import { makeCommit } from '../../src/context';
import {
  addToOutbox,
  backoffMs,
  claimRow,
  deadRow,
  dueRows,
  rescheduleRow,
  retryDeadRow,
  type DispatchItem,
  type OutboxInput,
  type OutboxRow,
} from '../../src/outbox/outbox';
import type { Sql } from '../../src/store/db';
import type { Dispatcher } from '../../src/queue/dispatcher';
import { createTestDatabase } from '../support/services';
import { BACKENDS, type Backend, type BackendEnv } from './backends';

/** Every migration file, in the order they must apply (the first is the schema itself). */
const MIGRATIONS = fs.readdirSync(path.join(__dirname, '../../src/store/migrations')).filter((f) => f.endsWith('.sql')).sort();

let seq = 0;
const key = (what: string) => `${what}-${Date.now().toString(36)}-${++seq}`;
const row = (over: Partial<OutboxInput> = {}): OutboxInput => ({
  kind: 'agency.create_case',
  lane: 'partner.refagency',
  payload: { caseId: 'case_1', claimIds: [] },
  idempotencyKey: key('ob'),
  merchantId: 'acme',
  ...over,
}) as OutboxInput;

/** The statement ingress runs for every event (src/http/webhooks.ts), verbatim. */
const INGRESS_SQL = `INSERT INTO inbound_events (merchant_id, provider, provider_event_id, event_type, occurred_at, payload, received_at)
             VALUES ($1,$2,$3,$4,$5,$6,$7)
             ON CONFLICT (merchant_id, provider, provider_event_id) DO UPDATE SET deliveries = inbound_events.deliveries + 1
             RETURNING id, (xmax = 0) AS inserted`;

describe.each<Backend>(BACKENDS)('store and outbox ($name)', (backend) => {
  let env: BackendEnv;
  let available = true;

  beforeAll(async () => {
    available = await backend.available();
    if (available) env = await backend.open();
  }, 30_000);

  afterAll(async () => {
    if (env) await env.cleanup();
  }, 30_000);

  const maybe = (name: string, fn: () => Promise<void>, timeout = 20_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  const add = (input: OutboxInput, now: Date) => env.db.tx((sql) => addToOutbox(sql, input, now));
  const get = async (id: number) => (await env.db.query<OutboxRow>('SELECT * FROM outbox WHERE id = $1', [id])).rows[0];

  describe('migrations', () => {
    maybe('apply once on a fresh database and a second run applies nothing', async () => {
      expect(MIGRATIONS[0]).toBe('001_init.sql');
      expect(env.firstMigration).toEqual(MIGRATIONS);
      expect(await migrate(env.db)).toEqual([]);
      const versions = await env.db.query<{ version: string }>('SELECT version FROM schema_migrations ORDER BY version');
      expect(versions.rows.map((r) => r.version)).toEqual(MIGRATIONS);
      const tables = await env.db.query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('outbox','inbound_events','cases','claims','invoices') ORDER BY table_name`,
      );
      expect(tables.rows.map((r) => r.table_name)).toEqual(['cases', 'claims', 'inbound_events', 'invoices', 'outbox']);
    });

    maybe('two migrate runs started together on a fresh database apply the schema exactly once', async () => {
      if (backend.mode === 'embedded') {
        const fresh = await createPglite();
        try {
          const [a, b] = await Promise.all([migrate(fresh), migrate(fresh)]);
          expect([...a, ...b]).toEqual(MIGRATIONS);
        } finally {
          await fresh.close();
        }
        return;
      }
      // Two pools = two processes starting at once (the advisory lock's promise in migrate.ts).
      const pg = await createTestDatabase();
      const one = createPostgres(pg.url, { max: 2 });
      const two = createPostgres(pg.url, { max: 2 });
      try {
        const results = await Promise.allSettled([migrate(one), migrate(two)]);
        const errors = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
        expect(errors).toEqual([]);
        const applied = results.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
        expect(applied).toEqual(MIGRATIONS);
      } finally {
        await one.close();
        await two.close();
        await pg.drop();
      }
    });
  });

  describe('inbound event dedupe (ingress SQL)', () => {
    maybe('the same (merchant, provider, event id) delivered 20 times at once is stored once with deliveries = 20', async () => {
      const eventId = key('evt');
      const now = new Date();
      const results = await Promise.all(
        Array.from({ length: 20 }, () =>
          env.db.tx((sql) =>
            sql.query<{ id: number; inserted: boolean }>(INGRESS_SQL, ['acme', 'stripe', eventId, 'invoice.payment_failed', now, JSON.stringify({ id: eventId }), now]),
          ),
        ),
      );
      const rows = results.map((r) => r.rows[0]);
      expect(rows.filter((r) => r.inserted === true)).toHaveLength(1);
      expect(rows.filter((r) => r.inserted === false)).toHaveLength(19);
      expect(new Set(rows.map((r) => Number(r.id))).size).toBe(1);
      const stored = await env.db.query<{ n: number; deliveries: number }>(
        `SELECT count(*)::int AS n, max(deliveries)::int AS deliveries FROM inbound_events WHERE merchant_id = 'acme' AND provider = 'stripe' AND provider_event_id = $1`,
        [eventId],
      );
      expect(stored.rows[0]).toEqual({ n: 1, deliveries: 20 });
    });

    maybe('the same event id for another merchant or provider is a different event', async () => {
      const eventId = key('evt');
      const now = new Date();
      const insert = (merchant: string, provider: string) =>
        env.db.query<{ inserted: boolean }>(INGRESS_SQL, [merchant, provider, eventId, 'x', null, '{}', now]).then((r) => r.rows[0].inserted);
      expect(await insert('acme', 'stripe')).toBe(true);
      expect(await insert('globex', 'stripe')).toBe(true);
      expect(await insert('acme', 'mollie')).toBe(true);
      expect(await insert('acme', 'stripe')).toBe(false);
    });
  });

  describe('outbox', () => {
    maybe('the same idempotency key added twice makes one row; the second add returns null', async () => {
      const now = new Date();
      const input = row();
      const first = await add(input, now);
      const second = await add({ ...input, payload: { caseId: 'other', claimIds: [] } } as OutboxInput, now);
      expect(first).toEqual({ id: expect.any(Number), lane: 'partner.refagency', dueAt: now, attempt: 0, kind: 'agency.create_case' });
      expect(second).toBeNull();
      const rows = await env.db.query<OutboxRow>('SELECT * FROM outbox WHERE idempotency_key = $1', [input.idempotencyKey]);
      expect(rows.rows).toHaveLength(1);
      expect(rows.rows[0]).toMatchObject({ id: first!.id, status: 'pending', attempts: 0, payload: { caseId: 'case_1' } });
    });

    maybe('20 concurrent claims of one due row: exactly one wins', async () => {
      const now = new Date();
      const item = (await add(row(), now))!;
      const claims = await Promise.all(Array.from({ length: 20 }, () => env.db.tx((sql) => claimRow(sql, item.id, now, 30_000))));
      const won = claims.filter((c): c is OutboxRow => c !== null);
      expect(won).toHaveLength(1);
      expect(won[0]).toMatchObject({ id: item.id, status: 'in_flight', attempts: 1 });
      expect(new Date(won[0].locked_until!).getTime()).toBe(now.getTime() + 30_000);
      expect(await get(item.id)).toMatchObject({ status: 'in_flight', attempts: 1 });
    });

    maybe('a row that is not yet due is neither claimable nor listed as due', async () => {
      const now = new Date();
      const later = new Date(now.getTime() + 60_000);
      const item = (await add(row({ dueAt: later }), now))!;
      expect(item.dueAt).toEqual(later);
      expect(await env.db.tx((sql) => claimRow(sql, item.id, now, 30_000))).toBeNull();
      expect((await env.db.tx((sql) => dueRows(sql, now, 0, 10_000))).map((d) => d.id)).not.toContain(item.id);
      // Inside the reconciler's horizon it is listed (dispatched with its delay), and once due it is claimable.
      expect((await env.db.tx((sql) => dueRows(sql, now, 61_000, 10_000))).map((d) => d.id)).toContain(item.id);
      const claimed = await env.db.tx((sql) => claimRow(sql, item.id, new Date(later.getTime() + 1), 30_000));
      expect(claimed).toMatchObject({ id: item.id, status: 'in_flight', attempts: 1 });
    });

    maybe('an in-flight row whose lease ran out is freed and listed by dueRows again', async () => {
      const t0 = new Date();
      const item = (await add(row(), t0))!;
      expect(await env.db.tx((sql) => claimRow(sql, item.id, t0, 1000))).not.toBeNull();

      const beforeExpiry = await env.db.tx((sql) => dueRows(sql, new Date(t0.getTime() + 500), 0, 10_000));
      expect(beforeExpiry.map((d) => d.id)).not.toContain(item.id);
      expect(await get(item.id)).toMatchObject({ status: 'in_flight' });
      // While the lease holds, nobody else can claim it.
      expect(await env.db.tx((sql) => claimRow(sql, item.id, new Date(t0.getTime() + 500), 1000))).toBeNull();

      const afterExpiry = await env.db.tx((sql) => dueRows(sql, new Date(t0.getTime() + 2000), 0, 10_000));
      expect(afterExpiry.find((d) => d.id === item.id)).toEqual({ id: item.id, lane: 'partner.refagency', dueAt: t0, attempt: 1, kind: 'agency.create_case' });
      expect(await get(item.id)).toMatchObject({ status: 'pending', locked_until: null, attempts: 1 });
      expect(await env.db.tx((sql) => claimRow(sql, item.id, new Date(t0.getTime() + 2000), 1000))).toMatchObject({ attempts: 2 });
    });

    maybe('rescheduleRow counts a failure as an attempt and a deferral (countAttempt false) not', async () => {
      const t0 = new Date();
      const item = (await add(row(), t0))!;
      await env.db.tx((sql) => claimRow(sql, item.id, t0, 30_000));
      const retryAt = new Date(t0.getTime() + 5000);
      await env.db.tx((sql) => rescheduleRow(sql, item.id, t0, retryAt, 'agency 503', { countAttempt: true, status: 503, body: { error: 'x' } }));
      const failed = await get(item.id);
      expect(failed).toMatchObject({ status: 'pending', attempts: 1, locked_until: null, last_error: 'agency 503', last_status: 503, last_response: { error: 'x' } });
      expect(new Date(failed.next_attempt_at).getTime()).toBe(retryAt.getTime());

      await env.db.tx((sql) => claimRow(sql, item.id, retryAt, 30_000));
      expect(await get(item.id)).toMatchObject({ attempts: 2, status: 'in_flight' });
      const deferTo = new Date(retryAt.getTime() + 60_000);
      await env.db.tx((sql) => rescheduleRow(sql, item.id, retryAt, deferTo, 'case not open yet', { countAttempt: false }));
      const deferred = await get(item.id);
      expect(deferred).toMatchObject({ status: 'pending', attempts: 1, last_error: 'case not open yet', locked_until: null });
      expect(new Date(deferred.next_attempt_at).getTime()).toBe(deferTo.getTime());
    });

    maybe('a dead row is retried for its own merchant only, with attempts reset', async () => {
      const t0 = new Date();
      const item = (await add(row({ merchantId: 'acme' }), t0))!;
      await env.db.tx((sql) => claimRow(sql, item.id, t0, 30_000));
      // Not dead yet: nothing to retry.
      expect(await env.db.tx((sql) => retryDeadRow(sql, item.id, 'acme', t0))).toBeNull();
      await env.db.tx((sql) => deadRow(sql, item.id, t0, 'agency said 422', 422, { error: { code: 'invalid_debtor' } }));
      expect(await get(item.id)).toMatchObject({ status: 'dead', attempts: 1, last_status: 422, last_response: { error: { code: 'invalid_debtor' } }, locked_until: null });

      const t1 = new Date(t0.getTime() + 1000);
      expect(await env.db.tx((sql) => retryDeadRow(sql, item.id, 'globex', t1))).toBeNull();
      expect(await get(item.id)).toMatchObject({ status: 'dead', attempts: 1 });

      const retried = await env.db.tx((sql) => retryDeadRow(sql, item.id, 'acme', t1));
      expect(retried).toEqual({ id: item.id, lane: 'partner.refagency', dueAt: t1, attempt: 0 });
      expect(await get(item.id)).toMatchObject({ status: 'pending', attempts: 0, last_error: null });
      expect(await env.db.tx((sql) => claimRow(sql, item.id, t1, 30_000))).toMatchObject({ id: item.id, attempts: 1 });
    });
  });

  describe('a transaction through makeCommit', () => {
    const recording = (d: Dispatcher) => {
      const dispatched: DispatchItem[] = [];
      const wrapped: Dispatcher = { ...d, kind: d.kind, dispatch: async (items) => { dispatched.push(...items); await d.dispatch(items); } };
      return { dispatched, wrapped };
    };
    const clock = { now: () => new Date() };
    const stateChange = (sql: Sql, eventId: string) => sql.query(INGRESS_SQL, ['rollback-merchant', 'stripe', eventId, 'x', null, '{}', new Date()]);

    maybe('that throws rolls back its state change and its outbox row, and dispatches nothing', async () => {
      const d = env.newDispatcher();
      try {
        const { dispatched, wrapped } = recording(d);
        const commit = makeCommit(env.db, wrapped, clock);
        const eventId = key('evt');
        const obKey = key('rollback');
        await expect(
          commit(async (sql, outbox) => {
            await stateChange(sql, eventId);
            await outbox.add(row({ idempotencyKey: obKey, kind: 'process_event', lane: 'hub' }));
            throw new Error('boom after the outbox row');
          }),
        ).rejects.toThrow('boom after the outbox row');
        expect((await env.db.query('SELECT id FROM inbound_events WHERE provider_event_id = $1', [eventId])).rows).toHaveLength(0);
        expect((await env.db.query('SELECT id FROM outbox WHERE idempotency_key = $1', [obKey])).rows).toHaveLength(0);
        expect(dispatched).toEqual([]);
        expect(await d.pending()).toBe(0);

        // The same work committed: both rows are there and the one outbox id is dispatched.
        const okKey = key('commit');
        await commit(async (sql, outbox) => {
          await stateChange(sql, eventId);
          await outbox.add(row({ idempotencyKey: okKey, kind: 'process_event', lane: 'hub' }));
        });
        const ob = await env.db.query<{ id: number }>('SELECT id FROM outbox WHERE idempotency_key = $1', [okKey]);
        expect(ob.rows).toHaveLength(1);
        expect((await env.db.query('SELECT id FROM inbound_events WHERE provider_event_id = $1', [eventId])).rows).toHaveLength(1);
        expect(dispatched.map((x) => x.id)).toEqual([ob.rows[0].id]);
        expect(await d.pending()).toBe(1);
      } finally {
        await d.close();
      }
    });
  });
});

describe('backoffMs', () => {
  const low = () => 0;
  const high = () => 0.999999;

  it('doubles per attempt, jittered between half and all of the step', () => {
    expect([1, 2, 3, 4].map((a) => backoffMs(a, 100, 60_000, undefined, low))).toEqual([50, 100, 200, 400]);
    expect([1, 2, 3, 4].map((a) => Math.round(backoffMs(a, 100, 60_000, undefined, high)))).toEqual([100, 200, 400, 800]);
    expect(backoffMs(3, 100, 60_000, undefined, () => 0.5)).toBe(300);
  });

  it('stays within [step/2, step] for random jitter', () => {
    for (let i = 0; i < 200; i++) {
      const v = backoffMs(5, 100, 60_000);
      expect(v).toBeGreaterThanOrEqual(800);
      expect(v).toBeLessThanOrEqual(1600);
    }
  });

  it('is capped at maxMs however many attempts', () => {
    expect(backoffMs(10, 100, 2000, undefined, high)).toBeLessThanOrEqual(2000);
    expect(backoffMs(10, 100, 2000, undefined, low)).toBe(1000);
    expect(backoffMs(10_000, 100, 2000, undefined, high)).toBeLessThanOrEqual(2000);
    expect(Number.isFinite(backoffMs(10_000, 100, 2000))).toBe(true);
  });

  it('treats attempt 0 like the first attempt', () => {
    expect(backoffMs(0, 100, 2000, undefined, low)).toBe(50);
  });

  it('honours Retry-After when it is longer than the backoff, and ignores it when shorter', () => {
    expect(backoffMs(1, 100, 2000, 5000, high)).toBe(5000);
    expect(backoffMs(1, 100, 2000, 30_000, low)).toBe(30_000);
    expect(backoffMs(4, 100, 60_000, 10, low)).toBe(400);
  });
});
