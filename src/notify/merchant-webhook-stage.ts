/**
 * The `merchant.webhook` stage: POST one status-change event (src/notify/events.ts) to the
 * merchant's endpoint, signed per Standard Webhooks (src/notify/standard-webhooks.ts). The body is
 * signed afresh on every attempt (new timestamp) under the same `webhook-id`, which the merchant
 * uses to drop duplicates.
 *
 * Answers: 2xx delivered; 410 Gone stops — the row is dead and the endpoint gets nothing more
 * until its URL changes or the refused delivery is retried; 408, 429 (honouring Retry-After),
 * 5xx and network errors are retried by the outbox with backoff, then dead-lettered; any other
 * answer (4xx, a redirect) is dead at once. Every attempt is in the sync log with its outcome.
 */
import axios from 'axios';
import type { HubContext } from '../context';
import type { OutboxRow } from '../outbox/outbox';
import { cancelRow, completeRow } from '../outbox/outbox';
import { DeliveryError } from '../../connectors/agency/types';
import { recordExchanges, type ExchangeEntry } from '../exchanges/exchange-log';
import { Permanent } from '../pipeline/errors';
import { signedHeaders } from './standard-webhooks';
import type { MerchantEvent } from './events';

/** Standard Webhooks asks receivers to answer within 15–30 s; we wait 15. */
export const WEBHOOK_TIMEOUT_MS = 15_000;
const PARTY = 'merchant';
const MAX_KEPT_RESPONSE = 2000;

/** The URL without query or credentials, for the log (a token in a query string stays out of it). */
function shownUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.origin}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

function retryAfterMs(value: unknown): number | undefined {
  if (typeof value !== 'string' || !value) return undefined;
  if (/^[0-9]+$/.test(value)) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

function kept(body: unknown): unknown {
  if (body === undefined || body === null || body === '') return undefined;
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return text.length > MAX_KEPT_RESPONSE ? `${text.slice(0, MAX_KEPT_RESPONSE)}…` : text;
}

export async function deliverMerchantWebhook(ctx: HubContext, row: OutboxRow<'merchant.webhook'>): Promise<void> {
  const merchant = row.merchant_id ? ctx.merchants.get(row.merchant_id) : undefined;
  const hooks = merchant?.webhooks;
  const event = row.payload?.event as MerchantEvent | undefined;
  if (!event?.id || !event.type) throw new Permanent(`outbox row ${row.id} has no webhook event`);
  // The configuration is read now, not when the row was written: a merchant who turned webhooks
  // (or this event type) off gets nothing, one who moved the endpoint gets it at the new URL.
  if (!merchant || !hooks || (hooks.events && !hooks.events.includes(event.type))) {
    await ctx.commit((sql) => cancelRow(sql, row.id, ctx.clock.now(), `webhooks (${event.type}) no longer configured for merchant ${row.merchant_id}`));
    return;
  }
  const url = hooks.url;
  const data = event.data as { id?: string; case?: { id?: string } | null };
  const caseId = (event.type === 'case.status_changed' ? data.id : data.case?.id) ?? null;
  const entry = (at: Date, e: Partial<ExchangeEntry>): ExchangeEntry => ({
    merchantId: merchant.id, direction: 'out', party: PARTY, operation: `webhook ${event.type}`, outcome: 'ok',
    customerId: row.customer_id, invoiceId: row.invoice_id, caseId, outboxId: row.id,
    request: event, at, ...e,
  });

  const disabled = (await ctx.db.query<{ disabled_at: Date; reason: string | null }>(
    `SELECT disabled_at, reason FROM merchant_webhook_endpoints WHERE merchant_id = $1 AND url = $2`,
    [merchant.id, url],
  )).rows[0];
  if (disabled) {
    // The delivery that got the 410, retried by a person (attempts reset, its 410 kept): they
    // say the endpoint is back. Anything else waits in the dead letter.
    const retryOfRefused = row.attempts === 1 && row.last_status === 410;
    if (!retryOfRefused) {
      const why = `endpoint ${shownUrl(url)} answered 410 Gone at ${new Date(disabled.disabled_at).toISOString()}: nothing is sent to it until its URL changes or the refused delivery is retried`;
      await ctx.db.tx((sql) => recordExchanges(sql, [entry(ctx.clock.now(), { outcome: 'dead', summary: why })])).catch(() => undefined);
      throw new Permanent(why);
    }
    await ctx.db.query(`DELETE FROM merchant_webhook_endpoints WHERE merchant_id = $1 AND url = $2`, [merchant.id, url]);
    ctx.logger.info('merchant webhook endpoint enabled again by a retried delivery', { merchantId: merchant.id, outboxId: row.id });
  }

  const body = JSON.stringify(event);
  const headers = {
    ...signedHeaders(hooks.secret, event.id, body, new Date()),
    'content-type': 'application/json',
    'user-agent': 'collection-hub-webhooks/1',
  };
  const started = Date.now();
  let status: number | undefined;
  let answer: unknown;
  let failure: DeliveryError | null = null;
  try {
    const res = await axios.post(url, body, {
      headers,
      timeout: WEBHOOK_TIMEOUT_MS,
      maxRedirects: 0,
      responseType: 'text',
      transformResponse: [(d: unknown) => d],
      validateStatus: () => true,
      maxContentLength: 1024 * 1024,
    });
    status = res.status;
    answer = kept(res.data);
    if (status === 410) {
      failure = new DeliveryError(false, `merchant endpoint answered 410 Gone: deliveries to ${shownUrl(url)} stop`, status, answer);
    } else if (status === 408 || status === 429 || status >= 500) {
      failure = new DeliveryError(true, `merchant endpoint answered ${status}`, status, answer, retryAfterMs(res.headers['retry-after']));
    } else if (status < 200 || status >= 300) {
      failure = new DeliveryError(false, `merchant endpoint answered ${status}${status >= 300 && status < 400 ? ' (redirects are not followed)' : ''}`, status, answer);
    }
  } catch (err) {
    // No answer: refused, reset, DNS, timeout — all worth another try.
    failure = new DeliveryError(true, `merchant endpoint unreachable: ${(err as Error).message}`);
  }
  const latencyMs = Date.now() - started;
  const now = ctx.clock.now();

  if (failure) {
    const willRetry = failure.retryable && row.attempts < ctx.config.delivery.maxAttempts;
    await ctx.db
      .tx(async (sql) => {
        if (status === 410) {
          await sql.query(
            `INSERT INTO merchant_webhook_endpoints (merchant_id, url, disabled_at, reason) VALUES ($1,$2,$3,$4)
             ON CONFLICT (merchant_id, url) DO UPDATE SET disabled_at = EXCLUDED.disabled_at, reason = EXCLUDED.reason`,
            [merchant.id, url, now, `410 Gone on delivery ${row.id}`],
          );
        }
        await recordExchanges(sql, [entry(now, { outcome: willRetry ? 'retrying' : 'dead', httpStatus: status ?? null, latencyMs, summary: `${failure!.message} (attempt ${row.attempts})`, response: answer })]);
      })
      .catch(() => undefined);
    throw failure;
  }

  await ctx.commit(async (sql) => {
    await recordExchanges(sql, [entry(now, { outcome: 'ok', httpStatus: status, latencyMs, summary: `${event.id} to ${shownUrl(url)} (attempt ${row.attempts})`, response: answer })]);
    await completeRow(sql, row.id, now, { status, body: answer });
  });
}
