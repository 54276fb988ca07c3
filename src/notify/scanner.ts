/**
 * Turns status changes into the notifications they owe. Every invoice and case status change is a
 * status_history row (src/ledger/history.ts); this scanner reads the rows past a stored cursor
 * and, in the same transaction that moves the cursor, writes the outbox rows they call for:
 *
 *  - `merchant.webhook` (lane `merchant.<id>`): the change as a signed event to the merchant's
 *    endpoint, for merchants with `webhooks` configured (and the event type in `events`, if set);
 *  - `psp.writeback` (lane `psp.stripe`): mark the Stripe invoice paid out of band when a partner
 *    collected it, or uncollectible when a partner wrote it off and the merchant asks for that;
 *  - `merchant.webhook` `customer.flags_changed`: the debtors the page's rows concern get their
 *    payment-behaviour flags computed again, once per debtor per page, and the merchant hears of a
 *    changed flag set (src/profile/flags-sync.ts) — and, with `writeBack.stripe.customerFlags`, a
 *    `psp.writeback` row puts it into the Stripe customers' metadata. A pass also re-checks the flags whose window may
 *    have moved past their events (`recheckDueFlags`).
 *
 * Each outbox row's idempotency key comes from the history row's id, so scanning a row twice (a
 * crash between two passes, two workers) writes nothing twice. Runs from the reconciler loop.
 *
 * Ordering: the cursor is (transaction id, row id), and only rows of transactions older than any
 * still running are read (migration 005), so a row committed late is never stepped over.
 */
import type { HubContext, MerchantSettings, OutboxWriter } from '../context';
import type { Sql } from '../store/db';
import type { InvoiceRow } from '../ledger/rows';
import { buildEvent, eventTypeOf, type HistoryRow } from './events';
import { merchantLane, outboxKind, pspLane } from './kinds';
import { debtorsOfHistory, syncDebtorFlags, tracksFlags } from '../profile/flags-sync';

const CURSOR = 'status_history';
const PAGE = 500;
/** Pages per pass; the rest waits for the next reconcile (a backlog must not hold the loop). */
const MAX_PAGES = 20;

export type WriteBackAction = 'pay' | 'mark_uncollectible';

export interface ScanResult {
  /** History rows read (and passed by the cursor). */
  scanned: number;
  webhooks: number;
  writeBacks: number;
  /** `customer.flags_changed` webhooks owed (a debtor's flag set changed). */
  flagChanges?: number;
  /** Another process holds the cursor right now; nothing was read. */
  busy: boolean;
}

interface ScannedRow extends HistoryRow {
  txid: string;
}

/**
 * What the Stripe write-back owes for this history row, if anything: only an invoice a partner
 * collected or wrote off (never one paid through the PSP itself), of a Stripe invoice (`in_…`).
 */
export function writeBackActionOf(
  h: Pick<HistoryRow, 'entity' | 'status' | 'reason' | 'source'>,
  inv: Pick<InvoiceRow, 'provider' | 'provider_ref'>,
  merchant: Pick<MerchantSettings, 'writeBack'>,
  isPartner: (source: string) => boolean,
): WriteBackAction | null {
  const settings = merchant.writeBack?.stripe;
  if (!settings || h.entity !== 'invoice' || !isPartner(h.source)) return null;
  if (inv.provider !== 'stripe' || !inv.provider_ref.startsWith('in_')) return null;
  if (h.status === 'paid' && h.reason !== 'paid_to_merchant' && settings.markPaid) return 'pay';
  if (h.status === 'uncollectible' && settings.markUncollectible) return 'mark_uncollectible';
  return null;
}

type StatusFacts = Pick<HistoryRow, 'status' | 'reason' | 'detail'>;

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a ?? null) === JSON.stringify(b ?? null);

/**
 * Whether a status row only repeats the entity's previous status change (issue 12, hole 9): an
 * agency confirming the `submitted` the hub already recorded, or sending the current status again
 * with nothing new. The row stays on the timeline; the merchant gets no event for it. A change of
 * reason, of the amount collected or of the arrangement is news, even under the same status.
 */
export function repeatsPrevious(previous: StatusFacts | null | undefined, h: StatusFacts): boolean {
  if (!previous) return false;
  return previous.status === h.status
    && (previous.reason ?? null) === (h.reason ?? null)
    && sameJson(previous.detail?.amountCollected, h.detail?.amountCollected)
    && sameJson(previous.detail?.arrangement, h.detail?.arrangement);
}

/** The entity's status change just before this row (in the scanner's (txid, id) order), among the statuses of the same event type. */
async function previousChange(sql: Sql, h: ScannedRow): Promise<StatusFacts | null> {
  const r = await sql.query<StatusFacts & { entity: string }>(
    `SELECT entity, status, reason, detail FROM status_history
     WHERE entity = $1 AND entity_id = $2 AND (txid, id) < ($3::xid8, $4::bigint)
     ORDER BY txid DESC, id DESC LIMIT 20`,
    [h.entity, h.entity_id, h.txid, h.id],
  );
  // Timeline-only entries (payment_failed, withdrawal_sent…) between two changes do not count.
  return r.rows.find((p) => eventTypeOf(p) === eventTypeOf(h)) ?? null;
}

async function notifyFor(ctx: HubContext, sql: Sql, outbox: OutboxWriter, h: ScannedRow): Promise<{ webhooks: number; writeBacks: number }> {
  const out = { webhooks: 0, writeBacks: 0 };
  const merchant = ctx.merchants.get(h.merchant_id);
  if (!merchant) return out;
  const type = eventTypeOf(h);
  if (!type) return out;

  const hooks = merchant.webhooks;
  if (hooks && (!hooks.events || hooks.events.includes(type)) && !repeatsPrevious(await previousChange(sql, h), h)) {
    const built = await buildEvent(sql, h);
    if (built) {
      await outbox.add({
        kind: outboxKind('merchant.webhook'),
        lane: merchantLane(merchant.id),
        payload: { historyId: Number(h.id), event: built.event },
        idempotencyKey: `webhook-${h.id}`,
        merchantId: merchant.id,
        customerId: built.customerId,
        invoiceId: built.invoiceId,
        // No case_id: rows with one are the case's partner calls (cancelled with the case, ordered per case).
      });
      out.webhooks++;
    }
  }

  if (merchant.writeBack?.stripe && h.entity === 'invoice') {
    const inv = (await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE id = $1 AND merchant_id = $2`, [h.entity_id, merchant.id])).rows[0];
    const action = inv ? writeBackActionOf(h, inv, merchant, (s) => ctx.partners.has(s)) : null;
    if (inv && action) {
      await outbox.add({
        kind: outboxKind('psp.writeback'),
        lane: pspLane('stripe'),
        payload: { historyId: Number(h.id), invoiceId: inv.id, provider: 'stripe', ref: inv.provider_ref, action },
        idempotencyKey: `writeback-${h.id}`,
        merchantId: merchant.id,
        customerId: inv.customer_id,
        invoiceId: inv.id,
      });
      out.writeBacks++;
    }
  }
  return out;
}

/**
 * The debtors this page's rows concern, of merchants that take `customer.flags_changed`: their flags
 * computed again, once each. One debtor's failure (a savepoint) is logged and skipped rather than
 * holding every merchant's notifications back; its next history row tries again.
 */
async function flagsFor(ctx: HubContext, sql: Sql, outbox: OutboxWriter, rows: ScannedRow[]): Promise<number> {
  // (The erasure's own row too: it removes flags written to the PSP, src/profile/flags-sync.ts.)
  const wanted = rows.filter((h) => tracksFlags(ctx.merchants.get(h.merchant_id)));
  let changed = 0;
  for (const d of await debtorsOfHistory(sql, wanted)) {
    const merchant = ctx.merchants.get(d.merchantId);
    if (!merchant) continue;
    await sql.query('SAVEPOINT debtor_flags');
    try {
      if ((await syncDebtorFlags(sql, outbox, merchant, d.debtorId, ctx.clock.now(), { historyId: d.historyId })) === 'changed') changed++;
      await sql.query('RELEASE SAVEPOINT debtor_flags');
    } catch (err) {
      await sql.query('ROLLBACK TO SAVEPOINT debtor_flags');
      ctx.logger.warn('debtor flags not computed; the next change of the debtor tries again', { merchantId: d.merchantId, debtorId: d.debtorId, error: (err as Error).message });
    }
  }
  return changed;
}

/** Re-checks per pass of flags whose window may have moved past their events. */
const RECHECKS_PER_PASS = 100;

/**
 * Flags turn off by time alone too (a broken arrangement 12 months and a day old): the debtors whose
 * `recheck_at` has come get their flags computed again, each in its own transaction.
 */
export async function recheckDueFlags(ctx: HubContext): Promise<number> {
  const merchants = [...ctx.merchants.values()].filter((m) => tracksFlags(m)).map((m) => m.id);
  if (!merchants.length) return 0;
  const now = ctx.clock.now();
  const due = (await ctx.db.query<{ debtor_id: string; merchant_id: string; recheck_at: Date }>(
    `SELECT debtor_id, merchant_id, recheck_at FROM debtor_profiles WHERE recheck_at <= $1 AND merchant_id = ANY($2::text[]) ORDER BY recheck_at, debtor_id LIMIT ${RECHECKS_PER_PASS}`,
    [now, merchants],
  )).rows;
  let changed = 0;
  for (const d of due) {
    const merchant = ctx.merchants.get(d.merchant_id)!;
    const r = await ctx.commit((sql, outbox) => syncDebtorFlags(sql, outbox, merchant, d.debtor_id, now, { recheckAt: new Date(d.recheck_at) }));
    if (r === 'changed') changed++;
  }
  return changed;
}

/** One page: read history past the cursor, write what it owes, move the cursor — one transaction. */
export async function scanStatusHistory(ctx: HubContext, opts: { limit?: number } = {}): Promise<ScanResult> {
  const limit = opts.limit ?? PAGE;
  return ctx.commit(async (sql, outbox) => {
    const result: ScanResult = { scanned: 0, webhooks: 0, writeBacks: 0, busy: false };
    // Several worker processes reconcile at once: one scans, the others go on with their pass.
    const cur = (await sql.query<{ last_txid: string; last_id: string | number }>(
      `SELECT last_txid::text AS last_txid, last_id FROM notify_cursors WHERE name = $1 FOR UPDATE SKIP LOCKED`,
      [CURSOR],
    )).rows[0];
    if (!cur) {
      const exists = await sql.query(`SELECT 1 FROM notify_cursors WHERE name = $1`, [CURSOR]);
      if (!exists.rows.length) await sql.query(`INSERT INTO notify_cursors (name, last_txid, last_id) VALUES ($1, '0'::xid8, 0) ON CONFLICT DO NOTHING`, [CURSOR]);
      result.busy = exists.rows.length > 0;
      return result;
    }
    const rows = (await sql.query<ScannedRow>(
      `SELECT id, txid::text AS txid, merchant_id, entity, entity_id, status, reason, source, detail, occurred_at, recorded_at
       FROM status_history
       WHERE (txid, id) > ($1::xid8, $2::bigint) AND txid < pg_snapshot_xmin(pg_current_snapshot())
       ORDER BY txid, id LIMIT $3`,
      [cur.last_txid, cur.last_id, limit],
    )).rows;
    if (!rows.length) return result;
    for (const h of rows) {
      const n = await notifyFor(ctx, sql, outbox, h);
      result.webhooks += n.webhooks;
      result.writeBacks += n.writeBacks;
    }
    result.flagChanges = await flagsFor(ctx, sql, outbox, rows);
    const last = rows[rows.length - 1];
    await sql.query(`UPDATE notify_cursors SET last_txid = $2::xid8, last_id = $3, updated_at = $4 WHERE name = $1`, [CURSOR, last.txid, last.id, ctx.clock.now()]);
    result.scanned = rows.length;
    return result;
  });
}

/**
 * The reconciler's call: scan page after page until caught up (or MAX_PAGES). Never throws — a
 * failed pass is logged and the next reconcile tries again from the same cursor.
 */
/**
 * Scan what is new (up to MAX_PAGES pages) and, unless `recheck` is false (a wake-up after a
 * commit: src/notify/wake.ts), re-check the flags whose windows moved.
 */
export async function notifyFromHistory(ctx: HubContext, opts: { recheck?: boolean } = {}): Promise<ScanResult> {
  const total: ScanResult = { scanned: 0, webhooks: 0, writeBacks: 0, flagChanges: 0, busy: false };
  try {
    for (let page = 0; page < MAX_PAGES; page++) {
      const r = await scanStatusHistory(ctx);
      total.scanned += r.scanned;
      total.webhooks += r.webhooks;
      total.writeBacks += r.writeBacks;
      total.flagChanges! += r.flagChanges ?? 0;
      total.busy ||= r.busy;
      if (r.busy || r.scanned < PAGE) break;
    }
    if (!total.busy && opts.recheck !== false) total.flagChanges! += await recheckDueFlags(ctx);
    if (total.webhooks || total.writeBacks || total.flagChanges) ctx.logger.debug('notifications owed from status history', { ...total });
  } catch (err) {
    ctx.logger.warn('status history scan failed; the next reconcile tries again', { error: (err as Error).message });
  }
  return total;
}
