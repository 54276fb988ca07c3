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
import { addHistoryRows, type HistoryEntry } from '../ledger/history';
import type { MerchantSettings } from '../context';
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
    const out = await checkHandovers(ctx, sql, outbox, [{ customerId }], now);
    await completeRow(sql, row.id, now);
    return out.get(customerId) ?? [];
  });
  if (notes.length) ctx.logger.info('hand-over check', { customerId, merchantId: row.merchant_id, notes });
}

/** A customer as the hand-over check needs it (locked with its debtor). */
export interface CheckedCustomer {
  id: string;
  merchant_id: string;
  country: string | null;
  type: 'consumer' | 'business';
  debtor_id: string;
}

/** One check to run: the customer whose invoice came due, and the row if the caller has locked it with its debtor already. */
export interface HandoverSubject {
  customerId: string;
  locked?: CheckedCustomer;
}

type Waiting = InvoiceRow & {
  check_debtor_id: string; customer_country: string | null; customer_type: 'consumer' | 'business'; open_case_id: string | null; open_case_last_claim_at: Date | null;
};

/** What a set of checks writes, gathered and written at the end in a fixed number of statements. */
interface Writes {
  newCases: { id: string; merchantId: string; customerId: string; partnerId: string; currency: string; costs: { value: number; basis: string } | null; debtorId: string }[];
  stackedCases: string[];
  /** Stacked cases whose claims carry costs: their total is summed after the write. */
  sumCosts: string[];
  claims: { id: string; caseId: string; invoiceId: string; merchantId: string; principal: number; currency: string; costs: number | null; vat: number; basis: string | null; debtorId: string }[];
  history: HistoryEntry[];
}

/**
 * The checks, inside the caller's transaction: the handover_check stage above (one customer),
 * and process_event for every customer whose invoice a batch of events made due at once
 * (src/pipeline/event-batch.ts), which saves a row, its commits and a trip through the queue.
 *
 * Set-based (issue 14): the customers not yet locked are locked with their debtors in one
 * statement (the ledger's order: customer, then debtor), so two checks for one debtor never open
 * two cases, whichever PSP ran them; the waiting invoices of every debtor, each with the debtor's
 * open case at the partner in its currency, are read in one statement; each debtor is decided in
 * memory (decideHandover); and every case opened or stacked, its claims and the invoices' move to
 * it are written in one statement, their timeline entries in one more. Cases, stacking and
 * minAmount are per debtor (the same person's customers at every PSP; issue 12, hole 3): a debtor
 * named by several subjects is checked once, for the first of them (its customer opens the case).
 *
 * Returns the notes of each subject's check, by customer id.
 */
export async function checkHandovers(ctx: HubContext, sql: Sql, outbox: OutboxWriter, subjects: HandoverSubject[], now: Date): Promise<Map<string, string[]>> {
  const notes = new Map<string, string[]>();
  if (!subjects.length) return notes;
  const customers = new Map<string, CheckedCustomer>();
  // The customer as the last subject naming it left it (a batch's later event may have changed it).
  for (const s of subjects) if (s.locked) customers.set(s.customerId, s.locked);
  const toLock = [...new Set(subjects.map((s) => s.customerId).filter((id) => !customers.has(id)))].sort();
  if (toLock.length) {
    const r = await sql.query<CheckedCustomer>(
      `SELECT c.id, c.merchant_id, c.country, c.type, c.debtor_id FROM customers c JOIN debtors d ON d.id = c.debtor_id WHERE c.id = ANY($1::text[]) ORDER BY c.id FOR UPDATE OF c, d`,
      [toLock],
    );
    for (const c of r.rows) customers.set(c.id, c);
  }
  // One check per debtor, for the first subject naming it.
  const checks: { customer: CheckedCustomer; merchant: MerchantSettings }[] = [];
  const seen = new Set<string>();
  for (const s of subjects) {
    const cust = customers.get(s.customerId);
    if (!cust) throw new Permanent(`customer ${s.customerId} not found`);
    const merchant = ctx.merchants.get(cust.merchant_id);
    if (!merchant) throw new Permanent(`merchant ${cust.merchant_id} is not configured`);
    if (seen.has(cust.debtor_id)) continue;
    seen.add(cust.debtor_id);
    checks.push({ customer: cust, merchant });
  }
  // Every debtor's waiting invoices, each with the debtor's open case at the partner in its
  // currency (the case is the same for every invoice of a currency): one read for all.
  const waiting = (await sql.query<Waiting>(
    `SELECT i.*, q.debtor_id AS check_debtor_id, c.country AS customer_country, c.type AS customer_type, oc.id AS open_case_id, oc.last_claim_at AS open_case_last_claim_at
       FROM unnest($1::text[], $2::text[], $3::text[]) AS q(debtor_id, merchant_id, partner_id)
       JOIN customers c ON c.debtor_id = q.debtor_id
       JOIN invoices i ON i.customer_id = c.id AND i.merchant_id = q.merchant_id AND i.status = 'pending_handover'
       LEFT JOIN LATERAL (SELECT k.id, k.last_claim_at FROM cases k
                           WHERE k.debtor_id = q.debtor_id AND k.partner_id = q.partner_id AND k.currency = i.currency
                             AND k.status NOT IN ('paid','withdrawn','uncollectible','closed') ORDER BY k.opened_at DESC LIMIT 1) oc ON true
      ORDER BY i.first_failed_at, i.id`,
    [checks.map((c) => c.customer.debtor_id), checks.map((c) => c.merchant.id), checks.map((c) => c.merchant.partner)],
  )).rows;
  const writes: Writes = { newCases: [], stackedCases: [], sumCosts: [], claims: [], history: [] };
  for (const { customer, merchant } of checks) {
    const mine = waiting.filter((i) => i.check_debtor_id === customer.debtor_id);
    notes.set(customer.id, await decideDebtor(sql, outbox, customer, merchant, mine, now, writes));
  }
  await writeHandovers(sql, writes, now);
  return notes;
}

/** One debtor's check, decided in memory; what it writes goes into `writes` (and the outbox writer). */
async function decideDebtor(
  sql: Sql, outbox: OutboxWriter, customer: CheckedCustomer, merchant: MerchantSettings, waiting: Waiting[], now: Date, writes: Writes,
): Promise<string[]> {
  const customerId = customer.id;
  const debtorId = customer.debtor_id;
  const partnerId = merchant.partner;
  const invoices = waiting.filter((i) => !heldByMerchant(i, now)); // held by the merchant: out until its date (a check is due then; src/policy/merchant-hold.ts)
  // The debtor's consumer law applies: each invoice's own customer decides its notice term (one
  // person may be known as NL at one PSP and not at another: then the merchant's country applies).
  const ruleOf = (i: { customer_country: string | null; customer_type: 'consumer' | 'business' }) =>
    merchant.policy.countryRules ? ruleFor(countryRules(), i.customer_country ?? merchant.country, i.customer_type) : null;
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
    // The Wki cap below reads the debtor's claims of its window from the store: this debtor's claims
    // of another currency, decided just now, are written first so that it counts them.
    if (writes.claims.some((c) => c.debtorId === debtorId)) await writeHandovers(sql, writes, now);
    // Statutory costs per claim, opened or stacked (issue 12, holes 4 and 6): each needs its own
    // letter evidence under a letter rule, and the Wki cap counts the debtor's window (./claim-costs.ts).
    const claimCosts = await priceClaims(sql, {
      debtorId, currency, now, policy: merchant.policy,
      claims: decision.invoiceIds.map((id) => ({ invoiceId: id, principal: candidates.find((c) => c.invoiceId === id)!.amountOpen })),
      invoiceOf: (id) => invoices.find((i) => i.id === id)!,
      ruleOf: (i) => ruleOf(i as (typeof invoices)[number]),
    });
    const claims = decision.invoiceIds.map((invoiceId) => {
      const inv = invoices.find((i) => i.id === invoiceId)!;
      const costs = claimCosts.get(invoiceId) ?? null;
      return {
        id: newId('clm'), caseId, invoiceId, merchantId: merchant.id, principal: Math.max(0, Number(inv.amount_due) - Number(inv.amount_paid)), currency,
        costs: costs?.value ?? null, vat: costs?.vat ?? 0, basis: costs?.basis ?? null, debtorId,
      };
    });
    const claimIds = claims.map((c) => c.id);
    writes.claims.push(...claims);
    if (decision.action === 'open_case') {
      writes.newCases.push({ id: caseId, merchantId: merchant.id, customerId, partnerId, currency, costs: newCaseCosts(claimCosts), debtorId });
      writes.history.push({ merchantId: merchant.id, entity: 'case', entityId: caseId, status: 'submitted', source: 'hub', occurredAt: now, detail: { partner: partnerId, invoices: decision.invoiceIds.length } });
    } else {
      writes.stackedCases.push(caseId);
      if ([...claimCosts.values()].some((c) => c !== null)) writes.sumCosts.push(caseId);
    }
    writes.history.push(...claims.map((c) => ({
      merchantId: merchant.id, entity: 'invoice' as const, entityId: c.invoiceId, status: 'submitted', source: 'hub', occurredAt: now,
      detail: { caseId, claimId: c.id, partner: partnerId, stacked: decision.action === 'stack' },
    })));
    if (decision.action === 'stack') {
      for (const c of claims) {
        await outbox.add({
          kind: 'agency.add_claim', lane: partnerLane(partnerId), payload: { caseId, claimId: c.id },
          idempotencyKey: `claim-${c.id}`, merchantId: merchant.id, customerId, invoiceId: c.invoiceId, caseId,
        });
      }
    } else {
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

/**
 * Every case opened or stacked by a set of checks, their claims (each with its statutory costs)
 * and the invoices' move to them: one statement however many debtors and invoices; then the
 * stacked cases' cost totals (only where a stacked claim carries costs) and the timeline entries.
 */
async function writeHandovers(sql: Sql, w: Writes, now: Date): Promise<void> {
  if (w.claims.length) {
    const n = w.newCases;
    const c = w.claims;
    await sql.query(
      `WITH new_cases AS (
         INSERT INTO cases (id, merchant_id, customer_id, partner_id, status, currency, opened_at, last_claim_at, created_at, updated_at, collection_costs, collection_costs_basis, debtor_id)
         SELECT x.id, x.merchant_id, x.customer_id, x.partner_id, 'submitted', x.currency, $1, $1, $1, $1, x.costs, x.basis, x.debtor_id
           FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[], $8::text[], $9::text[])
             AS x(id, merchant_id, customer_id, partner_id, currency, costs, basis, debtor_id)
         RETURNING id
       ),
       stacked AS (UPDATE cases SET last_claim_at = $1, updated_at = $1 WHERE id = ANY($10::text[]) RETURNING id),
       new_claims AS (
         INSERT INTO claims (id, case_id, invoice_id, merchant_id, principal, currency, status, created_at, updated_at, collection_costs, collection_costs_vat, collection_costs_basis)
         SELECT x.id, x.case_id, x.invoice_id, x.merchant_id, x.principal, x.currency, 'submitted', $1, $1, x.costs, x.vat, x.basis
           FROM unnest($11::text[], $12::text[], $13::text[], $14::text[], $15::bigint[], $16::text[], $17::bigint[], $18::bigint[], $19::text[])
             AS x(id, case_id, invoice_id, merchant_id, principal, currency, costs, vat, basis)
         RETURNING case_id, invoice_id
       )
       UPDATE invoices i SET status = 'submitted', case_id = nc.case_id, updated_at = $1 FROM new_claims nc WHERE i.id = nc.invoice_id`,
      [
        now,
        n.map((x) => x.id), n.map((x) => x.merchantId), n.map((x) => x.customerId), n.map((x) => x.partnerId), n.map((x) => x.currency),
        n.map((x) => x.costs?.value ?? null), n.map((x) => x.costs?.basis ?? null), n.map((x) => x.debtorId),
        w.stackedCases,
        c.map((x) => x.id), c.map((x) => x.caseId), c.map((x) => x.invoiceId), c.map((x) => x.merchantId), c.map((x) => x.principal), c.map((x) => x.currency),
        c.map((x) => x.costs), c.map((x) => x.vat), c.map((x) => x.basis),
      ],
    );
  }
  for (const caseId of w.sumCosts) await sumCaseCosts(sql, caseId);
  await addHistoryRows(sql, w.history, now);
  Object.assign(w, { newCases: [], stackedCases: [], sumCosts: [], claims: [], history: [] } satisfies Writes);
}
