/**
 * Stage 2 of the data flow (design.md): a stored raw event → its connector's normalize →
 * the ledger → the policy's outbox rows, all committed with the outbox row marked done. A
 * hand-over the ledger finds due at once is decided in the same transaction (handover-check.ts).
 */
import type { HubContext, MerchantSettings, OutboxWriter } from '../context';
import type { Sql } from '../store/db';
import type { OutboxRow } from '../outbox/outbox';
import { completeRow } from '../outbox/outbox';
import { pspConnectors } from '../../connectors/registry';
import { applyPaymentEvent } from '../ledger/payment-ledger';
import { Permanent } from './errors';
import { checkHandovers, type HandoverSubject } from './handover-check';
import type { PaymentEvent } from '../domain/types';

export interface InboundEventRow {
  id: number;
  merchant_id: string;
  provider: string;
  provider_event_id: string;
  event_type: string;
  occurred_at: Date | null;
  payload: unknown;
  status: string;
}

/** A stored event made ready to apply: its row, its merchant and the connector's normalized event. */
export interface PreparedEvent {
  stored: InboundEventRow;
  merchant: MerchantSettings;
  event: PaymentEvent;
}

export interface AppliedEvent {
  customerId: string | null;
  invoiceId: string | null;
  note: string;
  handover?: string[];
  /** The hand-over checks the event made due at once, for the caller to run (checkHandovers; a batch runs all of its events' together). */
  checks?: HandoverSubject[];
  /** What the event's row and its sync-log line are to say (markEvents); none when settled already. */
  mark?: EventMark;
}

/** The end state of an applied event's row and of its sync-log line. */
export interface EventMark {
  id: number;
  status: 'processed' | 'ignored';
  kind: string;
  customerId: string | null;
  invoiceId: string | null;
  summary: string;
  ignored: boolean;
}

/**
 * Lock stored events (in id order) and return the ids still to apply. Checked under the row lock:
 * a row re-run after its lease ran out must not apply twice. One statement for a whole batch.
 */
export async function lockReceived(sql: Sql, ids: number[]): Promise<Set<number>> {
  if (!ids.length) return new Set();
  const r = await sql.query<{ id: number; status: string }>(`SELECT id, status FROM inbound_events WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE`, [ids]);
  return new Set(r.rows.filter((x) => x.status === 'received').map((x) => Number(x.id)));
}

/** Write applied events' rows and their sync-log lines: one statement for a whole batch. */
export async function markEvents(sql: Sql, marks: EventMark[], now: Date): Promise<void> {
  if (!marks.length) return;
  await sql.query(
    `WITH m AS (
       SELECT * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::boolean[])
         AS m(id, status, kind, customer_id, invoice_id, summary, ignored)
     ), ev AS (
       UPDATE inbound_events e SET status = m.status, kind = m.kind, processed_at = $1, error = NULL FROM m WHERE e.id = m.id
     )
     UPDATE exchanges x SET customer_id = COALESCE(x.customer_id, m.customer_id), invoice_id = COALESCE(x.invoice_id, m.invoice_id),
       summary = CASE WHEN x.outcome = 'duplicate' THEN x.summary ELSE m.summary END,
       outcome = CASE WHEN x.outcome = 'ok' AND m.ignored THEN 'ignored' ELSE x.outcome END
     FROM m WHERE x.inbound_event_id = m.id`,
    [
      now, marks.map((m) => m.id), marks.map((m) => m.status), marks.map((m) => m.kind), marks.map((m) => m.customerId),
      marks.map((m) => m.invoiceId), marks.map((m) => m.summary), marks.map((m) => m.ignored),
    ],
  );
}

/** The stored event behind a process_event row (one query for a whole batch). */
export async function loadStoredEvents(sql: Sql, ids: number[]): Promise<Map<number, InboundEventRow>> {
  const r = await sql.query<InboundEventRow>(`SELECT * FROM inbound_events WHERE id = ANY($1::bigint[])`, [ids]);
  return new Map(r.rows.map((x) => [Number(x.id), x]));
}

/**
 * Normalize a stored event with its connector. Normalization may call the PSP (Mollie fetches the
 * payment, Stripe may look up a charge): it runs outside every transaction. `attempt` lets a
 * connector whose lookups have a retry budget go on without them once it is spent.
 */
export async function prepareEvent(ctx: HubContext, stored: InboundEventRow, attempt: number): Promise<PreparedEvent> {
  const merchant = ctx.merchants.get(stored.merchant_id);
  const connector = pspConnectors.get(stored.provider);
  const mapping = ctx.pspMappings.get(stored.provider);
  const providerConfig = merchant?.providers[stored.provider];
  if (!merchant || !connector || !mapping || !providerConfig) {
    throw new Permanent(`merchant ${stored.merchant_id} has no ${stored.provider} configured any more`);
  }
  const event: PaymentEvent = await connector.normalize(
    {
      providerEventId: stored.provider_event_id,
      eventType: stored.event_type,
      occurredAt: stored.occurred_at ? new Date(stored.occurred_at).toISOString() : undefined,
      payload: stored.payload,
    },
    { merchantId: merchant.id, config: providerConfig, mapping, merchantRefKeys: merchant.policy.debtorIdentity?.metadataKeys, attempt, maxAttempts: ctx.config.delivery.maxAttempts },
  );
  // The tenant and dedup key come from the stored row, never from the payload.
  event.merchantId = merchant.id;
  event.provider = stored.provider;
  event.providerEventId = stored.provider_event_id;
  return { stored, merchant, event };
}

/**
 * Apply a prepared event inside the caller's transaction: the ledger, the policy's outbox rows and
 * a hand-over due at once. Returns how the event and its sync-log line are to be marked; the
 * caller writes that (markEvents) and completes the outbox row — one row, or a whole batch in one
 * statement each. `received`: the caller has locked the event and found it still to apply
 * (lockReceived); without it this checks on its own.
 */
export async function applyPreparedEvent(ctx: HubContext, sql: Sql, outbox: OutboxWriter, prepared: PreparedEvent, now: Date, received?: boolean): Promise<AppliedEvent> {
  const { stored, merchant, event } = prepared;
  if (!(received ?? (await lockReceived(sql, [Number(stored.id)])).has(Number(stored.id)))) return { customerId: null, invoiceId: null, note: 'already processed' };
  if (event.factKey) {
    // Serialize deliveries of the same fact: the check below is then race-free.
    await sql.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`${merchant.id}:${stored.provider}:${event.factKey}`]);
    const seen = await sql.query(
      `SELECT 1 FROM inbound_events WHERE merchant_id = $1 AND provider = $2 AND fact_key = $3 AND id <> $4 AND status IN ('processed','ignored') LIMIT 1`,
      [merchant.id, stored.provider, event.factKey, stored.id],
    );
    await sql.query(`UPDATE inbound_events SET fact_key = $2 WHERE id = $1`, [stored.id, event.factKey]);
    if (seen.rows.length) {
      await sql.query(`UPDATE inbound_events SET status = 'duplicate', kind = $2, processed_at = $3 WHERE id = $1`, [stored.id, event.kind, now]);
      await sql.query(`UPDATE exchanges SET outcome = 'duplicate', summary = $2 WHERE inbound_event_id = $1`, [stored.id, `${event.factKey} already applied`]);
      return { customerId: null, invoiceId: null, note: `duplicate fact ${event.factKey}` };
    }
  }
  // A hand-over check due now runs here, in this transaction, instead of as a row of its own:
  // no extra row, commits or queue hop, and the case does not wait behind newer events in the
  // lane. A check due later (a hand-over delay, a notice gate) keeps its own row.
  const checkNow = new Set<string>();
  const writer: OutboxWriter = {
    async add(r) {
      if (r.kind === 'handover_check' && r.customerId && (r.dueAt ?? now).getTime() <= now.getTime()) checkNow.add(r.customerId);
      else await outbox.add(r);
    },
  };
  const res = await applyPaymentEvent(sql, writer, merchant, event, now, ctx.identifiers);
  if (event.detail?.failureLookupPending && event.failure) {
    // The lookup's budget was spent (the PSP's API unreachable): the event went on with the reason
    // it had; a re-lookup fills it in once the API answers (src/pipeline/re-enrich.ts).
    await outbox.add({
      kind: 'enrich_event', lane: 'hub', payload: { inboundEventId: stored.id, wentOnWith: event.failure.code },
      idempotencyKey: `enrich-${stored.id}`, merchantId: merchant.id, customerId: res.customerId, invoiceId: res.invoiceId,
      dueAt: new Date(now.getTime() + ctx.config.delivery.baseDelayMs),
    });
  }
  // The event's own customer and its debtor are locked already (the ledger's upsert): the check need not lock them again.
  const checks: HandoverSubject[] = [...checkNow].map((customerId) => ({ customerId, locked: res.customer?.id === customerId ? res.customer : undefined }));
  const mark: EventMark = {
    id: Number(stored.id), status: event.kind === 'ignored' ? 'ignored' : 'processed', kind: event.kind, customerId: res.customerId, invoiceId: res.invoiceId,
    summary: `${event.kind}: ${event.kind === 'ignored' && typeof event.detail?.note === 'string' ? event.detail.note : res.note}`, ignored: event.kind === 'ignored',
  };
  const { customer: _customer, ...rest } = res;
  return { ...rest, checks, mark };
}

/** The metric and log line of an applied event (after its commit). */
export function reportApplied(ctx: HubContext, prepared: PreparedEvent, result: AppliedEvent): void {
  const { stored, merchant, event } = prepared;
  ctx.metrics.events.inc({ provider: stored.provider, kind: event.kind });
  ctx.logger.info('event processed', {
    merchantId: merchant.id, eventId: stored.provider_event_id, provider: stored.provider, kind: event.kind,
    customerId: result.customerId, invoiceId: result.invoiceId, note: result.note,
  });
  if (result.handover?.length) ctx.logger.info('hand-over check', { customerId: result.customerId, merchantId: merchant.id, notes: result.handover });
}

/** One process_event row on its own (its own transaction). The hub's workers run them in batches (event-batch.ts). */
export async function processEvent(ctx: HubContext, row: OutboxRow<'process_event'>): Promise<void> {
  const eventId = Number(row.payload.inboundEventId);
  const stored = (await loadStoredEvents(ctx.db, [eventId])).get(eventId);
  if (!stored) throw new Permanent(`inbound event ${eventId} not found`);
  if (stored.status !== 'received') {
    await ctx.commit((sql) => completeRow(sql, row.id, ctx.clock.now()));
    return;
  }
  const prepared = await prepareEvent(ctx, stored, row.attempts);
  const now = ctx.clock.now();
  const result = await ctx.commit(async (sql, outbox) => {
    const out = await applyPreparedEvent(ctx, sql, outbox, prepared, now);
    await runChecks(ctx, sql, outbox, [out], now);
    if (out.mark) await markEvents(sql, [out.mark], now);
    await completeRow(sql, row.id, now);
    return out;
  });
  reportApplied(ctx, prepared, result);
}

/**
 * Run the hand-over checks applied events made due, all in one set (checkHandovers), after the
 * events themselves: as if each check were its own row due a moment later. Each event gets the
 * notes of its own checks, for its log line.
 */
export async function runChecks(ctx: HubContext, sql: Sql, outbox: OutboxWriter, applied: (AppliedEvent | null)[], now: Date): Promise<void> {
  // checkHandovers takes each customer as the last event that touched it left it, and one check per debtor.
  const subjects = applied.flatMap((a) => a?.checks ?? []);
  if (!subjects.length) return;
  const notes = await checkHandovers(ctx, sql, outbox, subjects, now);
  const told = new Set<string>();
  for (const a of applied) {
    for (const s of a?.checks ?? []) {
      if (told.has(s.customerId)) continue;
      told.add(s.customerId);
      a!.handover = [...(a!.handover ?? []), ...(notes.get(s.customerId) ?? [])];
    }
  }
}
