/**
 * A debtor's payment-behaviour profile (issue 17): counts and amounts over the last 3, 6 and 12
 * months, the current state, and explainable flags. The pure core is ./compute.ts; this file is
 * the SQL edge that reads the facts.
 *
 * The tenant rule: every query is scoped by the merchant, so a profile is computed only from one
 * merchant's own rows (its customers, invoices, cases, claims and their timelines) and is only
 * ever shown to that merchant. The debtor is the merchant-level person across its PSPs
 * (customers.debtor_id, migration 009) — never across merchants.
 */
import type { Sql } from '../store/db';
import type { MerchantSettings } from '../context';
import type { Policy } from '../config/schema';
import {
  BEHAVIOUR_DEFAULTS,
  computeProfile,
  type BehaviourThresholds,
  type DebtorProfile,
  type ProfileFacts,
} from './compute';

export type {
  BehaviourThresholds,
  CurrentState,
  DebtorProfile,
  ProfileFacts,
  ProfileFlag,
  Tally,
  WindowCounts,
  WindowName,
} from './compute';
export { BEHAVIOUR_DEFAULTS, FLAG_NAMES, computeProfile, flagSet } from './compute';

/** The merchant's thresholds (policy.behaviour) with the defaults for whatever it leaves out. */
export function thresholdsOf(policy: Pick<Policy, 'behaviour'> | undefined): BehaviourThresholds {
  const b = policy?.behaviour;
  return {
    repeatedInsufficientFunds: { ...BEHAVIOUR_DEFAULTS.repeatedInsufficientFunds, ...(b?.repeatedInsufficientFunds ?? {}) },
    brokenArrangements: { ...BEHAVIOUR_DEFAULTS.brokenArrangements, ...(b?.brokenArrangements ?? {}) },
    disputes: { ...BEHAVIOUR_DEFAULTS.disputes, ...(b?.disputes ?? {}) },
  };
}

const num = (v: unknown) => Number(v ?? 0);

/** Read the facts of one debtor of one merchant (nothing of another merchant is read). */
export async function loadProfileFacts(sql: Sql, merchantId: string, debtorId: string): Promise<ProfileFacts> {
  const customerIds = (await sql.query<{ id: string }>(`SELECT id FROM customers WHERE merchant_id = $1 AND debtor_id = $2 ORDER BY id`, [merchantId, debtorId])).rows.map((r) => r.id);
  const invoices = (await sql.query<{
    id: string; provider_ref: string; provider: string; currency: string; amount_due: unknown; amount_paid: unknown; amount_collected: unknown;
    status: string; failure_count: unknown; failure_reason: string | null; first_failed_at: Date | null; case_id: string | null;
  }>(
    `SELECT id, provider_ref, provider, currency, amount_due, amount_paid, amount_collected, status, failure_count, failure_reason, first_failed_at, case_id
       FROM invoices WHERE merchant_id = $1 AND customer_id = ANY($2::text[]) ORDER BY id`,
    [merchantId, customerIds],
  )).rows;
  const cases = (await sql.query<{ id: string; partner_id: string; partner_ref: string | null; status: string; currency: string }>(
    `SELECT id, partner_id, partner_ref, status, currency FROM cases WHERE merchant_id = $1 AND (debtor_id = $2 OR customer_id = ANY($3::text[])) ORDER BY id`,
    [merchantId, debtorId, customerIds],
  )).rows;
  const claims = (await sql.query<{ id: string; case_id: string; invoice_id: string; status: string }>(
    `SELECT id, case_id, invoice_id, status FROM claims WHERE merchant_id = $1 AND (case_id = ANY($2::text[]) OR invoice_id = ANY($3::text[])) ORDER BY id`,
    [merchantId, cases.map((k) => k.id), invoices.map((i) => i.id)],
  )).rows;
  const history = (await sql.query<{ id: string | number; entity: string; entity_id: string; status: string; reason: string | null; source: string; detail: Record<string, any> | null; occurred_at: Date }>(
    `SELECT id, entity, entity_id, status, reason, source, detail, occurred_at FROM status_history
      WHERE merchant_id = $1 AND ((entity = 'customer' AND entity_id = ANY($2::text[])) OR (entity = 'invoice' AND entity_id = ANY($3::text[]))
        OR (entity = 'claim' AND entity_id = ANY($4::text[])))
      ORDER BY occurred_at, id`,
    [merchantId, customerIds, invoices.map((i) => i.id), claims.map((c) => c.id)],
  )).rows;
  return {
    debtorId,
    invoices: invoices.map((i) => ({
      id: i.id, ref: i.provider_ref, provider: i.provider, currency: i.currency, amountDue: num(i.amount_due), amountPaid: num(i.amount_paid),
      amountCollected: num(i.amount_collected), status: i.status, failureCount: num(i.failure_count), failureReason: i.failure_reason,
      firstFailedAt: i.first_failed_at, caseId: i.case_id,
    })),
    cases: cases.map((k) => ({ id: k.id, partnerId: k.partner_id, partnerRef: k.partner_ref, status: k.status, currency: k.currency })),
    claims: claims.map((c) => ({ id: c.id, caseId: c.case_id, invoiceId: c.invoice_id, status: c.status })),
    history: history.map((h) => ({ id: h.id, entity: h.entity, entityId: h.entity_id, status: h.status, reason: h.reason, source: h.source, detail: h.detail, occurredAt: h.occurred_at })),
  };
}

/** Load the profile of one debtor of this merchant (only this merchant's rows are read). */
export async function loadDebtorProfile(sql: Sql, merchant: MerchantSettings, debtorId: string, now: Date): Promise<DebtorProfile> {
  const facts = await loadProfileFacts(sql, merchant.id, debtorId);
  return computeProfile(facts, thresholdsOf(merchant.policy), now);
}

/**
 * Whether the debtor's personal data was erased (GDPR art. 17, src/privacy/erasure.ts) for any of
 * its PSP customers: such a debtor is profiled no more — no profile in the API, no flags webhook,
 * no stored flags.
 */
export async function debtorErased(sql: Sql, merchantId: string, debtorId: string): Promise<boolean> {
  const r = await sql.query(`SELECT 1 FROM customers WHERE merchant_id = $1 AND debtor_id = $2 AND erased_at IS NOT NULL LIMIT 1`, [merchantId, debtorId]);
  return r.rows.length > 0;
}
