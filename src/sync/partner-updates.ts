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
import type { CaseRow, ClaimRow, InvoiceRow } from '../ledger/rows';
import { decideClaimUpdate, isNewer } from '../ledger/agency-update-decision';
import { addHistory, addHistoryRows, type HistoryEntry } from '../ledger/history';
import { refreshCaseStatus } from '../ledger/case-status';
import { recordExchanges, type ExchangeEntry } from '../exchanges/exchange-log';
import { Permanent } from '../pipeline/errors';

const TERMINAL = ['paid', 'withdrawn', 'uncollectible', 'closed'];

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

/**
 * One update for one claim: the decision is pure (src/ledger/agency-update-decision.ts
 * decideClaimUpdate: ordering, the collected amount, the invoice's mirror, owed back); this loads
 * the claim's invoice (locked after the claim, as the PSP side locks) and writes what it returns.
 */
async function applyToClaim(sql: Sql, claim: ClaimRow, u: AgencyUpdate, source: string, now: Date, caseLevel = false): Promise<boolean> {
  const inv = (await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE id = $1 FOR UPDATE`, [claim.invoice_id])).rows[0] ?? null;
  const d = decideClaimUpdate(claim, inv, u, { source, caseLevel });
  const cp = d.claimPatch;
  if (cp?.lastUpdate) {
    await sql.query(
      `UPDATE claims SET status = $2, resolution = $3, amount_collected = $4, arrangement = COALESCE($5, arrangement),
         last_update_at = $6, last_update_seq = $7, updated_at = $8,
         amount_update_at = CASE WHEN $9 THEN $6 ELSE amount_update_at END, amount_update_seq = CASE WHEN $9 THEN $7 ELSE amount_update_seq END
       WHERE id = $1`,
      [claim.id, cp.status, cp.resolution ?? null, cp.amountCollected, cp.arrangement ? JSON.stringify(cp.arrangement) : null, new Date(u.occurredAt), u.seq, now, cp.amountUpdate],
    );
  } else if (cp) {
    await sql.query(`UPDATE claims SET amount_collected = $2, amount_update_at = $3, amount_update_seq = $4 WHERE id = $1`, [claim.id, cp.amountCollected, new Date(u.occurredAt), u.seq]);
  }
  const ip = d.invoicePatch;
  if (ip && inv) {
    const params: unknown[] = [inv.id];
    const sets: string[] = [];
    const set = (column: string, value: unknown) => {
      params.push(value);
      sets.push(`${column} = $${params.length}`);
    };
    if ('status' in ip) set('status', ip.status);
    if ('resolution' in ip) set('resolution', ip.resolution);
    if ('resolvedBy' in ip) set('resolved_by', ip.resolvedBy);
    if (ip.arrangement) set('arrangement', JSON.stringify(ip.arrangement));
    if ('amountCollected' in ip) set('amount_collected', ip.amountCollected);
    if ('amountOwedBack' in ip) set('amount_owed_back', ip.amountOwedBack);
    if (ip.lastUpdate) {
      set('last_update_at', new Date(u.occurredAt));
      set('last_update_seq', u.seq);
    }
    set('updated_at', now);
    await sql.query(`UPDATE invoices SET ${sets.join(', ')} WHERE id = $1`, params);
  }
  if (d.owed && inv) {
    // The sync log says it for the merchant (and the owed_back timeline row, below, is the webhook).
    await recordExchanges(sql, [{
      merchantId: inv.merchant_id, direction: 'in', party: source, operation: 'owed back', outcome: 'ok', customerId: inv.customer_id, invoiceId: inv.id,
      caseId: claim.case_id, summary: `update ${u.id}: ${d.owed.summary}`, at: now,
    }]);
  }
  await addHistoryRows(sql, d.history, now);
  return d.applied;
}

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
 * Apply one stored update inside the caller's transaction (its outbox row is completed by the
 * caller). `stored`: the update as the caller locked it (lockStoredUpdates); without it this locks it.
 */
export async function applyUpdate(
  sql: Sql, id: number, now: Date, stored?: StoredUpdate | null,
  /** The customer of the update's case, when the caller read it already (a case's customer never changes). */
  caseCustomerId?: string | null,
): Promise<UpdateOutcome> {
  if (stored === undefined) stored = (await lockStoredUpdates(sql, [id])).get(id) ?? null;
  if (!stored) throw new Permanent(`partner update ${id} not found`);
  if (stored.status !== 'received') return { outcome: stored.status };
  const u = stored.payload;
  const partnerId = stored.partner_id;
  // Only a case this partner holds: one agency can never touch another's cases (tenant safety).
  const found = caseCustomerId
    ? { customer_id: caseCustomerId }
    : (await sql.query<{ customer_id: string }>(`SELECT customer_id FROM cases WHERE partner_id = $1 AND (partner_ref = $2 OR id = $3)`, [partnerId, u.caseId, u.caseReference])).rows[0];
  // Lock in the same order as the PSP side (customer, then debtor, then invoice/claim/case) so the two
  // never deadlock. The debtor matters since a case may hold the invoices of the same person's
  // customers at other PSPs, whose events lock only their own customer (src/ledger/debtors.ts).
  if (found) await sql.query(`SELECT d.id FROM customers c JOIN debtors d ON d.id = c.debtor_id WHERE c.id = $1 FOR UPDATE OF c, d`, [found.customer_id]);
  const kase = found
    ? (await sql.query<CaseRow>(`SELECT * FROM cases WHERE partner_id = $1 AND (partner_ref = $2 OR id = $3) FOR UPDATE`, [partnerId, u.caseId, u.caseReference])).rows[0]
    : undefined;
  if (!kase) {
    await sql.query(`UPDATE partner_updates SET status = 'failed', error = $2 WHERE id = $1`, [id, `no case ${u.caseId} (${u.caseReference}) at ${partnerId}`]);
    return { outcome: 'unknown case' };
  }
  let applied = false;
  if (u.claimReference) {
    const claim = (await sql.query<ClaimRow>(`SELECT * FROM claims WHERE id = $1 AND case_id = $2 FOR UPDATE`, [u.claimReference, kase.id])).rows[0];
    if (!claim) {
      await sql.query(`UPDATE partner_updates SET status = 'failed', error = $2 WHERE id = $1`, [id, `no claim ${u.claimReference} on case ${kase.id}`]);
      return { outcome: 'unknown claim' };
    }
    applied = await applyToClaim(sql, claim, u, partnerId, now);
    // The case follows its claims (src/ledger/case-status.ts): progress too, not only an end.
    if (applied) await refreshCaseStatus(sql, kase.id, now, partnerId);
  } else if (isNewer(u, { at: kase.last_update_at, seq: kase.last_update_seq }) && !(TERMINAL.includes(kase.status) && !TERMINAL.includes(u.status))) {
    // (A case whose claims have all ended is not reopened by an older or progress-only case update.)
    applied = true;
    const closing = TERMINAL.includes(u.status);
    await sql.query(
      `UPDATE cases SET status = $2, resolution = COALESCE($3, resolution), last_update_at = $4, last_update_seq = $5, updated_at = $6,
         closed_at = CASE WHEN $7 THEN $6 ELSE closed_at END WHERE id = $1`,
      [kase.id, u.status, u.reason ?? null, new Date(u.occurredAt), u.seq, now, closing],
    );
    await addHistory(sql, { merchantId: kase.merchant_id, entity: 'case', entityId: kase.id, status: u.status, reason: u.reason ?? null, source: partnerId, occurredAt: u.occurredAt, detail: { updateId: u.id, seq: u.seq, note: u.note } }, now);
    // A case-wide status holds for every claim still open whose own news is older.
    const claims = (await sql.query<ClaimRow>(`SELECT * FROM claims WHERE case_id = $1 AND status NOT IN ('paid','withdrawn','uncollectible','closed') FOR UPDATE`, [kase.id])).rows;
    // On a case of one claim the case's amount is that claim's: applied as the claim's own, so an
    // update that overtakes the claim-level one (two workers) never shows the invoice paid with
    // nothing collected (seen in services mode: test/e2e/stripe-to-agency.test.ts).
    const sole = claims.length === 1 && !!u.amountCollected &&
      Number((await sql.query<{ n: number }>(`SELECT count(*)::int AS n FROM claims WHERE case_id = $1`, [kase.id])).rows[0].n) === 1;
    for (const c of claims) await applyToClaim(sql, c, u, partnerId, now, !sole);
  }
  if (!applied) {
    await recordExchanges(sql, [{
      merchantId: kase.merchant_id, direction: 'in', party: partnerId, operation: `update ${u.status}`, outcome: 'stale', caseId: kase.id,
      customerId: kase.customer_id, summary: `update ${u.id} (seq ${u.seq}, ${u.occurredAt}) is older than the state it would replace: not applied`, at: now,
    }]);
  }
  return { outcome: applied ? 'applied' : 'stale', mark: { id, status: applied ? 'applied' : 'stale' } };
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
    const out = await applyUpdate(sql, id, now);
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
