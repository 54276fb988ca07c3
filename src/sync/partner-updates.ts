/**
 * Sync back from the agency (contract §4–§5): updates arrive by push or pull, are stored once
 * by their id, and applied once through the outbox. An update older than the state it would
 * replace (by occurredAt, then seq) is logged as stale and not applied, so status never moves
 * backwards in time. Invoice-level and customer-level state follow each claim.
 */
import type { HubContext } from '../context';
import type { AgencyUpdate } from '../domain/types';
import type { Sql } from '../store/db';
import type { OutboxWriter } from '../context';
import type { OutboxRow } from '../outbox/outbox';
import { completeRow } from '../outbox/outbox';
import { isNewer } from '../ledger/agency-update-decision';
import { recordExchanges, type ExchangeEntry } from '../exchanges/exchange-log';
import { Permanent } from '../pipeline/errors';
import { applyUpdateInMemory, flushUpdateState, loadUpdateState, type UpdateState } from './update-state';

/** Store updates (deduplicated by partner + id) and owe their application. Returns how many were new. */
export async function storePartnerUpdates(
  sql: Sql,
  outbox: OutboxWriter,
  partnerId: string,
  updates: AgencyUpdate[],
  via: 'push' | 'pull',
  now: Date,
  latencyMs?: number,
): Promise<{ fresh: number; duplicates: number }> {
  let fresh = 0;
  const entries: ExchangeEntry[] = [];
  for (const u of updates) {
    // Stored once (by partner + id), and — in the same statement — the case, which tells which
    // merchant this update belongs to (an unknown case is logged without one), and the claim its invoice.
    const found = (await sql.query<{ stored_id: number | null; id: string | null; merchant_id: string | null; customer_id: string | null; claim_invoice_id: string | null }>(
      `WITH stored AS (
         INSERT INTO partner_updates (partner_id, update_id, via, payload, received_at) VALUES ($1,$5,$6,$7,$8)
         ON CONFLICT (partner_id, update_id) DO NOTHING RETURNING id
       )
       SELECT (SELECT id FROM stored) AS stored_id, k.id, k.merchant_id, k.customer_id,
         (SELECT c.invoice_id FROM claims c WHERE c.id = $4 AND c.case_id = k.id) AS claim_invoice_id
       FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT * FROM cases WHERE partner_id = $1 AND (partner_ref = $2 OR id = $3) LIMIT 1) k ON true`,
      [partnerId, u.caseId, u.caseReference, u.claimReference ?? null, u.id, via, JSON.stringify(u), now],
    )).rows[0];
    const r = { rows: found.stored_id == null ? [] : [{ id: Number(found.stored_id) }] };
    const kase = found.id ? { id: found.id, merchant_id: found.merchant_id!, customer_id: found.customer_id! } : undefined;
    const claim = found.claim_invoice_id ? { invoice_id: found.claim_invoice_id } : undefined;
    entries.push({
      merchantId: kase?.merchant_id ?? null,
      direction: 'in',
      party: partnerId,
      operation: `update ${u.status}${u.reason ? ` (${u.reason})` : ''}`,
      outcome: r.rows[0] ? 'ok' : 'duplicate',
      httpStatus: via === 'push' ? 200 : null,
      latencyMs: latencyMs ?? null,
      customerId: kase?.customer_id ?? null,
      invoiceId: claim?.invoice_id ?? null,
      caseId: kase?.id ?? null,
      summary: `${via} update ${u.id} seq ${u.seq}`,
      request: u,
      at: now,
    });
    if (!r.rows[0]) continue;
    fresh++;
    await outbox.add({
      kind: 'apply_update', lane: 'hub', payload: { partnerUpdateId: r.rows[0].id },
      idempotencyKey: `update-${partnerId}-${u.id}`, merchantId: kase?.merchant_id ?? null, caseId: kase?.id ?? null,
      customerId: kase?.customer_id ?? null, invoiceId: claim?.invoice_id ?? null,
    });
  }
  await recordExchanges(sql, entries);
  return { fresh, duplicates: updates.length - fresh };
}

/** Is (occurredAt, seq) strictly newer than what was last applied? (src/ledger/agency-update-decision.ts) */
export { isNewer };

/** A stored update as applyUpdate reads it (locked). */
export interface StoredUpdate {
  id: number;
  partner_id: string;
  payload: AgencyUpdate;
  status: string;
}

/** Lock stored updates (in id order): one statement for a whole batch. */
export async function lockStoredUpdates(sql: Sql, ids: number[]): Promise<Map<number, StoredUpdate>> {
  if (!ids.length) return new Map();
  const r = await sql.query<StoredUpdate>(`SELECT id, partner_id, payload, status FROM partner_updates WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE`, [ids]);
  return new Map(r.rows.map((x) => [Number(x.id), x]));
}

/** What applying an update came to; `mark`: the update's own row, for the caller to write (markUpdates). */
export interface UpdateOutcome {
  outcome: string;
  mark?: { id: number; status: 'applied' | 'stale' };
}

/** Write applied updates' own rows: one statement for a whole batch. */
export async function markUpdates(sql: Sql, marks: NonNullable<UpdateOutcome['mark']>[], now: Date): Promise<void> {
  if (!marks.length) return;
  await sql.query(
    `UPDATE partner_updates p SET status = m.status, applied_at = $3 FROM unnest($1::bigint[], $2::text[]) AS m(id, status) WHERE p.id = m.id`,
    [marks.map((m) => m.id), marks.map((m) => m.status), now],
  );
}

/**
 * Apply stored updates inside the caller's transaction, set-based (src/sync/update-state.ts): the
 * rows they touch are locked and loaded once, each update is decided in memory in order, and
 * the changes are written by `finish` (the caller completes the outbox rows and writes the marks).
 */
export function updateApplier(sql: Sql, now: Date) {
  let state: UpdateState | null = null;
  return {
    /** Lock and load what these stored updates touch (`customerIds`: their cases' customers, read before). */
    async load(stored: StoredUpdate[], customerIds: string[]): Promise<void> {
      const live = stored.filter((s) => s.status === 'received');
      state = await loadUpdateState(sql, live.map((s) => ({ partnerId: s.partner_id, caseId: s.payload.caseId, caseReference: s.payload.caseReference })), customerIds);
    },
    /** One update (null: not found), decided against the loaded state as the updates before it left it. */
    apply(id: number, stored: StoredUpdate | null): UpdateOutcome {
      if (!stored) throw new Permanent(`partner update ${id} not found`);
      if (stored.status !== 'received') return { outcome: stored.status };
      if (!state) throw new Error('updateApplier: load() first');
      const r = applyUpdateInMemory(state, id, stored.partner_id, stored.payload, now);
      if (r.outcome === 'unknown case' || r.outcome === 'unknown claim') return { outcome: r.outcome };
      return { outcome: r.outcome, mark: { id, status: r.outcome } };
    },
    /** Write what the updates changed. */
    async finish(): Promise<void> {
      if (state) await flushUpdateState(sql, state, now);
    },
  };
}

/** The metric and log line of an applied update (after its commit). */
export function reportUpdate(ctx: HubContext, row: OutboxRow<'apply_update'>, outcome: string): void {
  ctx.metrics.partnerUpdates.inc({ partner: row.lane, via: 'apply', outcome });
  ctx.logger.info('partner update', { partnerUpdateId: Number(row.payload.partnerUpdateId), caseId: row.case_id, merchantId: row.merchant_id, outcome });
}

/** One apply_update row on its own (its own transaction). The hub's workers run them in batches (update-batch.ts). */
export async function applyPartnerUpdate(ctx: HubContext, row: OutboxRow<'apply_update'>): Promise<void> {
  const id = Number(row.payload.partnerUpdateId);
  const now = ctx.clock.now();
  const { outcome } = await ctx.commit(async (sql) => {
    const stored = (await lockStoredUpdates(sql, [id])).get(id) ?? null;
    const customer = stored
      ? (await sql.query<{ customer_id: string }>(`SELECT customer_id FROM cases WHERE partner_id = $1 AND (partner_ref = $2 OR id = $3)`, [stored.partner_id, stored.payload.caseId, stored.payload.caseReference])).rows[0]
      : undefined;
    const applier = updateApplier(sql, now);
    await applier.load(stored ? [stored] : [], customer ? [customer.customer_id] : []);
    const out = applier.apply(id, stored);
    await applier.finish();
    if (out.mark) await markUpdates(sql, [out.mark], now);
    await completeRow(sql, row.id, now);
    return out;
  });
  reportUpdate(ctx, row, outcome);
}

/**
 * Pull the partner's update feed once: fetch after the stored cursor, store what is new, move
 * the cursor only if nobody moved it meanwhile (two workers pulling at once is harmless).
 */
export async function pullPartner(ctx: HubContext, partnerId: string): Promise<{ fetched: number; fresh: number }> {
  const partner = ctx.partners.get(partnerId);
  if (!partner) throw new Error(`unknown partner ${partnerId}`);
  const limit = partner.settings.config.pull?.limit ?? 100;
  let total = 0;
  let fresh = 0;
  for (let page = 0; page < 50; page++) {
    const cur = (await ctx.db.query<{ cursor: string | null }>(`SELECT cursor FROM partner_cursors WHERE partner_id = $1`, [partnerId])).rows[0];
    const cursor = cur?.cursor ?? null;
    const started = Date.now();
    const { updates, next } = await partner.client.pullUpdates(cursor, limit);
    const latency = Date.now() - started;
    const now = ctx.clock.now();
    const moved = await ctx.commit(async (sql, outbox) => {
      const res = await sql.query(
        `INSERT INTO partner_cursors (partner_id, cursor, pulled_at, updated_at) VALUES ($1,$2,$3,$3)
         ON CONFLICT (partner_id) DO UPDATE SET cursor = EXCLUDED.cursor, pulled_at = EXCLUDED.pulled_at, updated_at = EXCLUDED.updated_at
         WHERE partner_cursors.cursor IS NOT DISTINCT FROM $4`,
        [partnerId, next ?? cursor, now, cursor],
      );
      if (res.rowCount === 0) return false;
      const r = await storePartnerUpdates(sql, outbox, partnerId, updates, 'pull', now, latency);
      fresh += r.fresh;
      return true;
    });
    total += updates.length;
    if (!moved || updates.length < limit || !next || next === cursor) break;
  }
  return { fetched: total, fresh };
}
