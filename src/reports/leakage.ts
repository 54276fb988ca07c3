/**
 * The leakage report (contract §6): every failed payment of the period accounted for, and a
 * list of anything unexplained — a failure with no follow-up the hub can name.
 *
 * The category of one invoice is a pure function (`classify`) of plain facts: the invoice row and
 * what the report's edge (`buildLeakageReport`) read beside it — the notice gate of the debtor's
 * country rule, the debtor's open amount against the merchant's `minAmount`, a live case to stack
 * onto, a hand-over call in the dead letter. Each waiting category says until when it waits (the
 * moment the hand-over check runs again), so "unexplained" is left for what no rule explains
 * (issue 12, hole 7). The model-based test calls `classify` on the same facts.
 */
import type { Sql } from '../store/db';
import type { InvoiceRow } from '../ledger/rows';
import type { Money } from '../domain/types';
import { DAY_MS } from '../domain/clock';
import { loadCountryRules, ruleFor, type CountryRule } from '../policy/country-rules';
import { AWAITING_LETTER_WHY, invoiceNoticeGate } from '../policy/letter-evidence';
import type { MerchantSettings } from '../context';

export const LEAKAGE_BUCKETS = [
  'recovered_by_psp',
  'psp_retrying',
  'pending_handover',
  'waiting_notice_gate',
  'waiting_letter_evidence',
  'held_by_merchant',
  'below_min_amount',
  'in_collection',
  'handover_refused',
  'collected',
  'paid_to_merchant_after_handover',
  'owed_back_to_debtor',
  'written_off',
  'disputed',
  'cancelled',
  'unexplained',
] as const;
export type LeakageBucket = (typeof LEAKAGE_BUCKETS)[number];

/** A PSP that has said nothing for this long about a failure it said it would retry has dropped it. */
const RETRY_SILENCE_MS = 30 * DAY_MS;
/** A hand-over this late past its due time means the hub did not act. */
const HANDOVER_OVERDUE_MS = DAY_MS;

/** Invoice statuses in which a claim is with (or on its way to) the partner. */
const WITH_PARTNER = ['submitted', 'in_collection', 'arrangement', 'partially_paid', 'on_hold'];

export type LeakageInvoice = Pick<InvoiceRow, 'status' | 'resolution' | 'failure_final' | 'handover_due_at' | 'last_failed_at' | 'currency'> & {
  /** Migration 008 (hole 1): PSP-paid + agency-collected beyond what was due. */
  amount_owed_back?: number | string | null;
  /** Migration 011 (hole 9): the merchant holds the hand-over until then. */
  hold_until?: Date | string | null;
};

/** What the report's edge knows beside the invoice row; every field optional (absent = no such fact). */
export interface LeakageFacts {
  /** The end of the debtor's notice term under the country rule (null: no notice rule applies). */
  noticeEndsAt?: Date | null;
  /** The country rule asks for a pre-hand-over letter and the hub has no evidence of one (src/policy/letter-evidence.ts). */
  awaitingLetter?: boolean;
  /** The merchant's minimum for opening a case, and what the debtor owes in total awaiting hand-over (same currency). */
  minAmount?: Money | null;
  debtorOpenAmount?: number;
  /** The debtor has a live case at the partner in this currency: a due invoice is stacked, the minimum does not apply. */
  liveCase?: boolean;
  /** The partner refused the hand-over of this invoice (its case's creation or its claim is in the dead letter): why. */
  handoverRefused?: string | null;
}

export interface LeakageClassification {
  bucket: LeakageBucket;
  why?: string;
  /** Until when the invoice waits in this category (the hub acts then), when a date says so. */
  until?: Date | null;
}

const time = (d: Date | string | null | undefined) => (d ? new Date(d).getTime() : null);

export function classify(inv: LeakageInvoice, now: Date, facts: LeakageFacts = {}): LeakageClassification {
  // Paid through the PSP while the agency collected too: money to give back whatever the status says.
  if (Number(inv.amount_owed_back ?? 0) > 0) {
    return { bucket: 'owed_back_to_debtor', why: `${Number(inv.amount_owed_back)} ${inv.currency} paid twice (PSP and agency) is owed back to the debtor` };
  }
  if (facts.handoverRefused && WITH_PARTNER.includes(inv.status)) {
    return { bucket: 'handover_refused', why: `the partner refused the hand-over: ${facts.handoverRefused}` };
  }
  switch (inv.status) {
    case 'recovered':
    case 'settled':
      return { bucket: 'recovered_by_psp' };
    case 'open': {
      const held = heldUntil(inv, now);
      if (held) return held;
      if (inv.failure_final) return { bucket: 'unexplained', why: 'final failure but no hand-over scheduled' };
      if (inv.last_failed_at && now.getTime() - new Date(inv.last_failed_at).getTime() > RETRY_SILENCE_MS) {
        return { bucket: 'unexplained', why: 'the PSP said it would retry, and nothing has come for 30 days' };
      }
      return { bucket: 'psp_retrying' };
    }
    case 'pending_handover':
      return pendingHandover(inv, now, facts);
    case 'submitted':
    case 'in_collection':
    case 'arrangement':
    case 'partially_paid':
    case 'on_hold':
      return { bucket: 'in_collection' };
    case 'paid':
      return { bucket: inv.resolution === 'paid_to_merchant' ? 'paid_to_merchant_after_handover' : 'collected' };
    case 'uncollectible':
      return { bucket: 'written_off' };
    case 'disputed':
      return { bucket: 'disputed' };
    case 'voided':
    case 'withdrawn':
    case 'closed':
      return { bucket: 'cancelled' };
    default:
      return { bucket: 'unexplained', why: `unknown status ${inv.status}` };
  }
}

function heldUntil(inv: LeakageInvoice, now: Date): LeakageClassification | null {
  const hold = time(inv.hold_until);
  return hold !== null && hold > now.getTime() ? { bucket: 'held_by_merchant', why: 'the merchant holds the hand-over', until: new Date(hold) } : null;
}

/** Mirrors the hand-over rule's waits (src/policy/handover-policy.ts) in the order the check meets them. */
function pendingHandover(inv: LeakageInvoice, now: Date, facts: LeakageFacts): LeakageClassification {
  const held = heldUntil(inv, now);
  if (held) return held;
  if (facts.awaitingLetter) return { bucket: 'waiting_letter_evidence', why: AWAITING_LETTER_WHY, until: null };
  const t = now.getTime();
  const due = time(inv.handover_due_at);
  const gate = time(facts.noticeEndsAt);
  // The notice gate decides when it ends later than the merchant's own hand-over date.
  if (gate !== null && gate > t && (due === null || gate > due)) {
    return { bucket: 'waiting_notice_gate', why: "inside the debtor's notice term (country rule)", until: new Date(gate) };
  }
  if (due !== null && due > t) return { bucket: 'pending_handover', until: new Date(due) };
  const min = facts.minAmount;
  if (!facts.liveCase && min && min.currency === inv.currency && facts.debtorOpenAmount !== undefined && facts.debtorOpenAmount < min.value) {
    // No date: it goes once the debtor's open amount reaches the minimum (a next unpaid invoice).
    return { bucket: 'below_min_amount', why: `the debtor's open amount ${facts.debtorOpenAmount} is below the minimum ${min.value} ${min.currency}`, until: null };
  }
  const dueAt = Math.max(due ?? 0, gate ?? 0);
  if (due !== null && t - dueAt > HANDOVER_OVERDUE_MS) {
    return { bucket: 'unexplained', why: 'hand-over overdue: no rule holds it back, yet it was not handed over' };
  }
  return { bucket: 'pending_handover', until: dueAt ? new Date(dueAt) : null };
}

// ---- the edge: read the facts, classify, total -----------------------------------------------

let rulesCache: CountryRule[] | null = null;
const countryRules = () => (rulesCache ??= loadCountryRules());

interface DebtorRow {
  customer_id: string;
  country: string | null;
  type: 'consumer' | 'business';
  /** The merchant-level debtor (migration 009) when it exists, else the customer. */
  debtor_key: string;
}

export async function buildLeakageReport(sql: Sql, merchantId: string, opts: { from?: Date; to?: Date; now: Date; merchant?: MerchantSettings }) {
  const params: unknown[] = [merchantId];
  const where = ['merchant_id = $1', 'failure_count > 0'];
  if (opts.from) {
    params.push(opts.from);
    where.push(`first_failed_at >= $${params.length}`);
  }
  if (opts.to) {
    params.push(opts.to);
    where.push(`first_failed_at < $${params.length}`);
  }
  const rows = (await sql.query<InvoiceRow & LeakageInvoice>(`SELECT * FROM invoices WHERE ${where.join(' AND ')} ORDER BY first_failed_at, id`, params)).rows;
  const factsOf = await readFacts(sql, merchantId, rows, opts.merchant);
  const totals: Record<string, { count: number; amounts: Record<string, number> }> = {};
  for (const b of LEAKAGE_BUCKETS) totals[b] = { count: 0, amounts: {} };
  const unexplained: unknown[] = [];
  const items = rows.map((inv) => {
    const { bucket, why, until } = classify(inv, opts.now, factsOf(inv));
    const t = totals[bucket];
    t.count++;
    t.amounts[inv.currency] = (t.amounts[inv.currency] ?? 0) + Number(inv.amount_due);
    const item = {
      invoiceId: inv.id, ref: inv.provider_ref, provider: inv.provider, customerId: inv.customer_id, number: inv.number, bucket, why,
      until: until ? until.toISOString() : null,
      status: inv.status, resolution: inv.resolution, amountDue: { value: Number(inv.amount_due), currency: inv.currency },
      failureReason: inv.failure_reason, firstFailedAt: inv.first_failed_at ? new Date(inv.first_failed_at).toISOString() : null,
      handoverDueAt: inv.handover_due_at ? new Date(inv.handover_due_at).toISOString() : null, caseId: inv.case_id,
    };
    if (bucket === 'unexplained') unexplained.push(item);
    return item;
  });
  return {
    merchantId,
    period: { from: opts.from?.toISOString() ?? null, to: opts.to?.toISOString() ?? null },
    failedPayments: rows.length,
    accountedFor: rows.length - unexplained.length,
    totals,
    unexplained,
    items,
  };
}

/**
 * The facts beside each invoice, in a few merchant-wide reads. The debtor is the merchant-level
 * debtor when the customers table has one (migration 009), else the customer: read through
 * to_jsonb so this works before and after that column exists.
 */
async function readFacts(sql: Sql, merchantId: string, rows: InvoiceRow[], merchant?: MerchantSettings): Promise<(inv: InvoiceRow) => LeakageFacts> {
  const waiting = rows.filter((i) => i.status === 'pending_handover');
  const withPartner = rows.filter((i) => WITH_PARTNER.includes(i.status));
  const debtors = new Map<string, DebtorRow>();
  const openByDebtor = new Map<string, number>();
  const liveCases = new Set<string>();
  if (waiting.length) {
    for (const d of (await sql.query<DebtorRow>(
      `SELECT c.id AS customer_id, c.country, c.type, COALESCE(to_jsonb(c) ->> 'debtor_id', c.id) AS debtor_key
       FROM customers c WHERE c.id = ANY($1::text[])`,
      [[...new Set(waiting.map((i) => i.customer_id))]],
    )).rows) debtors.set(d.customer_id, d);
    // Everything the debtor owes awaiting hand-over (not only the report's period): what the check sums.
    for (const r of (await sql.query<{ debtor_key: string; currency: string; open: string }>(
      `SELECT COALESCE(to_jsonb(c) ->> 'debtor_id', c.id) AS debtor_key, i.currency, SUM(GREATEST(0, i.amount_due - i.amount_paid))::text AS open
       FROM invoices i JOIN customers c ON c.id = i.customer_id
       WHERE i.merchant_id = $1 AND i.status = 'pending_handover' GROUP BY 1, 2`,
      [merchantId],
    )).rows) openByDebtor.set(`${r.debtor_key}/${r.currency}`, Number(r.open));
    for (const r of (await sql.query<{ debtor_key: string; currency: string }>(
      `SELECT DISTINCT COALESCE(to_jsonb(k) ->> 'debtor_id', c.debtor_key) AS debtor_key, k.currency
       FROM cases k JOIN (SELECT id, COALESCE(to_jsonb(c) ->> 'debtor_id', id) AS debtor_key FROM customers c) c ON c.id = k.customer_id
       WHERE k.merchant_id = $1 AND k.status NOT IN ('paid','withdrawn','uncollectible','closed')`,
      [merchantId],
    )).rows) liveCases.add(`${r.debtor_key}/${r.currency}`);
  }
  const refusedCase = new Map<string, string>();
  const refusedInvoice = new Map<string, string>();
  if (withPartner.length) {
    for (const r of (await sql.query<{ kind: string; case_id: string | null; invoice_id: string | null; last_error: string | null; last_status: number | null }>(
      `SELECT kind, case_id, invoice_id, last_error, last_status FROM outbox
       WHERE merchant_id = $1 AND status = 'dead' AND kind IN ('agency.create_case', 'agency.add_claim')`,
      [merchantId],
    )).rows) {
      const why = `${r.last_status ? `${r.last_status} ` : ''}${r.last_error ?? 'dead-lettered'}`.slice(0, 300);
      if (r.kind === 'agency.create_case' && r.case_id) refusedCase.set(r.case_id, why);
      if (r.kind === 'agency.add_claim' && r.invoice_id) refusedInvoice.set(r.invoice_id, why);
    }
  }
  return (inv) => {
    const refused = refusedInvoice.get(inv.id) ?? (inv.case_id ? refusedCase.get(inv.case_id) : undefined) ?? null;
    if (inv.status !== 'pending_handover' || !merchant) return { handoverRefused: refused };
    const d = debtors.get(inv.customer_id);
    const rule = merchant.policy.countryRules && d ? ruleFor(countryRules(), d.country ?? merchant.country, d.type) : null;
    const key = `${d?.debtor_key ?? inv.customer_id}/${inv.currency}`;
    const gate = invoiceNoticeGate(rule, inv, merchant.policy);
    return {
      handoverRefused: refused,
      noticeEndsAt: gate.kind === 'ends' ? gate.at : null,
      awaitingLetter: gate.kind === 'awaiting_letter',
      minAmount: merchant.policy.minAmount,
      debtorOpenAmount: openByDebtor.get(key) ?? 0,
      liveCase: liveCases.has(key),
    };
  };
}
