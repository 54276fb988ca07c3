/**
 * The deliver stage: outbox rows that call a collection agency (create a case, add a claim,
 * report a payment, withdraw). The HTTP call happens outside any transaction; its result, the
 * case/claim state and the row's completion are committed together. Every call carries the
 * row's idempotency key, so a repeat after a crash is safe at the agency.
 */
import type { HubContext, PartnerRuntime, MerchantSettings } from '../context';
import type { OutboxRow } from '../outbox/outbox';
import { completeRow } from '../outbox/outbox';
import type { CaseClaim, CaseSubmission, ExchangeRecord, CaseDebtor } from '../../connectors/agency/types';
import { DeliveryError } from '../../connectors/agency/types';
import { recordExchanges, type ExchangeEntry } from '../exchanges/exchange-log';
import type { CaseRow, ClaimRow, CustomerRow, InvoiceRow } from '../ledger/rows';
import { addHistory } from '../ledger/history';
import { Defer, Permanent } from '../pipeline/errors';
import type { Sql } from '../store/db';
import { circuitBreakers, CircuitOpen, takeAdmission, type CallOutcome } from './circuit-breaker';
import { DEFAULT_DEBTOR_FIELDS, scrubFreeText, scrubStrings } from '../privacy/minimise';

/** How long to wait before trying again while the case is not yet known at the agency. */
const CASE_NOT_YET_SENT_MS = 2000;

interface Loaded {
  kase: CaseRow;
  merchant: MerchantSettings;
  partner: PartnerRuntime;
}

async function loadCase(ctx: HubContext, caseId: string): Promise<Loaded> {
  const r = await ctx.db.query<CaseRow>(`SELECT * FROM cases WHERE id = $1`, [caseId]);
  return withRuntime(ctx, caseId, r.rows[0]);
}

/** The case with its merchant's settings and its partner's client, or Permanent when any is gone. */
function withRuntime(ctx: HubContext, caseId: string, kase: CaseRow | undefined | null): Loaded {
  if (!kase) throw new Permanent(`case ${caseId} not found`);
  const merchant = ctx.merchants.get(kase.merchant_id);
  const partner = ctx.partners.get(kase.partner_id);
  if (!merchant || !partner) throw new Permanent(`case ${caseId}: merchant or partner no longer configured`);
  return { kase, merchant, partner };
}

export function toClaim(claim: ClaimRow, inv: InvoiceRow): CaseClaim {
  return {
    reference: claim.id,
    number: scrubFreeText(inv.number),
    principal: { value: Number(claim.principal), currency: claim.currency },
    issuedAt: inv.issued_at ? new Date(inv.issued_at).toISOString() : undefined,
    dueAt: inv.due_at ? new Date(inv.due_at).toISOString() : undefined,
    description: scrubFreeText(inv.description),
    failure: { provider: inv.provider, code: inv.failure_code ?? 'unknown', reason: (inv.failure_reason ?? 'unknown') as CaseClaim['failure']['reason'] },
    // The claim's own statutory costs (src/pipeline/claim-costs.ts); absent where no cost rule applies.
    ...(claim.collection_costs != null
      ? { collectionCosts: { value: Number(claim.collection_costs), currency: claim.currency, basis: claim.collection_costs_basis ?? '' } }
      : {}),
  };
}

/**
 * Only the debtor fields a partner declared it may receive, or the minimal default set when it
 * declared none (GDPR art. 5(1)(c) data minimisation; src/privacy/minimise.ts), free text scrubbed.
 */
export function toDebtor(c: CustomerRow, declared?: string[]): CaseDebtor {
  const allowed: readonly string[] = declared ?? DEFAULT_DEBTOR_FIELDS;
  const full: CaseDebtor = {
    reference: c.id,
    type: c.type,
    // Without a name the e-mail stands in only for a partner allowed to see it (data minimisation).
    name: scrubFreeText(c.name ?? (allowed.includes('email') ? c.email : null) ?? c.provider_ref),
    email: c.email ?? undefined,
    phone: c.phone ?? undefined,
    address: c.address ? scrubStrings(c.address) : undefined,
    country: c.country ?? undefined,
    locale: c.locale ?? undefined,
  };
  const keep = new Set(['reference', 'type', 'name', ...allowed]);
  return Object.fromEntries(Object.entries(full).filter(([k, v]) => keep.has(k) && v !== undefined)) as unknown as CaseDebtor;
}

/** Turn the connector's exchange records into sync-log entries for this row. */
function exchangeEntries(row: OutboxRow, partnerId: string, records: ExchangeRecord[], outcome: ExchangeEntry['outcome'], at: Date): ExchangeEntry[] {
  return records.map((x) => ({
    merchantId: row.merchant_id,
    direction: 'out' as const,
    party: partnerId,
    operation: `${x.method} ${new URL(x.url).pathname}`,
    outcome: x.error || (x.status && x.status >= 400) ? outcome : 'ok',
    httpStatus: x.status ?? null,
    latencyMs: x.latencyMs,
    customerId: row.customer_id,
    invoiceId: row.invoice_id,
    caseId: row.case_id,
    outboxId: row.id,
    summary: x.error ?? `${row.kind} (attempt ${row.attempts})`,
    request: x.requestBody,
    response: x.responseBody,
    at,
  }));
}

/** What a failed call tells the circuit breaker about the partner. */
function callOutcome(err: unknown): CallOutcome {
  if (!(err instanceof DeliveryError)) return { kind: 'not_called' };
  if (err.retryable) return err.status === 429 ? { kind: 'throttled', retryAfterMs: err.retryAfterMs } : { kind: 'failed', retryAfterMs: err.retryAfterMs };
  // A final 4xx is the agency working as it should (it refused this request); no status: the
  // request never left (bad URL, signing), which says nothing about the agency.
  return err.status !== undefined ? { kind: 'answered' } : { kind: 'not_called' };
}

/**
 * Make the call (unless the partner's circuit is open), then commit `onSuccess` with the row's completion and the sync-log entries.
 * On failure, log the exchange as retrying or dead (as the runner will decide) and rethrow.
 */
async function call<T>(
  ctx: HubContext,
  row: OutboxRow,
  partnerId: string,
  send: (onExchange: (x: ExchangeRecord) => void) => Promise<T>,
  onSuccess: (sql: Sql, result: T, now: Date) => Promise<void>,
): Promise<void> {
  const records: ExchangeRecord[] = [];
  // The partner's circuit decides whether this call goes at all (real time, not the hub's clock:
  // cool-downs are about the agency's wall-clock recovery).
  // The runner asked before it claimed the row. A half-open probe admitted then goes as it is,
  // unless a sibling probe has failed meanwhile and reopened the circuit; any other row asks
  // again now, since the circuit may have opened meanwhile.
  const breaker = circuitBreakers(ctx).get(partnerId);
  const lent = takeAdmission(row);
  if (lent?.probe && !breaker.probeStillWanted(new Date())) {
    breaker.record({ kind: 'not_called' }, new Date(), true);
    throw new CircuitOpen(partnerId, breaker.retryAt(new Date()), 'open');
  }
  const admission = lent?.probe ? lent : breaker.admit(new Date());
  if (!admission.allowed) throw new CircuitOpen(partnerId, admission.retryAt, admission.state);
  let result: T;
  try {
    result = await send((x) => records.push(x));
  } catch (err) {
    breaker.record(callOutcome(err), new Date(), admission.probe);
    const willRetry = err instanceof DeliveryError ? err.retryable && row.attempts < ctx.config.delivery.maxAttempts : false;
    const at = ctx.clock.now();
    await ctx.db.tx((sql) => recordExchanges(sql, exchangeEntries(row, partnerId, records, willRetry ? 'retrying' : 'dead', at))).catch(() => undefined);
    throw err;
  }
  breaker.record({ kind: 'answered' }, new Date(), admission.probe);
  const now = ctx.clock.now();
  // Shared with other completions that come at the same time (src/outbox/commit-group.ts).
  await (ctx.commitShared ?? ctx.commit)(async (sql) => {
    await onSuccess(sql, result, now);
    await recordExchanges(sql, exchangeEntries(row, partnerId, records, 'ok', now));
    const last = records[records.length - 1];
    await completeRow(sql, row.id, now, { status: last?.status, body: last?.responseBody });
  });
}

export async function deliverCreateCase(ctx: HubContext, row: OutboxRow<'agency.create_case'>): Promise<void> {
  const claimIds: string[] = row.payload.claimIds;
  // The case, its claims, their invoices and the debtor in one read (rows ride along as JSON): a
  // worker's time goes mostly into round trips (BENCHMARKS.md).
  const read = (await ctx.db.query<{ kase: CaseRow | null; claims: (ClaimRow & { inv: InvoiceRow })[]; customer: CustomerRow | null }>(
    `SELECT (SELECT to_jsonb(k) FROM cases k WHERE k.id = $2) AS kase,
            COALESCE((SELECT jsonb_agg(to_jsonb(c) || jsonb_build_object('inv', to_jsonb(i)) ORDER BY c.created_at, c.id)
                      FROM claims c JOIN invoices i ON i.id = c.invoice_id WHERE c.id = ANY($1::text[])), '[]'::jsonb) AS claims,
            (SELECT to_jsonb(cu) FROM customers cu WHERE cu.id = (SELECT customer_id FROM cases WHERE id = $2)) AS customer`,
    [claimIds, row.payload.caseId],
  )).rows[0];
  const { kase, merchant, partner } = withRuntime(ctx, row.payload.caseId, read.kase);
  const claims = read.claims;
  if (kase.partner_ref) {
    await ctx.commit((sql) => completeRow(sql, row.id, ctx.clock.now()));
    return;
  }
  if (claims.every((c) => c.status === 'withdrawn' || (c.status === 'paid' && c.resolution === 'paid_to_merchant'))) {
    // Every invoice was settled before the case left: nothing to collect, nothing to send.
    const now = ctx.clock.now();
    await ctx.commit(async (sql) => {
      await sql.query(`UPDATE cases SET status = 'closed', resolution = 'paid_to_merchant', closed_at = $2, updated_at = $2 WHERE id = $1`, [kase.id, now]);
      await sql.query(`UPDATE outbox SET status = 'cancelled', done_at = $2 WHERE case_id = $1 AND status = 'pending' AND id <> $3`, [kase.id, now, row.id]);
      await addHistory(sql, { merchantId: kase.merchant_id, entity: 'case', entityId: kase.id, status: 'closed', reason: 'paid_to_merchant', source: 'hub', occurredAt: now, detail: { note: 'settled before submission; not sent' } }, now);
      await completeRow(sql, row.id, now);
    });
    return;
  }
  const customer = read.customer;
  if (!customer) throw new Permanent(`case ${kase.id}: customer ${kase.customer_id} not found`);
  const submission: CaseSubmission = {
    reference: kase.id,
    creditor: { id: merchant.id, name: merchant.name },
    debtor: toDebtor(customer, partner.settings.config.debtorFields),
    claims: claims.map((c) => toClaim(c, c.inv)),
    // Statutory costs computed by the country rule when the case was opened (src/policy/country-rules.ts).
    ...(kase.collection_costs != null ? { collectionCosts: { value: Number(kase.collection_costs), currency: kase.currency, basis: kase.collection_costs_basis ?? '' } } : {}),
  };
  await call(
    ctx, row, partner.settings.id,
    (onExchange) => partner.client.submitCase(submission, { idempotencyKey: row.idempotency_key, onExchange }),
    async (sql, res, now) => {
      // The case, its claims and its timeline entry in one statement (one round trip).
      await sql.query(
        `WITH sent AS (UPDATE claims SET sent_at = $3 WHERE id = ANY($4::text[]) AND sent_at IS NULL),
         entry AS (
           INSERT INTO status_history (merchant_id, entity, entity_id, status, reason, source, detail, occurred_at, recorded_at)
           VALUES ($5, 'case', $1, 'submitted', NULL, $6, $7, $3, $3)
         )
         UPDATE cases SET partner_ref = $2, submitted_at = $3, updated_at = $3 WHERE id = $1`,
        [kase.id, res.partnerRef, now, claimIds, kase.merchant_id, partner.settings.id, JSON.stringify({ partnerRef: res.partnerRef, accepted: true })],
      );
    },
  );
  ctx.logger.info('case submitted', { merchantId: kase.merchant_id, caseId: kase.id, partner: partner.settings.id });
}

async function caseAtAgency(ctx: HubContext, caseId: string): Promise<Loaded & { partnerRef: string }> {
  const loaded = await loadCase(ctx, caseId);
  if (!loaded.kase.partner_ref) {
    const creating = await ctx.db.query<{ status: string }>(`SELECT status FROM outbox WHERE idempotency_key = $1`, [`case-${caseId}`]);
    const st = creating.rows[0]?.status;
    if (st === 'dead') throw new Permanent(`case ${caseId} was never accepted by ${loaded.kase.partner_id} (its submission is dead-lettered)`);
    if (st === 'cancelled' || st === 'done') throw new Permanent(`case ${caseId} was not sent to the partner`);
    throw new Defer(`case ${caseId} is not at ${loaded.kase.partner_id} yet`, CASE_NOT_YET_SENT_MS);
  }
  return { ...loaded, partnerRef: loaded.kase.partner_ref };
}

async function loadClaim(ctx: HubContext, claimId: string): Promise<ClaimRow> {
  const r = await ctx.db.query<ClaimRow>(`SELECT * FROM claims WHERE id = $1`, [claimId]);
  if (!r.rows[0]) throw new Permanent(`claim ${claimId} not found`);
  return r.rows[0];
}

/** A claim sent with the case itself needs no separate call; one created later does. */
async function ensureClaimSent(ctx: HubContext, claim: ClaimRow): Promise<void> {
  if (claim.sent_at) return;
  throw new Defer(`claim ${claim.id} is not at the partner yet`, CASE_NOT_YET_SENT_MS);
}

export async function deliverAddClaim(ctx: HubContext, row: OutboxRow<'agency.add_claim'>): Promise<void> {
  const { partner, partnerRef, kase } = await caseAtAgency(ctx, row.payload.caseId);
  const claim = await loadClaim(ctx, row.payload.claimId);
  if (claim.sent_at) {
    await ctx.commit((sql) => completeRow(sql, row.id, ctx.clock.now()));
    return;
  }
  const inv = (await ctx.db.query<InvoiceRow>(`SELECT * FROM invoices WHERE id = $1`, [claim.invoice_id])).rows[0];
  await call(
    ctx, row, partner.settings.id,
    (onExchange) => partner.client.addClaim(partnerRef, toClaim(claim, inv), { idempotencyKey: row.idempotency_key, onExchange }),
    async (sql, _res, now) => {
      await sql.query(`UPDATE claims SET sent_at = $2 WHERE id = $1`, [claim.id, now]);
      await addHistory(sql, { merchantId: kase.merchant_id, entity: 'claim', entityId: claim.id, status: 'submitted', source: partner.settings.id, occurredAt: now, detail: { stackedOnto: kase.id } }, now);
    },
  );
}

export async function deliverReportPayment(ctx: HubContext, row: OutboxRow<'agency.report_payment'>): Promise<void> {
  const { partner, partnerRef, kase } = await caseAtAgency(ctx, row.payload.caseId);
  const claim = await loadClaim(ctx, row.payload.claimId);
  await ensureClaimSent(ctx, claim);
  await call(
    ctx, row, partner.settings.id,
    (onExchange) =>
      partner.client.reportPayment(partnerRef, claim.id, { amount: row.payload.amount, paidAt: row.payload.paidAt, channel: row.payload.channel }, { idempotencyKey: row.idempotency_key, onExchange }),
    async (sql, _res, now) => {
      await addHistory(sql, { merchantId: kase.merchant_id, entity: 'claim', entityId: claim.id, status: 'payment_reported', source: 'hub', occurredAt: now, detail: { amount: row.payload.amount, partner: partner.settings.id } }, now);
    },
  );
}

export async function deliverWithdraw(ctx: HubContext, row: OutboxRow<'agency.withdraw'>): Promise<void> {
  const { partner, partnerRef, kase } = await caseAtAgency(ctx, row.payload.caseId);
  const claimId: string | undefined = row.payload.claimId;
  if (claimId) await ensureClaimSent(ctx, await loadClaim(ctx, claimId));
  await call(
    ctx, row, partner.settings.id,
    (onExchange) => partner.client.withdraw(partnerRef, { reason: scrubFreeText(String(row.payload.reason ?? '')), claimReference: claimId }, { idempotencyKey: row.idempotency_key, onExchange }),
    async (sql, _res, now) => {
      await addHistory(sql, { merchantId: kase.merchant_id, entity: claimId ? 'claim' : 'case', entityId: claimId ?? kase.id, status: 'withdrawal_sent', reason: row.payload.reason, source: 'hub', occurredAt: now, detail: { partner: partner.settings.id } }, now);
    },
  );
}

// Shared with the merchant's hold/resume stages (src/delivery/agency-actions.ts).
export { call as callPartner, caseAtAgency, loadClaim, ensureClaimSent };
