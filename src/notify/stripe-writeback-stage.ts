/**
 * The `psp.writeback` stage for Stripe: tell the merchant's Stripe account what the agency
 * achieved, through the official SDK, so Stripe's own state (and the subscription) follows.
 *
 *  - `pay`: the agency collected the invoice → `invoices.pay(id, { paid_out_of_band: true })`;
 *  - `mark_uncollectible`: the agency wrote it off and the merchant asked for it →
 *    `invoices.markUncollectible(id)`;
 *  - `customer_flags`: the debtor's payment-behaviour flags changed (src/profile/flags-sync.ts) →
 *    `customers.update(id, { metadata: { collection_hub_flags } })` with the set stored when the row
 *    runs (rows run out of order still leave the newest), `""` (Stripe removes the key) when none
 *    or the debtor was erased (writeFlagsToStripe).
 *
 * Idempotent three ways: the outbox row is keyed by the history row (scanner.ts); each call sends
 * the SDK's `idempotencyKey` derived from the row; and an outcome Stripe already shows (the
 * invoice is paid, or uncollectible) — or one another row already wrote — counts as done. An
 * invoice Stripe can no longer move that way (void; paid when we would write it off) is left as
 * it is, with a note. Connection errors, 409, 429 and 5xx are retried by the outbox; other
 * refusals go to the dead letter with Stripe's answer.
 */
import Stripe from 'stripe';
import type { HubContext } from '../context';
import type { OutboxRow } from '../outbox/outbox';
import { cancelRow, completeRow } from '../outbox/outbox';
import { DeliveryError } from '../../connectors/agency/types';
import { createStripeClient } from '../../connectors/psp/stripe/client';
import type { StripeProviderConfig } from '../../connectors/psp/stripe/schema';
import { recordExchanges, type ExchangeEntry } from '../exchanges/exchange-log';
import { addHistory } from '../ledger/history';
import { Permanent } from '../pipeline/errors';
import type { WriteBackAction } from './scanner';

const CALL_TIMEOUT_MS = 20_000;

/**
 * The Stripe idempotency key of a write-back call. Stripe puts it on the events the call causes
 * (`event.request.idempotency_key`: `invoice.paid` with `paid_out_of_band: true`,
 * `invoice.marked_uncollectible`), which is how the ledger knows those events for echoes of our
 * own write-back rather than new facts (src/ledger/payment-ledger.ts, writeBackEcho). Neither
 * `invoices.pay` nor `invoices.markUncollectible` takes metadata, so the key is the marker.
 */
export const WRITEBACK_IDEMPOTENCY_PREFIX = 'collection-hub-';
export const writeBackIdempotencyKey = (outboxIdempotencyKey: string) => `${WRITEBACK_IDEMPOTENCY_PREFIX}${outboxIdempotencyKey}`;

/** The SDK methods the stage uses (a structural type: tests may hand in a fake). */
export interface StripeInvoicesApi {
  invoices: {
    pay(id: string, params: { paid_out_of_band: true }, options: Stripe.RequestOptions): Promise<{ id: string; status: string | null }>;
    markUncollectible(id: string, params: Record<string, never>, options: Stripe.RequestOptions): Promise<{ id: string; status: string | null }>;
    retrieve(id: string, params: Record<string, never>, options: Stripe.RequestOptions): Promise<{ id: string; status: string | null }>;
  };
  /** Only for `customer_flags`. */
  customers?: {
    update(id: string, params: { metadata: Record<string, string> }, options: Stripe.RequestOptions): Promise<{ id: string; metadata?: Record<string, string> | null }>;
  };
}

/** The Stripe customer metadata key that holds the debtor's flags (space-separated names; absent: none). */
export const FLAGS_METADATA_KEY = 'collection_hub_flags';

// One SDK instance per merchant config object (parsed once at boot).
const clients = new WeakMap<object, StripeInvoicesApi>();
function stripeFor(config: StripeProviderConfig): StripeInvoicesApi {
  let c = clients.get(config);
  if (!c) {
    c = createStripeClient(config) as unknown as StripeInvoicesApi;
    clients.set(config, c);
  }
  return c;
}

/** Where an invoice ends up after each action, and the states from which the action cannot be done (left alone). */
const TARGET: Record<WriteBackAction, { done: string[]; leaveAlone: string[]; history: string; path: string }> = {
  pay: { done: ['paid'], leaveAlone: ['void', 'uncollectible'], history: 'psp_marked_paid', path: 'pay' },
  mark_uncollectible: { done: ['uncollectible'], leaveAlone: ['paid', 'void'], history: 'psp_marked_uncollectible', path: 'mark_uncollectible' },
};

function stripeStatus(err: unknown): number | undefined {
  return err instanceof Stripe.errors.StripeError ? err.statusCode : undefined;
}

/** Retryable per Stripe's guidance (and lookup.ts): no answer, 409 (idempotency lock), 429, 5xx, or Stripe-Should-Retry. */
function retryable(err: unknown): boolean {
  if (err instanceof Stripe.errors.StripeConnectionError) return true;
  if (!(err instanceof Stripe.errors.StripeError)) return true;
  const headers = (err.headers ?? {}) as Record<string, string | undefined>;
  if (headers['stripe-should-retry'] === 'true') return true;
  if (headers['stripe-should-retry'] === 'false') return false;
  const status = err.statusCode;
  return status === undefined || status === 409 || status === 429 || status >= 500;
}

/** Stripe's own words for "this invoice is already paid" (and the fake's). */
function saysAlreadyPaid(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown };
  return e?.code === 'invoice_already_paid' || (typeof e?.message === 'string' && /already (been )?paid/i.test(e.message));
}

/** A secret-free description of a Stripe error for the log and the dead letter. */
function describe(err: unknown): { message: string; body: unknown } {
  const e = err as { message?: string; type?: string; code?: string; statusCode?: number; requestId?: string };
  const body = { type: e?.type, code: e?.code, message: e?.message, requestId: e?.requestId };
  return { message: `stripe ${e?.statusCode ?? 'no answer'}${e?.code ? ` ${e.code}` : ''}: ${e?.message ?? String(err)}`, body };
}

export async function writeBackToStripe(ctx: HubContext, row: OutboxRow<'psp.writeback'>, api?: StripeInvoicesApi): Promise<void> {
  if (row.payload?.action === 'customer_flags') return writeFlagsToStripe(ctx, row, api);
  const action = row.payload?.action as WriteBackAction;
  const ref = String(row.payload?.ref ?? '');
  const invoiceId = String(row.payload?.invoiceId ?? '');
  if (!(action in TARGET) || !ref.startsWith('in_') || !invoiceId) throw new Permanent(`outbox row ${row.id}: not a Stripe write-back (${action} ${ref})`);
  const target = TARGET[action];

  // Run again after it settled (a second call for the same row): nothing more to do.
  const self = (await ctx.db.query<{ status: string }>(`SELECT status FROM outbox WHERE id = $1`, [row.id])).rows[0];
  if (self && ['done', 'cancelled', 'dead'].includes(self.status)) return;

  const merchant = row.merchant_id ? ctx.merchants.get(row.merchant_id) : undefined;
  const settings = merchant?.writeBack?.stripe;
  if (!merchant || !settings || !(action === 'pay' ? settings.markPaid : settings.markUncollectible)) {
    await ctx.commit((sql) => cancelRow(sql, row.id, ctx.clock.now(), `write-back (${action}) no longer configured for merchant ${row.merchant_id}`));
    return;
  }
  const provider = merchant.providers.stripe as StripeProviderConfig | undefined;
  if (!provider?.apiKey) throw new Permanent(`merchant ${merchant.id} has no Stripe apiKey; cannot write back`);

  // Two history rows for one outcome (a partner repeating itself) write back once.
  const earlier = (await ctx.db.query<{ id: number }>(
    `SELECT id FROM outbox WHERE kind = $1 AND status = 'done' AND id <> $2 AND invoice_id = $3 AND payload->>'action' = $4 ORDER BY id LIMIT 1`,
    [row.kind, row.id, invoiceId, action],
  )).rows[0];
  if (earlier) {
    await ctx.commit((sql) => completeRow(sql, row.id, ctx.clock.now(), { body: { note: `already written back by delivery ${earlier.id}` } }));
    return;
  }

  const stripe = api ?? stripeFor(provider);
  const options: Stripe.RequestOptions = { idempotencyKey: writeBackIdempotencyKey(row.idempotency_key), timeout: CALL_TIMEOUT_MS };
  const entries: ExchangeEntry[] = [];
  const log = (operation: string, e: Partial<ExchangeEntry>) =>
    entries.push({
      merchantId: merchant.id, direction: 'out', party: 'stripe', operation, outcome: 'ok', customerId: row.customer_id, invoiceId, outboxId: row.id,
      at: ctx.clock.now(), ...e,
    });
  const operation = `POST /v1/invoices/${ref}/${target.path}`;
  const request = action === 'pay' ? { paid_out_of_band: true } : {};

  let note: string | null = null;
  let stripeInvoiceStatus: string | null = null;
  let started = Date.now();
  try {
    const res = action === 'pay' ? await stripe.invoices.pay(ref, { paid_out_of_band: true }, options) : await stripe.invoices.markUncollectible(ref, {}, options);
    stripeInvoiceStatus = res.status;
    log(operation, { httpStatus: 200, latencyMs: Date.now() - started, request, response: { id: res.id, status: res.status }, summary: `${action} (attempt ${row.attempts})` });
  } catch (err) {
    const failed = describe(err);
    const status = stripeStatus(err);
    if (action === 'pay' && saysAlreadyPaid(err)) {
      note = 'Stripe says the invoice is already paid';
      stripeInvoiceStatus = 'paid';
      log(operation, { httpStatus: status ?? null, latencyMs: Date.now() - started, request, response: failed.body, summary: note });
    } else if (status !== undefined && status >= 400 && status < 500 && !retryable(err)) {
      // Refused: perhaps because the invoice is already where we want it, or can no longer go there.
      log(operation, { outcome: 'failed', httpStatus: status, latencyMs: Date.now() - started, request, response: failed.body, summary: failed.message });
      started = Date.now();
      let current: string | null = null;
      try {
        current = (await stripe.invoices.retrieve(ref, {}, { timeout: CALL_TIMEOUT_MS })).status;
        log(`GET /v1/invoices/${ref}`, { httpStatus: 200, latencyMs: Date.now() - started, response: { id: ref, status: current }, summary: `status after a refused ${action}` });
      } catch (lookupErr) {
        log(`GET /v1/invoices/${ref}`, { outcome: 'failed', httpStatus: stripeStatus(lookupErr) ?? null, latencyMs: Date.now() - started, response: describe(lookupErr).body, summary: describe(lookupErr).message });
      }
      if (current && target.done.includes(current)) note = `the Stripe invoice is already ${current}`;
      else if (current && target.leaveAlone.includes(current)) note = `the Stripe invoice is ${current}: left as it is`;
      else return fail(new DeliveryError(false, failed.message, status, failed.body));
      stripeInvoiceStatus = current;
    } else {
      const retry = retryable(err);
      const headers = ((err as { headers?: Record<string, string> }).headers ?? {}) as Record<string, string | undefined>;
      const retryAfter = headers['retry-after'] && /^[0-9]+$/.test(headers['retry-after']) ? Number(headers['retry-after']) * 1000 : undefined;
      log(operation, { outcome: retry && row.attempts < ctx.config.delivery.maxAttempts ? 'retrying' : 'dead', httpStatus: status ?? null, latencyMs: Date.now() - started, request, response: failed.body, summary: `${failed.message} (attempt ${row.attempts})` });
      return fail(new DeliveryError(retry, failed.message, status, failed.body, retryAfter));
    }
  }

  const now = ctx.clock.now();
  await ctx.commit(async (sql) => {
    await recordExchanges(sql, entries);
    await addHistory(
      sql,
      {
        merchantId: merchant.id, entity: 'invoice', entityId: invoiceId, status: note?.includes('left as it is') ? `psp_${action}_skipped` : target.history, reason: null, source: 'hub', occurredAt: now,
        detail: { provider: 'stripe', ref, outboxId: row.id, stripeStatus: stripeInvoiceStatus, ...(note ? { note } : {}) },
      },
      now,
    );
    await completeRow(sql, row.id, now, { status: 200, body: { id: ref, status: stripeInvoiceStatus, ...(note ? { note } : {}) } });
  });
  ctx.logger.info('written back to stripe', { merchantId: merchant.id, invoiceId, action, note });

  async function fail(err: DeliveryError): Promise<never> {
    if (!err.retryable) entries.forEach((e) => e.outcome === 'failed' && (e.outcome = 'dead'));
    await ctx.db.tx((sql) => recordExchanges(sql, entries)).catch(() => undefined);
    throw err;
  }
}

/**
 * The debtor's payment-behaviour flags into the Stripe customer's metadata (issue 17): the set
 * stored for the debtor now (debtor_profiles), so whichever row runs last leaves the newest set;
 * none (no flag on, or the debtor erased) removes the key. The Stripe idempotency key is the row's
 * with the value written, so a retry that writes the same is one call at Stripe. A customer Stripe no
 * longer has (404) is done, with a note; other refusals go to the dead letter, and no answer, 409,
 * 429 and 5xx are retried.
 */
async function writeFlagsToStripe(ctx: HubContext, row: OutboxRow<'psp.writeback'>, api?: StripeInvoicesApi): Promise<void> {
  const ref = String(row.payload?.ref ?? '');
  const customerId = row.payload?.action === 'customer_flags' ? String(row.payload.customerId ?? '') : '';
  if (!ref.startsWith('cus_') || !customerId) throw new Permanent(`outbox row ${row.id}: not a Stripe customer write-back (${ref})`);
  const self = (await ctx.db.query<{ status: string }>(`SELECT status FROM outbox WHERE id = $1`, [row.id])).rows[0];
  if (self && ['done', 'cancelled', 'dead'].includes(self.status)) return;
  const merchant = row.merchant_id ? ctx.merchants.get(row.merchant_id) : undefined;
  if (!merchant?.writeBack?.stripe?.customerFlags) {
    await ctx.commit((sql) => cancelRow(sql, row.id, ctx.clock.now(), `write-back of customer flags no longer configured for merchant ${row.merchant_id}`));
    return;
  }
  const provider = merchant.providers.stripe as StripeProviderConfig | undefined;
  if (!provider?.apiKey) throw new Permanent(`merchant ${merchant.id} has no Stripe apiKey; cannot write back`);
  const stored = (await ctx.db.query<{ flags: string[] }>(
    `SELECT p.flags FROM debtor_profiles p JOIN customers c ON c.debtor_id = p.debtor_id WHERE c.id = $1 AND c.merchant_id = $2 AND c.erased_at IS NULL`,
    [customerId, merchant.id],
  )).rows[0];
  const value = [...(stored?.flags ?? [])].sort().join(' ');
  const stripe = api ?? stripeFor(provider);
  if (!stripe.customers) throw new Permanent('the Stripe client has no customers API');
  const options: Stripe.RequestOptions = { idempotencyKey: `${writeBackIdempotencyKey(row.idempotency_key)}-${value ? value.replace(/ /g, '+') : 'none'}`, timeout: CALL_TIMEOUT_MS };
  const request = { metadata: { [FLAGS_METADATA_KEY]: value } };
  const operation = `POST /v1/customers/${ref}`;
  const entry = (e: Partial<ExchangeEntry>): ExchangeEntry => ({
    merchantId: merchant.id, direction: 'out', party: 'stripe', operation, outcome: 'ok', customerId, outboxId: row.id, request, at: ctx.clock.now(), ...e,
  });
  const started = Date.now();
  let note: string | null = null;
  try {
    await stripe.customers.update(ref, request, options);
  } catch (err) {
    const failed = describe(err);
    const status = stripeStatus(err);
    if (status === 404) {
      note = 'Stripe has no such customer any more: nothing to write';
    } else {
      const retry = retryable(err);
      const outcome = retry && row.attempts < ctx.config.delivery.maxAttempts ? 'retrying' : 'dead';
      await ctx.db.tx((sql) => recordExchanges(sql, [entry({ outcome, httpStatus: status ?? null, latencyMs: Date.now() - started, response: failed.body, summary: `${failed.message} (attempt ${row.attempts})` })])).catch(() => undefined);
      throw new DeliveryError(retry, failed.message, status, failed.body);
    }
  }
  const summary = note ?? (value ? `customer flags written: ${value}` : 'customer flags removed (none on)');
  await ctx.commit(async (sql) => {
    await recordExchanges(sql, [entry({ httpStatus: note ? 404 : 200, latencyMs: Date.now() - started, summary })]);
    await completeRow(sql, row.id, ctx.clock.now(), { status: note ? 404 : 200, body: { id: ref, [FLAGS_METADATA_KEY]: value, ...(note ? { note } : {}) } });
  });
  ctx.logger.info('customer flags written to stripe', { merchantId: merchant.id, customerId, flags: value || null, note });
}
