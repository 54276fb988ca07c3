/**
 * Group commit for webhooks (issue 7): verified deliveries that arrive together are stored in ONE
 * transaction — one multi-row INSERT per table — and each request is answered only once that
 * transaction has committed. A PSP never gets a 2xx for an event that is not durably stored
 * (design.md, "The one rule"); what is saved is the per-request BEGIN/INSERT×3/COMMIT and its
 * fsync, which dominate the ingest's cost.
 *
 * A batch is started when it holds `maxItems` events, or `maxWaitMs` after its first delivery
 * came in; at most `maxConcurrent` batches are in the database at once, and deliveries arriving
 * meanwhile wait for the next one (so under load batches grow by themselves).
 *
 * Failure: a batch that fails because the database is unavailable fails every delivery in it with
 * that same error (the route answers 503 + Retry-After, the PSP retries). Any other failure may
 * come from one delivery's data, so the deliveries are then stored one transaction each and each
 * gets its own outcome: one bad delivery never fails the others.
 */
import type { Database, Sql } from '../store/db';
import { DatabaseUnavailable, isConnectionError } from '../store/db';
import type { Dispatcher } from '../queue/dispatcher';
import { addManyToOutbox, type DispatchItem, type OutboxInput } from '../outbox/outbox';
import { recordExchanges, type ExchangeEntry } from '../exchanges/exchange-log';
import { dispatchCommitted } from '../context';

/** One verified event of a delivery, made storable (body-guard.ts) and serialized once. */
export interface IngestEvent {
  providerEventId: string;
  eventType: string;
  occurredAt: string | null;
  /** The payload as JSON text, ready for the jsonb column. */
  payloadJson: string;
  /** Process it no earlier than this (a coalesced unsigned delivery: the window's end, unsigned-coalescer.ts); default now. */
  dueAt?: Date;
}

/** One verified webhook request. */
export interface IngestDelivery {
  merchantId: string;
  provider: string;
  events: IngestEvent[];
  /** The status the PSP will be answered (kept in the sync log). */
  httpStatus: number;
  /** Date.now() when the request came in (for the sync log's latency). */
  started: number;
}

export interface StoredEvent {
  id: number;
  /** False when the event was known already (an earlier delivery or an earlier copy in this batch). */
  inserted: boolean;
}

export interface StoredDelivery {
  /** In the order of the delivery's events. */
  events: StoredEvent[];
  fresh: number;
}

export interface GroupCommitOptions {
  /** Events per transaction before a batch is started without waiting [64]. */
  maxItems?: number;
  /** Longest a delivery waits for others before its batch starts, in ms [2]. */
  maxWaitMs?: number;
  /** Batches in the database at once [4]. */
  maxConcurrent?: number;
  /**
   * Longest a delivery waits for a batch slot (all taken by batches the database does not finish)
   * before it is answered 503 so the PSP retries later, in ms [5000, as the pool's connect timeout].
   */
  maxQueueWaitMs?: number;
}

export interface GroupCommitDeps {
  db: Database;
  dispatcher: Dispatcher;
  now(): Date;
}

interface Waiting {
  delivery: IngestDelivery;
  queuedAt: number;
  resolve(stored: StoredDelivery): void;
  reject(err: unknown): void;
}

export interface WebhookGroupCommit {
  /** Resolves once the delivery's events are committed; rejects with the error that kept them out. */
  store(delivery: IngestDelivery): Promise<StoredDelivery>;
  /** Deliveries waiting or being stored (tests, shutdown). */
  readonly inFlight: number;
}

const sizeOf = (d: IngestDelivery) => Math.max(1, d.events.length);

export function createWebhookGroupCommit(deps: GroupCommitDeps, opts: GroupCommitOptions = {}): WebhookGroupCommit {
  const maxItems = Math.max(1, opts.maxItems ?? 64);
  const maxWaitMs = Math.max(0, opts.maxWaitMs ?? 2);
  const maxConcurrent = Math.max(1, opts.maxConcurrent ?? 4);
  const maxQueueWaitMs = Math.max(1, opts.maxQueueWaitMs ?? 5000);
  let queue: Waiting[] = [];
  let queuedItems = 0;
  let running = 0;
  let storing = 0;
  let timer: NodeJS.Timeout | null = null;
  let watchdog: NodeJS.Timeout | null = null;

  /**
   * Deliveries still queued after maxQueueWaitMs (nothing of theirs is written) are failed as
   * DatabaseUnavailable, as a request waiting that long for a pooled connection was before.
   */
  function armWatchdog(): void {
    if (watchdog || !queue.length) return;
    watchdog = setTimeout(() => {
      watchdog = null;
      const limit = Date.now() - maxQueueWaitMs;
      if (queue.length && queue[0].queuedAt <= limit) {
        const stale = queue.filter((w) => w.queuedAt <= limit);
        queue = queue.filter((w) => w.queuedAt > limit);
        for (const w of stale) queuedItems -= sizeOf(w.delivery);
        const err = new DatabaseUnavailable(new Error(`no transaction could start within ${maxQueueWaitMs} ms`));
        for (const w of stale) w.reject(err);
      }
      armWatchdog();
    }, Math.max(1, Math.ceil(maxQueueWaitMs / 4)));
    watchdog.unref();
  }

  function schedule(): void {
    if (!queue.length || running >= maxConcurrent) return;
    if (queuedItems >= maxItems) {
      start();
      return;
    }
    if (!timer) timer = setTimeout(start, maxWaitMs);
  }

  function start(): void {
    if (timer) {
      clearTimeout(timer);
      timer = null;
    }
    if (!queue.length || running >= maxConcurrent) return;
    // Whole deliveries, up to maxItems events (a delivery larger than that goes alone).
    let n = 0;
    let items = 0;
    while (n < queue.length && (n === 0 || items + sizeOf(queue[n].delivery) <= maxItems)) items += sizeOf(queue[n++].delivery);
    const batch = queue.slice(0, n);
    queue = queue.slice(n);
    queuedItems -= items;
    running++;
    void run(batch).finally(() => {
      running--;
      // Whatever came in meanwhile has waited for this batch already: it goes now.
      if (queue.length) start();
    });
    if (queue.length) schedule();
  }

  async function run(batch: Waiting[]): Promise<void> {
    try {
      const { results, dispatch } = await deps.db.tx((sql) => storeDeliveries(sql, batch.map((w) => w.delivery), deps.now()));
      dispatchCommitted(deps.dispatcher, dispatch);
      batch.forEach((w, i) => w.resolve(results[i]));
      return;
    } catch (err) {
      if (batch.length === 1 || err instanceof DatabaseUnavailable || isConnectionError(err)) {
        const failure = isConnectionError(err) && !(err instanceof DatabaseUnavailable) ? new DatabaseUnavailable(err) : err;
        for (const w of batch) w.reject(failure);
        return;
      }
    }
    // Not the database being away: maybe one delivery's data. Each on its own now.
    for (const w of batch) {
      try {
        const { results, dispatch } = await deps.db.tx((sql) => storeDeliveries(sql, [w.delivery], deps.now()));
        dispatchCommitted(deps.dispatcher, dispatch);
        w.resolve(results[0]);
      } catch (err) {
        w.reject(isConnectionError(err) && !(err instanceof DatabaseUnavailable) ? new DatabaseUnavailable(err) : err);
      }
    }
  }

  return {
    store(delivery) {
      return new Promise<StoredDelivery>((resolve, reject) => {
        storing++;
        const done = () => storing--;
        queue.push({
          delivery,
          queuedAt: Date.now(),
          resolve: (s) => {
            done();
            resolve(s);
          },
          reject: (e) => {
            done();
            reject(e);
          },
        });
        queuedItems += sizeOf(delivery);
        schedule();
        armWatchdog();
      });
    },
    get inFlight() {
      return storing;
    },
  };
}

const CHUNK_ROWS = 500; // multi-row INSERTs stay far below PostgreSQL's 65,535 parameters

const eventKey = (merchantId: string, provider: string, providerEventId: string) => `${merchantId}\u0000${provider}\u0000${providerEventId}`;

interface UniqueEvent {
  key: string;
  merchantId: string;
  provider: string;
  event: IngestEvent;
  /** How many times the batch carries it (each counts as a delivery). */
  copies: number;
}

/**
 * Store the events of several deliveries inside one transaction: inbound_events (deduplicated on
 * merchant + provider + event id, within the batch first: PostgreSQL refuses to update one row
 * twice in one INSERT … ON CONFLICT), an outbox row for each event seen for the first time, and a
 * sync-log entry per event received. Returns each delivery's outcome and the outbox rows to
 * dispatch once the transaction has committed.
 */
export async function storeDeliveries(sql: Sql, deliveries: IngestDelivery[], now: Date): Promise<{ results: StoredDelivery[]; dispatch: DispatchItem[] }> {
  const unique = new Map<string, UniqueEvent>();
  for (const d of deliveries) {
    for (const ev of d.events) {
      const key = eventKey(d.merchantId, d.provider, ev.providerEventId);
      const u = unique.get(key);
      if (u) u.copies++;
      else unique.set(key, { key, merchantId: d.merchantId, provider: d.provider, event: ev, copies: 1 });
    }
  }
  // One lock order for every batch (two batches in flight with the same events never deadlock).
  const rows = [...unique.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const stored = new Map<string, { id: number; inserted: boolean }>();
  for (let start = 0; start < rows.length; start += CHUNK_ROWS) {
    const chunk = rows.slice(start, start + CHUNK_ROWS);
    const values: unknown[] = [now];
    const tuples = chunk.map((u) => {
      const n = values.length;
      values.push(u.merchantId, u.provider, u.event.providerEventId, u.event.eventType, u.event.occurredAt, u.event.payloadJson, u.copies);
      return `($${n + 1},$${n + 2},$${n + 3},$${n + 4},$${n + 5}::timestamptz,$${n + 6}::jsonb,$1::timestamptz,$${n + 7}::int)`;
    });
    const r = await sql.query<{ id: number; inserted: boolean; merchant_id: string; provider: string; provider_event_id: string }>(
      `INSERT INTO inbound_events (merchant_id, provider, provider_event_id, event_type, occurred_at, payload, received_at, deliveries)
       VALUES ${tuples.join(',')}
       ON CONFLICT (merchant_id, provider, provider_event_id) DO UPDATE SET deliveries = inbound_events.deliveries + EXCLUDED.deliveries
       RETURNING id, (xmax = 0) AS inserted, merchant_id, provider, provider_event_id`,
      values,
    );
    for (const x of r.rows) stored.set(eventKey(x.merchant_id, x.provider, x.provider_event_id), { id: Number(x.id), inserted: x.inserted });
  }

  const outbox: OutboxInput[] = [];
  const entries: ExchangeEntry[] = [];
  const firstSeen = new Set<string>();
  const at = Date.now();
  const results = deliveries.map((d): StoredDelivery => {
    let fresh = 0;
    const events = d.events.map((ev): StoredEvent => {
      const key = eventKey(d.merchantId, d.provider, ev.providerEventId);
      const row = stored.get(key);
      if (!row) throw new Error(`inbound event ${ev.providerEventId} was not returned by its INSERT`);
      // Only the first copy in the batch of an event new to the database is new; the others are duplicates of it.
      const inserted = row.inserted && !firstSeen.has(key);
      firstSeen.add(key);
      if (inserted) {
        fresh++;
        outbox.push({ kind: 'process_event', lane: 'hub', payload: { inboundEventId: row.id }, idempotencyKey: `event-${row.id}`, merchantId: d.merchantId, ...(ev.dueAt ? { dueAt: ev.dueAt } : {}) });
      }
      entries.push({
        merchantId: d.merchantId, direction: 'in', party: d.provider, operation: ev.eventType, outcome: inserted ? 'ok' : 'duplicate', httpStatus: d.httpStatus,
        latencyMs: at - d.started, inboundEventId: row.id,
        summary: inserted ? `stored ${ev.providerEventId}` : `duplicate of ${ev.providerEventId}, not processed again`,
        // No `request`: the payload is the inbound event's, stored once (exchange-log.ts inboundRequestView).
        at: now,
      });
      return { id: row.id, inserted };
    });
    return { events, fresh };
  });

  const dispatch = outbox.length ? await addManyToOutbox(sql, outbox, now) : [];
  for (let start = 0; start < entries.length; start += CHUNK_ROWS) await recordExchanges(sql, entries.slice(start, start + CHUNK_ROWS));
  return { results, dispatch };
}
