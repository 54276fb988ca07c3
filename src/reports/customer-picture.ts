/**
 * The customer-level picture a merchant asks for before accepting or keeping a customer
 * (issue 4, item 8), from the customer's invoices, claims, cases and status history:
 *
 *  - `failureReasonsOverTime`: why payments failed, month by month (every failed attempt counts);
 *  - `collected`: what was recovered, by whom (the agency, or the PSP) and how (in full, through an
 *    arrangement, partly, paid to the merchant after hand-over, paid after a failure);
 *  - `arrangements`: each payment arrangement an agency agreed, with the instalments paid so far;
 *  - `rollup`: per currency, what is open, collected, and open under an arrangement;
 *  - `behaviour`: invoices paid on time / after a failure / via collection / written off, the
 *    average days from first failure to payment, and a risk band with the reasons for it.
 *
 * `customerPicture` is pure (rows in, picture out); `loadCustomerPicture` reads the rows.
 */
import type { Sql } from '../store/db';
import type { CaseRow, ClaimRow, InvoiceRow } from '../ledger/rows';

export interface Money {
  value: number;
  currency: string;
}

export interface PictureHistoryRow {
  id: number | string;
  entity: string;
  entity_id: string;
  status: string;
  reason: string | null;
  source: string;
  detail: Record<string, any> | null;
  occurred_at: Date | string;
}

export interface PictureInput {
  invoices: InvoiceRow[];
  claims: ClaimRow[];
  cases: CaseRow[];
  history: PictureHistoryRow[];
}

export type CollectedHow = 'in_full' | 'arrangement' | 'partial' | 'paid_to_merchant' | 'paid_after_failure';

export interface InstalmentPaid {
  at: string;
  amount: Money;
  /** Collected on the invoice after this instalment. */
  total: Money;
}

export interface ArrangementView {
  invoiceId: string;
  ref: string;
  caseId: string | null;
  partner: string | null;
  /** running: the invoice is still being paid off; completed: paid; ended: closed otherwise (withdrawn, written off…). */
  state: 'running' | 'completed' | 'ended';
  invoiceStatus: string;
  agreedAt: string | null;
  installments: number | null;
  /** One instalment as the agency agreed it (for the whole case when it holds several invoices). */
  installmentAmount: Money | null;
  firstDueAt: string | null;
  paid: InstalmentPaid[];
  collected: Money;
  open: Money;
}

export type RiskBand = 'unknown' | 'low' | 'medium' | 'high';

export interface Behaviour {
  /** Invoices that count (voided ones do not). */
  invoices: number;
  paidOnTime: number;
  /** Paid through the PSP after a failure: a retry, or the customer paying before or after hand-over. */
  paidAfterFailure: number;
  /** Paid in full to the collection agency. */
  paidViaCollection: number;
  writtenOff: number;
  disputed: number;
  /** Failed and not settled yet (waiting for hand-over or with the agency). */
  unpaid: number;
  /** Of the invoices that failed and were paid in the end, the average days from the first failure to the payment. */
  averageDaysToRecovery: number | null;
  riskBand: RiskBand;
  riskReasons: string[];
}

export interface CustomerPicture {
  failureReasonsOverTime: { period: string; attempts: number; reasons: { reason: string; count: number }[] }[];
  collected: { by: string; how: CollectedHow; amount: Money; invoices: number }[];
  arrangements: ArrangementView[];
  rollup: { currency: string; open: Money; collected: Money; underArrangement: Money; invoicesUnderArrangement: number }[];
  behaviour: Behaviour;
}

const DAY_MS = 86_400_000;
const COLLECTION = ['submitted', 'in_collection', 'arrangement', 'partially_paid', 'on_hold', 'disputed'];
const UNSETTLED = ['open', 'pending_handover', ...COLLECTION];
const ENDED = ['recovered', 'settled', 'voided', 'paid', 'withdrawn', 'uncollectible', 'closed'];

const iso = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString() : null);
const time = (d: Date | string) => new Date(d).getTime();
const money = (value: number, currency: string): Money => ({ value, currency });
const openOf = (i: InvoiceRow) => Math.max(0, Number(i.amount_due) - Number(i.amount_paid) - Number(i.amount_collected));
const byTime = (a: PictureHistoryRow, b: PictureHistoryRow) => time(a.occurred_at) - time(b.occurred_at) || Number(a.id) - Number(b.id);

function historyOf(history: PictureHistoryRow[], entity: string, id: string): PictureHistoryRow[] {
  return history.filter((h) => h.entity === entity && h.entity_id === id).sort(byTime);
}

function failureReasonsOverTime(input: PictureInput): CustomerPicture['failureReasonsOverTime'] {
  const months = new Map<string, Map<string, number>>();
  const count = (at: Date | string, reason: string) => {
    const period = new Date(at).toISOString().slice(0, 7);
    const m = months.get(period) ?? new Map<string, number>();
    m.set(reason, (m.get(reason) ?? 0) + 1);
    months.set(period, m);
  };
  const seen = new Set<string>();
  for (const h of input.history) {
    if (h.entity === 'invoice' && h.status === 'payment_failed') {
      seen.add(h.entity_id);
      // The PSP marking the invoice uncollectible is recorded the same way, but it is no payment attempt.
      if (h.detail?.code === 'marked_uncollectible') continue;
      count(h.occurred_at, h.reason ?? 'unknown');
    } else if (h.entity === 'customer' && h.status === 'chargeback') {
      count(h.occurred_at, h.reason ?? 'disputed');
    }
  }
  // Invoices whose failures predate the history (imported, say) still count once.
  for (const i of input.invoices) {
    if (!seen.has(i.id) && i.failure_count > 0 && i.first_failed_at) count(i.first_failed_at, i.failure_reason ?? 'unknown');
  }
  return [...months.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([period, reasons]) => ({
      period,
      attempts: [...reasons.values()].reduce((a, b) => a + b, 0),
      reasons: [...reasons.entries()].map(([reason, n]) => ({ reason, count: n })).sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason)),
    }));
}

function partnerOf(input: PictureInput, inv: InvoiceRow): string | null {
  const caseId = inv.case_id ?? input.claims.filter((c) => c.invoice_id === inv.id).pop()?.case_id;
  return input.cases.find((k) => k.id === caseId)?.partner_id ?? null;
}

function collected(input: PictureInput): CustomerPicture['collected'] {
  const groups = new Map<string, { by: string; how: CollectedHow; amount: Money; invoices: number }>();
  const add = (by: string, how: CollectedHow, value: number, currency: string) => {
    if (value <= 0) return;
    const key = `${by}\u0000${how}\u0000${currency}`;
    const g = groups.get(key) ?? { by, how, amount: money(0, currency), invoices: 0 };
    g.amount.value += value;
    g.invoices++;
    groups.set(key, g);
  };
  for (const inv of input.invoices) {
    const agency = Number(inv.amount_collected);
    if (agency > 0) {
      const by = partnerOf(input, inv) ?? inv.resolved_by ?? 'agency';
      const how: CollectedHow =
        inv.resolution === 'paid_via_arrangement' || inv.arrangement ? 'arrangement' : inv.status === 'paid' && inv.resolution !== 'paid_to_merchant' ? 'in_full' : 'partial';
      add(by, how, agency, inv.currency);
    }
    if (inv.status === 'paid' && inv.resolution === 'paid_to_merchant') add(inv.resolved_by ?? inv.provider, 'paid_to_merchant', Number(inv.amount_paid), inv.currency);
    if (inv.status === 'recovered') add(inv.resolved_by ?? inv.provider, 'paid_after_failure', Number(inv.amount_paid) || Number(inv.amount_due), inv.currency);
  }
  return [...groups.values()].sort((a, b) => a.by.localeCompare(b.by) || a.how.localeCompare(b.how) || a.amount.currency.localeCompare(b.amount.currency));
}

function arrangements(input: PictureInput): ArrangementView[] {
  const out: ArrangementView[] = [];
  for (const inv of input.invoices) {
    const claim = input.claims.filter((c) => c.invoice_id === inv.id && c.arrangement).pop();
    const plan = (inv.arrangement ?? claim?.arrangement) as { installments?: number; amount?: Money; firstDueAt?: string } | null;
    if (!plan) continue;
    const rows = historyOf(input.history, 'invoice', inv.id);
    const agreed = rows.find((h) => h.status === 'arrangement' || h.detail?.arrangement);
    const paid: InstalmentPaid[] = [];
    let before = 0;
    for (const h of rows) {
      const total = Number(h.detail?.amountCollected?.value);
      if (!Number.isFinite(total)) continue;
      // Only money that came in once the arrangement stood is an instalment of it.
      if (total > before && agreed && byTime(h, agreed) >= 0) paid.push({ at: iso(h.occurred_at)!, amount: money(total - before, inv.currency), total: money(total, inv.currency) });
      before = Math.max(before, total);
    }
    out.push({
      invoiceId: inv.id,
      ref: inv.provider_ref,
      caseId: inv.case_id ?? claim?.case_id ?? null,
      partner: partnerOf(input, inv),
      state: ENDED.includes(inv.status) ? (inv.status === 'paid' ? 'completed' : 'ended') : 'running',
      invoiceStatus: inv.status,
      agreedAt: agreed ? iso(agreed.occurred_at) : null,
      installments: typeof plan.installments === 'number' ? plan.installments : null,
      installmentAmount: plan.amount && typeof plan.amount.value === 'number' ? money(plan.amount.value, plan.amount.currency) : null,
      firstDueAt: plan.firstDueAt ?? null,
      paid,
      collected: money(Number(inv.amount_collected), inv.currency),
      open: money(openOf(inv), inv.currency),
    });
  }
  // Running ones first: "which arrangement runs" is the question.
  const rank = { running: 0, completed: 1, ended: 2 };
  return out.sort((a, b) => rank[a.state] - rank[b.state] || (a.agreedAt ?? '').localeCompare(b.agreedAt ?? ''));
}

function rollup(input: PictureInput): CustomerPicture['rollup'] {
  const by = new Map<string, { open: number; collected: number; under: number; n: number }>();
  for (const inv of input.invoices) {
    const t = by.get(inv.currency) ?? { open: 0, collected: 0, under: 0, n: 0 };
    const unsettled = UNSETTLED.includes(inv.status) && inv.failure_count > 0;
    if (unsettled) t.open += openOf(inv);
    t.collected += Number(inv.amount_collected);
    if (!ENDED.includes(inv.status) && (inv.arrangement || inv.status === 'arrangement')) {
      t.under += openOf(inv);
      t.n++;
    }
    by.set(inv.currency, t);
  }
  return [...by.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([currency, t]) => ({ currency, open: money(t.open, currency), collected: money(t.collected, currency), underArrangement: money(t.under, currency), invoicesUnderArrangement: t.n }));
}

/** When the invoice was paid in the end (its first paid or recovered status), if it was. */
function paidAt(input: PictureInput, inv: InvoiceRow): number | null {
  const h = historyOf(input.history, 'invoice', inv.id).find((x) => x.status === 'paid' || x.status === 'recovered');
  return h ? time(h.occurred_at) : null;
}

function behaviour(input: PictureInput): Behaviour {
  const counted = input.invoices.filter((i) => i.status !== 'voided');
  const b: Behaviour = {
    invoices: counted.length, paidOnTime: 0, paidAfterFailure: 0, paidViaCollection: 0, writtenOff: 0, disputed: 0, unpaid: 0,
    averageDaysToRecovery: null, riskBand: 'unknown', riskReasons: [],
  };
  const recoveryDays: number[] = [];
  let failed = 0;
  let handedOver = 0;
  for (const inv of counted) {
    const didFail = inv.failure_count > 0 || !!inv.first_failed_at;
    if (didFail) failed++;
    if (inv.case_id) handedOver++;
    const isPaid = inv.status === 'paid' || inv.status === 'recovered' || inv.status === 'settled';
    if (inv.status === 'settled' || (isPaid && !didFail && !inv.case_id)) b.paidOnTime++;
    else if (inv.status === 'recovered' || (inv.status === 'paid' && inv.resolution === 'paid_to_merchant')) b.paidAfterFailure++;
    else if (inv.status === 'paid') b.paidViaCollection++;
    else if (inv.status === 'uncollectible') b.writtenOff++;
    else if (inv.status === 'disputed' || inv.resolution === 'disputed_upheld') b.disputed++;
    else if (UNSETTLED.includes(inv.status) && didFail) b.unpaid++;
    if (isPaid && didFail && inv.first_failed_at) {
      const at = paidAt(input, inv) ?? time(inv.updated_at);
      recoveryDays.push(Math.max(0, (at - time(inv.first_failed_at)) / DAY_MS));
    }
  }
  const chargebacks = input.history.filter((h) => h.entity === 'customer' && h.status === 'chargeback').length;
  b.disputed += chargebacks;
  if (recoveryDays.length) b.averageDaysToRecovery = Math.round((recoveryDays.reduce((a, d) => a + d, 0) / recoveryDays.length) * 10) / 10;

  // The band: the worst rule that holds, with every reason listed (a merchant must be able to say why).
  if (!counted.length) return b;
  const high: string[] = [];
  const medium: string[] = [];
  if (b.writtenOff) high.push(`${b.writtenOff} invoice(s) written off`);
  if (b.disputed) high.push(`${b.disputed} disputed payment(s)`);
  if (handedOver >= 2) high.push(`${handedOver} invoices needed a collection agency`);
  else if (handedOver === 1) medium.push('1 invoice needed a collection agency');
  if (failed >= 2) medium.push(`${failed} invoices failed`);
  if (b.averageDaysToRecovery !== null && b.averageDaysToRecovery > 14) medium.push(`payment came ${b.averageDaysToRecovery} days after a failure on average`);
  b.riskBand = high.length ? 'high' : medium.length ? 'medium' : 'low';
  b.riskReasons = [...high, ...medium];
  if (b.riskBand === 'low') b.riskReasons = [failed ? 'one failure, recovered' : 'no failed payments'];
  return b;
}

export function customerPicture(input: PictureInput): CustomerPicture {
  return {
    failureReasonsOverTime: failureReasonsOverTime(input),
    collected: collected(input),
    arrangements: arrangements(input),
    rollup: rollup(input),
    behaviour: behaviour(input),
  };
}

/**
 * Read the rows (tenant-scoped) and build the picture. It is the debtor's picture (issue 12,
 * hole 3): the invoices and cases of every PSP customer of the same person as `customerId`.
 */
export async function loadCustomerPicture(sql: Sql, merchantId: string, customerId: string): Promise<CustomerPicture> {
  const customerIds = (await sql.query<{ id: string }>(
    `SELECT id FROM customers WHERE merchant_id = $1 AND debtor_id = (SELECT debtor_id FROM customers WHERE merchant_id = $1 AND id = $2) ORDER BY id`,
    [merchantId, customerId],
  )).rows.map((r) => r.id);
  const invoices = (await sql.query<InvoiceRow>(`SELECT * FROM invoices WHERE merchant_id = $1 AND customer_id = ANY($2::text[]) ORDER BY COALESCE(issued_at, created_at), id`, [merchantId, customerIds])).rows;
  const cases = (await sql.query<CaseRow>(
    `SELECT * FROM cases WHERE merchant_id = $1 AND debtor_id = (SELECT debtor_id FROM customers WHERE merchant_id = $1 AND id = $2) ORDER BY opened_at, id`,
    [merchantId, customerId],
  )).rows;
  const claims = (await sql.query<ClaimRow>(
    `SELECT * FROM claims WHERE merchant_id = $1 AND (case_id = ANY($2::text[]) OR invoice_id = ANY($3::text[])) ORDER BY created_at, id`,
    [merchantId, cases.map((k) => k.id), invoices.map((i) => i.id)],
  )).rows;
  const history = (await sql.query<PictureHistoryRow>(
    `SELECT id, entity, entity_id, status, reason, source, detail, occurred_at FROM status_history
     WHERE merchant_id = $1 AND ((entity = 'customer' AND entity_id = ANY($2::text[])) OR (entity = 'invoice' AND entity_id = ANY($3::text[]))
       OR (entity = 'case' AND entity_id = ANY($4::text[])) OR (entity = 'claim' AND entity_id = ANY($5::text[])))
     ORDER BY occurred_at, id`,
    [merchantId, customerIds, invoices.map((i) => i.id), cases.map((k) => k.id), claims.map((c) => c.id)],
  )).rows;
  return customerPicture({ invoices, claims, cases, history });
}
