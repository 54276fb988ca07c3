/**
 * apply_update set-based (issue 14, "set-based stages"): the state that a batch of agency updates
 * touches is loaded and locked in a fixed number of statements (the cases' customers and debtors,
 * the cases, every claim of those cases, those claims' invoices), every update is decided in memory
 * in order — each seeing what the ones before it did — with the pure functions
 * (`decideClaimUpdate`, `deriveCaseStatus`), and what changed is written back with one multi-row
 * statement per table. A batch of n updates costs the same handful of statements as one.
 *
 * Lock order is the PSP side's (customer, debtor, then case, claim, invoice), so the two never
 * deadlock; the batch's customers are also held by the sorted advisory locks of src/pipeline/batch-tx.ts.
 * The single-row path (applyPartnerUpdate) is the same code with a batch of one.
 */
import type { AgencyUpdate } from '../domain/types';
import type { Sql } from '../store/db';
import type { CaseRow, ClaimRow, InvoiceRow } from '../ledger/rows';
import { decideClaimUpdate, isNewer, type ClaimState } from '../ledger/agency-update-decision';
import { addHistoryRows, type HistoryEntry } from '../ledger/history';
import { caseStatusChange } from '../ledger/case-status';
import { recordExchanges, type ExchangeEntry } from '../exchanges/exchange-log';

const TERMINAL = ['paid', 'withdrawn', 'uncollectible', 'closed'];

type Claim = ClaimRow & ClaimState;

/** The locked rows a batch of updates may change, and what it changed. */
export interface UpdateState {
  cases: CaseRow[];
  /** Every claim of each loaded case, by case id. */
  claimsByCase: Map<string, Claim[]>;
  invoices: Map<string, InvoiceRow>;
  changed: { cases: Set<CaseRow>; claims: Set<Claim>; invoices: Set<InvoiceRow> };
  history: HistoryEntry[];
  exchanges: ExchangeEntry[];
  /** Updates that name no case or claim of their partner: (id, why). */
  failed: { id: number; error: string }[];
}

/** What one update names: its partner and the case (the agency's ref, or ours). */
export interface UpdateRef {
  partnerId: string;
  caseId?: string | null;
  caseReference?: string | null;
}

/** The case a partner's update names, among the loaded ones (only that partner's: tenant safety). */
function findCase(state: UpdateState, r: UpdateRef): CaseRow | undefined {
  return state.cases.find((k) => k.partner_id === r.partnerId && ((r.caseId != null && k.partner_ref === r.caseId) || (r.caseReference != null && k.id === r.caseReference)));
}

/**
 * Lock and load what these updates may touch: four statements whatever their number.
 * `customerIds`: the customers of their cases as read before the transaction (a case's customer never changes).
 */
export async function loadUpdateState(sql: Sql, refs: UpdateRef[], customerIds: string[]): Promise<UpdateState> {
  const state: UpdateState = {
    cases: [], claimsByCase: new Map(), invoices: new Map(), changed: { cases: new Set(), claims: new Set(), invoices: new Set() }, history: [], exchanges: [], failed: [],
  };
  const customers = [...new Set(customerIds)].sort();
  if (customers.length) {
    await sql.query(`SELECT d.id FROM customers c JOIN debtors d ON d.id = c.debtor_id WHERE c.id = ANY($1::text[]) ORDER BY c.id FOR UPDATE OF c, d`, [customers]);
  }
  if (!refs.length) return state;
  state.cases = (await sql.query<CaseRow>(
    // Two index lookups (the partner's ref, our id), not a join on an OR; findCase then matches each
    // update to its partner's case only.
    `SELECT * FROM cases WHERE partner_id = ANY($1::text[]) AND (partner_ref = ANY($2::text[]) OR id = ANY($3::text[])) ORDER BY id FOR UPDATE`,
    [[...new Set(refs.map((r) => r.partnerId))], refs.map((r) => r.caseId).filter((x): x is string => x != null), refs.map((r) => r.caseReference).filter((x): x is string => x != null)],
  )).rows;
  if (!state.cases.length) return state;
  const claims = (await sql.query<Claim>(`SELECT * FROM claims WHERE case_id = ANY($1::text[]) ORDER BY id FOR UPDATE`, [state.cases.map((k) => k.id)])).rows;
  for (const c of claims) {
    const list = state.claimsByCase.get(c.case_id) ?? [];
    list.push(c);
    state.claimsByCase.set(c.case_id, list);
  }
  const invoiceIds = [...new Set(claims.map((c) => c.invoice_id))];
  if (invoiceIds.length) {
    const invoices = (await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE`, [invoiceIds])).rows;
    for (const i of invoices) state.invoices.set(i.id, i);
  }
  return state;
}

/**
 * One update for one claim, in memory: decideClaimUpdate says what changes; the claim and its
 * invoice are changed here, and the history and sync-log lines kept for the write.
 */
function applyToClaim(state: UpdateState, claim: Claim, u: AgencyUpdate, source: string, now: Date, caseLevel = false): boolean {
  const inv = state.invoices.get(claim.invoice_id) ?? null;
  const d = decideClaimUpdate(claim, inv, u, { source, caseLevel });
  const cp = d.claimPatch;
  const at = new Date(u.occurredAt);
  if (cp?.lastUpdate) {
    Object.assign(claim, {
      status: cp.status, resolution: cp.resolution ?? null, amount_collected: cp.amountCollected, arrangement: cp.arrangement ?? claim.arrangement,
      last_update_at: at, last_update_seq: u.seq, updated_at: now,
      ...(cp.amountUpdate ? { amount_update_at: at, amount_update_seq: u.seq } : {}),
    });
    state.changed.claims.add(claim);
  } else if (cp) {
    Object.assign(claim, { amount_collected: cp.amountCollected, amount_update_at: at, amount_update_seq: u.seq });
    state.changed.claims.add(claim);
  }
  const ip = d.invoicePatch;
  if (ip && inv) {
    if ('status' in ip) inv.status = ip.status!;
    if ('resolution' in ip) inv.resolution = ip.resolution ?? null;
    if ('resolvedBy' in ip) inv.resolved_by = ip.resolvedBy ?? null;
    if (ip.arrangement) inv.arrangement = ip.arrangement;
    if ('amountCollected' in ip) inv.amount_collected = ip.amountCollected!;
    if ('amountOwedBack' in ip) inv.amount_owed_back = ip.amountOwedBack!;
    if (ip.lastUpdate) {
      inv.last_update_at = at;
      inv.last_update_seq = u.seq;
    }
    inv.updated_at = now;
    state.changed.invoices.add(inv);
  }
  if (d.owed && inv) {
    // The sync log says it for the merchant (and the owed_back timeline row is the webhook).
    state.exchanges.push({
      merchantId: inv.merchant_id, direction: 'in', party: source, operation: 'owed back', outcome: 'ok', customerId: inv.customer_id, invoiceId: inv.id,
      caseId: claim.case_id, summary: `update ${u.id}: ${d.owed.summary}`, at: now,
    });
  }
  state.history.push(...d.history);
  return d.applied;
}

/** The case follows its claims after one changed (src/ledger/case-status.ts), in memory. */
function refreshCase(state: UpdateState, kase: CaseRow, now: Date, source: string): void {
  const change = caseStatusChange(kase, state.claimsByCase.get(kase.id) ?? [], now, source);
  if (!change) return;
  const { next } = change;
  Object.assign(kase, { status: next.status, resolution: next.resolution, updated_at: now, ...(next.ended ? { closed_at: now } : {}) });
  state.changed.cases.add(kase);
  state.history.push(change.history);
}

/** What applying one update came to. */
export type UpdateResult = { outcome: 'applied' | 'stale' } | { outcome: 'unknown case' | 'unknown claim' };

/**
 * Apply one stored update to the loaded state (no SQL). An update older than the state it would
 * replace (by occurredAt, then seq) is stale and changes nothing but the sync log.
 */
export function applyUpdateInMemory(state: UpdateState, id: number, partnerId: string, u: AgencyUpdate, now: Date): UpdateResult {
  // Only a case this partner holds: one agency can never touch another's cases (tenant safety).
  const kase = findCase(state, { partnerId, caseId: u.caseId, caseReference: u.caseReference });
  if (!kase) {
    state.failed.push({ id, error: `no case ${u.caseId} (${u.caseReference}) at ${partnerId}` });
    return { outcome: 'unknown case' };
  }
  const claims = state.claimsByCase.get(kase.id) ?? [];
  let applied = false;
  if (u.claimReference) {
    const claim = claims.find((c) => c.id === u.claimReference);
    if (!claim) {
      state.failed.push({ id, error: `no claim ${u.claimReference} on case ${kase.id}` });
      return { outcome: 'unknown claim' };
    }
    applied = applyToClaim(state, claim, u, partnerId, now);
    // The case follows its claims: progress too, not only an end.
    if (applied) refreshCase(state, kase, now, partnerId);
  } else if (isNewer(u, { at: kase.last_update_at, seq: kase.last_update_seq }) && !(TERMINAL.includes(kase.status) && !TERMINAL.includes(u.status))) {
    // (A case whose claims have all ended is not reopened by an older or progress-only case update.)
    applied = true;
    Object.assign(kase, {
      status: u.status, resolution: u.reason ?? kase.resolution, last_update_at: new Date(u.occurredAt), last_update_seq: u.seq, updated_at: now,
      ...(TERMINAL.includes(u.status) ? { closed_at: now } : {}),
    });
    state.changed.cases.add(kase);
    state.history.push({ merchantId: kase.merchant_id, entity: 'case', entityId: kase.id, status: u.status, reason: u.reason ?? null, source: partnerId, occurredAt: u.occurredAt, detail: { updateId: u.id, seq: u.seq, note: u.note } });
    // A case-wide status holds for every claim still open whose own news is older. On a case of one
    // claim the case's amount is that claim's: applied as the claim's own, so an update that
    // overtakes the claim-level one (two workers) never shows the invoice paid with nothing
    // collected (seen in services mode: test/e2e/stripe-to-agency.test.ts).
    const open = claims.filter((c) => !TERMINAL.includes(c.status));
    const sole = open.length === 1 && !!u.amountCollected && claims.length === 1;
    for (const c of open) applyToClaim(state, c, u, partnerId, now, !sole);
  }
  if (!applied) {
    state.exchanges.push({
      merchantId: kase.merchant_id, direction: 'in', party: partnerId, operation: `update ${u.status}`, outcome: 'stale', caseId: kase.id,
      customerId: kase.customer_id, summary: `update ${u.id} (seq ${u.seq}, ${u.occurredAt}) is older than the state it would replace: not applied`, at: now,
    });
  }
  return { outcome: applied ? 'applied' : 'stale' };
}

const iso = (d: Date | string | null | undefined) => (d == null ? null : new Date(d).toISOString());
const big = (v: number | string | null | undefined) => (v == null ? null : String(v));
const json = (v: unknown) => (v == null ? null : JSON.stringify(v));

/** A column written back: its name, its SQL type (jsonb travels as text), and its value in a row. */
type Column<R> = [name: string, type: 'text' | 'bigint' | 'timestamptz' | 'jsonb', value: (row: R) => unknown];

/** Write these columns of these rows (by id) in one statement: `UPDATE … FROM unnest(…)`. */
async function updateRows<R extends { id: string }>(sql: Sql, table: 'claims' | 'invoices' | 'cases', rows: R[], columns: Column<R>[]): Promise<void> {
  if (!rows.length) return;
  const all: Column<R>[] = [['id', 'text', (r) => r.id], ...columns];
  await sql.query(
    `UPDATE ${table} t SET ${columns.map(([name, type]) => `${name} = x.${name}${type === 'jsonb' ? '::jsonb' : ''}`).join(', ')}
       FROM unnest(${all.map(([, type], i) => `$${i + 1}::${type === 'jsonb' ? 'text' : type}[]`).join(', ')}) AS x(${all.map(([name]) => name).join(', ')})
      WHERE t.id = x.id`,
    all.map(([, , value]) => rows.map(value)),
  );
}

type Row = { updated_at?: Date };

/** Write what the batch changed: one statement per table that changed, plus the held-back history and sync log. */
export async function flushUpdateState(sql: Sql, state: UpdateState, now: Date): Promise<void> {
  await updateRows<Claim & Row>(sql, 'claims', [...state.changed.claims], [
    ['status', 'text', (c) => c.status], ['resolution', 'text', (c) => c.resolution], ['amount_collected', 'bigint', (c) => big(c.amount_collected)],
    ['arrangement', 'jsonb', (c) => json(c.arrangement)], ['last_update_at', 'timestamptz', (c) => iso(c.last_update_at)],
    ['last_update_seq', 'bigint', (c) => big(c.last_update_seq)], ['amount_update_at', 'timestamptz', (c) => iso(c.amount_update_at)],
    ['amount_update_seq', 'bigint', (c) => big(c.amount_update_seq)], ['updated_at', 'timestamptz', (c) => iso(c.updated_at ?? now)],
  ]);
  await updateRows<InvoiceRow>(sql, 'invoices', [...state.changed.invoices], [
    ['status', 'text', (i) => i.status], ['resolution', 'text', (i) => i.resolution], ['resolved_by', 'text', (i) => i.resolved_by],
    ['arrangement', 'jsonb', (i) => json(i.arrangement)], ['amount_collected', 'bigint', (i) => big(i.amount_collected)],
    ['amount_owed_back', 'bigint', (i) => big(i.amount_owed_back ?? 0)], ['last_update_at', 'timestamptz', (i) => iso(i.last_update_at)],
    ['last_update_seq', 'bigint', (i) => big(i.last_update_seq)], ['updated_at', 'timestamptz', (i) => iso(i.updated_at)],
  ]);
  await updateRows<CaseRow & Row>(sql, 'cases', [...state.changed.cases], [
    ['status', 'text', (k) => k.status], ['resolution', 'text', (k) => k.resolution], ['last_update_at', 'timestamptz', (k) => iso(k.last_update_at)],
    ['last_update_seq', 'bigint', (k) => big(k.last_update_seq)], ['closed_at', 'timestamptz', (k) => iso(k.closed_at)],
    ['updated_at', 'timestamptz', (k) => iso(k.updated_at ?? now)],
  ]);
  if (state.failed.length) {
    await sql.query(
      `UPDATE partner_updates p SET status = 'failed', error = x.error FROM unnest($1::bigint[], $2::text[]) AS x(id, error) WHERE p.id = x.id`,
      [state.failed.map((f) => f.id), state.failed.map((f) => f.error)],
    );
  }
  await addHistoryRows(sql, state.history, now);
  await recordExchanges(sql, state.exchanges);
  state.changed = { cases: new Set(), claims: new Set(), invoices: new Set() };
  state.history = [];
  state.exchanges = [];
  state.failed = [];
}
