/**
 * The `enrich_event` stage (issue 12, hole 9): a payment failure whose enrichment lookup could not
 * be made within its retry budget (Stripe's decline code behind a payment_intent, Stripe
 * unreachable; connectors/psp/stripe/index.ts `withinBudget`) went on with the reason it had — so
 * its hand-over was not held back — and this stage looks again until the PSP answers, then fills
 * the reason in on the invoice (and the customer's last failure) with a timeline entry
 * `failure_reason_updated`.
 *
 * Only the reason is amended: status, finality and any hand-over stay as decided. The agency is
 * not told (the reference protocol has no call to amend a claim's failure); the merchant sees the
 * new reason on the invoice and its timeline. While the PSP cannot be reached the row is deferred
 * (no attempt counted), ever less often, for up to RE_LOOKUP_HORIZON_MS; after that it is
 * dead-lettered with the last error, where a person can retry it.
 */
import type { HubContext } from '../context';
import type { OutboxRow } from '../outbox/outbox';
import { completeRow } from '../outbox/outbox';
import type { InvoiceRow } from '../ledger/rows';
import type { PaymentEvent } from '../domain/types';
import { addHistory } from '../ledger/history';
import { pspConnectors } from '../../connectors/registry';
import { Defer, Permanent } from './errors';

/** How long a re-lookup keeps trying while the PSP cannot be reached. */
export const RE_LOOKUP_HORIZON_MS = 7 * 86_400_000;
/** The longest wait between two re-lookups. */
const MAX_RE_LOOKUP_DELAY_MS = 3600_000;

export interface FailureReasonUpdate {
  code: string;
  reason: string;
  message: string | null;
  retryable: boolean;
}

/**
 * What the re-lookup changes on the invoice, or null: only when the lookup found the facts, the
 * invoice still carries the reason the event went on with (a newer failure since has its own), and
 * the found reason differs.
 */
export function failureReasonUpdate(
  inv: Pick<InvoiceRow, 'failure_code' | 'failure_reason'>,
  event: Pick<PaymentEvent, 'failure' | 'detail'>,
  wentOnWith: string | null,
): FailureReasonUpdate | null {
  if (!event.failure || !event.detail?.failureLookup) return null;
  if ((inv.failure_code ?? null) !== wentOnWith) return null;
  if (inv.failure_code === event.failure.code && inv.failure_reason === event.failure.reason) return null;
  return { code: event.failure.code, reason: event.failure.reason, message: event.failure.message ?? null, retryable: event.failure.retryable };
}

/** The wait before the next try: a quarter of the time spent so far, between the base and the maximum delay. */
export function reLookupDelayMs(ageMs: number, baseDelayMs: number): number {
  return Math.min(MAX_RE_LOOKUP_DELAY_MS, Math.max(baseDelayMs, Math.floor(ageMs / 4)));
}

export async function reEnrichEvent(ctx: HubContext, row: OutboxRow<'enrich_event'>): Promise<void> {
  const eventId = Number(row.payload.inboundEventId);
  const wentOnWith = (row.payload.wentOnWith as string | null | undefined) ?? null;
  const stored = (await ctx.db.query<{ merchant_id: string; provider: string; provider_event_id: string; event_type: string; occurred_at: Date | null; payload: unknown }>(
    `SELECT merchant_id, provider, provider_event_id, event_type, occurred_at, payload FROM inbound_events WHERE id = $1`,
    [eventId],
  )).rows[0];
  if (!stored) throw new Permanent(`inbound event ${eventId} not found`);
  const merchant = ctx.merchants.get(stored.merchant_id);
  const connector = pspConnectors.get(stored.provider);
  const mapping = ctx.pspMappings.get(stored.provider);
  const config = merchant?.providers[stored.provider];
  if (!merchant || !connector || !mapping || !config) throw new Permanent(`merchant ${stored.merchant_id} has no ${stored.provider} configured any more`);

  let event: PaymentEvent;
  try {
    // attempt 1: the connector's budget is not spent, so an unreachable API throws rather than giving up again.
    event = await connector.normalize(
      { providerEventId: stored.provider_event_id, eventType: stored.event_type, occurredAt: stored.occurred_at ? new Date(stored.occurred_at).toISOString() : undefined, payload: stored.payload },
      { merchantId: merchant.id, config, mapping, attempt: 1 },
    );
  } catch (err) {
    if (err instanceof Permanent) throw err;
    const age = ctx.clock.now().getTime() - new Date(row.created_at).getTime();
    if (age > RE_LOOKUP_HORIZON_MS) throw new Permanent(`gave up re-looking up event ${stored.provider_event_id} after ${Math.round(age / 86_400_000)} days: ${(err as Error).message}`);
    throw new Defer(`re-lookup of ${stored.provider_event_id}: ${(err as Error).message}`, reLookupDelayMs(age, ctx.config.delivery.baseDelayMs));
  }

  const now = ctx.clock.now();
  const note = await ctx.commit(async (sql) => {
    const ref = event.invoice?.ref;
    const found = ref
      ? (await sql.query<{ id: string; customer_id: string }>(
          `SELECT id, customer_id FROM invoices WHERE merchant_id = $1 AND provider = $2 AND provider_ref = $3`,
          [merchant.id, stored.provider, ref],
        )).rows[0]
      : undefined;
    let outcome = 'nothing to amend';
    if (found) {
      // The ledger's lock order: customer, then invoice.
      await sql.query(`SELECT id FROM customers WHERE id = $1 FOR UPDATE`, [found.customer_id]);
      const inv = (await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE id = $1 FOR UPDATE`, [found.id])).rows[0];
      const update = failureReasonUpdate(inv, event, wentOnWith);
      if (update) {
        await sql.query(
          `UPDATE invoices SET failure_code = $2, failure_reason = $3, failure_message = COALESCE($4, failure_message), failure_retryable = $5, updated_at = $6 WHERE id = $1`,
          [inv.id, update.code, update.reason, update.message, update.retryable, now],
        );
        await sql.query(
          `UPDATE customers SET last_failure_code = $2, last_failure_reason = $3, updated_at = $4 WHERE id = $1 AND last_failure_code IS NOT DISTINCT FROM $5`,
          [inv.customer_id, update.code, update.reason, now, wentOnWith],
        );
        await addHistory(sql, {
          merchantId: merchant.id, entity: 'invoice', entityId: inv.id, status: 'failure_reason_updated', reason: update.reason, source: stored.provider, occurredAt: now,
          detail: { from: { code: inv.failure_code, reason: inv.failure_reason }, to: { code: update.code, reason: update.reason }, lookup: event.detail?.failureLookup, eventId: stored.provider_event_id },
        }, now);
        outcome = `reason ${inv.failure_reason} → ${update.reason}`;
      }
    }
    await completeRow(sql, row.id, now);
    return outcome;
  });
  ctx.logger.info('event re-enriched', { merchantId: merchant.id, eventId: stored.provider_event_id, note });
}
