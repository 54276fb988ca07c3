/**
 * The merchant API (contract §6). Every query is scoped by the merchant of the token: another
 * merchant's id in a path answers 404, never the data. `:ref` is the PSP's id or the hub's.
 */
import express, { type Router, type Request, type RequestHandler } from 'express';
import type { HubContext } from '../context';
import type { Sql } from '../store/db';
import type { CaseRow, ClaimRow, CustomerRow, InvoiceRow } from '../ledger/rows';
import { merchantAuthOptions, requireMerchant } from './merchant-auth';
import { HttpError, notFound } from './errors';
import { retryDeadRow } from '../outbox/outbox';
import { buildLeakageReport } from '../reports/leakage';
import { loadCustomerPicture } from '../reports/customer-picture';
import { debtorErased, loadDebtorProfile, type DebtorProfile } from '../profile/profile';
import { redact, redactText } from '../observability/redact';
import { inboundPayloadJoin, inboundRequestView } from '../exchanges/exchange-log';

const iso = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString() : null);
const money = (value: number | string, currency: string) => ({ value: Number(value), currency });

const IN_COLLECTION = ['submitted', 'in_collection', 'arrangement', 'partially_paid', 'on_hold', 'disputed'];

function merchantOf(req: Request): string {
  return req.merchantId!;
}

/** Longest id, filter or cursor accepted; ours and the PSPs' are far shorter. */
const MAX_PARAM_LENGTH = 256;
/** Control characters (NUL above all: PostgreSQL refuses it in text, which would be a 500). */
const CONTROL = /[\u0000-\u001f\u007f]/;

/** A text value from the query or the path, checked so nothing hostile reaches a query as a 500. */
function checked(name: string, v: string): string {
  if (v.length > MAX_PARAM_LENGTH) throw new HttpError(400, 'bad_request', `${name} is longer than ${MAX_PARAM_LENGTH} characters`);
  if (CONTROL.test(v)) throw new HttpError(400, 'bad_request', `${name} contains control characters`);
  return v;
}

function q(req: Request, name: string): string | undefined {
  const v = req.query[name];
  if (v === undefined || v === '') return undefined;
  // `?limit=1&limit=2` or `?status[x]=y`: refused rather than silently ignored.
  if (typeof v !== 'string') throw new HttpError(400, 'bad_request', `${name} must be given once, as a plain value`);
  return checked(name, v);
}

function pathParam(req: Request, name: string): string {
  return checked(name, String(req.params[name]));
}

/** A positive integer id or cursor that PostgreSQL's bigint and JavaScript both hold exactly. */
function positiveId(name: string, v: string): number {
  if (!/^[0-9]{1,15}$/.test(v) || Number(v) < 1) throw new HttpError(400, 'bad_request', `${name} must be a positive integer`);
  return Number(v);
}

const EARLIEST = Date.UTC(1970, 0, 1);
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** An ISO 8601 time within what the database stores (a year like -271821 parses in JavaScript). */
function timeParam(name: string, v: string): Date {
  const t = Date.parse(v);
  if (Number.isNaN(t) || t < EARLIEST || t > LATEST) throw new HttpError(400, 'bad_request', `${name} must be an ISO 8601 time between 1970 and 9999`);
  return new Date(t);
}

function limitOf(req: Request, def = 50, max = 500): number {
  const raw = q(req, 'limit');
  if (raw === undefined) return def;
  const n = /^[0-9]{1,4}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isInteger(n) || n < 1 || n > max) throw new HttpError(400, 'bad_request', `limit must be an integer from 1 to ${max}`);
  return n;
}

const OUTBOX_STATUSES = ['pending', 'in_flight', 'done', 'dead', 'cancelled'];

async function findCustomer(sql: Sql, merchantId: string, ref: string): Promise<CustomerRow | null> {
  // The hub's or a PSP's customer id first; else the debtor's id or the merchant's own customer id (issue 12, hole 3).
  const r = await sql.query<CustomerRow>(
    `SELECT * FROM customers WHERE merchant_id = $1
       AND (id = $2 OR provider_ref = $2 OR debtor_id = $2 OR debtor_id = (SELECT id FROM debtors WHERE merchant_id = $1 AND external_ref = $2))
     ORDER BY (id = $2 OR provider_ref = $2) DESC, created_at LIMIT 1`,
    [merchantId, ref],
  );
  return r.rows[0] ?? null;
}

async function findInvoice(sql: Sql, merchantId: string, ref: string): Promise<InvoiceRow | null> {
  const r = await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE merchant_id = $1 AND (id = $2 OR provider_ref = $2) ORDER BY created_at LIMIT 1`, [merchantId, ref]);
  if (r.rows[0]) return r.rows[0];
  // Else a later payment that paid it: a Mollie re-payment (tr_2) lands on the invoice tr_1 opened
  // and is recorded only in invoice_payment_refs (issue 12, hole 2). The merchant's own refs only.
  const paid = await sql.query<InvoiceRow>(
    `SELECT i.* FROM invoice_payment_refs p JOIN invoices i ON i.id = p.invoice_id AND i.merchant_id = p.merchant_id
      WHERE p.merchant_id = $1 AND p.payment_ref = $2 ORDER BY i.created_at LIMIT 1`,
    [merchantId, ref],
  );
  return paid.rows[0] ?? null;
}

async function timeline(sql: Sql, merchantId: string, entities: { entity: string; ids: string[] }[]) {
  const parts: string[] = [];
  const params: unknown[] = [merchantId];
  for (const e of entities) {
    if (!e.ids.length) continue;
    params.push(e.entity, e.ids);
    parts.push(`(entity = $${params.length - 1} AND entity_id = ANY($${params.length}::text[]))`);
  }
  if (!parts.length) return [];
  const r = await sql.query(
    `SELECT entity, entity_id, status, reason, source, detail, occurred_at, recorded_at FROM status_history
     WHERE merchant_id = $1 AND (${parts.join(' OR ')}) ORDER BY occurred_at, id`,
    params,
  );
  return r.rows.map((h: any) => ({
    at: iso(h.occurred_at), recordedAt: iso(h.recorded_at), entity: h.entity, id: h.entity_id, status: h.status,
    reason: h.reason ?? undefined, source: h.source, detail: h.detail ?? undefined,
  }));
}

export function invoiceView(inv: InvoiceRow, claim?: ClaimRow | null, kase?: CaseRow | null) {
  return {
    id: inv.id,
    ref: inv.provider_ref,
    provider: inv.provider,
    customerId: inv.customer_id,
    number: inv.number,
    status: inv.status,
    resolution: inv.resolution,
    resolvedBy: inv.resolved_by,
    amountDue: money(inv.amount_due, inv.currency),
    amountPaid: money(inv.amount_paid, inv.currency),
    amountCollected: money(inv.amount_collected, inv.currency),
    amountOpen: money(Math.max(0, Number(inv.amount_due) - Number(inv.amount_paid) - Number(inv.amount_collected)), inv.currency),
    /** Paid through the PSP and to the agency both, beyond what was due: the debtor's money (issue 12). */
    amountOwedBack: money(inv.amount_owed_back ?? 0, inv.currency),
    failure: inv.failure_code
      ? { code: inv.failure_code, reason: inv.failure_reason, message: inv.failure_message, retryable: inv.failure_retryable, final: inv.failure_final, count: inv.failure_count, firstAt: iso(inv.first_failed_at), lastAt: iso(inv.last_failed_at) }
      : null,
    handoverDueAt: iso(inv.handover_due_at),
    /** Held by the merchant until then (POST /v1/invoices/:ref/hold with holdUntil); null: not held. */
    holdUntil: iso(inv.hold_until ?? null),
    arrangement: inv.arrangement ?? null,
    subscriptionRef: inv.subscription_ref,
    paymentMethod: inv.payment_method,
    issuedAt: iso(inv.issued_at),
    dueAt: iso(inv.due_at),
    case: kase ? { id: kase.id, partner: kase.partner_id, partnerRef: kase.partner_ref, status: kase.status } : null,
    claim: claim ? { id: claim.id, status: claim.status, resolution: claim.resolution, amountCollected: money(claim.amount_collected, claim.currency) } : null,
    updatedAt: iso(inv.updated_at),
  };
}

function caseView(c: CaseRow, claims: ClaimRow[]) {
  const principal = claims.reduce((n, x) => n + Number(x.principal), 0);
  const collected = claims.reduce((n, x) => n + Number(x.amount_collected), 0);
  return {
    id: c.id,
    customerId: c.customer_id,
    debtorId: c.debtor_id,
    partner: c.partner_id,
    partnerRef: c.partner_ref,
    status: c.status,
    resolution: c.resolution,
    principal: money(principal, c.currency),
    collected: money(collected, c.currency),
    openedAt: iso(c.opened_at),
    submittedAt: iso(c.submitted_at),
    closedAt: iso(c.closed_at),
    // Statutory costs (src/policy/letter-evidence.ts): the case's total and each claim's own, with the
    // basis (or why there are none, e.g. no evidence of the 14-day letter); null where no cost rule applies.
    collectionCosts: c.collection_costs != null ? { ...money(c.collection_costs, c.currency), basis: c.collection_costs_basis } : null,
    claims: claims.map((x) => ({
      id: x.id, invoiceId: x.invoice_id, status: x.status, resolution: x.resolution, principal: money(x.principal, x.currency), amountCollected: money(x.amount_collected, x.currency), arrangement: x.arrangement ?? null,
      collectionCosts: x.collection_costs != null ? { ...money(x.collection_costs, x.currency), basis: x.collection_costs_basis ?? null } : null,
    })),
  };
}

/**
 * The customer view is the debtor's (issue 12, hole 3): the invoices and cases of every PSP
 * customer of the same person, with those PSP identities listed under `debtor`.
 */
export async function customerView(sql: Sql, merchantId: string, c: CustomerRow) {
  const debtor = (await sql.query<{ id: string; external_ref: string | null; email_norm: string | null }>(
    `SELECT id, external_ref, email_norm FROM debtors WHERE merchant_id = $1 AND id = $2`, [merchantId, c.debtor_id],
  )).rows[0];
  const identities = (await sql.query<CustomerRow>(`SELECT * FROM customers WHERE merchant_id = $1 AND debtor_id = $2 ORDER BY created_at, id`, [merchantId, c.debtor_id])).rows;
  const invoices = (await sql.query<InvoiceRow>(
    `SELECT * FROM invoices WHERE merchant_id = $1 AND customer_id = ANY($2::text[]) ORDER BY COALESCE(issued_at, created_at), id`,
    [merchantId, identities.map((x) => x.id)],
  )).rows;
  const cases = (await sql.query<CaseRow>(`SELECT * FROM cases WHERE merchant_id = $1 AND debtor_id = $2 ORDER BY opened_at`, [merchantId, c.debtor_id])).rows;
  const byStatus: Record<string, { count: number; amount: { value: number; currency: string }[] }> = {};
  const totals = new Map<string, { open: number; collected: number; paidToMerchant: number; owedBack: number }>();
  for (const inv of invoices) {
    const s = (byStatus[inv.status] ??= { count: 0, amount: [] });
    s.count++;
    const m = s.amount.find((a) => a.currency === inv.currency);
    if (m) m.value += Number(inv.amount_due);
    else s.amount.push(money(inv.amount_due, inv.currency));
    const t = totals.get(inv.currency) ?? { open: 0, collected: 0, paidToMerchant: 0, owedBack: 0 };
    t.owedBack += Number(inv.amount_owed_back ?? 0);
    const open = ['open', 'pending_handover', ...IN_COLLECTION].includes(inv.status) && inv.failure_count > 0;
    if (open) t.open += Math.max(0, Number(inv.amount_due) - Number(inv.amount_paid) - Number(inv.amount_collected));
    t.collected += Number(inv.amount_collected);
    if (inv.resolution === 'paid_to_merchant' || inv.status === 'recovered') t.paidToMerchant += Number(inv.amount_paid);
    totals.set(inv.currency, t);
  }
  const failures = invoices.filter((i) => i.failure_count > 0);
  const resolved = invoices.filter((i) => i.failure_count > 0 && i.resolution).sort((a, b) => +new Date(b.updated_at) - +new Date(a.updated_at));
  const liveCases = cases.filter((k) => !['paid', 'withdrawn', 'uncollectible', 'closed'].includes(k.status));
  return {
    id: c.id,
    ref: c.provider_ref,
    provider: c.provider,
    name: c.name,
    email: c.email,
    country: c.country,
    type: c.type,
    mandateStatus: c.mandate_status,
    subscriptionStatus: c.subscription_status,
    // Who this person is across the merchant's PSPs, and by which key they were joined (README, "Debtors across PSPs").
    debtor: {
      id: c.debtor_id,
      merchantRef: debtor?.external_ref ?? null,
      matchedBy: debtor?.external_ref ? 'merchant_ref' : debtor?.email_norm ? 'email' : 'psp_customer',
      identities: identities.map((x) => ({ customerId: x.id, provider: x.provider, ref: x.provider_ref, merchantRef: x.merchant_ref, name: x.name, email: x.email })),
    },
    amounts: [...totals.entries()].map(([currency, t]) => ({ currency, open: money(t.open, currency), collected: money(t.collected, currency), paidToMerchantAfterFailure: money(t.paidToMerchant, currency), owedBackToDebtor: money(t.owedBack, currency) })),
    invoiceCount: invoices.length,
    byStatus,
    openCases: liveCases.map((k) => ({ id: k.id, partner: k.partner_id, partnerRef: k.partner_ref, status: k.status })),
    cases: cases.map((k) => ({ id: k.id, partner: k.partner_id, status: k.status, resolution: k.resolution, openedAt: iso(k.opened_at), closedAt: iso(k.closed_at) })),
    lastFailure: c.last_failure_code ? { code: c.last_failure_code, reason: c.last_failure_reason, at: iso(c.last_failure_at) } : null,
    failureReasons: Object.entries(failures.reduce<Record<string, number>>((acc, i) => ((acc[i.failure_reason ?? 'unknown'] = (acc[i.failure_reason ?? 'unknown'] ?? 0) + 1), acc), {})).map(([reason, count]) => ({ reason, count })),
    lastOutcome: resolved[0] ? { invoiceId: resolved[0].id, status: resolved[0].status, resolution: resolved[0].resolution, by: resolved[0].resolved_by, at: iso(resolved[0].updated_at) } : null,
    invoices: invoices.map((i) => ({ id: i.id, ref: i.provider_ref, provider: i.provider, customerId: i.customer_id, number: i.number, status: i.status, resolution: i.resolution, amountDue: money(i.amount_due, i.currency), amountCollected: money(i.amount_collected, i.currency), amountOwedBack: money(i.amount_owed_back ?? 0, i.currency), failureReason: i.failure_reason, caseId: i.case_id })),
  };
}

export interface MerchantApiOptions {
  /** Per-merchant rate limit, run once the token has named the merchant. */
  perMerchantLimit?: RequestHandler;
}

export function merchantApiRouter(ctx: HubContext, opts: MerchantApiOptions = {}): Router {
  const router = express.Router();
  const auth = requireMerchant(merchantAuthOptions(ctx));
  const noLimit: RequestHandler = (_req, _res, next) => next();
  router.use(['/v1/customers', '/v1/invoices', '/v1/cases', '/v1/sync-log', '/v1/deliveries', '/v1/reports', '/v1/me'], auth, opts.perMerchantLimit ?? noLimit);

  router.get('/v1/me', (req, res) => {
    const m = ctx.merchants.get(merchantOf(req))!;
    res.json({ id: m.id, name: m.name, country: m.country, partner: m.partner, providers: Object.keys(m.providers), policy: m.policy });
  });

  router.get('/v1/customers/:ref', async (req, res) => {
    const merchantId = merchantOf(req);
    const ref = pathParam(req, 'ref');
    const c = await findCustomer(ctx.db, merchantId, ref);
    if (!c) throw notFound(`customer ${ref}`);
    const view = await customerView(ctx.db, merchantId, c);
    const invIds = view.invoices.map((i) => i.id);
    const caseIds = view.cases.map((k) => k.id);
    const claimIds = (await ctx.db.query<{ id: string }>(`SELECT id FROM claims WHERE merchant_id = $1 AND case_id = ANY($2::text[])`, [merchantId, caseIds])).rows.map((r) => r.id);
    const picture = await loadCustomerPicture(ctx.db, merchantId, c.id);
    // The debtor's payment-behaviour profile (issue 17): this merchant's data only; none once erased.
    const merchant = ctx.merchants.get(merchantId)!;
    let profile: Omit<DebtorProfile, 'recheckAt'> | null = null;
    if (!(await debtorErased(ctx.db, merchantId, c.debtor_id))) {
      const { recheckAt: _internal, ...shown } = await loadDebtorProfile(ctx.db, merchant, c.debtor_id, ctx.clock.now());
      profile = shown;
    }
    res.json({ ...view, ...picture, profile, timeline: await timeline(ctx.db, merchantId, [{ entity: 'customer', ids: view.debtor.identities.map((x) => x.customerId) }, { entity: 'invoice', ids: invIds }, { entity: 'case', ids: caseIds }, { entity: 'claim', ids: claimIds }]) });
  });

  router.get('/v1/invoices/:ref', async (req, res) => {
    const merchantId = merchantOf(req);
    const ref = pathParam(req, 'ref');
    const inv = await findInvoice(ctx.db, merchantId, ref);
    if (!inv) throw notFound(`invoice ${ref}`);
    const claims = (await ctx.db.query<ClaimRow>(`SELECT * FROM claims WHERE merchant_id = $1 AND invoice_id = $2 ORDER BY created_at`, [merchantId, inv.id])).rows;
    const claim = claims[claims.length - 1] ?? null;
    const kase = inv.case_id ? (await ctx.db.query<CaseRow>(`SELECT * FROM cases WHERE merchant_id = $1 AND id = $2`, [merchantId, inv.case_id])).rows[0] : null;
    res.json({ ...invoiceView(inv, claim, kase), timeline: await timeline(ctx.db, merchantId, [{ entity: 'invoice', ids: [inv.id] }, { entity: 'claim', ids: claims.map((c) => c.id) }]) });
  });

  router.get('/v1/cases', async (req, res) => {
    const merchantId = merchantOf(req);
    const where = ['merchant_id = $1'];
    const params: unknown[] = [merchantId];
    const add = (col: string, v: string | undefined) => {
      if (v === undefined) return;
      params.push(v);
      where.push(`${col} = $${params.length}`);
    };
    add('status', q(req, 'status'));
    add('partner_id', q(req, 'partner'));
    const customer = q(req, 'customer');
    if (customer) {
      const c = await findCustomer(ctx.db, merchantId, customer);
      if (!c) return void res.json({ data: [], next: null });
      // The debtor's cases: the same person's at every PSP (issue 12, hole 3).
      add('debtor_id', c.debtor_id);
    }
    const limit = limitOf(req);
    const cursor = q(req, 'cursor');
    if (cursor) {
      // Cursor = "<opened_at ms>.<id>" of the last row of the previous page (newest first).
      const m = /^([0-9]{1,15})\.([a-z0-9_]+)$/.exec(cursor);
      if (!m || Number(m[1]) > LATEST) throw new HttpError(400, 'bad_request', 'cursor must be the next value of a previous page');
      params.push(new Date(Number(m[1])), m[2]);
      where.push(`(opened_at, id) < ($${params.length - 1}, $${params.length})`);
    }
    const r = await ctx.db.query<CaseRow>(`SELECT * FROM cases WHERE ${where.join(' AND ')} ORDER BY opened_at DESC, id DESC LIMIT ${limit + 1}`, params);
    const rows = r.rows.slice(0, limit);
    const claims = (await ctx.db.query<ClaimRow>(`SELECT * FROM claims WHERE merchant_id = $1 AND case_id = ANY($2::text[]) ORDER BY created_at`, [merchantId, rows.map((x) => x.id)])).rows;
    res.json({ data: rows.map((k) => caseView(k, claims.filter((c) => c.case_id === k.id))), next: r.rows.length > limit ? `${new Date(rows[rows.length - 1].opened_at).getTime()}.${rows[rows.length - 1].id}` : null });
  });

  router.get('/v1/cases/:id', async (req, res) => {
    const merchantId = merchantOf(req);
    const id = pathParam(req, 'id');
    const k = (await ctx.db.query<CaseRow>(`SELECT * FROM cases WHERE merchant_id = $1 AND (id = $2 OR partner_ref = $2) LIMIT 1`, [merchantId, id])).rows[0];
    if (!k) throw notFound(`case ${id}`);
    const claims = (await ctx.db.query<ClaimRow>(`SELECT * FROM claims WHERE merchant_id = $1 AND case_id = $2 ORDER BY created_at`, [merchantId, k.id])).rows;
    res.json({ ...caseView(k, claims), timeline: await timeline(ctx.db, merchantId, [{ entity: 'case', ids: [k.id] }, { entity: 'claim', ids: claims.map((c) => c.id) }]) });
  });

  router.get('/v1/sync-log', async (req, res) => {
    const merchantId = merchantOf(req);
    const where = ['merchant_id = $1'];
    const params: unknown[] = [merchantId];
    const add = (sqlPart: (n: number) => string, v: unknown) => {
      params.push(v);
      where.push(sqlPart(params.length));
    };
    const customer = q(req, 'customer');
    if (customer) {
      const c = await findCustomer(ctx.db, merchantId, customer);
      add((n) => `customer_id = $${n}`, c?.id ?? '-');
    }
    const invoice = q(req, 'invoice');
    if (invoice) {
      const i = await findInvoice(ctx.db, merchantId, invoice);
      add((n) => `invoice_id = $${n}`, i?.id ?? '-');
    }
    const direction = q(req, 'direction');
    if (direction) {
      if (direction !== 'in' && direction !== 'out') throw new HttpError(400, 'bad_request', 'direction must be in or out');
      add((n) => `direction = $${n}`, direction);
    }
    const outcome = q(req, 'outcome');
    if (outcome) add((n) => `outcome = $${n}`, outcome);
    const caseId = q(req, 'case');
    if (caseId) add((n) => `case_id = $${n}`, caseId);
    for (const [name, op] of [['from', '>='], ['to', '<']] as const) {
      const v = q(req, name);
      if (!v) continue;
      add((n) => `created_at ${op} $${n}`, timeParam(name, v));
    }
    const cursor = q(req, 'cursor');
    if (cursor) {
      if (!/^[0-9]{1,15}$/.test(cursor)) throw new HttpError(400, 'bad_request', 'cursor must be the next value of a previous page');
      add((n) => `id < $${n}`, Number(cursor));
    }
    const after = q(req, 'after');
    if (after) {
      if (!/^[0-9]{1,15}$/.test(after)) throw new HttpError(400, 'bad_request', 'after must be an entry id');
      add((n) => `id > $${n}`, Number(after));
    }
    const limit = limitOf(req);
    // A webhook's entry keeps no copy of its payload: it is read from the inbound event (exchange-log.ts).
    const r = await ctx.db.query(
      `SELECT x.*, inbound_payload_of.payload AS inbound_payload FROM (
         SELECT id, direction, party, operation, outcome, http_status, latency_ms, customer_id, invoice_id, case_id, outbox_id, inbound_event_id,
           summary, request, response, created_at FROM exchanges WHERE ${where.join(' AND ')} ORDER BY id DESC LIMIT ${limit + 1}
       ) x ${inboundPayloadJoin('x')} ORDER BY x.id DESC`,
      params,
    );
    const rows = r.rows.slice(0, limit);
    res.json({
      data: rows.map((x: any) => ({
        id: Number(x.id), at: iso(x.created_at), direction: x.direction, party: x.party, operation: x.operation, outcome: x.outcome,
        httpStatus: x.http_status, latencyMs: x.latency_ms, customerId: x.customer_id, invoiceId: x.invoice_id, caseId: x.case_id,
        deliveryId: x.outbox_id == null ? null : Number(x.outbox_id), summary: x.summary == null ? null : redactText(String(x.summary)), request: x.request ?? inboundRequestView(x.inbound_payload), response: x.response,
      })),
      next: r.rows.length > limit ? String(rows[rows.length - 1].id) : null,
    });
  });

  // The outbox keeps the partner's last answer and error as they came back (an agency may echo
  // card data or our token); they are masked on the way out like every other logged payload.
  router.get('/v1/deliveries', async (req, res) => {
    const merchantId = merchantOf(req);
    const status = q(req, 'status') ?? 'dead';
    if (!OUTBOX_STATUSES.includes(status)) throw new HttpError(400, 'bad_request', `status must be one of ${OUTBOX_STATUSES.join(', ')}`);
    // scope=all adds the hub's own work for this merchant (processing an event, the hand-over
    // check, applying an agency update): "is anything still owed for me?" in one call.
    const scope = q(req, 'scope') ?? 'deliveries';
    if (scope !== 'deliveries' && scope !== 'all') throw new HttpError(400, 'bad_request', 'scope must be one of deliveries, all');
    const kindFilter = scope === 'all' ? '' : ` AND (kind LIKE 'agency.%' OR kind IN ('merchant.webhook', 'psp.writeback'))`;
    const r = await ctx.db.query(
      `SELECT id, kind, lane, status, attempts, next_attempt_at, last_error, last_status, last_response, case_id, invoice_id, customer_id, created_at, updated_at
       FROM outbox WHERE merchant_id = $1 AND status = $2${kindFilter} ORDER BY id DESC LIMIT ${limitOf(req)}`,
      [merchantId, status],
    );
    res.json({ data: r.rows.map((x: any) => ({ id: Number(x.id), kind: x.kind, partner: String(x.lane).replace(/^partner\./, ''), status: x.status, attempts: x.attempts, nextAttemptAt: iso(x.next_attempt_at), lastError: x.last_error == null ? null : redactText(String(x.last_error)), lastStatus: x.last_status, lastResponse: redact(x.last_response), caseId: x.case_id, invoiceId: x.invoice_id, customerId: x.customer_id, createdAt: iso(x.created_at), updatedAt: iso(x.updated_at) })) });
  });

  router.post('/v1/deliveries/:id/retry', async (req, res) => {
    const merchantId = merchantOf(req);
    const id = positiveId('delivery id', String(req.params.id));
    const row = (await ctx.db.query<{ status: string }>(`SELECT status FROM outbox WHERE id = $1 AND merchant_id = $2`, [id, merchantId])).rows[0];
    if (!row) throw notFound(`delivery ${id}`);
    if (row.status !== 'dead') throw new HttpError(409, 'not_dead', `delivery ${id} is ${row.status}; only a dead-lettered delivery can be retried`);
    const item = await ctx.db.tx((sql) => retryDeadRow(sql, id, merchantId, ctx.clock.now()));
    if (item) await ctx.dispatcher.dispatch([item]);
    ctx.logger.info('dead-lettered delivery retried by merchant', { merchantId, outboxId: id });
    res.status(202).json({ id, status: 'pending' });
  });

  router.get('/v1/reports/leakage', async (req, res) => {
    const merchantId = merchantOf(req);
    const from = q(req, 'from');
    const to = q(req, 'to');
    res.json(await buildLeakageReport(ctx.db, merchantId, { from: from ? timeParam('from', from) : undefined, to: to ? timeParam('to', to) : undefined, now: ctx.clock.now(), merchant: ctx.merchants.get(merchantId) }));
  });

  return router;
}
