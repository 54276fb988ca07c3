/**
 * Runs the hand-over policy for one debtor (the same person's customers at every PSP; issue 12,
 * hole 3) when one of its invoices becomes due: opens a case at the merchant's partner, stacks due
 * invoices onto the open case, or waits. The customer and debtor rows are locked, so two checks
 * for one debtor can never open two cases.
 */
import type { HubContext, OutboxWriter } from '../context';
import type { Sql } from '../store/db';
import type { OutboxRow } from '../outbox/outbox';
import { completeRow, partnerLane } from '../outbox/outbox';
import { decideHandover, nextCheckAt, type HandoverCandidate } from '../policy/handover-policy';
import { newId } from '../domain/ids';
import { addHistoryRows } from '../ledger/history';
import type { InvoiceRow } from '../ledger/rows';
import { Permanent } from './errors';
import { loadCountryRules, ruleFor, type CountryRule } from '../policy/country-rules';
import { invoiceNoticeGate } from '../policy/letter-evidence';
import { heldByMerchant } from '../policy/merchant-hold';
import { newCaseCosts, priceClaims, sumCaseCosts } from './claim-costs';

let rulesCache: CountryRule[] | null = null;
const countryRules = () => (rulesCache ??= loadCountryRules());

export async function runHandoverCheck(ctx: HubContext, row: OutboxRow<'handover_check'>): Promise<void> {
  const customerId = String(row.payload.customerId);
  const now = ctx.clock.now();
  const notes = await ctx.commit(async (sql, outbox) => {
    const out = await checkHandover(ctx, sql, outbox, customerId, now);
    await completeRow(sql, row.id, now);
    return out;
  });
  if (notes.length) ctx.logger.info('hand-over check', { customerId, merchantId: row.merchant_id, notes });
}

/**
 * The check itself, inside the caller's transaction: the handover_check stage above, and
 * process_event when the invoice it just marked is already due (src/pipeline/process-event.ts),
 * which saves a row, its commits and a trip through the queue. The customer and its debtor are
 * locked first, so checks for one debtor run one at a time whichever stage and PSP runs them.
 */
export async function checkHandover(
  ctx: HubContext, sql: Sql, outbox: OutboxWriter, customerId: string, now: Date,
  /** The customer as the caller locked it with its debtor in this transaction (process_event's ledger): not locked again. */
  locked?: { id: string; merchant_id: string; country: string | null; type: 'consumer' | 'business'; debtor_id: string },
): Promise<string[]> {
  // Cases, stacking and minAmount are per debtor: the same person's customers at every PSP
  // (issue 12, hole 3; src/ledger/debtor-key.ts). The customer and its debtor are locked in one
  // statement (the ledger's order: customer, then debtor), so two checks for one debtor never open
  // two cases, whichever PSP ran them.
  const cust = locked ? { rows: [locked] } : await sql.query<{ id: string; merchant_id: string; country: string | null; type: 'consumer' | 'business'; debtor_id: string }>(
    `SELECT c.id, c.merchant_id, c.country, c.type, c.debtor_id FROM customers c JOIN debtors d ON d.id = c.debtor_id WHERE c.id = $1 FOR UPDATE OF c, d`,
    [customerId],
  );
  if (!cust.rows[0]) throw new Permanent(`customer ${customerId} not found`);
  const debtorId = cust.rows[0].debtor_id;
  const merchant = ctx.merchants.get(cust.rows[0].merchant_id);
  if (!merchant) throw new Permanent(`merchant ${cust.rows[0].merchant_id} is not configured`);
  const partnerId = merchant.partner;
  // The debtor's consumer law applies: its country when known, else the merchant's.
  const rule = merchant.policy.countryRules ? ruleFor(countryRules(), cust.rows[0].country ?? merchant.country, cust.rows[0].type) : null;
  // The debtor's waiting invoices, each with the debtor's open case at the partner in its currency
  // (one read for both: the case is the same for every invoice of a currency).
  type Waiting = InvoiceRow & { customer_country: string | null; customer_type: 'consumer' | 'business'; open_case_id: string | null; open_case_last_claim_at: Date | null };
  const waiting = (await sql.query<Waiting>(
    `SELECT i.*, c.country AS customer_country, c.type AS customer_type, oc.id AS open_case_id, oc.last_claim_at AS open_case_last_claim_at
       FROM invoices i JOIN customers c ON c.id = i.customer_id
       LEFT JOIN LATERAL (SELECT k.id, k.last_claim_at FROM cases k
                           WHERE k.debtor_id = $1 AND k.partner_id = $3 AND k.currency = i.currency
                             AND k.status NOT IN ('paid','withdrawn','uncollectible','closed') ORDER BY k.opened_at DESC LIMIT 1) oc ON true
      WHERE c.debtor_id = $1 AND i.merchant_id = $2 AND i.status = 'pending_handover' ORDER BY i.first_failed_at, i.id`,
    [debtorId, merchant.id, partnerId],
  )).rows;
  const invoices = waiting.filter((i) => !heldByMerchant(i, now)); // held by the merchant: out until its date (a check is due then; src/policy/merchant-hold.ts)
  // Each invoice's own customer decides its notice term: one person may be known as NL at one PSP
  // and not at another (then the merchant's country applies, as for any customer).
  const ruleOf = (i: { customer_id: string; customer_country: string | null; customer_type: 'consumer' | 'business' }) =>
    i.customer_id === customerId || !merchant.policy.countryRules ? rule : ruleFor(countryRules(), i.customer_country ?? merchant.country, i.customer_type);
  const out: string[] = [];
  for (const currency of new Set(invoices.map((i) => i.currency))) {
    const candidates: HandoverCandidate[] = invoices
      .filter((i) => i.currency === currency)
      .map((i) => {
        // The notice term runs from the evidenced letter; no evidence under a letter rule: wait for it (src/policy/letter-evidence.ts).
        const gate = invoiceNoticeGate(ruleOf(i), i, merchant.policy);
        return {
          invoiceId: i.id,
          amountOpen: Math.max(0, Number(i.amount_due) - Number(i.amount_paid)),
          currency,
          failureFinal: i.failure_final,
          firstFailedAt: new Date(i.first_failed_at ?? i.created_at),
          notBefore: gate.kind === 'ends' ? gate.at : null,
          awaitingLetter: gate.kind === 'awaiting_letter',
        };
      });
    // Read with the invoices, before any case of this check was opened: a case opened above is in
    // another currency (one pass per currency), so it is never this currency's open case.
    const open = waiting.find((i) => i.currency === currency && i.open_case_id);
    const decision = decideHandover({
      now, policy: merchant.policy, candidates,
      openCase: open ? { id: open.open_case_id!, currency, lastClaimAt: new Date(open.open_case_last_claim_at!) } : null,
    });
    if (decision.action === 'wait') {
      out.push(`${currency}: wait (${decision.why})`);
      // A notice gate later than the invoice's own hand-over time needs its own check then.
      if (decision.until && decision.until.getTime() > now.getTime()) {
        await outbox.add({
          kind: 'handover_check', lane: 'hub', payload: { customerId }, idempotencyKey: `handover-${customerId}-${decision.until.getTime()}`,
          merchantId: merchant.id, customerId, dueAt: decision.until,
        });
      }
      continue;
    }
    const caseId = decision.action === 'stack' ? decision.caseId : newId('cse');
    // Statutory costs per claim, opened or stacked (issue 12, holes 4 and 6): each needs its own
    // letter evidence under a letter rule, and the Wki cap counts the debtor's window (./claim-costs.ts).
    const claimCosts = await priceClaims(sql, {
      debtorId, currency, now, policy: merchant.policy,
      claims: decision.invoiceIds.map((id) => ({ invoiceId: id, principal: candidates.find((c) => c.invoiceId === id)!.amountOpen })),
      invoiceOf: (id) => invoices.find((i) => i.id === id)!,
      ruleOf: (i) => ruleOf(i as (typeof invoices)[number]),
    });
    const costs = decision.action === 'open_case' ? newCaseCosts(claimCosts) : null;
    // The case (opened, or the open one's last_claim_at), its claims and the invoices' move to it
    // in one statement, and their timeline entries in one more: a round trip each, however many
    // invoices go (a worker's time goes mostly into round trips; BENCHMARKS.md).
    const claims = decision.invoiceIds.map((invoiceId) => {
      const inv = invoices.find((i) => i.id === invoiceId)!;
      return { id: newId('clm'), invoiceId, principal: Math.max(0, Number(inv.amount_due) - Number(inv.amount_paid)) };
    });
    const claimIds = claims.map((c) => c.id);
    // $1–$7 for both; $8–$12 only for a new case.
    const caseStep = decision.action === 'open_case'
      ? `INSERT INTO cases (id, merchant_id, customer_id, partner_id, status, currency, opened_at, last_claim_at, created_at, updated_at, collection_costs, collection_costs_basis, debtor_id)
         VALUES ($1,$2,$8,$9,'submitted',$3,$4,$4,$4,$4,$10,$11,$12) RETURNING id`
      : `UPDATE cases SET last_claim_at = $4, updated_at = $4 WHERE id = $1 RETURNING id`;
    // Each claim's statutory costs go in with it (three arrays after the action's own parameters;
    // a stacked case's total is summed after).
    const costOf = (c: (typeof claims)[number]) => claimCosts.get(c.invoiceId) ?? null;
    const params: unknown[] = [caseId, merchant.id, currency, now, claimIds, claims.map((c) => c.invoiceId), claims.map((c) => c.principal)];
    if (decision.action === 'open_case') params.push(customerId, partnerId, costs?.value ?? null, costs?.basis ?? null, debtorId);
    const k = params.length;
    params.push(claims.map((c) => costOf(c)?.value ?? null), claims.map((c) => costOf(c)?.vat ?? 0), claims.map((c) => costOf(c)?.basis ?? null));
    await sql.query(
      `WITH kase AS (${caseStep}),
       new_claims AS (
         INSERT INTO claims (id, case_id, invoice_id, merchant_id, principal, currency, status, created_at, updated_at, collection_costs, collection_costs_vat, collection_costs_basis)
         SELECT x.id, kase.id, x.invoice_id, $2, x.principal, $3, 'submitted', $4, $4, x.costs, x.vat, x.basis
         FROM kase, unnest($5::text[], $6::text[], $7::bigint[], $${k + 1}::bigint[], $${k + 2}::bigint[], $${k + 3}::text[]) AS x(id, invoice_id, principal, costs, vat, basis)
         RETURNING case_id, invoice_id
       )
       UPDATE invoices i SET status = 'submitted', case_id = c.case_id, updated_at = $4 FROM new_claims c WHERE i.id = c.invoice_id`,
      params,
    );
    if (decision.action === 'stack' && [...claimCosts.values()].some((c) => c !== null)) await sumCaseCosts(sql, caseId);
    await addHistoryRows(sql, [
      ...(decision.action === 'open_case'
        ? [{ merchantId: merchant.id, entity: 'case' as const, entityId: caseId, status: 'submitted', source: 'hub', occurredAt: now, detail: { partner: partnerId, invoices: decision.invoiceIds.length } }]
        : []),
      ...claims.map((c) => ({
        merchantId: merchant.id, entity: 'invoice' as const, entityId: c.invoiceId, status: 'submitted', source: 'hub', occurredAt: now,
        detail: { caseId, claimId: c.id, partner: partnerId, stacked: decision.action === 'stack' },
      })),
    ], now);
    if (decision.action === 'stack') {
      for (const c of claims) {
        await outbox.add({
          kind: 'agency.add_claim', lane: partnerLane(partnerId), payload: { caseId, claimId: c.id },
          idempotencyKey: `claim-${c.id}`, merchantId: merchant.id, customerId, invoiceId: c.invoiceId, caseId,
        });
      }
    }
    if (decision.action === 'open_case') {
      await outbox.add({
        kind: 'agency.create_case', lane: partnerLane(partnerId), payload: { caseId, claimIds },
        idempotencyKey: `case-${caseId}`, merchantId: merchant.id, customerId, caseId,
      });
    }
    // Invoices of this debtor still inside their own notice term go later: a check when the first comes due.
    const next = nextCheckAt(now, merchant.policy, candidates, decision.invoiceIds);
    if (next) {
      await outbox.add({
        kind: 'handover_check', lane: 'hub', payload: { customerId }, idempotencyKey: `handover-${customerId}-${next.getTime()}`,
        merchantId: merchant.id, customerId, dueAt: next,
      });
    }
    out.push(`${currency}: ${decision.action === 'stack' ? `stacked ${claimIds.length} onto` : `opened`} case ${caseId}`);
  }
  return out;
}

