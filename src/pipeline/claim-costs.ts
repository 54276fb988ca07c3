/**
 * The SQL edge of the per-claim statutory costs (issue 12, holes 4 and 6), used by the
 * hand-over check inside its transaction: read what the debtor's small claims were charged in
 * the Wki window, price the new claims with the pure rules (src/policy/letter-evidence.ts), and
 * store each claim's costs and the case's total. The decisions themselves are pure.
 */
import type { Sql } from '../store/db';
import type { Policy } from '../config/schema';
import type { InvoiceRow } from '../ledger/rows';
import { DAY_MS } from '../domain/clock';
import type { CountryRule } from '../policy/country-rules';
import { caseCostsSummary, costsForClaims, invoiceLetterEvidence, type ClaimCosts } from '../policy/letter-evidence';

export interface NewClaim {
  invoiceId: string;
  principal: number;
}

/**
 * Costs for each new claim (by invoice id), in the order given. `ruleOf` gives each invoice's
 * rule (one debtor may be known in several countries at several PSPs); `debtorId` scopes the
 * recurring-claims window to the person, across PSPs.
 */
export async function priceClaims(
  sql: Sql,
  input: {
    debtorId: string;
    currency: string;
    now: Date;
    policy: Pick<Policy, 'dunningLetterAfterDays' | 'costsIncludeVat'>;
    claims: NewClaim[];
    invoiceOf: (invoiceId: string) => InvoiceRow;
    ruleOf: (inv: InvoiceRow) => CountryRule | null;
  },
): Promise<Map<string, ClaimCosts | null>> {
  const out = new Map<string, ClaimCosts | null>();
  const earlierByWindow = new Map<string, number>();
  // Claims under one rule are priced together, so the cap's running total carries from one to the next.
  const byRule = new Map<CountryRule | null, NewClaim[]>();
  for (const c of input.claims) {
    const rule = input.ruleOf(input.invoiceOf(c.invoiceId));
    byRule.set(rule, [...(byRule.get(rule) ?? []), c]);
  }
  for (const [rule, claims] of byRule) {
    const cap = rule?.recurringCap;
    let earlier = 0;
    if (cap && rule?.costs) {
      const key = `${cap.windowDays}/${cap.claimBelow}`;
      if (!earlierByWindow.has(key)) {
        const r = await sql.query<{ n: string | number }>(
          `SELECT COALESCE(SUM(cl.collection_costs - cl.collection_costs_vat), 0)::bigint AS n
             FROM claims cl JOIN invoices i ON i.id = cl.invoice_id JOIN customers cu ON cu.id = i.customer_id
            WHERE cu.debtor_id = $1 AND cl.created_at > $2 AND cl.principal < $3 AND cl.collection_costs IS NOT NULL`,
          [input.debtorId, new Date(input.now.getTime() - cap.windowDays * DAY_MS), cap.claimBelow],
        );
        earlierByWindow.set(key, Number(r.rows[0].n));
      }
      earlier = earlierByWindow.get(key)!;
    }
    const priced = costsForClaims(
      rule,
      claims.map((c) => ({ key: c.invoiceId, principal: c.principal, evidence: invoiceLetterEvidence(input.invoiceOf(c.invoiceId), input.policy) })),
      { currency: input.currency, includeVat: input.policy.costsIncludeVat ?? false, earlierSmall: earlier },
    );
    for (const [k, v] of priced) out.set(k, v);
    if (cap) {
      const key = `${cap.windowDays}/${cap.claimBelow}`;
      earlierByWindow.set(key, earlier + [...priced.values()].reduce((n, c) => n + (c?.small ? c.value - c.vat : 0), 0));
    }
  }
  return out;
}

/** The case's costs line for a new case: the sum of its claims' costs, with one basis. */
export function newCaseCosts(costs: Map<string, ClaimCosts | null>): { value: number; basis: string } | null {
  return caseCostsSummary([...costs.values()]);
}

/**
 * A case that took stacked claims with costs: its total becomes the sum over all its claims. (Each
 * claim's own costs are inserted with it: src/pipeline/handover-check.ts.)
 */
export async function sumCaseCosts(sql: Sql, caseId: string): Promise<void> {
  const all = (await sql.query<{ collection_costs: string | number | null; collection_costs_vat: string | number; collection_costs_basis: string | null }>(
    `SELECT collection_costs, collection_costs_vat, collection_costs_basis FROM claims WHERE case_id = $1 AND collection_costs IS NOT NULL ORDER BY created_at, id`,
    [caseId],
  )).rows;
  const summary = caseCostsSummary(all.map((r) => ({ value: Number(r.collection_costs), vat: Number(r.collection_costs_vat), currency: 'EUR', basis: r.collection_costs_basis ?? '', small: false })));
  if (summary) await sql.query(`UPDATE cases SET collection_costs = $2, collection_costs_basis = $3 WHERE id = $1`, [caseId, summary.value, summary.basis]);
}
