/**
 * The webhook group commit (src/ingest/group-commit.ts) against both backends, over real HTTP
 * through the webhook route: concurrent deliveries are stored together in one transaction, the
 * same event twice in one batch is one event and one outbox row, a batch whose transaction fails
 * answers every request 503 and keeps nothing, one delivery's bad data fails only that delivery,
 * and no request is answered before the transaction holding its events has committed.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { HubContext } from '../../src/context';
import { parseConfig } from '../../src/config/load';
import { createLogger } from '../../src/observability/logger';
import { createMetrics } from '../../src/observability/metrics';
import { webhookRouter } from '../../src/http/webhooks';
import { errorHandler } from '../../src/http/errors';
import { DatabaseUnavailable, type Database, type Sql } from '../../src/store/db';
import type { Dispatcher } from '../../src/queue/dispatcher';
import type { DispatchItem } from '../../src/outbox/outbox';
import { createWebhookGroupCommit, type IngestDelivery } from '../../src/ingest/group-commit';
import { signStripe, stripeEvents } from '../../sim/psp/stripe-events';
import { SECRETS, testConfigYaml } from '../support/stack';
import { BACKENDS, sleep, type Backend, type BackendEnv } from './backends';

let seq = 0;
const tag = () => `${Date.now().toString(36)}${++seq}`;
const nowS = () => Math.floor(Date.now() / 1000);

function failedPayment() {
  const t = tag();
  return stripeEvents.paymentFailed({ invoice: `in_gc${t}`, customer: `cus_gc${t}`, amount: 4200, number: `GC-${t}`, created: nowS() - 86_400, nextPaymentAttempt: null, failureCode: 'insufficient_funds' });
}

/** A database whose transactions the test can watch, hold and break. */
interface Probe {
  db: Database;
  /** Transactions started (batches, and each fallback transaction). */
  txs: number;
  /** Runs inside the transaction after the batch's statements, before COMMIT (hold it, or throw). */
  beforeCommit?: (sql: Sql) => Promise<void>;
  /** Set each time a transaction has committed. */
  commits: number[];
}

function probe(db: Database): Probe {
  const p: Probe = {
    txs: 0,
    commits: [],
    db: {
      ...db,
      kind: db.kind,
      query: (text, params) => db.query(text, params),
      async tx(fn) {
        p.txs++;
        const out = await db.tx(async (sql) => {
          const r = await fn(sql);
          if (p.beforeCommit) await p.beforeCommit(sql);
          return r;
        });
        p.commits.push(Date.now());
        return out;
      },
    },
  };
  return p;
}

describe.each<Backend>(BACKENDS)('webhook group commit ($name)', (backend) => {
  let env: BackendEnv;
  let available = true;
  let dispatcher: Dispatcher;
  let dispatched: DispatchItem[] = [];
  let p: Probe;
  let server: http.Server;
  let base = '';

  beforeAll(async () => {
    available = await backend.available();
    if (!available) return;
    env = await backend.open();
    const inner = env.newDispatcher();
    dispatcher = { ...inner, kind: inner.kind, dispatch: async (items) => void dispatched.push(...items), pending: () => inner.pending(), close: () => inner.close() };
    p = probe(env.db);
    const config = parseConfig(testConfigYaml({ simUrl: 'http://127.0.0.1:9', hubPort: 1, handoverAfterDays: 0, minAmount: 0, stackWindowDays: 7 }));
    const ctx = {
      config,
      db: p.db,
      dispatcher,
      clock: { now: () => new Date() },
      logger: createLogger({ silent: true }),
      metrics: createMetrics(),
      merchants: new Map(config.merchants.map((m) => [m.id, m])),
    } as unknown as HubContext;
    const app = express();
    // A generous window, so requests sent together are certainly in one batch.
    app.use(webhookRouter(ctx, { groupCommit: { maxWaitMs: 100, maxItems: 64, maxConcurrent: 2 } }));
    app.use(errorHandler(ctx.logger));
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }, 30_000);

  afterAll(async () => {
    if (server) await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
    if (env) await env.cleanup();
  }, 30_000);

  beforeEach(() => {
    if (!available) return;
    dispatched = [];
    p.beforeCommit = undefined;
    p.txs = 0;
    p.commits = [];
  });

  const maybe = (name: string, fn: () => Promise<void>, timeout = 25_000) =>
    it(name, async () => {
      if (!available) return;
      await fn();
    }, timeout);

  /** POST a signed event; resolves with the status, body and when the answer came. */
  async function send(event: unknown, merchant: 'acme' | 'globex' = 'acme') {
    const { body, header } = signStripe(event, SECRETS.stripe[merchant]);
    const r = await fetch(`${base}/v1/webhooks/stripe/${merchant}`, { method: 'POST', headers: { 'content-type': 'application/json', 'stripe-signature': header }, body });
    const answeredAt = Date.now();
    return { status: r.status, retryAfter: r.headers.get('retry-after'), body: (await r.json()) as any, answeredAt };
  }

  const storedEvents = (ids: string[]) =>
    env.db.query<{ id: number; provider_event_id: string; deliveries: number }>(`SELECT id, provider_event_id, deliveries FROM inbound_events WHERE provider_event_id = ANY($1::text[]) ORDER BY id`, [ids]);
  const outboxOf = (eventIds: number[]) =>
    env.db.query<{ id: number; idempotency_key: string }>(`SELECT id, idempotency_key FROM outbox WHERE idempotency_key = ANY($1::text[])`, [eventIds.map((id) => `event-${id}`)]);
  const exchangesOf = (eventIds: number[]) =>
    env.db.query<{ inbound_event_id: number; outcome: string; request: unknown }>(`SELECT inbound_event_id, outcome, request FROM exchanges WHERE inbound_event_id = ANY($1::bigint[]) ORDER BY id`, [eventIds]);

  maybe('stores concurrent deliveries in one transaction, the same event id twice as one event with one outbox row', async () => {
    const twice = failedPayment();
    const others = [failedPayment(), failedPayment(), failedPayment()];
    const answers = await Promise.all([send(twice), send(others[0]), send(twice), send(others[1]), send(others[2], 'globex')]);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);
    // All five came in within the window: one transaction for all of them.
    expect(p.txs).toBe(1);

    // The duplicated event: one of its two deliveries is new, the other a duplicate.
    const dup = [answers[0], answers[2]];
    expect(dup.map((a) => a.body.new).sort()).toEqual([0, 1]);
    for (const a of [answers[1], answers[3], answers[4]]) expect(a.body).toEqual({ received: true, events: 1, new: 1 });

    const stored = (await storedEvents([twice.id, ...others.map((o) => o.id)])).rows;
    expect(stored).toHaveLength(4);
    const dupRow = stored.find((s) => s.provider_event_id === twice.id)!;
    expect(dupRow.deliveries).toBe(2);
    const ob = (await outboxOf(stored.map((s) => s.id))).rows;
    expect(ob.map((o) => o.idempotency_key).sort()).toEqual(stored.map((s) => `event-${s.id}`).sort());
    // The queue is a doorbell for process_event rows (src/outbox/batch.ts): one message for the
    // commit, the newest row's; the batch loop it wakes claims all of them.
    expect(dispatched.map((d) => d.id)).toEqual([Math.max(...ob.map((o) => Number(o.id)))]);
    expect(dispatched.every((d) => d.kind === 'process_event')).toBe(true);

    // The sync log: one entry per delivery, the second copy a duplicate; no copy of the payload.
    const log = (await exchangesOf(stored.map((s) => s.id))).rows;
    expect(log).toHaveLength(5);
    expect(log.filter((x) => Number(x.inbound_event_id) === Number(dupRow.id)).map((x) => x.outcome).sort()).toEqual(['duplicate', 'ok']);
    expect(log.every((x) => x.request === null)).toBe(true);

    // Delivered again later (another batch): a duplicate, counted, nothing new to do.
    const again = await send(twice);
    expect(again.body).toEqual({ received: true, events: 1, new: 0 });
    expect((await storedEvents([twice.id])).rows[0].deliveries).toBe(3);
    expect((await outboxOf([dupRow.id])).rows).toHaveLength(1);
  });

  maybe('the same event id delivered 12 times at once is stored once, with one outbox row and deliveries = 12', async () => {
    const ev = failedPayment();
    const answers = await Promise.all(Array.from({ length: 12 }, () => send(ev)));
    expect(answers.every((a) => a.status === 200)).toBe(true);
    expect(answers.filter((a) => a.body.new === 1)).toHaveLength(1);
    const stored = (await storedEvents([ev.id])).rows;
    expect(stored).toHaveLength(1);
    expect(stored[0].deliveries).toBe(12);
    expect((await outboxOf([stored[0].id])).rows).toHaveLength(1);
  });

  maybe('answers every request of a batch 503 with Retry-After when its transaction fails, and keeps none of it', async () => {
    p.beforeCommit = async () => {
      throw new DatabaseUnavailable(new Error('Connection terminated unexpectedly'));
    };
    const events = [failedPayment(), failedPayment(), failedPayment(), failedPayment()];
    const answers = await Promise.all(events.map((e) => send(e)));
    expect(answers.map((a) => a.status)).toEqual([503, 503, 503, 503]);
    expect(answers.every((a) => a.retryAfter === '30')).toBe(true);
    expect(answers[0].body.error.code).toBe('unavailable');
    expect(p.txs).toBe(1); // the database being away is not retried one by one
    expect((await storedEvents(events.map((e) => e.id))).rows).toHaveLength(0);
    expect(dispatched).toEqual([]);

    // The PSP retries once the database is back: stored then.
    p.beforeCommit = undefined;
    const retried = await Promise.all(events.map((e) => send(e)));
    expect(retried.map((a) => a.body.new)).toEqual([1, 1, 1, 1]);
    expect((await storedEvents(events.map((e) => e.id))).rows).toHaveLength(4);
  });

  maybe('a connection lost mid-batch (the server ends it) answers 503 and keeps nothing', async () => {
    if (backend.mode !== 'services') return; // PGlite has no connection to lose
    let killed = false;
    p.beforeCommit = async (sql) => {
      if (killed) return;
      killed = true;
      await sql.query('SELECT pg_terminate_backend(pg_backend_pid())').catch(() => undefined);
      await sql.query('SELECT 1'); // the connection is gone: this fails
    };
    const events = [failedPayment(), failedPayment(), failedPayment()];
    const answers = await Promise.all(events.map((e) => send(e)));
    expect(answers.map((a) => a.status)).toEqual([503, 503, 503]);
    expect((await storedEvents(events.map((e) => e.id))).rows).toHaveLength(0);
  });

  maybe('answers no request before the transaction holding its events has committed', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let held = 0;
    p.beforeCommit = async () => {
      held++;
      await gate;
    };
    const events = [failedPayment(), failedPayment(), failedPayment()];
    let answered = 0;
    const pending = events.map((e) => send(e).then((a) => (answered++, a)));
    await waitUntil(() => held > 0);
    // The batch's rows are written but not committed: nobody has an answer yet, whatever the wait.
    await sleep(300);
    expect(answered).toBe(0);
    if (backend.mode === 'services') expect((await storedEvents(events.map((e) => e.id))).rows).toHaveLength(0); // not visible outside
    const releasedAt = Date.now();
    release();
    const answers = await Promise.all(pending);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200]);
    expect(p.commits.length).toBeGreaterThan(0);
    for (const a of answers) expect(a.answeredAt).toBeGreaterThanOrEqual(releasedAt);
    expect((await storedEvents(events.map((e) => e.id))).rows).toHaveLength(3);
  });

  maybe('does not wait for the queue: answered while the dispatch is still pending', async () => {
    const never = new Promise<void>(() => undefined);
    const saved = dispatcher.dispatch;
    dispatcher.dispatch = async (items) => {
      dispatched.push(...items);
      await never;
    };
    try {
      const a = await send(failedPayment());
      expect(a.status).toBe(200);
      expect(dispatched).toHaveLength(1);
    } finally {
      dispatcher.dispatch = saved;
    }
  });

  maybe('a delivery whose data the database refuses fails alone; the others of its batch are stored', async () => {
    const committer = createWebhookGroupCommit({ db: p.db, dispatcher, now: () => new Date() }, { maxWaitMs: 100, maxItems: 64 });
    const delivery = (id: string, occurredAt: string | null): IngestDelivery => ({
      merchantId: 'acme',
      provider: 'stripe',
      httpStatus: 200,
      started: Date.now(),
      events: [{ providerEventId: id, eventType: 'invoice.payment_failed', occurredAt, payloadJson: JSON.stringify({ id }) }],
    });
    const good = [`evt_ok1_${tag()}`, `evt_ok2_${tag()}`];
    const bad = `evt_bad_${tag()}`;
    const outcomes = await Promise.allSettled([
      committer.store(delivery(good[0], new Date().toISOString())),
      committer.store(delivery(bad, 'not a time at all')),
      committer.store(delivery(good[1], null)),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect((outcomes[1] as PromiseRejectedResult).reason).not.toBeInstanceOf(DatabaseUnavailable);
    // One batch that failed, then each delivery on its own.
    expect(p.txs).toBe(4);
    expect((await storedEvents([...good, bad])).rows.map((r) => r.provider_event_id).sort()).toEqual([...good].sort());
    expect(committer.inFlight).toBe(0);
  });

  maybe('answers 503 a delivery that waits too long for a batch slot, and writes nothing of it', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    p.beforeCommit = () => gate;
    const committer = createWebhookGroupCommit({ db: p.db, dispatcher, now: () => new Date() }, { maxWaitMs: 1, maxConcurrent: 1, maxQueueWaitMs: 200 });
    const one = (id: string): IngestDelivery => ({ merchantId: 'acme', provider: 'stripe', httpStatus: 200, started: Date.now(), events: [{ providerEventId: id, eventType: 'x', occurredAt: null, payloadJson: '{}' }] });
    const first = `evt_slow1_${tag()}`;
    const second = `evt_slow2_${tag()}`;
    const a = committer.store(one(first));
    await waitUntil(() => p.txs === 1);
    const b = committer.store(one(second)); // the only slot is held by the first batch
    const t0 = Date.now();
    await expect(b).rejects.toBeInstanceOf(DatabaseUnavailable);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    release();
    await expect(a).resolves.toMatchObject({ fresh: 1 });
    expect((await storedEvents([first, second])).rows.map((r) => r.provider_event_id)).toEqual([first]);
    expect(p.txs).toBe(1);
  });

  maybe('the same event twice within one delivery is one event, the second copy a duplicate', async () => {
    const committer = createWebhookGroupCommit({ db: p.db, dispatcher, now: () => new Date() });
    const id = `evt_twice_${tag()}`;
    const ev = { providerEventId: id, eventType: 'x', occurredAt: null, payloadJson: '{"n":1}' };
    const stored = await committer.store({ merchantId: 'acme', provider: 'stripe', httpStatus: 200, started: Date.now(), events: [ev, ev] });
    expect(stored.fresh).toBe(1);
    expect(stored.events.map((e) => e.inserted)).toEqual([true, false]);
    expect(stored.events[0].id).toBe(stored.events[1].id);
    expect((await storedEvents([id])).rows[0].deliveries).toBe(2);
    expect((await outboxOf([stored.events[0].id])).rows).toHaveLength(1);
  });
});

async function waitUntil(fn: () => boolean, timeoutMs = 5000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > until) throw new Error('timed out');
    await sleep(5);
  }
}
