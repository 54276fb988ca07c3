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
import { checkHandover } from './handover-check';
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
 * Apply a prepared event inside the caller's transaction: the ledger, the policy's outbox rows, a
 * hand-over due at once, and the event and its sync-log line marked. Does not complete the outbox
 * row (the caller does: one row, or a whole batch in one statement).
 */
export async function applyPreparedEvent(ctx: HubContext, sql: Sql, outbox: OutboxWriter, prepared: PreparedEvent, now: Date): Promise<AppliedEvent> {
  const { stored, merchant, event } = prepared;
  // Checked again under a row lock: a row re-run after its lease ran out must not apply twice.
  const current = await sql.query<{ status: string }>(`SELECT status FROM inbound_events WHERE id = $1 FOR UPDATE`, [stored.id]);
  if (current.rows[0]?.status !== 'received') return { customerId: null, invoiceId: null, note: 'already processed' };
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
  const handover: string[] = [];
  for (const customerId of checkNow) handover.push(...(await checkHandover(ctx, sql, outbox, customerId, now)));
  await sql.query(`UPDATE inbound_events SET status = $2, kind = $3, processed_at = $4, error = NULL WHERE id = $1`, [
    stored.id, event.kind === 'ignored' ? 'ignored' : 'processed', event.kind, now,
  ]);
  await sql.query(
    `UPDATE exchanges SET customer_id = COALESCE(customer_id, $2), invoice_id = COALESCE(invoice_id, $3),
       summary = CASE WHEN outcome = 'duplicate' THEN summary ELSE $4 END,
       outcome = CASE WHEN outcome = 'ok' AND $5 THEN 'ignored' ELSE outcome END
     WHERE inbound_event_id = $1`,
    [stored.id, res.customerId, res.invoiceId, `${event.kind}: ${event.kind === 'ignored' && typeof event.detail?.note === 'string' ? event.detail.note : res.note}`, event.kind === 'ignored'],
  );
  return { ...res, handover };
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
export async function processEvent(ctx: HubContext, row: OutboxRow): Promise<void> {
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
    await completeRow(sql, row.id, now);
    return out;
  });
  reportApplied(ctx, prepared, result);
}
