/**
 * The outbox: every piece of work the hub owes is a row here, written in the same transaction
 * as the state change that caused it (design.md, "The one rule"). Workers claim a row by id
 * with a lease, so a duplicate queue message or a crashed worker never runs it twice at once.
 */
import type { Sql } from '../store/db';
import { redact, redactText } from '../observability/redact';
import type { OutboxPayloads } from './payloads';
import { holdBack } from '../store/deferred';

/**
 * The agency's answer and the error text are kept on the row for people (the dead letter,
 * /v1/deliveries), so they are masked like a log line first: an agency may echo our headers or
 * the debtor's card number back (design.md habit 8).
 */
const keptError = (error: string) => redactText(error).slice(0, 2000);
const keptBody = (body: unknown) => (body === undefined ? null : JSON.stringify(redact(body)));

export const OUTBOX_KINDS = [
  'process_event',
  'handover_check',
  'apply_update',
  'agency.create_case',
  'agency.add_claim',
  'agency.report_payment',
  'agency.withdraw',
  'agency.hold',
  'agency.resume',
  'merchant.webhook',
  'psp.writeback',
  // A failure that went on without its enrichment lookup: look again until the PSP answers (src/pipeline/re-enrich.ts).
  'enrich_event',
] as const;
export type OutboxKind = (typeof OUTBOX_KINDS)[number];

interface OutboxInputBase {
  /** 'hub' for internal stages, `partner.<id>` for calls to one partner (one queue each). */
  lane: string;
  /** Unique per piece of work; also the Idempotency-Key sent to the partner. */
  idempotencyKey: string;
  merchantId?: string | null;
  customerId?: string | null;
  invoiceId?: string | null;
  caseId?: string | null;
  dueAt?: Date;
}

/** A row to write: its kind decides its payload (./payloads.ts). */
export type OutboxInput = { [K in OutboxKind]: OutboxInputBase & { kind: K; payload: OutboxPayloads[K] } }[OutboxKind];

interface OutboxRowBase {
  id: number;
  merchant_id: string | null;
  lane: string;
  idempotency_key: string;
  status: 'pending' | 'in_flight' | 'done' | 'dead' | 'cancelled';
  attempts: number;
  next_attempt_at: Date;
  locked_until: Date | null;
  last_error: string | null;
  last_status: number | null;
  last_response: unknown;
  customer_id: string | null;
  invoice_id: string | null;
  case_id: string | null;
  created_at: Date;
}

/** A row read by a query that does not know its kind (a test, a listing): its payload is not checked. */
export type StoredOutboxRow = OutboxRowBase & { kind: any; payload: any };

/** A stored row; `OutboxRow<'apply_update'>` is one of that kind, with its payload typed (./payloads.ts). */
export type OutboxRow<K extends OutboxKind = OutboxKind> = { [P in K]: OutboxRowBase & { kind: P; payload: OutboxPayloads[P] } }[K];

/** What to hand the queue once the transaction has committed. */
export interface DispatchItem {
  id: number;
  lane: string;
  dueAt: Date;
  attempt: number;
  /** The row's kind when known: lets a worker route it (a batch of process_event) without reading the row. */
  kind?: OutboxKind;
}

export const partnerLane = (partnerId: string) => `partner.${partnerId}`;

/** Insert a row unless one with the same idempotency key exists. Returns the item to dispatch, or null. */
export async function addToOutbox(sql: Sql, row: OutboxInput, now: Date): Promise<DispatchItem | null> {
  const due = row.dueAt ?? now;
  const r = await sql.query<{ id: number }>(
    `INSERT INTO outbox (merchant_id, kind, lane, payload, idempotency_key, next_attempt_at, customer_id, invoice_id, case_id, created_at, updated_at)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$10)
     ON CONFLICT (idempotency_key) DO NOTHING RETURNING id`,
    [row.merchantId ?? null, row.kind, row.lane, JSON.stringify(row.payload), row.idempotencyKey, due, row.customerId ?? null, row.invoiceId ?? null, row.caseId ?? null, now],
  );
  return r.rows[0] ? { id: r.rows[0].id, lane: row.lane, dueAt: due, attempt: 0, kind: row.kind } : null;
}

/**
 * addToOutbox for many rows in one multi-row INSERT (the webhook group commit): rows whose
 * idempotency key exists already (or repeats within `rows`) are skipped. Returns the items to
 * dispatch for the rows inserted, in the order of `rows`.
 */
export async function addManyToOutbox(sql: Sql, rows: OutboxInput[], now: Date): Promise<DispatchItem[]> {
  const out: DispatchItem[] = [];
  const CHUNK = 500; // 10 parameters a row, far below PostgreSQL's 65,535
  for (let start = 0; start < rows.length; start += CHUNK) {
    const chunk = rows.slice(start, start + CHUNK);
    const values: unknown[] = [now];
    const tuples = chunk.map((row) => {
      const n = values.length;
      values.push(row.merchantId ?? null, row.kind, row.lane, JSON.stringify(row.payload), row.idempotencyKey, row.dueAt ?? now, row.customerId ?? null, row.invoiceId ?? null, row.caseId ?? null);
      return `($${n + 1},$${n + 2},$${n + 3},$${n + 4},$${n + 5},$${n + 6}::timestamptz,$${n + 7},$${n + 8},$${n + 9},$1::timestamptz,$1::timestamptz)`;
    });
    const r = await sql.query<{ id: number; idempotency_key: string }>(
      `INSERT INTO outbox (merchant_id, kind, lane, payload, idempotency_key, next_attempt_at, customer_id, invoice_id, case_id, created_at, updated_at)
       VALUES ${tuples.join(',')}
       ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, idempotency_key`,
      values,
    );
    const ids = new Map(r.rows.map((x) => [x.idempotency_key, Number(x.id)]));
    for (const row of chunk) {
      const id = ids.get(row.idempotencyKey);
      if (id === undefined) continue;
      ids.delete(row.idempotencyKey); // a key repeated within rows was inserted once
      out.push({ id, lane: row.lane, dueAt: row.dueAt ?? now, attempt: 0, kind: row.kind });
    }
  }
  return out;
}

/**
 * Calls to one partner about one case keep their order (a payment is reported before the claim
 * is withdrawn, a claim is added after the case exists): a row of a partner lane waits while an
 * older row of the same case in that lane is pending or in flight. A dead older row does not
 * block (it waits for a person; its successors fail or succeed on their own).
 */
const WAITS_FOR_OLDER = `(o.lane LIKE 'partner.%' AND o.case_id IS NOT NULL AND EXISTS (
  SELECT 1 FROM outbox older WHERE older.lane = o.lane AND older.case_id = o.case_id AND older.id < o.id AND older.status IN ('pending', 'in_flight')))`;

/** Take a due row for this worker until `leaseMs` from now. Null if it is not due, taken, finished, or waits for an older row of its case. */
export async function claimRow(sql: Sql, id: number, now: Date, leaseMs: number): Promise<OutboxRow | null> {
  const r = await sql.query<OutboxRow>(
    `UPDATE outbox SET status = 'in_flight', attempts = attempts + 1, locked_until = $3, updated_at = $2
     WHERE id = $1 AND status = 'pending' AND next_attempt_at <= $2
       AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.id = $1 AND ${WAITS_FOR_OLDER})
     RETURNING *`,
    [id, now, new Date(now.getTime() + leaseMs)],
  );
  return r.rows[0] ?? null;
}

/**
 * Give a claimed row back untouched: pending again, the attempt not counted, its due time kept
 * (so it keeps its place in its lane). For work held back before it started (an open circuit)
 * or lost to a database outage. `lockedUntil` fences it: a row another worker has claimed since
 * (after the lease ran out) is left alone.
 */
export async function releaseRow(sql: Sql, id: number, now: Date, lockedUntil: Date | null, why?: string): Promise<boolean> {
  const r = await sql.query(
    `UPDATE outbox SET status = 'pending', locked_until = NULL, attempts = GREATEST(attempts - 1, 0), updated_at = $2,
       last_error = COALESCE($4, last_error)
     WHERE id = $1 AND status = 'in_flight' AND locked_until IS NOT DISTINCT FROM $3`,
    [id, now, lockedUntil, why ? keptError(why) : null],
  );
  return r.rowCount > 0;
}

/**
 * A partner is back (its circuit closed): every row of its lane waiting out a backoff is due now,
 * so the backlog drains oldest first instead of in the scattered order of its retry timers.
 */
export async function wakeLane(sql: Sql, lane: string, now: Date): Promise<number> {
  const r = await sql.query(`UPDATE outbox SET next_attempt_at = $2, updated_at = $2 WHERE lane = $1 AND status = 'pending' AND next_attempt_at > $2`, [lane, now]);
  return r.rowCount;
}

/** The next row of the same case in a partner lane, once this one has finished (it was waiting for it). */
export async function nextInCase(sql: Sql, row: Pick<OutboxRow, 'id' | 'lane' | 'case_id'>): Promise<DispatchItem | null> {
  if (!row.case_id || !row.lane.startsWith('partner.')) return null;
  const r = await sql.query<{ id: number; lane: string; next_attempt_at: Date; attempts: number }>(
    `SELECT id, lane, next_attempt_at, attempts FROM outbox WHERE lane = $1 AND case_id = $2 AND id > $3 AND status = 'pending' ORDER BY id LIMIT 1`,
    [row.lane, row.case_id, row.id],
  );
  const x = r.rows[0];
  return x ? { id: x.id, lane: x.lane, dueAt: new Date(x.next_attempt_at), attempt: x.attempts } : null;
}

export async function completeRow(sql: Sql, id: number, now: Date, response?: { status?: number; body?: unknown }): Promise<void> {
  // In a group of completions: one statement for the group's rows, at the end (src/store/deferred.ts).
  if (holdBack(sql, 'outbox_done', [{ id, now, status: response?.status ?? null, body: keptBody(response?.body) }], completeHeld)) return;
  await sql.query(
    `UPDATE outbox SET status = 'done', done_at = $2, updated_at = $2, locked_until = NULL, last_error = NULL,
       last_status = COALESCE($3, last_status), last_response = COALESCE($4, last_response) WHERE id = $1`,
    [id, now, response?.status ?? null, keptBody(response?.body)],
  );
}

async function completeHeld(sql: Sql, rows: { id: number; now: Date; status: number | null; body: string | null }[]): Promise<void> {
  await sql.query(
    `UPDATE outbox o SET status = 'done', done_at = x.now, updated_at = x.now, locked_until = NULL, last_error = NULL,
       last_status = COALESCE(x.status, o.last_status), last_response = COALESCE(x.body::jsonb, o.last_response)
     FROM unnest($1::bigint[], $2::timestamptz[], $3::int[], $4::text[]) AS x(id, now, status, body) WHERE o.id = x.id`,
    [rows.map((r) => r.id), rows.map((r) => r.now), rows.map((r) => r.status), rows.map((r) => r.body)],
  );
}

export async function cancelRow(sql: Sql, id: number, now: Date, why: string): Promise<void> {
  await sql.query(`UPDATE outbox SET status = 'cancelled', done_at = $2, updated_at = $2, locked_until = NULL, last_error = $3 WHERE id = $1`, [id, now, keptError(why)]);
}

/** Back to pending, due at `dueAt`. `countAttempt: false` for a deferral that is not a failure. */
export async function rescheduleRow(
  sql: Sql,
  id: number,
  now: Date,
  dueAt: Date,
  error: string,
  opts: { countAttempt: boolean; status?: number; body?: unknown },
): Promise<void> {
  await sql.query(
    `UPDATE outbox SET status = 'pending', next_attempt_at = $3, locked_until = NULL, last_error = $4, updated_at = $2,
       attempts = CASE WHEN $5 THEN attempts ELSE attempts - 1 END,
       last_status = $6, last_response = $7 WHERE id = $1`,
    [id, now, dueAt, keptError(error), opts.countAttempt, opts.status ?? null, keptBody(opts.body)],
  );
}

/** The dead letter: kept with the partner's answer until someone retries it. */
export async function deadRow(sql: Sql, id: number, now: Date, error: string, status?: number, body?: unknown): Promise<void> {
  await sql.query(
    `UPDATE outbox SET status = 'dead', locked_until = NULL, last_error = $3, last_status = $4, last_response = $5, updated_at = $2 WHERE id = $1`,
    [id, now, keptError(error), status ?? null, keptBody(body)],
  );
}

/** A dead (or cancelled-by-mistake) row made due again, attempts reset. Returns the item to dispatch. */
export async function retryDeadRow(sql: Sql, id: number, merchantId: string, now: Date): Promise<DispatchItem | null> {
  const r = await sql.query<{ id: number; lane: string }>(
    `UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $3, last_error = NULL, updated_at = $3
     WHERE id = $1 AND merchant_id = $2 AND status = 'dead' RETURNING id, lane`,
    [id, merchantId, now],
  );
  return r.rows[0] ? { id: r.rows[0].id, lane: r.rows[0].lane, dueAt: now, attempt: 0 } : null;
}

/**
 * The reconciler's query: free rows whose lease ran out (their worker died), then list rows due
 * within `horizonMs`, oldest first in each lane and at most `limit` per lane (so one partner's
 * backlog never starves the others). Rows waiting for an older row of their case, and lanes in
 * `skipLanes` (partners whose circuit is open), are left out. Whatever the queue lost, this finds again.
 */
export async function dueRows(
  sql: Sql,
  now: Date,
  horizonMs: number,
  limit: number,
  opts: { skipLanes?: string[]; onlyLane?: string } = {},
): Promise<DispatchItem[]> {
  await sql.query(`UPDATE outbox SET status = 'pending', locked_until = NULL, updated_at = $1 WHERE status = 'in_flight' AND locked_until < $1`, [now]);
  const r = await sql.query<{ id: number; lane: string; next_attempt_at: Date; attempts: number; kind: OutboxKind }>(
    `SELECT id, lane, next_attempt_at, attempts, kind FROM (
       SELECT o.id, o.lane, o.next_attempt_at, o.attempts, o.kind, row_number() OVER (PARTITION BY o.lane ORDER BY o.id) AS n
       FROM outbox o
       WHERE o.status = 'pending' AND o.next_attempt_at <= $1 AND NOT (o.lane = ANY($3::text[])) AND ($4::text IS NULL OR o.lane = $4)
         AND NOT ${WAITS_FOR_OLDER}
     ) due WHERE n <= $2 ORDER BY lane, id`,
    [new Date(now.getTime() + horizonMs), limit, opts.skipLanes ?? [], opts.onlyLane ?? null],
  );
  return r.rows.map((x) => ({ id: x.id, lane: x.lane, dueAt: new Date(x.next_attempt_at), attempt: x.attempts, kind: x.kind }));
}

/** Exponential backoff with jitter (design.md habit 7): half fixed, half random, capped; Retry-After wins when longer. */
export function backoffMs(attempt: number, baseMs: number, maxMs: number, retryAfterMs?: number, random: () => number = Math.random): number {
  const exp = Math.min(maxMs, baseMs * 2 ** Math.max(0, attempt - 1));
  const jittered = exp / 2 + random() * (exp / 2);
  return Math.max(jittered, retryAfterMs ?? 0);
}
